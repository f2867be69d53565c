"""Bad input ends with one line naming the bad value and the valid choices, before any model is built
and with nothing written to the store."""

from __future__ import annotations

import pytest

from helpers.cli import fail_in_one_line, run_cli
from sweep.cli.plan import plan_sweep
from sweep.config import group_options


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["model=nosuch"], ["'nosuch'", "tiny_cnn", "c, e", "timm"]),
        (["-m", "model=c,nosuch_either"], ["'nosuch_either'", "tiny_vit"]),
        (["pruner=magic"], ["'magic'", "dg_group", "l1_unstructured"]),
        (["dataset=imagenet42"], ["'imagenet42'", "digits", "synthetic"]),
        (["ratio=1.0"], ["ratio=1.0", "[0, 1)"]),
        (["ratio=-0.1"], ["ratio=-0.1", "[0, 1)"]),
        (["-m", "ratio=0.3,1.5"], ["ratio=1.5", "[0, 1)"]),
        (["ratio=abc"], ["'abc'", "[0, 1)"]),
        (["model=c,"], ["malformed override", "model=c,"]),
        (["ratio=0.3,0.5"], ["ratio=0.3,0.5", "-m"]),
        (["+dataset.root=/definitely/not/here"], ["/definitely/not/here", "does not exist"]),
        (["tracking.uri=http://127.0.0.1:9"], ["http://127.0.0.1:9", "unreachable"]),
        (["device=tpu"], ["device='tpu'", "cpu"]),
        (["measure.precision=fp8"], ["measure.precision='fp8'", "bf16"]),
        (["measure.batch_size=0"], ["measure.batch_size=0", "(0, inf)"]),
        (["-m", "measure.batch_size=1,0"], ["measure.batch_size=0", "(0, inf)"]),
        (["eval.batch_size=0"], ["eval.batch_size=0", "(0, inf)"]),
        (["model.input_size=-3"], ["model.input_size=-3", "(0, inf)"]),
        (["model.train.epochs=-1"], ["model.train.epochs=-1", "[0, inf)"]),
        (["measure.batch_size=two"], ["measure.batch_size='two'", "whole number"]),
        (["measure.iters=0"], ["measure.iters=0", "or auto"]),
        (["nosuch=1"], ["nosuch"]),
        (["dataset=imagefolder"], ["needs dataset.root=PATH", "<class>/<image>"]),
        (
            ["dataset=imagenet", "dataset.root=/no/such/imagenet"],
            ["/no/such/imagenet", "does not exist"],
        ),
        (["model.head=probe"], ["model.head='probe'", "keep, fit, finetune"]),
        (["model=c", "model.head=keep"], ["model.head=keep", "digits", "head=fit"]),
        (["finetune.epochs=-1"], ["finetune.epochs=-1", "[0, inf)"]),
        (["finetune.batch_size=0"], ["finetune.batch_size=0", "(0, inf)"]),
        (["finetune.distill.weight=2"], ["finetune.distill.weight=2", "[0, 1]"]),
        (["model.pretrained_file=/no/such.pth"], ["/no/such.pth", "does not exist"]),
        (["target.macs=1.5"], ["target.macs=1.5", "(0, 1]"]),
        (["-m", "target.macs=0.5,0"], ["target.macs=0", "(0, 1]"]),
        (["target.speedup=0.5"], ["target.speedup=0.5", "(1, inf)"]),
        (["target.macs=0.5", "target.params=0.5"], ["target.macs=0.5 and target.params=0.5"]),
        (["target.flops=0.5"], ["flops"]),
        (
            ["-m", "ratio=0.3,0.5", "target.macs=0.5"],
            ["ratio=0.3,0.5", "target.macs=0.5", "one of"],
        ),
        (
            ["-m", "pruner=dg_slim,dg_growing_reg", "pruner.regularize.epochs=2"],
            ["pruner.regularize.epochs=2", "default pruner", "++pruner.regularize.epochs=2"],
        ),
        (
            ["-m", "pruner=dg_slim,dg_group", "++pruner.regularize.epochs=2"],
            ["dg_group", "regularize"],
        ),
        (["pruner=dg_slim", "pruner.regularize.epochs=0"], ["epochs=0", ">= 1"]),
        (["prune.round_to=0"], ["prune.round_to=0", "[1, inf) or auto"]),
        (["target.runtime=tpu"], ["target.runtime='tpu'", "onnxruntime, openvino"]),
        (["quantize=int4"], ["unknown quantize 'int4'", "int8, none"]),
        (["quantize.calibration_samples=0"], ["quantize.calibration_samples=0", "(0, inf)"]),
        (
            ["quantize=int8", "quantize.runtimes=[openvino]"],
            ["quantize.runtimes: 'openvino' is not timed in this job", "choose from eager"],
        ),
    ],
)
def test_bad_input_is_one_line(argv, needles, capsys, tmp_path, monkeypatch):
    err = fail_in_one_line(argv, capsys, tmp_path, monkeypatch)
    assert err.startswith("sweep: error: ")
    for needle in needles:
        assert needle in err, (needle, err)


def test_any_timm_model_is_accepted_by_name():
    plan = plan_sweep(["model=resnet18", "tracking.uri=sqlite:///x.db"])
    assert plan.num_jobs == 1 and plan.sweep_id


def test_glob_expands_to_pruning_methods_only():
    plan = plan_sweep(
        [
            "-m",
            "model=tiny_cnn,tiny_vit",
            "pruner=glob(*)",
            "ratio=0.3,0.5,0.7",
            "tracking.uri=sqlite:///x.db",
        ]
    )
    assert plan.num_jobs == 2 * len(group_options("pruner")) * 3
    assert any(a.startswith("sweep_id=") for a in plan.argv)


def test_targets_are_a_sweep_axis():
    plan = plan_sweep(
        [
            "-m",
            "model=tiny_cnn,tiny_vit",
            "pruner=dg_group,dg_taylor",
            "target.macs=0.7,0.5,0.3",
            "seed=0,1,2",
            "tracking.uri=sqlite:///x.db",
        ]
    )
    assert plan.num_jobs == 2 * 2 * 3 * 3


def test_empty_class_folder_is_one_line(capsys, tmp_path, monkeypatch):
    from PIL import Image

    (tmp_path / "data" / "val" / "a").mkdir(parents=True)
    (tmp_path / "data" / "val" / "b").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "data" / "val" / "a" / "x.png")
    err = fail_in_one_line(
        ["dataset=imagefolder", f"dataset.root={tmp_path / 'data'}"], capsys, tmp_path, monkeypatch
    )
    assert "val/b has no readable images" in err


def test_cfg_shows_the_job_config_of_any_timm_model(tmp_path):
    """`--cfg job` composes what a job would get, a timm model named without a yaml included."""
    r = run_cli(["model=resnet18", "pruner=dg_group", "--cfg", "job"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "name: resnet18" in r.stdout and "alias: resnet18" in r.stdout
    assert not (tmp_path / "mlflow.db").exists()
