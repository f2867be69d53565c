"""A researcher's own method, config folder and package: seen by every option listing, refused in one
line when wrong, and (slow) run from an installed wheel against two baselines, from outside the
checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.cli import FAST, ROOT, fail_in_one_line, run_cli
from helpers.runs import EXPERIMENT
from sweep import tracking
from sweep.cli.plan import plan_sweep

EXAMPLE = ROOT / "examples" / "my_method"


def _conf(tmp_path: Path, target: str = "my_method.FirstOrderChannels") -> Path:
    conf = tmp_path / "myconf"
    (conf / "pruner").mkdir(parents=True)
    (conf / "pruner" / "mine.yaml").write_text(f"_target_: {target}\nname: mine\n")
    return conf


@pytest.fixture
def example_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))


def test_glob_and_checks_see_the_users_config_folder(tmp_path, monkeypatch, example_importable):
    monkeypatch.chdir(tmp_path)
    conf = _conf(tmp_path)
    plan = plan_sweep(
        [
            "-m",
            "model=tiny_cnn",
            "pruner=glob([m*,dg_gl*,dg_group])",
            f"hydra.searchpath=[file://{conf}]",
        ]
    )
    assert "pruner=dg_global,dg_group,mine" in plan.argv and plan.num_jobs == 3
    # --config-dir is a config folder too
    plan = plan_sweep(["--config-dir", str(conf), "model=tiny_cnn", "pruner=mine"])
    assert plan.num_jobs == 1


def test_help_lists_the_users_options(tmp_path):
    conf = _conf(tmp_path)
    r = run_cli(["--help", f"hydra.searchpath=[file://{conf}]"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "pruner (from your config folders): mine" in r.stdout


def test_a_searchpath_folder_that_does_not_exist(tmp_path, capsys, monkeypatch):
    err = fail_in_one_line(
        ["hydra.searchpath=[file:///no/such/conf]"], capsys, tmp_path, monkeypatch
    )
    assert err == (
        "sweep: error: hydra.searchpath: file:///no/such/conf is not a folder (a config folder "
        "holds group folders such as pruner/ with one yaml per option)"
    )


def test_a_target_that_cannot_be_imported(tmp_path, capsys, monkeypatch):
    conf = _conf(tmp_path, "nosuchpkg.Method")
    err = fail_in_one_line(
        ["pruner=mine", f"hydra.searchpath=[file://{conf}]"], capsys, tmp_path, monkeypatch
    )
    assert err == (
        "sweep: error: pruner 'mine': _target_ nosuchpkg.Method cannot be imported "
        "(ModuleNotFoundError: No module named 'nosuchpkg'); install its package or put it on "
        "PYTHONPATH"
    )


def test_a_class_that_is_not_a_pruner(tmp_path, capsys, monkeypatch):
    conf = _conf(tmp_path, "collections.OrderedDict")
    err = fail_in_one_line(
        ["pruner=mine", f"hydra.searchpath=[file://{conf}]"], capsys, tmp_path, monkeypatch
    )
    assert "_target_ collections.OrderedDict makes a OrderedDict, not a sweep.pruners" in err


def test_a_module_to_import_that_does_not_exist(tmp_path, capsys, monkeypatch):
    err = fail_in_one_line(["imports=[nosuchpkg]"], capsys, tmp_path, monkeypatch)
    assert err.startswith("sweep: error: imports: cannot import 'nosuchpkg' (ModuleNotFoundError")


def test_a_swapped_importance_needs_its_own_name(tmp_path, capsys, monkeypatch):
    swap = [
        "pruner=dg_group",
        "~pruner.importance",
        "+pruner.importance={_target_:torch_pruning.importance.RandomImportance}",
    ]
    err = fail_in_one_line(swap, capsys, tmp_path, monkeypatch)
    assert "is not dg_group's importance" in err and "pruner.name=dg_randomimportance" in err
    monkeypatch.chdir(tmp_path)
    assert plan_sweep([*swap, "pruner.name=dg_mine"]).num_jobs == 1


def test_import_sweep_is_enough_for_compose():
    code = (
        "import sweep\n"
        "from hydra import compose, initialize_config_dir\n"
        "with initialize_config_dir(config_dir=str(sweep.config_dir()), version_base='1.3'):\n"
        "    print(compose('sweep', overrides=['pruner=dg_group']).pruner.name)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "dg_group"


@pytest.mark.slow
def test_installed_wheel_runs_the_example_against_two_baselines(tmp_path, weights_cache):
    """The wheel in a fresh environment (the installed dependencies reused, offline), run from an
    empty directory with the example's config folder: every job finishes and the report files the
    method under its own family."""
    wheels = tmp_path / "wheels"
    for src in (ROOT, EXAMPLE):
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
            + ["--no-index", "-w", str(wheels), str(src)],
            check=True,
            capture_output=True,
        )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    deps = next(p for p in map(Path, sys.path) if p.name == "site-packages" and p.is_dir())
    # the dependencies of this environment, after the fresh one's own packages (sweep's among them)
    (site / "deps.pth").write_text(f"{deps}\n")
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
        + [str(w) for w in wheels.glob("*.whl")],
        check=True,
        capture_output=True,
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    where = subprocess.run(
        [str(py), "-c", "import sweep, my_method; print(sweep.__file__, sweep.config_dir())"],
        cwd=empty,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(ROOT / "src") not in where and str(site) in where, where
    store = f"sqlite:///{empty / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(
        [str(venv / "bin" / "sweep"), "-m", "model=tiny_cnn", "pruner=dg_group,dg_random,my_method"]
        + ["ratio=0.5", f"hydra.searchpath=[file://{EXAMPLE / 'conf'}]", f"tracking.uri={store}"]
        + FAST,
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "3 finished, 0 failed or killed" in r.stdout
    runs = {x.data.params["pruner"]: x for x in tracking.search_runs(store, EXPERIMENT)}
    mine = runs["my_method"]
    assert mine.data.tags["pruning_family"] == "my_lab" and "pruner.calibration_samples" in (
        mine.data.params
    )
    assert mine.data.metrics["params_total"] < mine.data.metrics["dense_params_total"]
    report = subprocess.run(
        [str(venv / "bin" / "sweep-report"), "--tracking-uri", store, "--out", str(empty / "r")],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0, report.stderr[-2000:]
    doc = Path(report.stdout.splitlines()[0]).read_text()
    assert (
        "## My lab's methods (examples/my_method)\n\n### my_method (structural, ratio=0.5)" in doc
    )


@pytest.mark.slow
def test_example_runs_from_the_checkout(tmp_path, weights_cache, empty_store):
    """The example as docs/extending.md runs it (package on the path, config folder named)."""
    store = empty_store(tmp_path / "mlflow.db")
    r = run_cli(
        ["model=tiny_cnn", "pruner=my_method", "ratio=0.5", "imports=[my_method]"]
        + [f"hydra.searchpath=[file://{EXAMPLE / 'conf'}]", f"tracking.uri={store}", *FAST],
        cwd=tmp_path,
        env_extra={"PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(ROOT / "tests")])},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (run,) = tracking.search_runs(store, EXPERIMENT)
    assert run.info.status == "FINISHED" and run.data.tags["pruning_kind"] == "structural"


USER_PACKAGE = '''
import timm
from timm.models import register_model

from sweep.data import Digits


@register_model
def lab_tiny_net(pretrained=False, **kwargs):
    """A model of the lab's own, registered with timm."""
    return timm.create_model("test_resnet", pretrained=pretrained, **kwargs)


class LabDigits(Digits):
    """A dataset class of the lab's own."""
'''


def test_a_users_timm_model_and_dataset_through_imports(tmp_path, capsys, monkeypatch):
    pkg = tmp_path / "pkgs"
    pkg.mkdir()
    (pkg / "lab_models.py").write_text(USER_PACKAGE)
    conf = tmp_path / "myconf"
    (conf / "dataset").mkdir(parents=True)
    (conf / "dataset" / "lab_digits.yaml").write_text(
        "_target_: lab_models.LabDigits\nname: lab_digits\n"
    )
    monkeypatch.syspath_prepend(str(pkg))
    searchpath = f"hydra.searchpath=[file://{conf}]"
    # without `imports` the model is unknown: one line
    err = fail_in_one_line(["model=lab_tiny_net", searchpath], capsys, tmp_path, monkeypatch)
    assert "unknown model 'lab_tiny_net'" in err
    plan = plan_sweep(
        ["model=lab_tiny_net", "dataset=lab_digits", "imports=[lab_models]", searchpath]
    )
    assert plan.num_jobs == 1 and "imports=[lab_models]" in plan.argv
