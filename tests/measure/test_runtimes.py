"""Latency where models are deployed: each runtime loads, agrees with eager, is timed like eager, and
says in one line why it cannot run."""

from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import replace

import pytest
import timm
import torch

from helpers.pruners import PrunesToUnexportable
from sweep import tracking
from sweep.config.schema import RUNTIMES, check_ranges
from sweep.errors import SweepConfigError
from sweep.measure import deployed, peak, runtimes
from sweep.measure.latency import LatencySettings

CPU = torch.device("cpu")


QUICK = LatencySettings(warmup_max=6, iters=8, bootstrap=200, time_budget_s=0.3)


ONNX_RUNTIMES = ["onnxruntime", "openvino"]


def _ctx(tmp_path, **kw) -> runtimes.Context:
    return runtimes.Context(CPU, kw.pop("precision", "fp32"), 2, tmp_path, **kw)


@pytest.fixture(scope="module")
def models():
    """A tiny CNN, dense and with half its channels removed, and an input batch."""
    x = torch.randn(2, 3, 32, 32)
    torch.manual_seed(0)
    dense = timm.create_model("test_resnet", num_classes=10).eval()
    small = timm.create_model("test_resnet", num_classes=10, channels=(8, 8, 8, 8)).eval()
    return dense, small, x


@pytest.mark.parametrize("name", ONNX_RUNTIMES)
def test_runtime_agrees_with_eager_and_is_timed_in_pairs(name, models, tmp_path):
    dense, small, x = models
    r = deployed.time_in(runtimes.get(name), dense, small, x, _ctx(tmp_path), QUICK)
    # (short timing here: the flag may say so, but never that the outputs disagree)
    assert r.runtime == name and r.agree and "output_mismatch" not in r.flag
    assert all(d < 1e-3 for d in r.max_abs_diff)
    assert len(r.dense.samples_ms) == len(r.pruned.samples_ms) == 8
    assert r.dense.batch_size == 2 and r.dense.median_ms > 0 and r.pruned.median_ms > 0
    assert r.speedup.value == pytest.approx(r.dense.median_ms / r.pruned.median_ms)
    assert r.speedup.ci_low <= r.speedup.value <= r.speedup.ci_high
    # export and build are timed apart, and the file that ran is the pruned model's ONNX
    assert min(r.export_s) > 0 and min(r.build_s) > 0
    assert r.file is not None and r.file.name == "pruned.onnx" and r.file.is_file()


def test_a_self_timed_call_is_read_by_its_runtimes_clock(models, tmp_path):
    """OpenVINO's calls read its own request latency (benchmark_app's figure), not the host's time
    around the Python call; a plain call reads the host's."""
    import time

    from sweep.measure.clocks import CpuClock, SelfTimed

    def slow():
        time.sleep(0.004)

    assert CpuClock().time(SelfTimed(slow, lambda: 0.5), 3) == 0.5
    assert CpuClock().time(slow, 3) >= 4.0
    dense, _, x = models
    loaded = runtimes.get("openvino").load(dense, x, _ctx(tmp_path), "dense")
    assert isinstance(loaded.run, SelfTimed)
    host_ms = CpuClock().time(lambda: loaded.run(), 20)
    assert 0 < CpuClock().time(loaded.run, 20) < 2 * host_ms  # its own figure, of the same call


def test_openvino_is_timed_through_its_sync_api(models, tmp_path, monkeypatch):
    """The timed call runs the request in the caller's call, as benchmark_app's sync API does:
    start_async + wait hands it to the stream's thread, 7-11 us more a call on a 0.1 ms model."""
    ov = pytest.importorskip("openvino")
    called = []
    for api in ("infer", "start_async"):
        real = getattr(ov.InferRequest, api)

        def spy(self, *a, _api=api, _real=real, **kw):
            called.append(_api)
            return _real(self, *a, **kw)

        monkeypatch.setattr(ov.InferRequest, api, spy)
    dense, _, x = models
    loaded = runtimes.get("openvino").load(dense, x, _ctx(tmp_path), "dense")
    called.clear()
    loaded.run()
    assert called == ["infer"] and loaded.run.last_ms() > 0


@pytest.mark.parametrize("name", ["eager", *ONNX_RUNTIMES])
def test_instances_are_separate_sessions_of_one_export(name, models, tmp_path):
    """Each model is timed as `measure.instances` instances: another session (compiled model, copy of
    the weights) of the same export, giving the same output."""
    dense, _, x = models
    ctx = _ctx(tmp_path)
    one = runtimes.get(name).load(dense, x, ctx, "dense")
    two = one.instances(2)
    assert len(two) == 2 and two[0] is one and two[1].run is not one.run
    assert torch.equal(two[1].output(), one.output())
    assert len(ctx.exports) == (0 if name == "eager" else 1)
    r = deployed.time_in(runtimes.get(name), dense, dense, x, ctx, QUICK)
    assert r.timing.instances == QUICK.instances == 2


def test_dense_and_pruned_are_exported_once_for_every_onnx_runtime(models, tmp_path):
    dense, small, x = models
    ctx = _ctx(tmp_path)
    for name in ONNX_RUNTIMES:
        deployed.time_in(runtimes.get(name), dense, small, x, ctx, QUICK)
    assert len(ctx.exports) == 2 and runtimes.exporter_used(ctx) == "torchscript"


def test_dynamo_exporter_when_asked(models, tmp_path):
    dense, _, x = models
    ctx = _ctx(tmp_path, onnx_exporter="dynamo")
    loaded = runtimes.get("onnxruntime").load(dense, x, ctx, "dense")
    want = runtimes.get("eager").load(dense, x, ctx, "dense").output()
    assert (
        runtimes.max_abs_diff(loaded.output(), want) < 1e-3
        and runtimes.exporter_used(ctx) == "dynamo"
    )


def test_a_model_no_exporter_takes_is_not_applicable_with_its_reason(models, tmp_path):
    dense, _, x = models
    import copy

    odd = PrunesToUnexportable().prune(copy.deepcopy(dense), 0.5, x)
    odd(x)  # eager runs it
    ctx = _ctx(tmp_path)
    with pytest.raises(
        runtimes.RuntimeNotApplicable, match=r"^onnxruntime: cannot export the pruned"
    ):
        deployed.time_in(runtimes.get("onnxruntime"), dense, odd, x, ctx, QUICK)
    # the next runtime that needs ONNX is told the same without exporting again
    with pytest.raises(runtimes.RuntimeNotApplicable, match=r"^openvino: cannot export the pruned"):
        runtimes.get("openvino").load(odd, x, ctx, "pruned")


class _OffByOne(runtimes.Eager):
    """A runtime whose output is wrong: its figures must be flagged, not reported as they are."""

    name = "off_by_one"

    def load(self, model, x, ctx, what):
        loaded = super().load(model, x, ctx, what)
        return replace(loaded, output=lambda: loaded.output() + 1.0)


def test_output_that_disagrees_with_eager_is_flagged(models, tmp_path):
    dense, small, x = models
    r = deployed.time_in(_OffByOne(), dense, small, x, _ctx(tmp_path), QUICK)
    assert not r.agree and "output_mismatch" in r.flag.split(",")
    assert r.max_abs_diff[1] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "name,ctx_kw,said",
    [
        ("tensorrt", {}, "tensorrt needs a CUDA GPU (the job's device is cpu)"),
        ("onnxruntime", {"precision": "fp16"}, "measure.precision=fp16: onnxruntime times fp32"),
        ("openvino", {"precision": "bf16"}, "measure.precision=bf16: openvino is timed at fp32"),
    ],
)
def test_runtime_that_cannot_run_here_says_why(name, ctx_kw, said, models, tmp_path):
    dense, small, x = models
    with pytest.raises(runtimes.RuntimeNotApplicable) as e:
        deployed.time_in(runtimes.get(name), dense, small, x, _ctx(tmp_path, **ctx_kw), QUICK)
    assert said in str(e.value) and "\n" not in str(e.value)


def test_missing_package_is_one_line_naming_the_extra(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "openvino" else real(n, *a)
    )
    said = runtimes.get("openvino").unavailable(_ctx(tmp_path))
    assert said == "openvino is not installed (pip install 'sweep[deploy]')"


def test_every_runtime_of_the_schema_is_a_class():
    assert tuple(runtimes.REGISTRY) == RUNTIMES
    for name in RUNTIMES:
        rt = runtimes.get(name)
        assert rt.name == name and rt.summary


def test_unknown_runtime_is_refused_in_one_line(compose):
    cfg = compose(["measure.runtimes=[eager,onnx]"])
    with pytest.raises(SweepConfigError) as e:
        check_ranges(cfg)
    assert str(e.value) == (
        "measure.runtimes: 'onnx' is not a runtime: choose from " + ", ".join(RUNTIMES)
    )


def test_peak_is_measured_once_and_cached(tmp_path, monkeypatch):
    ctx, eager = _ctx(tmp_path), runtimes.get("eager")
    first = peak.cached(eager, ctx, QUICK, tmp_path / "cache", "cpu: test")
    assert first.gemm > first.dwconv > 0  # a GEMM reaches more MAC/s than a depthwise conv
    saved = json.loads((tmp_path / "cache" / peak.CACHE_FILE).read_text())
    assert len(saved) == 1 and next(iter(saved)).startswith("eager torch==")

    def never(*a, **k):
        raise AssertionError("measured again")

    monkeypatch.setattr(peak, "measure", never)
    assert peak.cached(eager, ctx, QUICK, tmp_path / "cache", "cpu: test") == first
    # a model at a tenth of the peak
    p = peak.Peak(gemm=1e9, dwconv=1e8)
    assert peak.efficiency(1e6, 10, 100.0, p) == pytest.approx(0.1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["compile", "onnxruntime", "tensorrt"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_runtime_agrees_with_eager_and_is_timed(name, precision, tmp_path):
    dev = torch.device("cuda")
    dense = timm.create_model("resnet18", num_classes=10).eval().to(dev)
    small = timm.create_model("resnet10t", num_classes=10).eval().to(dev)
    ctx = runtimes.Context(dev, precision, 2, tmp_path)
    runtime = runtimes.get(name)
    reason = runtime.unavailable(ctx)
    if reason:
        pytest.skip(f"{name} not applicable here: {reason}")
    r = deployed.time_in(runtime, dense, small, torch.randn(8, 3, 64, 64), ctx, QUICK)
    assert r.agree, r.max_abs_diff
    assert r.dense.median_ms > 0 and r.pruned.median_ms > 0 and r.speedup.value > 0
    if name != "compile":
        assert r.file is not None and r.file.is_file()


def _row(pruner: str, eager: tuple, onnx: tuple):
    from sweep.report import rows

    m = {"accuracy_top1": 0.9, "macs": 1.0, "dense_macs": 2.0}
    for rt, (v, lo, hi) in (("eager", eager), ("onnxruntime", onnx)):
        key = functools.partial(tracking.runtime_key, rt)
        m.update({key("speedup"): v, key("speedup_ci_low"): lo, key("speedup_ci_high"): hi})
    tags = {tracking.TAG_KIND: "structural", tracking.TAG_SPEEDUP_POSSIBLE: "true"}
    return rows.Row("tiny", "tiny", pruner, 0.5, "FINISHED", m, tags, {}, target="macs=0.5")


def test_report_names_only_ranking_flips_clear_of_the_intervals():
    from sweep.report import cells, compare, rows

    found = [
        _row("a", (1.5, 1.4, 1.6), (1.1, 1.05, 1.15)),
        _row("b", (1.2, 1.1, 1.3), (1.4, 1.3, 1.5)),  # swaps places with a, clear of both
        _row("c", (1.25, 1.0, 1.55), (1.2, 1.0, 1.45)),  # overlaps everyone: no claim
    ]
    sweep = rows.Sweep("s", found, ["tiny"], ["macs=0.5"], [0], [0], found)
    assert cells.sweep_runtimes(sweep) == ["eager", "onnxruntime"]
    assert compare.ranking_changes(sweep) == [
        "- tiny, macs=0.5: a is faster than b in eager (1.50x vs 1.20x), slower in onnxruntime "
        "(1.10x vs 1.40x)"
    ]
    lines = compare.matched_cost(sweep)
    assert "| speedup (eager) | speedup (onnxruntime) |" in "\n".join(lines)
    assert "| 1.50x [1.40, 1.60] | 1.10x [1.05, 1.15] |" in "\n".join(lines)


@pytest.mark.parametrize("name", ONNX_RUNTIMES)
def test_runtime_profiler_names_the_model_layers(name, models, tmp_path):
    from sweep.measure.layer_times import by_layer

    dense, _, x = models
    times = runtimes.get(name).profile(dense, x, _ctx(tmp_path), "dense", rounds=(1, 3))
    per_layer = by_layer(times)
    convs = {p for p, m in dense.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert convs <= set(per_layer)  # every convolution timed under its own module path
    named = sum(v for k, v in per_layer.items() if k)
    assert named > 0.8 * sum(per_layer.values())  # little maps to no module
    if name == "openvino":  # a convolution says what was fused into it
        assert any(t.fused for t in times if t.layer in convs)


def test_onnx_names_map_a_fused_node_to_the_op_it_runs(models, tmp_path):
    from sweep.measure.layer_times import ModulePaths, OnnxNames

    dense, _, x = models
    path, _ = runtimes.onnx_file(dense, x, _ctx(tmp_path), "dense", "onnxruntime")
    names = OnnxNames(path, ModulePaths(dense))
    # ONNX Runtime names a Conv fused with its Relu after the Relu's output, NCHWc-suffixed
    fused = names.module_of("/act1/Relu_output_0_nchwc_kernel_time", "Conv")
    assert fused == "conv1.6" and isinstance(dense.get_submodule(fused), torch.nn.Conv2d)
    assert names.module_of("/layer1/layer1.0/conv2/Conv/WithoutBiases") == "layer1.0.conv2"
    assert names.module_of("input_f32_abcd_acdb_/layer1/layer1.0/conv1/Conv") == "layer1.0.conv1"
    assert names.module_of("ReorderOutput_token_7") == ""


def test_a_runtime_without_a_profiler_says_so(models, tmp_path):
    dense, _, x = models
    for name in ("compile", "tensorrt"):
        with pytest.raises(runtimes.RuntimeNotApplicable, match=f"^{name}: "):
            runtimes.get(name).profile(dense, x, _ctx(tmp_path), "dense", rounds=(1, 1))
