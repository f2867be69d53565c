"""Pruners that misbehave on purpose, for tests (importable by subprocess jobs through PYTHONPATH)."""
from sweep.pruners.base import PruneKind, Pruner


class DoNothing(Pruner):
    kind = PruneKind.STRUCTURAL
    family = "test"
    ratio_means = "nothing: this pruner claims to prune and does not"

    def prune(self, model, ratio, example_inputs):
        return model


class Explodes(Pruner):
    kind = PruneKind.STRUCTURAL
    family = "test"
    ratio_means = "nothing: this pruner always raises"

    def prune(self, model, ratio, example_inputs):
        raise RuntimeError(f"cannot prune {type(model).__name__} at {ratio}")


class HardExit(Pruner):
    kind = PruneKind.STRUCTURAL
    family = "test"
    ratio_means = "nothing: this pruner kills its process without any cleanup, like the OOM killer"

    def prune(self, model, ratio, example_inputs):
        import os

        os._exit(3)
