"""A pruning method of one's own, benchmarked with sweep: see README.md."""

from my_method.pruner import FirstOrderChannels

__all__ = ["FirstOrderChannels"]
