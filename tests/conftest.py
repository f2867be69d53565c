"""Shared fixtures: Hydra composition of the real conf/, a tmp MLflow store, one weights cache per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from helpers.servers import serving
from sweep import tracking

# pytest-xdist's workers (make test runs one per core): each gets its share of the cores
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, min(2, (os.cpu_count() or 1) // WORKERS))
if WORKERS > 1:
    # and so do the processes a test starts (sweeps, servers): two workers' jobs each spinning two
    # OpenMP threads on two cores ran up to 4x slower than alone
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, str(THREADS))


@pytest.fixture(scope="session")
def weights_cache(tmp_path_factory) -> Path:
    """Tiny models train once per test run, like once per sweep: one cache for every xdist worker (the
    weights cache locks each file, so a model two workers need at once is trained by one of them)."""
    base = tmp_path_factory.getbasetemp()
    path = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "weights-cache"
    path.mkdir(exist_ok=True)
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


@pytest.fixture
def mlflow_server(tmp_path):
    """A real tracking server over a fresh, initialised SQLite store."""
    store = f"sqlite:///{tmp_path / 'server.db'}"
    tracking.init_store(store, "pruning-sweep")
    with serving(store, tmp_path) as url:
        yield url


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(THREADS)
