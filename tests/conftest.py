"""Shared fixtures: Hydra composition of the real conf/, a tmp MLflow store, one weights cache per session."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sweep import tracking

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


BASE_TAGS = {tracking.TAG_DEVICE: "cpu: test", tracking.TAG_GIT_COMMIT: "0123456789abcdef", "torch_version": "x"}
KINDS = {"l1_unstructured": ("unstructured", "torch.nn.utils.prune", "false"),
         "dg_group": ("structural", "depgraph", "true")}


def log_fake_run(store, sweep_id, model, pruner, ratio, *, latency=(10.0, 5.0), acc=(0.95, 0.90), params=(1000, 500),
                 noop=False, chance=False, fail=None):
    kind, family, possible = KINDS[pruner]
    tags = {**BASE_TAGS, tracking.TAG_SWEEP_ID: sweep_id, tracking.TAG_KIND: kind, tracking.TAG_FAMILY: family,
            tracking.TAG_SPEEDUP_POSSIBLE: possible}
    try:
        with tracking.job_run(store, "pruning-sweep", f"{model}/{pruner}/{ratio:g}", tags) as run:
            run.log_params({tracking.PARAM_MODEL: model, tracking.PARAM_MODEL_NAME: f"timm_{model}",
                            tracking.PARAM_PRUNER: pruner, tracking.PARAM_RATIO: ratio,
                            tracking.PARAM_DATASET: "digits", "pruner.ratio_means": f"fraction pruned by {pruner}"})
            dense_params, pruned_params = params
            total = dense_params if kind != "structural" else pruned_params
            run.log_metrics({"dense_params_total": dense_params, "dense_params_nonzero": dense_params,
                             "dense_macs": 2e6, "dense_macs_nonzero": 2e6, "dense_latency_ms": latency[0],
                             "dense_latency_std_ms": 0.1, "dense_accuracy_top1": acc[0]})
            if fail:
                raise RuntimeError(fail)
            run.log_metrics({"params_total": total, "params_nonzero": pruned_params,
                             "macs": 2e6 if kind != "structural" else 1e6, "macs_nonzero": 1e6,
                             "latency_ms": latency[1], "latency_std_ms": 0.2,
                             "speedup": latency[0] / latency[1], "speedup_ci_low": latency[0] / latency[1] - 0.1,
                             "speedup_ci_high": latency[0] / latency[1] + 0.1, "accuracy_top1": acc[1],
                             "accuracy_delta": acc[1] - acc[0]})
            run.set_tags({tracking.TAG_NOOP: noop, tracking.TAG_AT_CHANCE: chance, tracking.TAG_WEIGHTS: "trained"})
    except RuntimeError:
        pass


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(store: str, folder: Path):
    """A real `mlflow server` on a free loopback port over `store`; yields its http URI."""
    from sweep import server

    port = free_port()
    proc = subprocess.Popen(server.command(store, port=port, artifacts=str(folder / "artifacts")),
                            env=server.environment(), stdout=open(folder / "server.log", "w"),
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        server.wait_healthy(url, timeout=150, proc=proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def mlflow_server(tmp_path):
    """A real tracking server over a fresh, initialised SQLite store."""
    store = f"sqlite:///{tmp_path / 'server.db'}"
    tracking.init_store(store, "pruning-sweep")
    with serving(store, tmp_path) as url:
        yield url


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(min(2, os.cpu_count() or 1))
