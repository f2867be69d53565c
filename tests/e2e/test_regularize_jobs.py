"""Methods that train for sparsity: the regularizer reaches the model's gradients, the regularize stage
is a stage of its own with its budget and figures, it works with targets, schedules and scratch
fine-tuning, a blown-up sparse training is flagged, and the report counts what each method trained."""

from __future__ import annotations

from helpers.cli import FAST
from helpers.runs import EXPERIMENT
from sweep import job, report, tracking
from sweep.report import cells, rows

# a short phase on either side, so that a job takes seconds
SHORT = ["finetune.epochs=1", "finetune.max_steps=8", *FAST]


REG = "pruner.regularize.max_steps=8"


def test_a_method_that_trains_for_sparsity_runs_its_phase_as_a_stage(compose, store, weights_cache):
    """With a MACs target, a two-step schedule and scratch fine-tuning: the phase is timed, budgeted
    and logged; a method without one logs none of it; the report counts both methods' training."""
    common = ["model=tiny_cnn", "target.macs=0.5", "sweep_id=reg", f"tracking.uri={store}", *SHORT]
    protocol = ["prune.steps=2", "finetune.init=scratch"]
    job.run_job(compose(["pruner=dg_growing_reg", REG, *protocol, *common]))
    job.run_job(compose(["pruner=dg_group", *common]))
    runs = {r.data.params["pruner"]: r for r in tracking.search_runs(store, EXPERIMENT)}
    reg, plain = runs["dg_growing_reg"], runs["dg_group"]
    m, t = reg.data.metrics, reg.data.tags
    assert reg.info.status == "FINISHED" and t["target_landing"] in ("within", "refined")
    assert m["regularize_steps"] == 8 and m["regularize_seconds"] > 0
    assert m["stage_regularize_seconds"] >= m["regularize_seconds"]
    assert t["regularize_stopped_by"] == "max_steps" and t["regularize_diverged"] == "false"
    assert reg.data.params["pruner.regularize.lr_used"] == reg.data.params["finetune.lr_used"]
    assert t["finetune_init"] == "scratch"
    assert not [k for k in plain.data.metrics if "regularize" in k]
    logged = {**plain.data.tags, **plain.data.params}  # the config's stage limit aside
    assert not [k for k in logged if "regularize" in k and not k.startswith("job.stage_timeout_s")]
    sweep = rows.load_sweep(store, EXPERIMENT, "reg")
    used = {p: (r, f) for p, r, f in cells.training_used(sweep)}
    assert used["dg_growing_reg"][0] == 8 and used["dg_group"][0] == 0
    assert used["dg_group"][1] == 8  # one-shot: the whole fine-tuning budget
    header = report.render(sweep, {}).split("## Summary")[0]
    # the schedule's intermediate fine-tuning (4 steps), then scratch's whole budget (8)
    assert "dg_group 0 + 8 = 8; dg_growing_reg 8 + 12 = 20." in header


def test_a_sparse_training_that_blew_up_is_flagged_and_left_out(compose, store, weights_cache):
    cfg = ["model=tiny_cnn", "pruner=dg_slim", "ratio=0.3", REG, "pruner.regularize.lr=1000"]
    job.run_job(compose([*cfg, f"tracking.uri={store}", "sweep_id=blown", *SHORT]))
    (run,) = tracking.search_runs(store, EXPERIMENT)
    assert run.info.status == "FINISHED"
    assert run.data.tags["regularize_diverged"] == "true"
    (row,) = rows.load_sweep(store, EXPERIMENT, "blown").rows
    assert row.diverged and "sparse training diverged" in cells.flags(row)
