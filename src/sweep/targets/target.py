"""A cost target (`target.macs`, `target.params`, `target.speedup`) and the error of one out of reach."""

from __future__ import annotations

from dataclasses import dataclass

from sweep.errors import NotApplicable


class TargetNotReached(NotApplicable):
    """No ratio the search tried reached the target within tolerance."""


# A measured reading may meet a target by containing it only while its interval's half-width is at
# most this many tolerances (2 % tolerance: +-5 %); the harness's intervals are +-1-3 % on a quiet CPU.
INTERVAL_TOLERANCES = 2.5


@dataclass(frozen=True, kw_only=True)
class Reading:
    """What a trial reached: a count (exact), or a measured speedup with its 95 % interval."""

    value: float
    low: float
    high: float

    @classmethod
    def of(cls, v: float | Reading) -> Reading:
        return v if isinstance(v, Reading) else cls(value=float(v), low=float(v), high=float(v))

    def averaged(self, other: Reading) -> Reading:
        """Two readings of one model: the mean of their medians and of their bounds."""
        value, low, high = ((a + b) / 2 for a, b in zip(self.astuple(), other.astuple()))
        return Reading(value=value, low=low, high=high)

    def astuple(self) -> tuple[float, float, float]:
        return (self.value, self.low, self.high)


@dataclass(frozen=True)
class Target:
    kind: str  # macs | params | speedup
    value: float  # fraction kept (macs, params) or times faster (speedup)
    tolerance: float
    max_trials: int
    max_ratio: float
    runtime: str = "eager"  # where a speedup is measured

    @property
    def label(self) -> str:
        """`macs=0.5`, `speedup=2`; a speedup measured in a deployment runtime: `speedup@onnxruntime=2`."""
        where = f"@{self.runtime}" if self.kind == "speedup" and self.runtime != "eager" else ""
        value = self.value if isinstance(self.value, str) else f"{self.value:g}"  # `published`
        return f"{self.kind}{where}={value}"

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
            runtime = cfg.get("runtime", "eager") if kind == "speedup" else "eager"
            return Target(
                kind,
                cfg[kind],
                tolerance=cfg.tolerance,
                max_trials=cfg.max_trials,
                max_ratio=cfg.max_ratio,
                runtime=runtime,
            )
    return None
