"""Pruners that misbehave on purpose (importable by subprocess jobs: tests/ is on their PYTHONPATH)."""

from sweep.pruners.base import Family, PruneKind, Pruner

TEST = Family("test", "Pruners that misbehave on purpose (tests)", 99)


class DoNothing(Pruner):
    kind = PruneKind.STRUCTURAL
    family = TEST
    ratio_means = "nothing: this pruner claims to prune and does not"

    def prune(self, model, ratio, example_inputs):
        return model


class Explodes(Pruner):
    kind = PruneKind.STRUCTURAL
    family = TEST
    ratio_means = "nothing: this pruner always raises"

    def prune(self, model, ratio, example_inputs):
        raise RuntimeError(f"cannot prune {type(model).__name__} at {ratio}")


class HardExit(Pruner):
    kind = PruneKind.STRUCTURAL
    family = TEST
    ratio_means = "nothing: this pruner kills its process without any cleanup, like the OOM killer"

    def prune(self, model, ratio, example_inputs):
        import os

        os._exit(3)
