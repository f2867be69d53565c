"""Shared fixtures: Hydra composition of the real conf/, a tmp MLflow store, one weights cache per session."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

# Short timing budgets: tests check behaviour, benchmarks/ checks speed.
FAST = ["measure.time_budget_s=0.3", "measure.iters_min=5", "measure.warmup_max=6", "measure.bootstrap=200"]


@pytest.fixture(scope="session")
def weights_cache(tmp_path_factory) -> Path:
    """Tiny models train once per test session, like once per sweep."""
    path = tmp_path_factory.mktemp("weights-cache")
    os.environ["SWEEP_CACHE_DIR"] = str(path)
    return path


@pytest.fixture
def store(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def compose():
    """compose(overrides) -> the job config Hydra would build for `python -m sweep <overrides>`."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from sweep.config import config_dir

    def _compose(overrides=()):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return hydra_compose("sweep", overrides=list(overrides))

    yield _compose
    GlobalHydra.instance().clear()


def run_cli(args, cwd, env_extra=None, timeout=900) -> subprocess.CompletedProcess:
    """`python -m sweep ARGS` in `cwd`, as a user would run it; tests/ importable for test-only pruners."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "sweep", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(min(2, os.cpu_count() or 1))
