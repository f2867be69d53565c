"""The one interface every pruning method implements, and what it tells the report about itself."""

from __future__ import annotations

import abc
import contextlib
import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn as nn

from sweep.errors import NotApplicable

__all__ = [
    "Calibration",
    "Family",
    "NotApplicable",
    "PruneKind",
    "Pruner",
    "RegularizeSettings",
    "families",
]


class PruneKind(str, enum.Enum):
    """What a method does to the model; decides what a speedup can mean."""

    UNSTRUCTURED = "unstructured"  # single weights zeroed; shapes unchanged
    SEMI_STRUCTURED = (
        "semi_structured"  # 2 of every 4 weights zeroed; sparse tensor cores can use it
    )
    STRUCTURED_MASK = "structured_mask"  # whole channels zeroed; shapes unchanged
    STRUCTURAL = "structural"  # channels removed; the model gets smaller

    @property
    def dense_speedup_possible(self) -> bool:
        """Only removed channels make dense kernels do less work; masks need sparse kernels."""
        return self is PruneKind.STRUCTURAL

    @property
    def sparse_kernel_speedup_possible(self) -> bool:
        """2:4 is the one mask that hardware runs faster: sparse tensor cores (CUDA, Ampere or newer,
        fp16/bf16)."""
        return self is PruneKind.SEMI_STRUCTURED


@dataclass(frozen=True)
class Family:
    """A family of methods: the `pruning_family` tag, the report's section title and its place."""

    name: str
    title: str
    rank: int


@dataclass
class Calibration:
    """Labelled batches from the train split (never the eval split), on the job's device, for criteria
    that read gradients; labels are indices into the model's outputs."""

    batches: list[tuple[torch.Tensor, torch.Tensor]]
    # the most images a criterion runs backward through at once (None: a whole batch): the job sets
    # it so that the prune stage's memory fits (sweep.limits.MemoryPlan)
    micro_batch: int | None = None

    def parts(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
        """Each batch in parts of at most `micro_batch` images, with the share of its batch each part
        is (a batch's mean loss is the sum over its parts of share x the part's mean loss, so gradients
        accumulated over the parts are the batch's, up to float rounding; the model is in eval mode
        while a criterion calibrates, so BatchNorm does not see the parts as batches)."""
        for x, y in self.batches:
            step = self.micro_batch or len(x)
            for i in range(0, len(x), step):
                yield x[i : i + step], y[i : i + step], len(x[i : i + step]) / len(x)


@dataclass(frozen=True)
class RegularizeSettings:
    """A method's sparse-training phase (`Pruner.regularize`): its budget (as fine-tuning's: epochs, at
    most max_steps optimizer steps and time_budget_s seconds) and its regularizer's strength."""

    strength: float = 1e-4  # the regularizer's coefficient (Torch-Pruning's `reg`)
    epochs: int = 1
    max_steps: int | None = None
    time_budget_s: float | None = None
    lr: float | None = None  # null: the model's finetune_lr
    delta: float = 1e-5  # growing_reg: how much the coefficient grows at each update (`delta_reg`)
    update_every: int = 10  # growing_reg: optimizer steps between updates

    def __post_init__(self):
        if self.strength < 0 or self.epochs < 1 or self.update_every < 1:
            raise ValueError(
                f"regularize: strength={self.strength} must be >= 0, epochs={self.epochs} and "
                f"update_every={self.update_every} >= 1"
            )


class Pruner(abc.ABC):
    """One pruning method. `prune` changes `model` in place at `ratio` and leaves its classifier alone."""

    kind: PruneKind
    family: Family
    ratio_means: str  # what `ratio` is a fraction of: the methods reference and the run's params
    calibration_batches: int = 0  # train batches the method needs (Taylor, Hessian); 0: none
    calibration_batch_size: int = 16
    # layers (path patterns) that `check` found the method cannot prune, left whole by `prune`; () for
    # most methods (the run's `pruning_kept_dense` tag)
    kept_dense: tuple[str, ...] = ()
    # a method that trains the dense model for sparsity before pruning (the job's regularize stage,
    # with `regularizing`'s hook): its settings; None for one-shot criteria on trained weights
    regularize: RegularizeSettings | None = None

    def __init__(self, name: str):
        self.name = name

    def check(
        self, model: nn.Module, model_name: str, example_inputs: torch.Tensor | None = None
    ) -> None:
        """Raise NotApplicable, with one line saying why, if this method cannot prune `model` (with an
        example input, a method may try itself on a copy of the model: see timm_checks.check_prunable)."""
        return None  # most methods apply to every model

    @abc.abstractmethod
    def prune(
        self,
        model: nn.Module,
        ratio: float,
        example_inputs: torch.Tensor,
        calibration: Calibration | None = None,
    ) -> nn.Module:
        """Prune in place; return the model (the same object or a replacement)."""

    def schedule(self, ratio: float, steps: int) -> list[float]:
        """The ratio each of `steps` pruning steps runs `prune` at, each on the model the step before
        left, so that the last lands where one step at `ratio` would (in equal steps of `ratio`).
        Structural methods remove a fraction of what is left, so step k removes the share of the
        remaining channels that brings the total to ratio * k / steps; masks re-rank every weight and
        zeros rank lowest (they stay zero), so they are given the cumulative fraction itself."""
        done = [ratio * k / steps for k in range(steps + 1)]
        if self.kind is not PruneKind.STRUCTURAL:
            return done[1:]
        return [1 - (1 - done[k]) / (1 - done[k - 1]) for k in range(1, steps + 1)]

    def refine(
        self,
        model: nn.Module,
        ratio: float,
        example_inputs: torch.Tensor,
        calibration: Calibration | None = None,
    ) -> nn.Module:
        """Prune `model` (already pruned by this method) further at the method's finest step: `ratio`
        of what is left, the units (a channel, `round_to` channels, a grouped convolution's group, a
        head) the method's own criterion ranks lowest across the whole model, so a small ratio takes
        only a few. A target the method's ratio steps over is closed with this (sweep.targets); a
        method without it lands on the nearest point at or beyond the target instead."""
        raise NotImplementedError

    @property
    def refines(self) -> bool:
        return type(self).refine is not Pruner.refine

    @contextlib.contextmanager
    def regularizing(
        self, model: nn.Module, example_inputs: torch.Tensor
    ) -> Iterator[Callable[[nn.Module], None] | None]:
        """The sparse-training phase (run when `regularize` is set): while inside, the yielded function
        is called with the model after each backward pass, before the optimizer's step (to add a
        regularizer's gradient). Default: None, the phase trains the dense model as fine-tuning does."""
        yield None

    def accelerate(
        self, model: nn.Module, device: torch.device, precision: str
    ) -> tuple[nn.Module, int]:
        """The pruned model (a copy) as timed on kernels that run its sparsity faster, and how many of
        its layers run on them. Default: the model as it is (only 2:4 has such kernels here)."""
        return model, 0

    @property
    def accelerates(self) -> bool:
        """Whether the measure stage times an `accelerate`d copy (the method overrides it)."""
        return type(self).accelerate is not Pruner.accelerate


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
