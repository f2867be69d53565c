"""Pruning methods: each a small class behind `Pruner`, chosen by conf/pruner/<name>.yaml (`_target_`)."""

from sweep.pruners import (
    depgraph,
    heads,
    importance,
    published,
    regularized,
    semi_structured,
    torch_prune,
)
from sweep.pruners.base import (
    Calibration,
    Family,
    NotApplicable,
    PruneKind,
    Pruner,
    RegularizeSettings,
    families,
)
from sweep.pruners.layers import PRUNABLE, classifiers_of, prunable_layers

__all__ = [
    "Calibration",
    "Family",
    "NotApplicable",
    "PRUNABLE",
    "PruneKind",
    "Pruner",
    "RegularizeSettings",
    "depgraph",
    "classifiers_of",
    "families",
    "heads",
    "importance",
    "prunable_layers",
    "published",
    "regularized",
    "semi_structured",
    "torch_prune",
]
