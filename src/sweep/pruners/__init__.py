"""Pruning methods: each a small class behind `Pruner`, chosen by conf/pruner/<name>.yaml (`_target_`)."""

from sweep.pruners import (
    depgraph,
    heads,
    importance,
    regularized,
    semi_structured,
    torch_prune,
)
from sweep.pruners.base import Calibration, Family, NotApplicable, PruneKind, Pruner, families

__all__ = [
    "Calibration",
    "Family",
    "NotApplicable",
    "PruneKind",
    "Pruner",
    "depgraph",
    "families",
    "heads",
    "importance",
    "regularized",
    "semi_structured",
    "torch_prune",
]
