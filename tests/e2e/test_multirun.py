"""A real Hydra multirun through `python -m sweep`, into a tmp MLflow store."""

from __future__ import annotations

import pytest

from helpers.cli import FAST, HALF_FAILING_GRID, REAL_SWEEP_ID, run_cli
from helpers.runs import EXPERIMENT
from sweep import tracking

pytestmark = pytest.mark.slow


def test_grid_gives_one_finished_run_per_point(real_sweep):
    """The shared real sweep (helpers.cli.REAL_SWEEP): 2 models x 2 methods, the report on at its end."""
    store, r = real_sweep.store, real_sweep
    assert r.returncode == 0, r.stderr[-3000:]
    runs = tracking.search_runs(store, EXPERIMENT)
    assert len(runs) == 4
    assert {x.info.status for x in runs} == {"FINISHED"}
    assert {x.data.tags["sweep_id"] for x in runs} == {REAL_SWEEP_ID}
    assert {x.info.run_name for x in runs} == {
        f"{m}/{p}/0.5" for m in ("tiny_cnn", "tiny_vit") for p in ("l1_unstructured", "dg_group")
    }
    for x in runs:
        for name in tracking.REQUIRED_METRICS:
            assert name in x.data.metrics, (x.info.run_name, name)
        assert x.data.metrics["dense_accuracy_top1"] >= 0.9, x.info.run_name
    # Hydra's own config of each job is attached
    from mlflow.tracking import MlflowClient

    files = [f.path for f in MlflowClient(store).list_artifacts(runs[0].info.run_id, "hydra")]
    assert "hydra/config.yaml" in files and "hydra/overrides.yaml" in files
    assert list(real_sweep.folder.glob("multirun/*/*/0/.hydra/config.yaml"))
    assert "4 finished, 0 failed" in r.stdout
    # the sweep's runs in the UI, and its report next to them (report.on_sweep_end)
    exp_id = runs[0].info.experiment_id
    assert (
        f"runs in the MLflow UI (after `make ui`): http://127.0.0.1:5000/#/experiments/{exp_id}/runs?"
        in r.stdout
    )
    parent = runs[0].data.tags["mlflow.parentRunId"]
    assert "report/benchmark.md" in [
        f.path for f in MlflowClient(store).list_artifacts(parent, "report")
    ]
    auto = list((real_sweep.folder / "auto-reports").glob("*/benchmark.md"))
    assert auto

    # the report, end to end from this real sweep
    doc = auto[0].read_text()
    original = doc.split("## Original (not pruned)")[1].split("##")[0]
    assert "tiny_cnn: 373,658 params," in original and "tiny_vit: 264,650 params," in original
    assert (
        "### l1_unstructured (unstructured, ratio=0.5)" in doc
        and "### dg_group (structural, ratio=0.5)" in doc
    )
    assert "n/a (masks)" in doc and "MISSING" not in doc and "FAILED" not in doc


def test_failing_job_does_not_stop_the_sweep_and_fails_its_run(
    tmp_path, weights_cache, empty_store
):
    store = empty_store(tmp_path / "mlflow.db")
    r = run_cli(
        [*HALF_FAILING_GRID, f"tracking.uri={store}", "sweep_id=bad", *FAST],
        cwd=tmp_path,
    )
    runs = tracking.search_runs(store, EXPERIMENT)
    statuses = sorted(x.info.status for x in runs)
    assert r.returncode == 1, r.stderr[-3000:]
    assert "failed" in r.stdout and "cannot prune" in r.stdout
    assert len(runs) == 4 and statuses.count("FAILED") == 2 and statuses.count("FINISHED") == 2
    from mlflow.tracking import MlflowClient

    # the sweep's own run is FAILED too, with its counts; the summary line names the sweep
    assert "2 finished, 2 failed" in r.stdout and "sweep_id=bad" in r.stdout
    parent = MlflowClient(store).get_run(tracking.parent_run_of(store, EXPERIMENT, "bad"))
    assert parent.info.status == "FAILED" and parent.data.metrics["jobs_failed"] == 2


def test_matched_cost_sweep_with_repeats(tmp_path, weights_cache, empty_store):
    """Targets and seeds as sweep axes; a method that cannot apply is reported, not counted a failure."""
    store = empty_store(tmp_path / "mlflow.db")
    r = run_cli(
        [
            "-m",
            "model=tiny_cnn,tiny_vit",
            "pruner=dg_group,dg_bn_scale",
            "target.macs=0.5",
            "seed=0,1",
            f"tracking.uri={store}",
            *FAST,
        ],
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "6 finished, 0 failed or killed, 2 not applicable" in r.stdout
    runs = tracking.search_runs(store, EXPERIMENT)
    na = [x for x in runs if x.info.status == "FAILED"]
    assert {x.info.run_name for x in na} == {"tiny_vit/dg_bn_scale/macs=0.5"}
    assert all(x.data.tags["not_applicable"] == "true" for x in na)
    for x in runs:
        if x.info.status == "FINISHED":
            assert x.data.metrics["macs_reduction"] == pytest.approx(0.5, abs=0.02)

    from sweep import report

    doc = report.write_report(store, EXPERIMENT, None, tmp_path / "reports").read_text()
    assert "targets macs=0.5, seeds 0, 1" in doc
    assert "| tiny_cnn (2 seeds) |" in doc and " ± " in doc.split("## Matched cost: tiny_cnn")[1]
    assert "tiny_vit: n/a: NotApplicable: BN-scale needs BatchNorm layers; test_vit has none" in doc
    assert "| methods compared at matched cost | yes |" in doc


def test_sweep_timed_in_runtimes_and_reported(tmp_path, weights_cache, empty_store):
    """Two tiny models x three methods timed in eager, ONNX Runtime and OpenVINO; a pruned model that
    no exporter takes is not applicable in those two runtimes only, and its job still finishes."""
    store = empty_store(tmp_path / "mlflow.db")
    common = ["measure.runtimes=[eager,onnxruntime,openvino]", f"tracking.uri={store}", *FAST]
    r = run_cli(
        [
            "-m",
            "model=tiny_cnn,tiny_vit",
            "pruner=l1_unstructured,dg_group,dg_random",
            "target.macs=0.5",
            "sweep_id=deployed",
            *common,
        ],
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    odd = run_cli(
        [
            "model=tiny_cnn",
            "pruner=dg_group",
            "pruner._target_=helpers.pruners.PrunesToUnexportable",
            "pruner.name=unexportable",
            "ratio=0.5",
            "sweep_id=deployed",
            *common,
        ],
        cwd=tmp_path,
    )
    assert odd.returncode == 0, odd.stderr[-3000:]
    runs = {x.info.run_name: x for x in tracking.search_runs(store, EXPERIMENT)}
    assert len(runs) == 7 and {x.info.status for x in runs.values()} == {"FINISHED"}
    for name, x in runs.items():
        m, t = x.data.metrics, x.data.tags
        for rt in ("onnxruntime", "openvino"):
            if "l1_unstructured" in name:
                assert "masks keep dense shapes" in t[f"{rt}/not_applicable"]
            elif "unexportable" in name:
                assert t[f"{rt}/not_applicable"].startswith(f"{rt}: cannot export the pruned")
                assert "speedup" in m and f"{rt}/speedup" not in m  # eager's figures stand
            else:
                assert f"{rt}/not_applicable" not in t, name
                for key in ("speedup", "dense_latency_ms", "efficiency", "max_abs_diff"):
                    assert f"{rt}/{key}" in m, (name, rt, key)

    from sweep import report

    out = tmp_path / "reports"
    doc = report.write_report(store, EXPERIMENT, "deployed", out).read_text()
    assert (
        "Runtimes: every job timed its dense and pruned models in eager, onnxruntime, openvino"
        in doc
    )
    assert "| speedup (eager) | speedup (onnxruntime) | speedup (openvino) |" in doc
    assert "| tiny_cnn | onnxruntime | " in doc and "efficiency dense → pruned" in doc
    assert "openvino: cannot export the pruned model to ONNX" in doc
    assert "ranking is by top-1, the same in every runtime" in doc
    assert "No two methods swap places by speedup" in doc or "Where the order of two" in doc
    assert (out / "deployed" / "speedup_by_runtime.png").stat().st_size > 10_000


def test_a_sweep_shares_its_dense_work_and_says_how_long_it_has_left(real_sweep):
    """The jobs of a model after its first read the dense top-1 and the eval image count the first
    computed (every method scored on the same images); each job's start line says what is done and
    left, with an estimate once a job of every model with jobs left has ended, and the parent run has
    the same figures as history."""
    from mlflow.tracking import MlflowClient

    store, log = real_sweep.store, real_sweep.stderr + real_sweep.stdout
    runs = tracking.search_runs(store, EXPERIMENT)  # oldest first: tiny_cnn's two, then tiny_vit's
    for model in ("tiny_cnn", "tiny_vit"):
        mine = [r for r in runs if r.data.params["model"] == model]
        # the first may read what another sweep of the same inputs computed (the test run's cache)
        assert mine[1].data.tags["dense_top1_source"] == "shared"
        assert len({r.data.params["eval.samples_used"] for r in mine}) == 1
        assert len({r.data.metrics["dense_accuracy_top1"] for r in mine}) == 1
    assert (
        "(sweep real-sweep): 1 done, 3 left; time left unknown until a job of tiny_vit ends" in log
    )
    assert (
        "(sweep real-sweep): 2 done, 2 left; time left unknown until a job of tiny_vit ends" in log
    )
    assert "(sweep real-sweep): 3 done, 1 left; about " in log
    parent = runs[0].data.tags["mlflow.parentRunId"]
    history = MlflowClient(store).get_metric_history(parent, "jobs_done")
    assert sorted((h.step, h.value) for h in history) == [(k, k) for k in range(4)]
    assert MlflowClient(store).get_metric_history(parent, "eta_seconds")[-1].value > 0
