"""Pruners that misbehave on purpose (importable by subprocess jobs: tests/ is on their PYTHONPATH),
and what the tests of the real pruners share."""

import torch

from helpers.models import TINY
from sweep.pruners.base import Calibration, Family, PruneKind, Pruner

TEST = Family("test", "Pruners that misbehave on purpose (tests)", 99)


class DoNothing(Pruner):
    kind = PruneKind.STRUCTURAL
    family = TEST
    ratio_means = "nothing: this pruner claims to prune and does not"

    def prune(self, model, ratio, example_inputs, calibration=None):
        return model


class Explodes(Pruner):
    kind = PruneKind.STRUCTURAL
    family = TEST
    ratio_means = "nothing: this pruner always raises"

    def prune(self, model, ratio, example_inputs, calibration=None):
        raise RuntimeError(f"cannot prune {type(model).__name__} at {ratio}")


class HardExit(Pruner):
    kind = PruneKind.STRUCTURAL
    family = TEST
    ratio_means = "nothing: this pruner kills its process without any cleanup, like the OOM killer"

    def prune(self, model, ratio, example_inputs, calibration=None):
        import os

        os._exit(3)


class Sleeps(Pruner):
    kind = PruneKind.STRUCTURAL
    family = TEST
    ratio_means = "nothing: this pruner hangs (sleeps for ten minutes), like a stuck library call"

    def prune(self, model, ratio, example_inputs, calibration=None):
        import time

        time.sleep(600)
        return model


class SleepsInCheck(Sleeps):
    ratio_means = "nothing: this pruner's preflight check hangs, like a library call on a copy"

    def check(self, model, model_name, example_inputs=None):
        import time

        time.sleep(600)


class HangsWhileTiming(Pruner):
    kind = PruneKind.SEMI_STRUCTURED
    family = TEST
    ratio_means = (
        "nothing: this pruner's timed model never comes back, like a job killed mid-measure"
    )

    def prune(self, model, ratio, example_inputs, calibration=None):
        return model

    def accelerate(self, model, device, precision):
        import time

        time.sleep(600)
        return model, 0


# (method, tiny model) pairs where the method cannot apply, and the words its one line must contain
NOT_APPLICABLE = {
    ("dg_bn_scale", "tiny_convnext"): "BatchNorm",
    ("dg_bn_scale", "tiny_vit"): "BatchNorm",
    ("dg_slim", "tiny_convnext"): "BatchNorm",
    ("dg_slim", "tiny_vit"): "BatchNorm",
    ("attn_heads", "tiny_cnn"): "multi-head attention",
    ("attn_heads", "tiny_convnext"): "multi-head attention",
    ("attn_heads", "tiny_effnet"): "multi-head attention",
    # timm publishes pruned variants of seven larger models only
    **{("timm_published", alias): "timm publishes no pruned variant of" for alias in TINY},
}


def calibration_for(pruner, alias: str, seed: int = 0) -> Calibration | None:
    """Labelled batches as a job takes them from the train split (here: random images)."""
    if not pruner.calibration_batches:
        return None
    g = torch.Generator().manual_seed(seed)
    size = TINY[alias].get("input_size", 224)
    return Calibration(
        [
            (torch.randn(8, 3, size, size, generator=g), torch.randint(0, 10, (8,), generator=g))
            for _ in range(pruner.calibration_batches)
        ]
    )


def assert_classifier_untouched(dense_head: torch.nn.Linear, pruned_head: torch.nn.Linear) -> None:
    """The classifier keeps its classes and its weights. A structural method may drop input columns
    (the features it reads were removed upstream): every column left must be one of the dense
    classifier's columns, in order, and the bias must be the same."""
    assert pruned_head.out_features == dense_head.out_features
    assert torch.equal(pruned_head.bias, dense_head.bias)
    dense_cols, pruned_cols = dense_head.weight.T, pruned_head.weight.T
    j = 0
    for col in pruned_cols:
        while j < len(dense_cols) and not torch.equal(dense_cols[j], col):
            j += 1
        assert j < len(dense_cols), "a classifier column was changed, not only removed"
        j += 1


@torch.library.custom_op("sweeptest::scale", mutates_args=())
def _scale(x: torch.Tensor) -> torch.Tensor:
    """An op no ONNX exporter knows (a user's custom kernel, say)."""
    return x * 1.0


@_scale.register_fake
def _(x):
    return torch.empty_like(x)


class _CustomOpHead(torch.nn.Module):
    def __init__(self, head: torch.nn.Module):
        super().__init__()
        self.head = head

    def forward(self, x):
        return _scale(self.head(x))


class PrunesToUnexportable(Pruner):
    """Magnitude channel pruning whose pruned model runs in eager PyTorch but cannot be exported to
    ONNX: the runtimes that need ONNX are not applicable to it, the job still finishes."""

    kind = PruneKind.STRUCTURAL
    family = TEST
    ratio_means = "fraction of channels removed per group, then a custom op on the classifier"

    def __init__(
        self, name: str = "unexportable", **ignored
    ):  # e.g. over conf/pruner/dg_group.yaml
        super().__init__(name)

    def prune(self, model, ratio, example_inputs, calibration=None):
        _magnitude_channels(model, ratio, example_inputs)
        name = model.default_cfg.get("classifier", "fc")
        parent, _, attr = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, attr, _CustomOpHead(getattr(owner, attr)))
        return model


def _magnitude_channels(model, ratio, example_inputs) -> None:
    import torch_pruning as tp

    tp.pruner.BasePruner(
        model,
        example_inputs,
        importance=tp.importance.MagnitudeImportance(),
        pruning_ratio=ratio,
        ignored_layers=[model.get_classifier()],
        in_channel_groups={},
        out_channel_groups={},
        channel_groups={},
    ).step()


class PoisonsFineTuning(Pruner):
    """Magnitude channel pruning that leaves one NaN weight in the classifier: the fine-tuning loss
    is NaN from its first step, as with a learning rate far too high."""

    kind = PruneKind.STRUCTURAL
    family = TEST
    ratio_means = "fraction of channels removed per group, then a NaN in the classifier"

    def __init__(self, name: str = "poisons", **ignored):
        super().__init__(name)

    def prune(self, model, ratio, example_inputs, calibration=None):
        _magnitude_channels(model, ratio, example_inputs)
        with torch.no_grad():
            model.get_classifier().weight[0, 0] = float("nan")
        return model
