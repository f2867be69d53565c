"""quantize=int8: each runtime quantizes with its own tool, its INT8 model answers like the FP32 one,
the four models are timed in one harness, a runtime that cannot quantize says why in one line while
the job finishes, and the report says whether pruning still pays after INT8."""

from __future__ import annotations

import statistics

import pytest
import timm
import torch

from helpers.runtimes import failing_quantizer, needs_deploy
from sweep import tracking
from sweep.measure import quantized, runtimes
from sweep.measure.latency import LatencySettings
from sweep.measure.runtimes.base import fixed_batch
from sweep.report import int8_section, rows

CPU = torch.device("cpu")


QUICK = LatencySettings(warmup_max=6, iters=8, bootstrap=200, time_budget_s=0.3)


QUANTIZING = ["eager", "onnxruntime", "openvino"]


def test_fixed_batch_runs_any_batch_in_chunks_of_the_exported_size():
    shapes = []

    def forward(a):
        shapes.append(a.shape[0])
        return a.reshape(len(a), -1).sum(1, keepdims=True)

    images = torch.arange(5 * 3, dtype=torch.float32).reshape(5, 3, 1, 1)
    got = fixed_batch(forward, 2)(images)
    assert shapes == [2, 2, 2]  # the last image padded to the file's batch
    assert torch.equal(got, images.reshape(5, -1).sum(1, keepdim=True))


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    dense = timm.create_model("test_resnet", num_classes=10).eval()
    small = timm.create_model("test_resnet", num_classes=10, channels=(8, 8, 8, 8)).eval()
    x = torch.randn(2, 3, 32, 32)
    calibration = [torch.randn(2, 3, 32, 32) for _ in range(8)]
    return dense, small, x, calibration


@needs_deploy
@pytest.mark.parametrize("name", QUANTIZING)
def test_int8_answers_like_fp32_and_four_models_share_one_harness(name, models, tmp_path):
    dense, small, x, calibration = models
    images = torch.randn(9, 3, 32, 32)  # not a multiple of the file's batch of 2
    answers = {}

    def agreement(loaded, what):  # the "top-1" of INT8 against the FP32 model's own answers
        model = dense if what == "dense" else small
        with torch.no_grad():
            want = model(images)
        got = loaded.predict(images)
        answers[len(answers)] = (got, want)
        return float((got.argmax(1) == want.argmax(1)).float().mean())

    ctx = runtimes.Context(CPU, "fp32", 2, tmp_path)
    r = quantized.quantize_in(
        runtimes.get(name),
        models=(dense, small),
        x=x,
        calibration=calibration,
        top1=agreement,
        ctx=ctx,
        settings=QUICK,
    )
    assert len(r.timing.stats) == 4 and len({len(s.samples_ms) for s in r.timing.stats}) == 1
    med = [statistics.median(s.samples_ms) for s in r.timing.stats]
    both = r.speedups[tracking.SPEEDUP_BOTH[0]]
    assert both.value == pytest.approx(med[quantized.DENSE_FP32] / med[quantized.PRUNED_INT8])
    assert r.on_int8.value == pytest.approx(med[quantized.DENSE_INT8] / med[quantized.PRUNED_INT8])
    assert min(r.accuracy) >= 0.6, r.accuracy  # INT8 mostly agrees with FP32...
    for got, want in answers.values():
        assert got.shape == want.shape == (9, 10)
        diff = float((got - want).abs().max())
        assert 0 < diff <= 0.5 * float(want.abs().max())  # ...and is not the FP32 model itself
    assert min(r.quantize_s) > 0
    names = [k for k, v in r.metrics().items() if v == v]  # a NaN is not logged (no peak timed)
    assert [k for k in names if not tracking.describes("metric", k)] == []
    assert all(k.startswith(tracking.int8_key(name, "")) for k in names)


@pytest.mark.parametrize("name", ["compile", "tensorrt"])
def test_runtimes_without_an_int8_path_say_why_in_one_line(name, models, tmp_path):
    dense, _, x, calibration = models
    with pytest.raises(runtimes.RuntimeNotApplicable) as e:
        ctx = runtimes.Context(CPU, "fp32", 2, tmp_path)
        runtimes.get(name).int8(dense, x, calibration=calibration, ctx=ctx, what="dense")
    said = str(e.value)
    assert said.startswith(f"{name}: ") and "\n" not in said and "INT8" in said


@needs_deploy
def test_a_quantizer_that_fails_is_not_applicable_in_one_line(models, tmp_path, monkeypatch):
    dense, _, x, calibration = models
    failing_quantizer(monkeypatch)
    ctx = runtimes.Context(CPU, "fp32", 2, tmp_path)
    with pytest.raises(runtimes.RuntimeNotApplicable) as e:
        runtimes.get("onnxruntime").int8(dense, x, calibration=calibration, ctx=ctx, what="dense")
    assert str(e.value) == (
        "onnxruntime: its quantizer cannot take the dense model (Unsupported operator FancyOp)"
    )


def _row(pruner: str, fp32: float, int8: float, pruning: float, on_int8: float) -> rows.Row:
    rt = "onnxruntime"
    m = {"accuracy_top1": fp32, "dense_accuracy_top1": 0.95}
    for name, v in (("accuracy_top1", int8), ("speedup_pruning", pruning), ("speedup", on_int8)):
        m[tracking.int8_key(rt, name)] = v
    for name, v in (("speedup_pruning", pruning), ("speedup", on_int8)):
        m[tracking.int8_key(rt, f"{name}_ci_low")] = v * 0.98
        m[tracking.int8_key(rt, f"{name}_ci_high")] = v * 1.02
    params = {"eval.samples_used": "1000"}
    return rows.Row("tiny", "tiny", pruner, 0.5, "FINISHED", m, {}, params, target="macs=0.5")


def test_summary_names_the_methods_that_change_places_under_int8():
    a = _row("dg_group", fp32=0.90, int8=0.85, pruning=1.30, on_int8=1.05)
    b = _row("dg_taylor", fp32=0.89, int8=0.88, pruning=1.10, on_int8=1.25)
    sweep = rows.Sweep("s", [a, b], ["tiny"], ["macs=0.5"], [0], [0], [a, b])
    said = "\n".join(int8_section.summary(sweep))
    assert "by top-1, dg_group is ahead of dg_taylor in FP32 (90.0% vs 89.0%)" in said
    assert "behind in INT8 (85.0% vs 88.0%)" in said
    assert "by speedup, dg_group is faster than dg_taylor in FP32" in said
    assert int8_section.verdict(a, "onnxruntime") == "pays"
    # within each other's intervals, or in the same order: no change named
    c = _row("dg_taylor", fp32=0.89, int8=0.84, pruning=1.29, on_int8=1.04)
    sweep = rows.Sweep("s", [a, c], ["tiny"], ["macs=0.5"], [0], [0], [a, c])
    assert "No two methods swap places" in "\n".join(int8_section.summary(sweep))
    # an order decided by two images of 1,000 is not a change
    d = _row("dg_taylor", fp32=0.898, int8=0.86, pruning=1.29, on_int8=1.04)
    sweep = rows.Sweep("s", [a, d], ["tiny"], ["macs=0.5"], [0], [0], [a, d])
    assert "by top-1," not in "\n".join(int8_section.summary(sweep))


def _depthwise(channels: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, channels, 1),
        torch.nn.Conv2d(channels, channels, 3, padding=1, groups=channels),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(channels, 10),
    ).eval()


def test_eager_int8_takes_the_engine_that_runs_the_model(tmp_path):
    """x86's depthwise kernel takes 537 channels (a pruned width) about 40x slower than 536: the INT8
    model is built for oneDNN instead, and runs faster than x86's would."""
    from sweep.measure.runtimes import eager

    if "onednn" not in torch.backends.quantized.supported_engines:
        pytest.skip("no oneDNN quantized engine in this PyTorch build")
    model, x = _depthwise(537), torch.randn(1, 3, 14, 14)
    ctx = runtimes.Context.of(CPU, QUICK, tmp_path)
    loaded = eager.Eager().int8(model, x, [x], ctx, "pruned")
    assert loaded.kernels == "onednn"
    x86 = eager._fx_int8(model, x, [x], "x86")
    assert eager._median_ms(x86, x) > 3 * eager._median_ms(_quantized_of(loaded), x)


def _quantized_of(loaded) -> torch.nn.Module:
    """The INT8 module a Loaded runs (its `again` deep-copies it)."""
    cells = (c.cell_contents for c in loaded.again.__closure__)
    return next(c for c in cells if isinstance(c, torch.nn.Module))


def test_eager_int8_without_a_sane_engine_is_not_applicable(tmp_path, monkeypatch):
    from sweep.measure.runtimes import eager

    ms = {False: 1.0, True: 12.0}  # FP32 1 ms, INT8 12 ms in every engine
    monkeypatch.setattr(eager, "_median_ms", lambda m, x: ms[isinstance(m, torch.fx.GraphModule)])
    model, x = _depthwise(16), torch.randn(1, 3, 8, 8)
    ctx = runtimes.Context.of(CPU, QUICK, tmp_path)
    with pytest.raises(runtimes.RuntimeNotApplicable, match=r"12\.0x slower than its FP32 form"):
        eager.Eager().int8(model, x, [x], ctx, "pruned")


def test_the_dense_int8_model_is_built_once_per_process(tmp_path, monkeypatch):
    from sweep.measure.runtimes import eager

    model, x = _depthwise(16), torch.randn(1, 3, 8, 8)
    ctx = runtimes.Context.of(CPU, QUICK, tmp_path)
    ctx.kept[id(model)] = runtimes.Kept(folder=tmp_path / "forms-a", once=None)
    built = []
    fx = eager._fx_int8
    monkeypatch.setattr(eager, "_fx_int8", lambda *a: built.append(a[3]) or fx(*a))
    first = eager.Eager().int8(model, x, [x], ctx, "dense")
    n = len(built)
    again = eager.Eager().int8(model, x, [x], ctx, "dense")
    assert n >= 1 and len(built) == n and _quantized_of(again) is _quantized_of(first)
    assert again.kernels == first.kernels and again.export_s == first.export_s
    other = eager.Eager().int8(model, x, [x * 2], ctx, "dense")  # other calibration: built again
    assert len(built) > n and _quantized_of(other) is not _quantized_of(first)
