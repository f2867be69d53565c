"""The protocol a reviewer asks for: iterative schedules (`prune.steps`), the train-from-scratch control
(`finetune.init=scratch`), and targets that land on the nearest point when they cannot land within
tolerance, each as a job logs it and as the report shows it."""

from __future__ import annotations

import pytest

from helpers.cli import FAST
from helpers.runs import EXPERIMENT
from sweep import job, report, tracking
from sweep.report import rows


def _run(store):
    (run,) = tracking.search_runs(store, EXPERIMENT)
    assert run.info.status == "FINISHED", run.data.tags.get("error")
    return run


def _history(store, run, key):
    client = tracking.client(store)
    return [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]


def test_iterative_job_reaches_the_target_in_steps_with_one_shots_budget(
    compose, store, weights_cache
):
    common = ["pruner=dg_group", "target.macs=0.5", "finetune.epochs=1", *FAST]
    job.run_job(compose([*common, "prune.steps=3", f"tracking.uri={store}"]))
    run = _run(store)
    m = run.data.metrics
    assert run.info.run_name == "tiny_cnn/dg_group/macs=0.5/steps3"
    assert run.data.params["prune.steps"] == "3"
    kept = _history(store, run, "step_macs_kept")
    assert [s for s, _ in kept] == [1, 2, 3]
    assert kept[0][1] > kept[1][1] > kept[2][1]  # each step moves towards the target...
    assert kept[0][1] == pytest.approx(1 - 0.5 / 3, abs=0.02)  # in equal shares of the cost
    assert m["target_value"] == pytest.approx(0.5, abs=0.02) == kept[2][1]  # the last lands on it
    assert m["macs"] / m["dense_macs"] == pytest.approx(kept[2][1])
    acc = _history(store, run, "step_accuracy_top1")
    assert [s for s, _ in acc] == [1, 2, 3] and acc[-1][1] == m["accuracy_top1"]
    assert m["finetune_steps"] == 23  # one epoch of the 1437 train images, split over the steps
    assert run.data.tags["finetune_diverged"] == "false"


def test_scratch_job_trains_the_pruned_architecture_with_the_whole_budget(
    compose, store, weights_cache
):
    overrides = ["pruner=dg_group", "ratio=0.5", "finetune.epochs=1", "finetune.init=scratch"]
    job.run_job(compose([*overrides, f"tracking.uri={store}", *FAST]))
    run = _run(store)
    assert run.info.run_name == "tiny_cnn/dg_group/0.5/scratch"
    assert run.data.tags["finetune_init"] == "scratch"
    assert run.data.tags["finetune_init_method"].startswith("timm_init_cut_to_shape")
    m = run.data.metrics
    assert m["finetune_steps"] == 23  # the whole budget, as inherited fine-tuning gets
    assert (
        m["finetune_loss_start"] > 1.5
    )  # a random network starts near ln(10), not at its weights'


# ---- landings --------------------------------------------------------------------------------------------
def test_a_target_the_steps_jump_over_finishes_at_the_nearest_point_and_says_why(
    compose, store, weights_cache
):
    # a tolerance finer than any step of the tiny model: nothing can land within it
    overrides = ["pruner=dg_group", "target.macs=0.5", "target.tolerance=0.0001"]
    job.run_job(compose([*overrides, "target.max_trials=4", f"tracking.uri={store}", *FAST]))
    run = _run(store)
    m, tags = run.data.metrics, run.data.tags
    assert tags["target_landing"] == "nearest" and m["target_reached"] == 0.0
    assert m["target_value"] <= 0.5  # never costlier than asked
    assert m["macs"] / m["dense_macs"] == pytest.approx(m["target_value"])
    assert tags["target_stopped_by"] == "granularity"
    assert tags["target_note"].startswith("target macs=0.5 not reached within ±0.0001: landed at")
    doc = report.render(rows.load_sweep(store, EXPERIMENT, None), {})
    assert "target not within tolerance: nearest point" in doc.split("## Matched cost")[1]
