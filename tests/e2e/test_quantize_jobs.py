"""quantize=int8: each runtime quantizes with its own tool, its INT8 model answers like the FP32 one,
the four models are timed in one harness, a runtime that cannot quantize says why in one line while
the job finishes, and the report says whether pruning still pays after INT8."""

from __future__ import annotations

import pytest

from helpers.cli import FAST
from helpers.runs import EXPERIMENT
from helpers.runtimes import failing_quantizer, needs_deploy
from sweep import tracking
from sweep.report import rows


@needs_deploy
@pytest.mark.slow
def test_int8_job_finishes_when_one_runtime_cannot_quantize(
    compose, store, weights_cache, monkeypatch, tmp_path
):
    from mlflow.tracking import MlflowClient

    from sweep import job, report

    failing_quantizer(monkeypatch)
    timed_in = "measure.runtimes=[eager,onnxruntime,openvino]"
    common = ["model=tiny_cnn", "target.macs=0.5", "quantize=int8", timed_in, "measure.peak=false"]
    common += ["quantize.calibration_samples=16", "sweep_id=int8", f"tracking.uri={store}", *FAST]
    job.run_job(compose(["pruner=dg_group", *common]))
    job.run_job(compose(["pruner=l1_unstructured", "quantize.runtimes=[eager]", *common]))
    runs = {r.info.run_name: r for r in MlflowClient(store).search_runs(["1"])}
    run = runs["tiny_cnn/dg_group/macs=0.5"]
    m, tags = run.data.metrics, run.data.tags
    assert run.info.status == "FINISHED"
    assert "FancyOp" in tags["onnxruntime/int8/not_applicable"]
    assert "onnxruntime/speedup" in m  # its FP32 figures stand
    for rt in ("eager", "openvino"):
        key = tracking.int8_key
        assert 0 <= m[key(rt, "accuracy_top1")] <= 1 and m[key(rt, "speedup_both")] > 0
        assert tags[key(rt, "slower_than_dense")] in ("true", "false")
        # the INT8 forms that ship: smaller than FP32's, the pruned one smallest
        fp32 = m["dense_file_mb"] if rt == "eager" else m[f"{rt}/dense_file_mb"]
        assert fp32 > m[key(rt, "dense_file_mb")] > m[key(rt, "file_mb")] > 0, rt
        assert m[key(rt, "peak_mem_mb")] > 0, rt
    assert run.data.params["quantize.calibration_samples_used"] == "16"
    assert m["stage_quantize_seconds"] > 0
    masks = runs["tiny_cnn/l1_unstructured/macs=0.5"]
    assert "masks keep dense shapes" in masks.data.tags["int8/not_applicable"]
    assert not [k for k in masks.data.tags if "/int8/" in k]  # quantize.runtimes=[eager] only
    # the report answers the question, with the reason where a runtime had no INT8 figures
    sweep = rows.load_sweep(store, EXPERIMENT, "int8")
    doc = report.render(sweep, {})
    section = doc[doc.index("## Does pruning still pay after INT8?") :]
    assert "| tiny_cnn | macs=0.5 | dg_group | openvino |" in section
    assert " MB, " in section and " MiB |" in section  # what ships, INT8
    assert "n/a: onnxruntime: its quantizer cannot take" in section
    assert "### Under INT8" in doc
