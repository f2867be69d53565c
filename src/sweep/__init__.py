"""Benchmark neural-network pruning methods on timm image models, one Hydra sweep at a time."""

__version__ = "0.1.0"
