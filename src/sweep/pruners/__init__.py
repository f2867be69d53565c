"""Pruning methods: each a small class behind `Pruner`, chosen by conf/pruner/<name>.yaml (`_target_`)."""
from sweep.pruners.base import PruneKind, Pruner

__all__ = ["PruneKind", "Pruner"]
