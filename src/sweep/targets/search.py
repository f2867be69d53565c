"""The bracketing search over a method's ratio (interpolation, falling back to bisection), its
refinement by the method's finest steps, and readings measured with an interval (a speedup)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch.nn as nn

from sweep.errors import first_line
from sweep.targets.target import INTERVAL_TOLERANCES, Reading, Target, TargetNotReached


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
            value=v,
            low=v if self.low is None else self.low,
            high=v if self.high is None else self.high,
        )


@dataclass(kw_only=True)
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
            ratio = _next_ratio(lo, hi, goal=goal, target=t, start=first)
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
            model=model, ratio=base, reached=tr.reached, trials=self.trials, landing=landing, low=tr.low, high=tr.high,
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
    found = s.bracket(trial, start, stage="ratio", confirm=confirm, trials=target.max_trials)
    if found is not None:
        return found
    if refine is not None:
        if s.short is None:  # every trial overshot: the finest steps start from ratio 0
            model, got = trial(0.0)
            s.short = (Trial(0.0, Reading.of(got).value), model)
        base, model = s.short
        s.base_ratio = base.ratio
        found = s.bracket(
            refine(model), base.reached, stage="refine", confirm=confirm, trials=target.max_trials
        )
        if found is not None:
            return found
    return s.nearest()
