"""Counted targets (`macs`, `params`): the fraction of the dense model a pruned copy keeps, and the
search over a method's ratio as a job runs it."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from sweep.measure.counting import Counts, count
from sweep.targets.search import Found, search
from sweep.targets.target import Target


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

        return cost_trial(prune_at, dense, example=example, target=target, by_nonzero=by_nonzero)

    refine = (lambda m: trial_on(m, True)) if pruner.refines else None
    return search(trial_on(base, False), target, start, refine)
