"""Methods of torch.nn.utils.prune. Masks are made permanent (`prune.remove`), so the model keeps its
dense shapes with zeros in it: parameter and MAC counts stay, non-zero counts drop."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils import prune

from sweep.pruners.base import Family, PruneKind, Pruner
from sweep.pruners.layers import prunable_layers

TORCH_PRUNE = Family("torch.nn.utils.prune", "Ln-norm based pruning (torch.nn.utils.prune)", 0)


def _make_permanent(layers: list[nn.Module]) -> None:
    for m in layers:
        prune.remove(m, "weight")


class L1Unstructured(Pruner):
    kind = PruneKind.UNSTRUCTURED
    family = TORCH_PRUNE
    ratio_means = "fraction of each prunable layer's weights zeroed (smallest |w| per layer)"

    def prune(
        self, model: nn.Module, ratio: float, example_inputs: torch.Tensor, calibration=None
    ) -> nn.Module:
        layers = prunable_layers(model)
        for m in layers:
            prune.l1_unstructured(m, "weight", amount=ratio)
        _make_permanent(layers)
        return model


class GlobalUnstructured(Pruner):
    kind = PruneKind.UNSTRUCTURED
    family = TORCH_PRUNE
    ratio_means = "fraction of all prunable weights zeroed (one |w| threshold across layers)"

    def prune(
        self, model: nn.Module, ratio: float, example_inputs: torch.Tensor, calibration=None
    ) -> nn.Module:
        layers = prunable_layers(model)
        prune.global_unstructured(
            [(m, "weight") for m in layers], pruning_method=prune.L1Unstructured, amount=ratio
        )
        _make_permanent(layers)
        return model


class LnStructured(Pruner):
    kind = PruneKind.STRUCTURED_MASK
    family = TORCH_PRUNE
    ratio_means = "fraction of each prunable layer's output channels zeroed (smallest Ln norm)"

    def __init__(self, name: str, n: int | float = 2):
        super().__init__(name)
        self.n = n

    def prune(
        self, model: nn.Module, ratio: float, example_inputs: torch.Tensor, calibration=None
    ) -> nn.Module:
        layers = prunable_layers(model)
        for m in layers:
            prune.ln_structured(m, "weight", amount=ratio, n=self.n, dim=0)
        _make_permanent(layers)
        return model
