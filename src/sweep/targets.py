"""Prune to a cost instead of a ratio: search the ratio until the pruned model reaches the target.

`ratio` means something different for every method (a fraction of weights, of each group's channels,
of all channels), so methods compared at one ratio are not at one cost. A target names the cost:
`macs` or `params` (the fraction of the dense model's to keep) or `speedup` (measured). Every method is
monotone in its ratio, so a bracketing search (interpolation, falling back to bisection) finds it.
Where the method's steps jump over the target, its finest steps close the gap (`search`'s `refine`);
where even those cannot, the job lands on the nearest point at or beyond the target and says why. A
value no ratio up to `max_ratio` reaches is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from sweep.errors import NotApplicable, first_line
from sweep.measure.counting import Counts, count


class TargetNotReached(NotApplicable):
    """No ratio the search tried reached the target within tolerance."""


# A measured reading may meet a target by containing it only while its interval's half-width is at
# most this many tolerances (2 % tolerance: +-5 %); the harness's intervals are +-1-3 % on a quiet CPU.
INTERVAL_TOLERANCES = 2.5


@dataclass(frozen=True)
class Target:
    kind: str  # macs | params | speedup
    value: float  # fraction kept (macs, params) or times faster (speedup)
    tolerance: float
    max_trials: int
    max_ratio: float

    @property
    def label(self) -> str:
        return f"{self.kind}={self.value:g}"

    def first_guess(self, start: float = 1.0) -> float:
        """MACs and params of a conv or linear layer shrink about quadratically with a channel ratio
        (both its inputs and outputs lose channels): keep = (1 - r)^2, of what the model at ratio 0
        (`start`) keeps."""
        keep = start / self.value if self.kind == "speedup" else self.value / start
        return min(self.max_ratio, max(0.0, 1 - min(1.0, keep) ** 0.5))

    def close_enough(self, r: float | Reading) -> bool:
        """Within tolerance; a measured speedup also when the target lies inside its interval (the
        measurement cannot tell them apart), provided that interval is narrow enough to steer by."""
        r = Reading.of(r)
        if self.kind == "speedup":
            return abs(r.value - self.value) <= self.tolerance * self.value or (
                r.low <= self.value <= r.high and self.steers(r)
            )
        return abs(r.value - self.value) <= self.tolerance

    def steers(self, r: Reading) -> bool:
        """A reading's interval is narrow enough to decide by: half-width at most INTERVAL_TOLERANCES
        tolerances (on a loaded machine a reading can span 0.8x to 2.4x, which says nothing)."""
        return (r.high - r.low) / 2 <= INTERVAL_TOLERANCES * self.tolerance * r.value

    def beyond(self, r: float | Reading) -> bool:
        """At or beyond the target: no costlier than asked, or a median speedup within tolerance of
        it or above."""
        r = Reading.of(r)
        if self.kind == "speedup":
            return r.value >= self.value * (1 - self.tolerance)
        return r.value <= self.value

    def progress(self, reached: float) -> float:
        """A number that grows with the ratio: fraction removed, or the speedup itself."""
        return reached if self.kind == "speedup" else 1 - reached

    def goal(self) -> float:
        return self.progress(self.value)


def of_config(cfg) -> Target | None:
    for kind in ("macs", "params", "speedup"):
        if cfg[kind] is not None:
            return Target(kind, cfg[kind], cfg.tolerance, cfg.max_trials, cfg.max_ratio)
    return None


def kept(target: Target, dense: Counts, pruned: Counts, by_nonzero: bool) -> float:
    """The fraction of the dense model's MACs or params the pruned model keeps. Masks keep every
    weight in place, so they are measured by non-zero counts."""
    if target.kind == "macs":
        num, den = (
            (pruned.macs_nonzero, dense.macs_nonzero) if by_nonzero else (pruned.macs, dense.macs)
        )
    else:
        num, den = (
            (pruned.params_nonzero, dense.params_nonzero)
            if by_nonzero
            else (pruned.params_total, dense.params_total)
        )
    return num / den if den else 1.0


def cost_trial(
    prune_at: Callable[[float], nn.Module],
    dense: Counts,
    example,
    target: Target,
    by_nonzero: bool,
) -> Callable[[float], tuple[nn.Module, float]]:
    """A trial for a macs or params target: prune a fresh copy at a ratio, count what it keeps."""

    def trial(ratio: float) -> tuple[nn.Module, float]:
        model = prune_at(ratio)
        return model, kept(target, dense, count(model, example), by_nonzero)

    return trial


def method_search(
    pruner,
    base: nn.Module,
    dense: Counts,
    example,
    target: Target,
    calibration=None,
    seed: int = 0,
    start: float = 1.0,
) -> Found:
    """A macs or params target searched as a job searches it: fresh copies of `base` (the dense model,
    or one a schedule's earlier steps left, reaching `start`) pruned by the method at a ratio, then by
    its finest steps where it has them; costs counted against the dense model's `dense` counts."""
    import copy

    from sweep.pruners.base import PruneKind

    by_nonzero = pruner.kind is not PruneKind.STRUCTURAL

    def trial_on(model: nn.Module, fine: bool):
        step = pruner.refine if fine else pruner.prune

        def prune_at(ratio: float) -> nn.Module:
            torch.manual_seed(seed)  # random importance picks the same channels in every run
            return step(copy.deepcopy(model), ratio, example, calibration).eval()

        return cost_trial(prune_at, dense, example, target, by_nonzero)

    refine = (lambda m: trial_on(m, True)) if pruner.refines else None
    return search(trial_on(base, False), target, start, refine)


@dataclass(frozen=True)
class Reading:
    """What a trial reached: a count (exact), or a measured speedup with its 95 % interval."""

    value: float
    low: float
    high: float

    @classmethod
    def of(cls, v: float | Reading) -> Reading:
        return v if isinstance(v, Reading) else cls(float(v), float(v), float(v))

    def averaged(self, other: Reading) -> Reading:
        """Two readings of one model: the mean of their medians and of their bounds."""
        return Reading(*((a + b) / 2 for a, b in zip(self.astuple(), other.astuple())))

    def astuple(self) -> tuple[float, float, float]:
        return (self.value, self.low, self.high)


@dataclass
class Trial:
    ratio: float
    reached: float
    low: float | None = None  # a measured reading's interval (speedup)
    high: float | None = None
    stage: str = "ratio"  # ratio: the method at a ratio; refine: its finest steps on top of one

    @property
    def reading(self) -> Reading:
        v = self.reached
        return Reading(
            v, v if self.low is None else self.low, v if self.high is None else self.high
        )


@dataclass
class Found:
    model: nn.Module
    ratio: float
    reached: float
    trials: list[Trial]
    # within: the ratio search landed within tolerance; refined: the finest-step search did; nearest:
    # neither could, and this is the nearest point at or beyond the target (never costlier than asked)
    landing: str = "within"
    stopped_by: str = ""  # nearest only: granularity | noise
    note: str = ""  # nearest only: one line saying where it landed and why
    low: float | None = None
    high: float | None = None
    refine_ratio: float = 0.0  # the finest-step search's ratio on top of `ratio` (refined, nearest)

    @property
    def within(self) -> bool:
        return self.landing != "nearest"


Trial_fn = Callable[[float], "tuple[nn.Module, float | Reading]"]


def _next_ratio(lo: Trial, hi: Trial | None, goal: float, target: Target, start: Trial) -> float:
    """Interpolate between the bracketing trials (kept away from their ends, so it always shrinks the
    bracket). Without an upper trial: the ratio search tries the largest ratio (a target out of reach
    is found at once); the finest-step search, whose units are few and small, extrapolates from where
    it started (at least doubling the ratio)."""
    if hi is None:
        if lo.stage == "ratio" or lo.ratio <= 0:
            return target.max_ratio
        a, b = target.progress(start.reached), target.progress(lo.reached)
        grow = 2.0 if b <= a else max(2.0, 1.2 * (goal - a) / (b - a))
        return min(target.max_ratio, lo.ratio * grow)
    a, b = target.progress(lo.reached), target.progress(hi.reached)
    t = 0.5 if b <= a else (goal - a) / (b - a)
    t = min(0.9, max(0.1, t))
    return lo.ratio + t * (hi.ratio - lo.ratio)


@dataclass
class _Search:
    """One search's state over its stages: every trial, the model just short of the target (where a
    finer search starts) and the best one at or beyond it (where the search lands if nothing closer)."""

    target: Target
    trials: list[Trial] = field(default_factory=list)
    short: tuple[Trial, nn.Module] | None = (
        None  # the furthest trial that does not reach the target
    )
    beyond: tuple[Trial, nn.Module] | None = None  # the trial at or beyond it nearest to it
    base_ratio: float = 0.0  # the ratio stage's ratio the refine stage starts from
    brackets: tuple[Trial, Trial] | None = None  # the last stage's bracketing trials
    failure: str = ""  # why the finest-step stage ended early, if it failed
    # measured readings that met the target once and not when read again: (ratio, first, averaged)
    flips: list[tuple[float, Reading, Reading]] = field(default_factory=list)

    def bracket(
        self,
        trial: Trial_fn,
        start: float,
        stage: str,
        confirm: Callable[[nn.Module], Reading] | None,
        trials: int,
    ) -> Found | None:
        """A bracketing search over `trial`'s ratio; ratio 0 reaches `start`. Found within tolerance,
        or None once the trials are spent or the bracket cannot shrink."""
        t = self.target
        goal = t.goal()
        lo = first = Trial(0.0, start, stage=stage)
        hi, second_look = None, False
        ratio = t.first_guess(start)
        for _ in range(trials):
            read = self._read(trial, ratio, stage, confirm)
            if read is None:
                break
            model, r, tr = read
            if t.kind == "speedup" and self._unsteerable(stage):
                self._keep(tr, model)
                break  # the readings cannot steer: more of them only spends time (see _noise)
            if t.close_enough(r):
                return self._found(model, tr, "within" if stage == "ratio" else "refined")
            self._keep(tr, model)
            del model
            if t.progress(r.value) < goal and ratio >= t.max_ratio:
                if second_look or hi is not None:
                    break  # out of reach for this stage
                # a method may stop being monotone near its largest ratio: one look half-way first
                second_look, ratio = True, (lo.ratio + t.max_ratio) / 2
                continue
            if t.progress(r.value) < goal:
                lo = tr
            else:
                hi = tr
            ratio = _next_ratio(lo, hi, goal, t, first)
            if hi is not None and hi.ratio - lo.ratio < 1e-4:
                break  # no ratio lies between the brackets
        if hi is not None:
            self.brackets = (lo, hi)
        elif stage == "refine":
            self.failure = self.failure or (
                f"its finest steps from {start:.3g} went no further than {lo.reached:.3g}"
            )
        return None

    def _unsteerable(self, stage: str, run: int = 4) -> bool:
        """The stage's last `run` readings all too wide to decide by."""
        last = [x for x in self.trials if x.stage == stage][-run:]
        return len(last) == run and not any(self.target.steers(x.reading) for x in last)

    def _read(self, trial: Trial_fn, ratio: float, stage: str, confirm):
        """One trial: (model, its reading, the Trial recorded), or None where a finest step failed."""
        t = self.target
        try:
            model, got = trial(ratio)
        except Exception as e:
            if stage == "ratio":
                raise
            # the library can fail on a model it already pruned hard: the finest steps end here
            self.failure = f"the finest steps failed at ratio {ratio:.3g} ({first_line(e)})"
            return None
        r = Reading.of(got)
        if confirm is not None and t.close_enough(r):
            # a measured reading near the target is read again before it is believed
            first_read, r = r, r.averaged(confirm(model))
            if not t.close_enough(r):
                self.flips.append((ratio, first_read, r))
        measured = r.low != r.high
        tr = Trial(ratio, r.value, *((r.low, r.high) if measured else (None, None)), stage)
        self.trials.append(tr)
        return model, r, tr

    def _found(self, model: nn.Module, tr: Trial, landing: str, **kw) -> Found:
        base, refine = (self.base_ratio, tr.ratio) if tr.stage == "refine" else (tr.ratio, 0.0)
        return Found(
            model, base, tr.reached, self.trials, landing, low=tr.low, high=tr.high,
            refine_ratio=refine, **kw,
        )  # fmt: skip

    def _keep(self, tr: Trial, model: nn.Module) -> None:
        t = self.target
        if t.beyond(tr.reading):
            if self.beyond is None or abs(tr.reached - t.value) < abs(
                self.beyond[0].reached - t.value
            ):
                self.beyond = (tr, model)
        elif tr.stage == "ratio" and (self.short is None or tr.ratio > self.short[0].ratio):
            self.short = (tr, model)

    def nearest(self) -> Found:
        """The nearest point at or beyond the target, with why nothing closer was found; an error when
        no trial got there."""
        t = self.target
        if self.beyond is None:
            furthest = max(self.trials, key=lambda x: (t.progress(x.reached), x.ratio))
            how = (
                ""
                if furthest.stage == "ratio"
                else f" and its finest steps at {furthest.ratio:.3g}"
            )
            at = self.base_ratio if furthest.stage == "refine" else furthest.ratio
            what = "measured at most" if t.kind == "speedup" else "the model keeps at least"
            raise TargetNotReached(
                f"target {t.label} is out of reach: {what} {furthest.reached:.3g} (ratio {at:g}"
                f"{how}; ratios up to target.max_ratio={t.max_ratio:g} tried)"
            )
        tr, model = self.beyond
        why, reason = self._why()
        return self._found(
            model,
            tr,
            "nearest",
            stopped_by=why,
            note=f"target {t.label} not reached within ±{t.tolerance:g}: landed at {tr.reached:.3g}, "
            f"the nearest point {'at or beyond' if t.kind == 'speedup' else 'at or below'} it "
            f"({len(self.trials)} trials); {reason}",
        )

    def _why(self) -> tuple[str, str]:
        """noise: a measured reading disagreed with itself beyond its interval (read again, or against
        a neighbouring ratio), so the machine's drift, not the model, decided; granularity: the
        method's steps jump over the target."""
        noise = self._noise()
        if noise:
            return "noise", "noise: " + noise
        why, b = [], self.brackets
        if b is not None:
            lo, hi = b
            why.append(f"the method's step here goes from {lo.reached:.3g} to {hi.reached:.3g}")
        if self.failure:
            why.append(self.failure)
        return "granularity", "granularity: " + ("; ".join(why) or "no trial came closer")

    def _noise(self) -> str:
        t = self.target
        if t.kind != "speedup":
            return ""
        wide = [x for x in self.trials if x.low is not None and not t.steers(x.reading)]
        if wide and len(wide) * 2 >= len(self.trials):
            w = max(wide, key=lambda x: (x.high - x.low) / x.reached)
            return (
                f"{len(wide)} of {len(self.trials)} readings had intervals too wide to steer by "
                f"(up to {w.reached:.3g} [{w.low:.3g}, {w.high:.3g}] at ratio {w.ratio:.3g}; "
                f"half-width allowed {100 * INTERVAL_TOLERANCES * t.tolerance:g} %): the machine "
                f"is too noisy for ±{100 * t.tolerance:g} % here"
            )
        for ratio, first, again in self.flips:
            return (
                f"at ratio {ratio:.3g} the speedup read {first.value:.3g} [{first.low:.3g}, "
                f"{first.high:.3g}], then {again.value:.3g} on average with a second reading: the "
                f"drift between readings is wider than one reading's interval"
            )
        done = sorted((x for x in self.trials if x.low is not None), key=lambda x: x.ratio)
        for i, a in enumerate(done):
            for b in done[i + 1 :]:
                if b.stage == a.stage and b.reading.high < a.reading.low:
                    return (
                        f"ratio {b.ratio:.3g} read slower ({b.reached:.3g} [{b.low:.3g}, "
                        f"{b.high:.3g}]) than the smaller ratio {a.ratio:.3g} ({a.reached:.3g} "
                        f"[{a.low:.3g}, {a.high:.3g}]): the drift between readings is wider than "
                        f"one reading's interval"
                    )
        return ""


def search(
    trial: Trial_fn,
    target: Target,
    start: float = 1.0,
    refine: Callable[[nn.Module], Trial_fn] | None = None,
    confirm: Callable[[nn.Module], Reading] | None = None,
) -> Found:
    """`trial(ratio)` prunes a fresh copy at `ratio` and returns it with what it reached (ratio 0
    reaches `start`: 1.0 for the dense model, or a model already partly pruned).

    Where the method's ratio cannot land within tolerance (a coarse model jumps over the target), and
    the method has finer steps (`refine(model)` gives a trial that prunes a copy of `model` further,
    a few of the units its own criterion ranks lowest at a time), a second search closes the gap from
    the trial just short of the target. Where that cannot either, the job lands on the nearest point at
    or beyond the target (never costlier than asked), and `Found.note` says so and why. A measured
    target (`confirm`) reads a model again before believing a reading near the target.
    """
    s = _Search(target)
    found = s.bracket(trial, start, "ratio", confirm, target.max_trials)
    if found is not None:
        return found
    if refine is not None:
        if s.short is None:  # every trial overshot: the finest steps start from ratio 0
            model, got = trial(0.0)
            s.short = (Trial(0.0, Reading.of(got).value), model)
        base, model = s.short
        s.base_ratio = base.ratio
        found = s.bracket(refine(model), base.reached, "refine", confirm, target.max_trials)
        if found is not None:
            return found
    return s.nearest()
