"""A user's own pruners, as small as the interface allows (importable by jobs: tests/ is on their
PYTHONPATH): one that implements only what `Pruner` requires, one that also trains for sparsity
through the documented hooks."""

import contextlib

import torch

from sweep.pruners import PruneKind, Pruner, RegularizeSettings, prunable_layers
from sweep.pruners.base import Family

USER = Family("user", "A user's own methods (tests)", 98)


class Minimal(Pruner):
    """Zeroes the smallest weights of every layer: `prune` and three class attributes, nothing else."""

    kind = PruneKind.UNSTRUCTURED
    family = USER
    ratio_means = "weights zeroed in each prunable layer"

    def prune(self, model, ratio, example_inputs, calibration=None):
        with torch.no_grad():
            for m in prunable_layers(model):
                w = m.weight
                k = int(ratio * w.numel())
                if k:
                    w.masked_fill_(w.abs() <= w.abs().flatten().kthvalue(k).values, 0.0)
        return model


class MinimalRegularized(Minimal):
    """The same, after a sparse-training phase that shrinks every weight (its own `regularizing`)."""

    regularize = RegularizeSettings(epochs=1, max_steps=3)
    calls: list[int] = []

    @contextlib.contextmanager
    def regularizing(self, model, example_inputs):
        def after_backward(m):
            MinimalRegularized.calls.append(1)
            for p in m.parameters():
                if p.grad is not None:
                    p.grad.add_(p.detach(), alpha=self.regularize.strength)

        yield after_backward


class SetsOnlyRegularize(Minimal):
    """Sets `regularize` and leaves every hook at its default."""

    regularize = RegularizeSettings(epochs=1, max_steps=2)
