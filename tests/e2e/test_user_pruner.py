"""A user's own pruner runs through a job with only what `Pruner` requires, and with the hooks a
method that trains for sparsity sets (every hook the job calls is declared on `Pruner`)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from helpers.cli import FAST
from helpers.user_pruners import MinimalRegularized
from sweep import job


@pytest.mark.parametrize(
    ("name", "trains_first"),
    [("Minimal", False), ("MinimalRegularized", True), ("SetsOnlyRegularize", True)],
)
def test_a_users_pruner_runs_through_a_job(name, trains_first, compose, store, weights_cache):
    MinimalRegularized.calls.clear()
    cfg = compose(
        [
            "model=tiny_cnn",
            "pruner=l1_unstructured",
            f"pruner._target_=helpers.user_pruners.{name}",
            "ratio=0.5",
            "sweep_id=user",
            f"tracking.uri={store}",
            *FAST,
        ]
    )
    job.run_job(cfg)
    (run,) = MlflowClient(store).search_runs(["1"])
    assert run.info.status == "FINISHED", run.data.tags.get("error")
    assert ("stage_regularize_seconds" in run.data.metrics) == trains_first
    assert run.data.metrics["sparsity"] > 0.4
    assert bool(MinimalRegularized.calls) == (name == "MinimalRegularized")
