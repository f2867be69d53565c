"""Pruning methods: each a small class behind `Pruner`, chosen by conf/pruner/<name>.yaml (`_target_`)."""

from sweep.pruners import depgraph, torch_prune
from sweep.pruners.base import Family, PruneKind, Pruner, families

__all__ = ["Family", "PruneKind", "Pruner", "depgraph", "families", "torch_prune"]
