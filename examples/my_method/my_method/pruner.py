"""One method behind sweep's Pruner interface: channels ranked by |weight x gradient| on a few
calibration batches (a first-order estimate of the loss change when a channel goes), then removed
with Torch-Pruning so that the model really shrinks."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_pruning as tp

from sweep.pruners import classifiers_of
from sweep.pruners.base import Calibration, Family, NotApplicable, PruneKind, Pruner

MINE = Family("my_lab", "My lab's methods (examples/my_method)", 50)


class FirstOrderChannels(Pruner):
    kind = PruneKind.STRUCTURAL  # channels are removed: a speedup is possible on dense kernels
    family = MINE
    ratio_means = "fraction of channels removed from each dependency group, by |w x dL/dw|"

    def __init__(self, name: str, calibration_batches: int = 2):
        super().__init__(name)
        self.calibration_batches = calibration_batches  # the job hands these to prune()

    def check(self, model: nn.Module, model_name: str, example_inputs=None) -> None:
        if not any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()):
            raise NotApplicable(
                f"{self.name} prunes convolutions and linear layers; {model_name} has none"
            )

    def prune(
        self,
        model: nn.Module,
        ratio: float,
        example_inputs: torch.Tensor,
        calibration: Calibration | None = None,
    ) -> nn.Module:
        if calibration is None:
            raise NotApplicable(f"{self.name} needs calibration batches")
        model.zero_grad()
        for x, y in calibration.batches:
            F.cross_entropy(model(x), y).backward()
        pruner = tp.pruner.BasePruner(
            model,
            example_inputs,
            importance=tp.importance.GroupTaylorImportance(),
            pruning_ratio=ratio,
            ignored_layers=classifiers_of(model),
            # Torch-Pruning's defaults for these are dicts it writes into: always fresh ones
            in_channel_groups={},
            out_channel_groups={},
            channel_groups={},
        )
        pruner.step()
        model.zero_grad()
        return model
