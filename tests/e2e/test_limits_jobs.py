"""Per-job limits: a job over its time or memory limit ends FAILED naming the stage and the limit, and
the sweep goes on."""

import time

import pytest

from helpers.cli import FAST, run_cli
from helpers.runs import EXPERIMENT
from sweep import tracking


@pytest.mark.slow
def test_a_hanging_stage_fails_and_the_sweep_goes_on(tmp_path, weights_cache, empty_store):
    store = empty_store(tmp_path / "mlflow.db")
    t0 = time.monotonic()
    r = run_cli(
        [
            "-m",
            "model=tiny_cnn",
            "pruner=l1_unstructured",
            "pruner._target_=helpers.pruners.Sleeps,helpers.pruners.SleepsInCheck,sweep.pruners.torch_prune.L1Unstructured",
            "job.stage_timeout_s.prune=3",
            f"tracking.uri={store}",
            *FAST,
        ],
        cwd=tmp_path,
    )
    assert time.monotonic() - t0 < 300  # not the sleeper's 600 s
    runs = {x.data.params["pruner._target_"]: x for x in tracking.search_runs(store, EXPERIMENT)}
    assert r.returncode == 1, r.stderr[-3000:]
    assert "job.stage_timeout_s.prune=3s" in r.stdout
    hung = runs["helpers.pruners.Sleeps"]
    assert hung.info.status == "FAILED"
    assert hung.data.tags[tracking.TAG_LIMIT] == "prune:timeout"
    assert (
        "LimitExceeded: stage prune ran past job.stage_timeout_s.prune=3s"
        in hung.data.tags[tracking.TAG_ERROR]
    )
    # stopped before measuring, and kept what it had logged
    assert "dense_params_total" not in hung.data.metrics
    assert "stage_weights_seconds" in hung.data.metrics
    # a preflight check that hangs is held to the prune stage's limit too, before any training
    checked = runs["helpers.pruners.SleepsInCheck"]
    assert checked.info.status == "FAILED"
    assert checked.data.tags[tracking.TAG_LIMIT] == "preflight:timeout"
    assert "stage_weights_seconds" not in checked.data.metrics
    nxt = runs["sweep.pruners.torch_prune.L1Unstructured"]
    assert nxt.info.status == "FINISHED"
