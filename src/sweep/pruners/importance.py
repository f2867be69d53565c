"""Importance criteria beyond magnitude, as Torch-Pruning objects with what they need from a job.

A criterion may need the model to fit (`check`: BN-scale needs BatchNorm) and labelled batches from the
train split (`calibrate`: Taylor and Hessian read gradients). The pruner calls both when present, so a
yaml swaps criteria without the pruner knowing which one it holds.
"""

from __future__ import annotations

import re

import torch
import torch.nn as nn
import torch_pruning as tp
from torch.nn import functional

from sweep.pruners.base import Calibration, NotApplicable

NORM = re.compile(
    r"Norm(\dd)?$"
)  # LayerNorm, LayerNorm2d, GroupNorm, ... (not NormMlpClassifierHead)


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return functional.cross_entropy(model(x), y, reduction="none")


class Taylor(tp.importance.TaylorImportance):
    """First-order Taylor expansion |w * dL/dw| (Molchanov et al.), gradients summed over the
    calibration batches of the train split."""

    def calibrate(self, model: nn.Module, calibration: Calibration) -> None:
        model.zero_grad(set_to_none=True)
        # each batch's mean loss, accumulated over its parts (Calibration.parts): the peak memory is
        # one part's backward pass, whatever the batch
        for x, y, share in calibration.parts():
            (_loss(model, x, y).mean() * share).backward()


class Hessian(tp.importance.HessianImportance):
    """Second-order (Optimal Brain Damage): w^2 * diag(H), the Hessian's diagonal estimated by the mean
    of squared per-sample gradients (empirical Fisher) over the calibration samples."""

    def calibrate(self, model: nn.Module, calibration: Calibration) -> None:
        self.zero_grad()
        for x, y, _ in calibration.parts():  # per-sample gradients: a part's graph at a time
            losses = _loss(model, x, y)
            for i, loss in enumerate(losses):
                # zeroed, not freed: Torch-Pruning writes the accumulated means into each .grad
                model.zero_grad(set_to_none=False)
                loss.backward(retain_graph=i < len(losses) - 1)
                self.accumulate_grad(model)

    def accumulate_grad(self, model: nn.Module) -> None:
        # Torch-Pruning 1.6's own version tests the parameter's *name* against a dict keyed by the
        # parameter, so it restarts the sum at every sample and keeps only the last gradient.
        for param in model.parameters():
            if param.grad is not None:
                g2 = param.grad.detach().pow(2)
                if param in self._accu_grad:
                    self._accu_grad[param] += g2
                    self._counter[param] += 1
                else:
                    self._accu_grad[param] = g2.clone()
                    self._counter[param] = 1


class FPGM(tp.importance.FPGMImportance):
    """Filter pruning via geometric median (He et al.): channels nearest the median of their layer's
    filters go first. The input side of grouped convolutions is left out of a group's score: Torch-Pruning
    1.6 repeats their 2-D importance with a 1-D count there and raises (ResNeXt, RegNet); their output
    side and every other layer of the group still count."""

    def __call__(self, group, **kwargs):
        prune_in = tp.pruner.function.prune_conv_in_channels
        kept = [
            item
            for item in group
            if not (
                item.dep.pruning_fn == prune_in
                and getattr(item.dep.layer, "groups", 1) not in (1, item.dep.layer.in_channels)
            )
        ]
        return super().__call__(kept, **kwargs)


class BNScale(tp.importance.BNScaleImportance):
    """Network slimming (Liu et al.): |gamma| of the BatchNorm after each channel; only for models that
    have BatchNorm."""

    def check(self, model: nn.Module, model_name: str) -> None:
        if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            norms = sorted(
                {n for n in (type(m).__name__ for m in model.modules()) if NORM.search(n)}
            )
            raise NotApplicable(
                f"BN-scale needs BatchNorm layers; {model_name} has none "
                f"(its norms: {', '.join(norms) or 'none'})"
            )
