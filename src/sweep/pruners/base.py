"""The one interface every pruning method implements, and what it tells the report about itself."""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass

import torch
import torch.nn as nn


class PruneKind(str, enum.Enum):
    """What a method does to the model; decides what a speedup can mean."""

    UNSTRUCTURED = "unstructured"  # single weights zeroed; shapes unchanged
    STRUCTURED_MASK = "structured_mask"  # whole channels zeroed; shapes unchanged
    STRUCTURAL = "structural"  # channels removed; the model gets smaller

    @property
    def dense_speedup_possible(self) -> bool:
        """Only removed channels make dense kernels do less work; masks need sparse kernels."""
        return self is PruneKind.STRUCTURAL


@dataclass(frozen=True)
class Family:
    """A family of methods: the `pruning_family` tag, the report's section title and its place."""

    name: str
    title: str
    rank: int


class Pruner(abc.ABC):
    """One pruning method. `prune` changes `model` in place at `ratio` and leaves its classifier alone."""

    kind: PruneKind
    family: Family
    ratio_means: str  # what `ratio` is a fraction of, for the README and the run's params

    def __init__(self, name: str):
        self.name = name

    @abc.abstractmethod
    def prune(self, model: nn.Module, ratio: float, example_inputs: torch.Tensor) -> nn.Module:
        """Prune in place; return the model (the same object or a replacement)."""


def families() -> dict[str, Family]:
    """Every family of the pruner classes imported so far, by tag value."""
    found: dict[str, Family] = {}
    todo = list(Pruner.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        fam = getattr(cls, "family", None)
        if isinstance(fam, Family):
            found[fam.name] = fam
    return found
