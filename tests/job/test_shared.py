"""Shared dense work: a figure computed once is read back only for the same inputs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from helpers.runtimes import failing_quantizer, needs_deploy
from sweep.job import shared


def _job(compose, tmp_path, *overrides):
    cfg = compose(["model=tiny_cnn", f"weights.cache_dir={tmp_path}", "sweep_id=s", *overrides])
    return SimpleNamespace(cfg=cfg, device=torch.device("cpu"), class_map=None)


def test_a_dense_top1_is_reused_only_for_the_same_inputs(compose, tmp_path):
    calls = []

    def top1(job, weights="trained|a.pt|1:2", n=100):
        def compute():
            calls.append(1)
            return 0.5 + len(calls) / 100

        return shared.dense_top1(
            job, weights_id=weights, preprocess={"input_size": [3, 32, 32]}, n=n, compute=compute
        )

    base = _job(compose, tmp_path)
    first, reused = top1(base)
    assert not reused and top1(base) == (first, True) and len(calls) == 1
    # another eval size, other weights, another split, another eval batch, another seed: computed
    changed = [
        top1(base, n=200),
        top1(base, weights="trained|a.pt|1:3"),
        top1(_job(compose, tmp_path, "dataset.eval_fraction=0.3")),
        top1(_job(compose, tmp_path, "eval.batch_size=32")),
        top1(_job(compose, tmp_path, "seed=1")),
    ]
    assert [r for _, r in changed] == [False] * 5 and len(calls) == 6
    assert len({v for v, _ in changed} | {first}) == 6


def test_the_eval_count_is_decided_once_per_sweep_and_model(compose, tmp_path):
    job = _job(compose, tmp_path)
    assert shared.eval_count(job, 360, lambda: 74) == (74, False)
    assert shared.eval_count(job, 360, lambda: 100) == (74, True)  # every method: the same images
    other = _job(compose, tmp_path, "sweep_id=t")
    assert shared.eval_count(other, 360, lambda: 100) == (100, False)


def test_the_built_model_is_copied_for_each_job(compose, monkeypatch):
    monkeypatch.setattr(shared, "_LAST_BUILT", {})  # not what an earlier test of this process built
    cfg = compose(["model=tiny_cnn"])
    built = []

    def build():
        built.append(torch.nn.Linear(2, 2))
        return built[-1], "random", ""

    a, _, _ = shared.dense_start(cfg, 10, build)
    b, _, _ = shared.dense_start(cfg, 10, build)
    assert len(built) == 1 and a is not b and a is not built[0]
    assert torch.equal(a.weight, b.weight)
    shared.dense_start(compose(["model=tiny_cnn", "seed=1"]), 10, build)
    assert len(built) == 2  # another seed: another init


def _counted(made: dict, name: str, fn):
    def wrapper(*args, **kwargs):
        made[name] += 1
        return fn(*args, **kwargs)

    return wrapper


def _forms_job(compose, tmp_path, *overrides):
    job = _job(compose, tmp_path, *overrides)
    job.dataset, job.run_name = SimpleNamespace(num_classes=10), "tiny_cnn/test"
    return job


@needs_deploy
def test_the_dense_files_are_made_once_and_only_for_the_same_inputs(compose, tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    from sweep.measure import runtimes
    from sweep.measure.runtimes import export, onnx

    made = {"export": 0, "int8": 0}
    monkeypatch.setattr(export, "_export", _counted(made, "export", export._export))
    monkeypatch.setattr(onnx, "ort_int8", _counted(made, "int8", onnx.ort_int8))
    torch.manual_seed(0)
    dense = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten())
    pruned = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten())
    x, cal = torch.randn(2, 3, 8, 8), [torch.randn(2, 3, 8, 8) for _ in range(2)]
    ort = runtimes.get("onnxruntime")

    def job_int8(job=None, weights="w1", x=x, cal=cal, model=dense):
        job = job or _forms_job(compose, tmp_path)
        bench = SimpleNamespace(dense=dense, weights_id=weights)
        settings = OmegaConf.to_object(job.cfg.measure)
        ctx = shared.runtime_context(job, bench, settings=settings, workdir=tmp_path / "w", x=x)
        what = "dense" if model is dense else "pruned"
        return ort.int8(model, x, calibration=cal, ctx=ctx, what=what)

    first, second = job_int8(), job_int8()  # a second job: both files read back
    assert made == {"export": 1, "int8": 1} and first.file == second.file
    assert (tmp_path / "shared") in first.file.parents
    assert not list(first.file.parent.glob("*.pre.onnx"))  # the quantizer's step is not kept
    assert torch.allclose(first.output(), second.output())
    assert second.export_s == first.export_s  # the seconds of the quantization that made it
    job_int8(cal=[c + 1 for c in cal])  # other calibration: quantized again, export read
    assert made == {"export": 1, "int8": 2}
    # other weights, input shape, seed or exporter: exported (and quantized) again
    job_int8(weights="w2")
    job_int8(x=torch.randn(1, 3, 8, 8), cal=[torch.randn(1, 3, 8, 8)])
    job_int8(job=_forms_job(compose, tmp_path, "seed=1"))
    job_int8(job=_forms_job(compose, tmp_path, "measure.onnx_exporter=torchscript"))
    assert made == {"export": 5, "int8": 6}
    first.file.unlink()  # a kept file that is gone is made again
    assert job_int8().file.exists() and made == {"export": 5, "int8": 7}
    job_int8(model=pruned), job_int8(model=pruned)  # the pruned model: the job's own, every time
    assert made == {"export": 7, "int8": 9}


@needs_deploy
def test_a_failure_to_make_a_dense_file_is_not_kept(compose, tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    from sweep.measure import runtimes

    job = _forms_job(compose, tmp_path)
    dense = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten())
    x = torch.randn(2, 3, 8, 8)
    bench = SimpleNamespace(dense=dense, weights_id="w")
    settings = OmegaConf.to_object(job.cfg.measure)

    def int8():
        ctx = shared.runtime_context(job, bench, settings=settings, workdir=tmp_path / "w", x=x)
        return runtimes.get("onnxruntime").int8(dense, x, calibration=[x], ctx=ctx, what="dense")

    with monkeypatch.context() as m:
        failing_quantizer(m)
        with pytest.raises(runtimes.RuntimeNotApplicable, match="FancyOp"):
            int8()
    assert int8().file.exists()  # tried again, not read back as a failure


@needs_deploy
def test_the_dense_nncf_form_is_made_once(compose, tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    from sweep.measure import runtimes
    from sweep.measure.runtimes import openvino

    made = {"nncf": 0}
    monkeypatch.setattr(openvino, "_nncf_int8", _counted(made, "nncf", openvino._nncf_int8))
    job = _forms_job(compose, tmp_path)
    dense = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten())
    x = torch.randn(2, 3, 8, 8)
    bench = SimpleNamespace(dense=dense, weights_id="w")
    settings = OmegaConf.to_object(job.cfg.measure)
    loaded = []
    for _ in range(2):
        ctx = shared.runtime_context(job, bench, settings=settings, workdir=tmp_path / "w", x=x)
        loaded.append(
            runtimes.get("openvino").int8(dense, x, calibration=[x], ctx=ctx, what="dense")
        )
    assert made == {"nncf": 1} and loaded[0].file == loaded[1].file
    assert torch.allclose(loaded[0].output(), loaded[1].output())


def test_the_dense_int8_top1_is_read_back_for_the_same_kept_file(compose, tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    from sweep.job import quantize

    calls = []
    monkeypatch.setattr(quantize, "top1", lambda *a, **k: calls.append(1) or 0.25 * len(calls))
    job = _forms_job(compose, tmp_path)
    dense = torch.nn.Linear(2, 2)
    bench = SimpleNamespace(dense=dense, weights_id="w", preprocess={"input_size": [3, 8, 8]})
    settings = OmegaConf.to_object(job.cfg.measure)
    x = torch.randn(1, 3, 8, 8)
    ctx = shared.runtime_context(job, bench, settings=settings, workdir=tmp_path / "w", x=x)
    kept = ctx.kept[id(dense)].folder

    def read(file, what="dense", n=10):
        loaded = SimpleNamespace(file=file, predict=None)
        return quantize._top1_in_runtime(
            job, loaded, what, bench=bench, images=list(range(n)), ctx=ctx
        )

    assert read(kept / "a.onnx") == read(kept / "a.onnx") == 0.25 and len(calls) == 1
    read(kept / "b.xml")  # another INT8 file (another runtime, calibration, library)
    read(kept / "a.onnx", n=20)  # other eval images
    read(kept / "a.onnx", what="pruned")  # the pruned model's: every job its own
    read(tmp_path / "job" / "a.onnx")  # a file no later job can read
    assert len(calls) == 5
