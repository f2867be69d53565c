"""Prune to a cost instead of a ratio: search the ratio until the pruned model reaches the target.

`ratio` means something different for every method (a fraction of weights, of each group's channels,
of all channels), so methods compared at one ratio are not at one cost. A target names the cost:
`macs` or `params` (the fraction of the dense model's to keep) or `speedup` (measured). Every method is
monotone in its ratio, so a bracketing search (interpolation, falling back to bisection) finds it; a
value no ratio up to `max_ratio` reaches, or that the method's steps jump over, is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch.nn as nn

from sweep.errors import NotApplicable
from sweep.measure.counting import Counts, count


class TargetNotReached(NotApplicable):
    """No ratio the search tried reached the target within tolerance."""


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

    def first_guess(self) -> float:
        """MACs and params of a conv or linear layer shrink about quadratically with a channel ratio
        (both its inputs and outputs lose channels): keep = (1 - r)^2."""
        keep = 1 / self.value if self.kind == "speedup" else self.value
        return min(self.max_ratio, max(0.0, 1 - keep**0.5))

    def close_enough(self, reached: float) -> bool:
        if self.kind == "speedup":
            return abs(reached - self.value) <= self.tolerance * self.value
        return abs(reached - self.value) <= self.tolerance

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


@dataclass
class Trial:
    ratio: float
    reached: float
    model: nn.Module | None = field(default=None, repr=False)


@dataclass
class Found:
    model: nn.Module
    ratio: float
    reached: float
    trials: list[Trial]


def _next_ratio(lo: Trial, hi: Trial | None, goal: float, target: Target) -> float:
    """Interpolate between the bracketing trials (kept away from their ends, so it always shrinks the
    bracket); without an upper trial, try the largest ratio."""
    if hi is None:
        return target.max_ratio
    a, b = target.progress(lo.reached), target.progress(hi.reached)
    t = 0.5 if b <= a else (goal - a) / (b - a)
    t = min(0.9, max(0.1, t))
    return lo.ratio + t * (hi.ratio - lo.ratio)


def search(trial: Callable[[float], tuple[nn.Module, float]], target: Target) -> Found:
    """`trial(ratio)` prunes a fresh copy at `ratio` and returns it with what it reached."""
    goal = target.goal()
    lo, hi = Trial(0.0, 1.0), None  # ratio 0 keeps everything and is 1x as fast
    tried: list[Trial] = []
    ratio = target.first_guess()
    for _ in range(target.max_trials):
        model, reached = trial(ratio)
        t = Trial(ratio, reached, model)
        tried.append(Trial(ratio, reached))
        if target.close_enough(reached):
            return Found(model, ratio, reached, tried)
        if target.progress(reached) < goal:
            if ratio >= target.max_ratio:
                raise TargetNotReached(
                    f"target {target.label} is out of reach: at ratio {ratio:g} (the most "
                    f"target.max_ratio allows) the model keeps {reached:.3g}"
                )
            lo = t
        else:
            hi = t
        del model, t
        ratio = _next_ratio(lo, hi, goal, target)
        if hi is not None and hi.ratio - lo.ratio < 1e-4:
            break
    best = min(tried, key=lambda t: abs(t.reached - target.value))
    raise TargetNotReached(
        f"target {target.label} not reached within ±{target.tolerance:g} in {len(tried)} trials: "
        f"nearest {best.reached:.3g} at ratio {best.ratio:.4g} (the method's steps are coarser here)"
    )
