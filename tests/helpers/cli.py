"""Running the real command line, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"

# Short timing budgets: tests check behaviour, benchmarks/ checks speed.
FAST = [
    "measure.time_budget_s=0.3",
    "measure.iters_min=5",
    "measure.warmup_max=6",
    "measure.bootstrap=200",
    # no MLflow models (about 1 s a job): tests/e2e/test_ship_models.py logs and serves them
    "log_models=[]",
]

# A grid of 4 jobs, 2 of which raise (the second pruner target), for failure handling tests.
HALF_FAILING_GRID = [
    "-m",
    "model=tiny_cnn",
    "pruner=l1_unstructured",
    "ratio=0.3,0.5",
    "pruner._target_=sweep.pruners.torch_prune.L1Unstructured,helpers.pruners.Explodes",
]

# One real multirun through the command line, shared by the tests of a sweep's runs, its report and
# the MLflow UI (conftest's real_sweep): 2 models x 2 methods, the report rendered at its end.
REAL_SWEEP = ["-m", "model=tiny_cnn,tiny_vit", "pruner=l1_unstructured,dg_group", "ratio=0.5"]
REAL_SWEEP_ID = "real-sweep"


def job_env(extra: dict | None = None) -> dict[str, str]:
    """The environment of a subprocess job: tests/ importable for the test-only pruners."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env.update(extra or {})
    return env


def run_cli(args, cwd, env_extra=None, timeout=900) -> subprocess.CompletedProcess:
    """`python -m sweep ARGS` in `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "sweep", *args],
        cwd=cwd,
        env=job_env(env_extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def fail_in_one_line(argv, capsys, tmp_path, monkeypatch) -> str:
    """`python -m sweep ARGV` in-process from tmp_path: exit status 2, one line on stderr (returned),
    and nothing written (no store, no Hydra output)."""
    import pytest

    from sweep.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "multirun").exists()
    return err
