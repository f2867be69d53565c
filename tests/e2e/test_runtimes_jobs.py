"""Latency where models are deployed: each runtime loads, agrees with eager, is timed like eager, and
says in one line why it cannot run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.cli import FAST
from helpers.runs import EXPERIMENT
from sweep import tracking

COMPILED = """
import sys, tempfile
from pathlib import Path
import torch, torch.nn as nn
from sweep.measure import deployed, runtimes
from sweep.measure.latency import LatencySettings
model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
small = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4)).eval()
ctx = runtimes.Context(torch.device("cpu"), "fp32", 2, Path(tempfile.mkdtemp()))
s = LatencySettings(warmup_max=6, iters=8, bootstrap=200, time_budget_s=0.3)
r = deployed.time_in(runtimes.get("compile"), model, small, torch.randn(4, 16), ctx, s)
print(r.agree, r.export_s[0] > 0, r.file is None)
"""


@pytest.mark.slow
def test_compiled_runtime_agrees_with_eager():
    # in a process of its own: inductor's compilation once crashed (SIGSEGV) late in a full test
    # session, never on its own nor in jobs; a crash there must not take the session with it
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", COMPILED], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == ["True", "True", "True"]


def test_job_times_every_runtime_and_a_mask_is_not_applicable_there(compose, store, weights_cache):
    from sweep import job

    for pruner in ("dg_group", "l1_unstructured"):
        cfg = compose(
            [
                "model=tiny_cnn",
                f"pruner={pruner}",
                "ratio=0.5",
                "measure.runtimes=[eager,onnxruntime,tensorrt]",
                "save_model=true",
                f"tracking.uri={store}",
                *FAST,
            ]
        )
        job.run_job(cfg)
    runs = {r.data.params["pruner"]: r for r in tracking.search_runs(store, EXPERIMENT)}
    m, t = runs["dg_group"].data.metrics, runs["dg_group"].data.tags
    for name in tracking.RUNTIME_METRICS:
        assert f"onnxruntime/{name}" in m, name
    for name in ("latency_ms", "efficiency", "export_seconds", "max_abs_diff"):
        assert f"onnxruntime/dense_{name}" in m, name
    assert m["onnxruntime/efficiency"] > 0 and m["efficiency"] > 0  # eager's, under its own name
    # what ships: the pruned files are smaller, and in memory a model holds at least its weights
    for rt in ("", "onnxruntime/"):
        assert m[f"{rt}dense_file_mb"] > m[f"{rt}file_mb"] > 0, rt
        assert m[f"{rt}peak_mem_mb"] >= m[f"{rt}file_mb"] / 1.1, rt  # MB on disk, MiB, headers
    assert m["onnxruntime/speedup"] == pytest.approx(
        m["onnxruntime/dense_latency_ms"] / m["onnxruntime/latency_ms"], rel=1e-6
    )
    assert "output_mismatch" not in t["onnxruntime/latency_flag"]
    assert t["tensorrt/not_applicable"] == "tensorrt needs a CUDA GPU (the job's device is cpu)"
    assert t["onnx_exporter"] == "torchscript" and runs["dg_group"].info.status == "FINISHED"
    from mlflow.tracking import MlflowClient

    client, run_id = MlflowClient(store), runs["dg_group"].info.run_id
    files = [f.path for f in client.list_artifacts(run_id, "model")]
    assert {"model/model.safetensors", "model/structure.json"} == set(files)
    # the file that was timed is kept apart from the fine-tuned model that ships
    assert [f.path for f in client.list_artifacts(run_id, "timed")] == ["timed/pruned.onnx"]
    masks = runs["l1_unstructured"].data.tags["onnxruntime/not_applicable"]
    assert masks.startswith("onnxruntime: masks keep dense shapes")
    assert "onnxruntime/speedup" not in runs["l1_unstructured"].data.metrics


def test_a_speedup_target_is_searched_in_the_runtime_the_model_ships_in(
    compose, store, weights_cache
):
    """target.runtime=onnxruntime: the search reads the speedup in ONNX Runtime (channels rounded to
    16, where the tiny model runs faster there than dense), the measure stage times that runtime too
    and reads what the search accepted, within noise. The search steers by each timing's own
    interval; the machine's run-to-run spread widens the measure stage's alone."""
    from sweep import job, tracking

    cfg = ["pruner=dg_group", "target.speedup=1.1", "target.runtime=onnxruntime"]
    cfg += ["prune.round_to=16", "target.max_trials=6", "measure.run_to_run_cv=0.5"]
    cfg += [f"tracking.uri={store}", *FAST]
    job.run_job_isolated(compose(cfg))
    (run,) = tracking.search_runs(store, EXPERIMENT)
    m, t = run.data.metrics, run.data.tags
    assert run.info.run_name == "tiny_cnn/dg_group/speedup@onnxruntime=1.1/round16"
    assert run.info.status == "FINISHED", t.get("error")
    assert t["target"] == "speedup@onnxruntime=1.1" and t["target_landing"] in (
        "within",
        "refined",
        "nearest",
    )
    assert "onnxruntime/speedup" in m and "measure.runtimes" in run.data.params
    # what the search accepted is what the measure stage reads in ONNX Runtime, within noise
    assert abs(m["target_value"] - m["onnxruntime/speedup"]) < 0.25 * m["onnxruntime/speedup"]
    assert m["onnxruntime/speedup_ci_high"] / m["onnxruntime/speedup"] > 1.5**1.96 * 0.999
    assert m["target_value_ci_high"] / m["target_value"] < 1.5


def test_a_profiled_job_logs_where_the_time_went(compose, store, weights_cache, monkeypatch):
    from mlflow.tracking import MlflowClient

    from sweep import job
    from sweep.measure import runtimes
    from sweep.measure.runtimes.openvino import OpenVINO

    def fails(*a, **k):  # as OpenVINO's profile says its counters failed
        raise runtimes.RuntimeNotApplicable("openvino: its profiler failed on the dense model (x)")

    monkeypatch.setattr(OpenVINO, "profile", fails)
    for profile in ("true", "false"):
        cfg = compose(
            [
                "model=tiny_cnn",
                "pruner=dg_group",
                "ratio=0.5",
                "measure.runtimes=[onnxruntime,openvino,tensorrt]",
                f"measure.profile={profile}",
                f"tracking.uri={store}",
                *FAST,
            ]
        )
        job.run_job(cfg)
    by = {r.data.params["measure.profile"]: r for r in tracking.search_runs(store, EXPERIMENT)}
    on, off = by["True"], by["False"]
    m, t = on.data.metrics, on.data.tags
    assert on.info.status == "FINISHED" and t["profiled"] == "measure.profile=true"
    for key in (
        "profile_coverage",
        "onnxruntime/profile_coverage",
        "onnxruntime/dense_profile_coverage",
    ):
        assert m[key] > 0, key
    assert 0 <= m["onnxruntime/profile_misaligned_share"] <= 1
    assert t["openvino/profile_not_applicable"].startswith("openvino: its profiler failed")
    assert t["tensorrt/not_applicable"]  # not timed: not profiled either
    slow = json.loads(t["onnxruntime/slow_layers"])
    assert all({"layer", "op", "channels", "gap_ms", "share"} <= set(f) for f in slow)
    files = {f.path for f in MlflowClient(store).list_artifacts(on.info.run_id, "profile")}
    assert files == {"profile/layers.json", "profile/layers.csv", "profile/layers.png"}
    got = MlflowClient(store).download_artifacts(on.info.run_id, "profile/layers.json")
    table = json.loads(Path(got).read_text())
    assert {r[0] for r in table["data"]} == {"eager", "onnxruntime"}
    assert "profiled" not in off.data.tags and "profile_coverage" not in off.data.metrics
