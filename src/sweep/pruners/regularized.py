"""Methods that train for sparsity: the dense model is first trained with a sparsity-inducing
regularizer (the job's `regularize` stage), then pruned by the method's criterion, which now finds the
channels the regularizer pushed towards zero. The regularizers are Torch-Pruning's own:

* `bn_scale`: L1 on BatchNorm scales (network slimming, Liu et al. 2017; `BNScalePruner`);
* `group_norm`: group-norm regularization of every coupled layer of a group, stronger on the
  less important groups (DepGraph, Fang et al. 2023; `GroupNormPruner`);
* `growing_reg`: an L2 penalty that grows on the less important channels as training goes on
  (GReg, Wang et al. 2021; `GrowingRegPruner`, its coefficient grown every `update_every` steps).

The phase's length and strength are the method's settings (`pruner.regularize.*`); it is timed,
budgeted and logged as a stage of its own, so that what a method trained in all is on record.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping

import torch
import torch.nn as nn
import torch_pruning as tp

from sweep.pruners.base import Family, RegularizeSettings
from sweep.pruners.depgraph import DepGraphPruner

log = logging.getLogger(__name__)

REGULARIZED = Family(
    "regularized", "Trained for sparsity, then pruned (Torch-Pruning's regularizers)", 4
)

# regularizer -> Torch-Pruning's pruner class that carries it
REGULARIZERS = {
    "bn_scale": "BNScalePruner",
    "group_norm": "GroupNormPruner",
    "growing_reg": "GrowingRegPruner",
}


class RegularizedPruner(DepGraphPruner):
    """A DepGraph method with a sparse-training phase before it prunes (`regularizing`)."""

    family = REGULARIZED

    def __init__(
        self,
        name: str,
        importance,
        regularizer: str,
        regularize: Mapping | None = None,
        **kwargs,
    ):
        super().__init__(name, importance, **kwargs)
        if regularizer not in REGULARIZERS:
            raise ValueError(f"regularizer={regularizer!r} is not one of {', '.join(REGULARIZERS)}")
        self.regularizer = regularizer
        self.regularize = RegularizeSettings(**dict(regularize or {}))
        self.ratio_means += f", after sparse training ({regularizer} regularizer)"

    def _library_args(self) -> dict:
        s = self.regularize
        if self.regularizer == "growing_reg":
            return {"reg": s.strength, "delta_reg": s.delta}
        return {"reg": s.strength}

    @contextlib.contextmanager
    def regularizing(
        self, model: nn.Module, example_inputs: torch.Tensor
    ) -> Iterator[Callable[[nn.Module], None]]:
        """While inside, the returned function adds the regularizer's gradient to `model`'s (call it
        after each backward pass, before the optimizer's step)."""
        library = REGULARIZERS[self.regularizer]
        args = self._library_args()
        with self._pruner(
            model,
            0.5,
            example_inputs=example_inputs,
            calibration=None,
            kept_dense=self.kept_dense,
            library_pruner=library,
            **args,
        ) as session:
            pruner, steps = session.pruner, [0]
            skipped = without_grouped_inputs(pruner)
            if skipped:
                log.info(
                    "%s: %d grouped-convolution inputs left out of %s", self.name, skipped, library
                )

            def after_backward(m: nn.Module) -> None:
                steps[0] += 1
                if (
                    self.regularizer == "growing_reg"
                    and steps[0] % self.regularize.update_every == 0
                ):
                    pruner.update_reg()
                pruner.regularize(m)

            yield after_backward
        model.zero_grad(set_to_none=True)


def _grouped_input(dep) -> bool:
    """A dependency on a grouped convolution's input channels (its weight holds in_channels / groups
    of them per output)."""
    layer = dep.target.module
    return (
        dep.handler == tp.prune_conv_in_channels
        and isinstance(layer, nn.modules.conv._ConvNd)
        and layer.groups > 1
    )


def without_grouped_inputs(pruner) -> int:
    """Leave grouped convolutions' input channels out of a Torch-Pruning regularizer's groups, in
    place; returns how many were left out. Torch-Pruning 1.6's `GroupNormPruner.regularize` and
    `GrowingRegPruner.regularize` index such a layer's weight along its input as if it were dense
    (`weight[:, idxs]` with idxs up to in_channels, on a weight of in_channels / groups columns; the
    group-norm one also cuts its gamma short): IndexError (docs/methods.md has a reproduction). The
    convolution's own output channels, the same weights, are still regularized, and so is the layer
    that feeds its input, in the same group."""
    from torch_pruning.dependency.group import Group

    kept, rekeyed, skipped = [], {}, 0
    for group in pruner._groups:
        items = [item for item in group._group if not _grouped_input(item.dep)]
        skipped += len(group._group) - len(items)
        if len(items) == len(group._group):
            new = group
        else:
            new = Group()
            new._group, new._DG = items, group._DG
        kept.append(new)
        if hasattr(pruner, "group_reg"):
            rekeyed[new] = pruner.group_reg[group]
    pruner._groups = kept
    if hasattr(pruner, "group_reg"):
        pruner.group_reg = rekeyed
    return skipped
