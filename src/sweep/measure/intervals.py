"""A speedup and its 95 % interval, from paired timed rounds.

What moves a speedup from one job to the next is more than the spread of one timing's rounds: two
sessions of one ONNX file, two compiled OpenVINO models or two copies of one eager model differ by a
few per cent (OpenVINO INT8 by up to a third), as where each lands in memory and which kernels its
runtime picks differ. The harness therefore times each model as `measure.instances` instances, one per
round in turn, and the bootstrap resamples instances as well as runs of consecutive rounds: an
interval that holds from one job to the next has to carry both.

Neither reaches what moves between jobs minutes apart on a shared machine (other tenants, clocks,
memory placement), which one job cannot see: on a 2-core VM a job's speedups moved by 2.0 % (CV,
pooled over 20 speedups in four sets of five jobs) where the bootstrap implied 1.7 %. The interval is
therefore where another job's reading of the same pair is expected to fall: the bootstrap's spread
and the machine's run-to-run CV (`measure.run_to_run_cv`, measured by `benchmarks/repeatability.py`)
added in quadrature on a log scale.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from sweep.tracking import names

Z95 = 1.959964  # the normal quantile of a two-sided 95 % interval


@dataclass(kw_only=True)
class Speedup:
    value: float
    ci_low: float
    ci_high: float

    # the names of a speedup's interval, from its own name (`speedup` -> `speedup_ci_low`)
    LOW, HIGH = names.CI_LOW, names.CI_HIGH

    def metrics(self, name: str = names.SPEEDUP) -> dict[str, float]:
        return {name: self.value, name + self.LOW: self.ci_low, name + self.HIGH: self.ci_high}

    @property
    def slower_than_dense(self) -> bool:
        """The pruned model is slower beyond the interval: its upper bound below 1."""
        return self.ci_high < 1


def instance_of(round_: int, instances: int) -> int:
    """Which instance of each model a round times: pairs of rounds take turns, so that every instance
    runs in both orders of the models (the order alternates every round)."""
    return (round_ // 2) % instances


def _by_instance(samples: Sequence[float], instances: int) -> torch.Tensor:
    """(instances, rounds of each) in time order, cut to the fewest any instance has."""
    groups: list[list[float]] = [[] for _ in range(instances)]
    for r, s in enumerate(samples):
        groups[instance_of(r, instances)].append(s)
    m = min(len(g) for g in groups)
    return torch.tensor([g[:m] for g in groups], dtype=torch.float64)


def paired_speedup(
    base_ms: Sequence[float],
    new_ms: Sequence[float],
    n_boot: int = 1000,
    seed: int = 0,
    instances: int = 1,
    run_to_run_cv: float = 0.0,
) -> Speedup:
    """median(base) / median(new), with a 95 % interval from a two-level bootstrap: each resample
    draws, with replacement, which instance of each model fills each instance's place (independently
    for base and new), and within it runs of consecutive rounds (a moving-block bootstrap, circular,
    runs about cube-root-of-n long). Drift within the timing widens the interval instead of being
    averaged away, and so does a difference between instances of one model; `run_to_run_cv` widens it
    by the run-to-run spread no single timing sees (`widened`)."""
    own = _bootstrap(base_ms, new_ms, n_boot=n_boot, seed=seed, instances=instances)
    return widened(own, run_to_run_cv)


def run_to_run_half_width(cv: float) -> float:
    """The 95 % half-width, on a log scale, of a run-to-run CV."""
    return Z95 * math.log1p(cv)


def widened(s: Speedup, cv: float) -> Speedup:
    """`s` with each side of its interval and a run-to-run CV's 95 % half-width added in quadrature, on
    a log scale (a speedup is a ratio: its spread is relative)."""
    if cv <= 0:
        return s
    extra = run_to_run_half_width(cv)

    def side(bound: float) -> float:
        return math.hypot(abs(math.log(bound / s.value)), extra)

    return Speedup(
        value=s.value,
        ci_low=s.value * math.exp(-side(s.ci_low)),
        ci_high=s.value * math.exp(side(s.ci_high)),
    )


def _bootstrap(
    base_ms: Sequence[float], new_ms: Sequence[float], *, n_boot: int, seed: int, instances: int
) -> Speedup:
    value = statistics.median(base_ms) / statistics.median(new_ms)
    k = max(1, min(instances, len(base_ms) // 2))
    base, new = _by_instance(base_ms, k), _by_instance(new_ms, k)
    m = base.shape[1]
    if n_boot <= 0 or m < 2:
        return Speedup(value=value, ci_low=value, ci_high=value)
    g = torch.Generator().manual_seed(seed)
    run = max(1, round(m ** (1 / 3)))
    runs = -(-m // run)
    starts = torch.randint(0, m, (n_boot, k, runs, 1), generator=g)
    t = ((starts + torch.arange(run)) % m).reshape(n_boot, k, runs * run)[:, :, :m]
    if k == 1:
        a = b = torch.zeros(n_boot, 1, 1, dtype=torch.long)
    else:
        a = torch.randint(0, k, (n_boot, k, 1), generator=g)
        b = torch.randint(0, k, (n_boot, k, 1), generator=g)
    # rounds at the same time index of two instances are at most 2 x instances rounds apart: the
    # pairing against drift holds
    drawn_base = base[a, t].reshape(n_boot, k * m)
    drawn_new = new[b, t].reshape(n_boot, k * m)
    ratios = drawn_base.quantile(0.5, dim=1) / drawn_new.quantile(0.5, dim=1)
    lo, hi = torch.quantile(ratios, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return Speedup(value=value, ci_low=min(lo, value), ci_high=max(hi, value))
