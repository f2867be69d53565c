"""Shared fixtures: Hydra composition of the real conf/, a tmp MLflow store, one weights cache per session."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from filelock import FileLock

from helpers.runs import EXPERIMENT
from helpers.servers import serving
from sweep import tracking

# pytest-xdist's workers (make test runs one per core): each gets its share of the cores
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
# a pytest process running beside the workers (the Makefile's runtime tests) is told its share
SHARED = os.environ.get("SWEEP_TEST_THREADS")
THREADS = int(SHARED or max(1, min(2, (os.cpu_count() or 1) // WORKERS)))
if WORKERS > 1 or SHARED:
    # and so do the processes a test starts (sweeps, servers): two workers' jobs each spinning two
    # OpenMP threads on two cores ran up to 4x slower than alone
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, str(THREADS))


def _shared(tmp_path_factory) -> Path:
    """A folder every xdist worker of this test run sees (pytest's own base folder when serial)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def weights_cache(tmp_path_factory) -> Path:
    """Tiny models train once per test run, like once per sweep: one cache for every xdist worker (the
    weights cache locks each file, so a model two workers need at once is trained by one of them)."""
    path = _shared(tmp_path_factory) / "weights-cache"
    path.mkdir(exist_ok=True)
    os.environ["SWEEP_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory):
    """empty_store(path) -> the URI of a new SQLite store at `path`, its tables made: a copy of one
    store migrated once per worker (MLflow's schema migrations take 3 to 4 s for every new file). A
    test of what a fresh store does names its own file instead."""
    from mlflow.tracking import MlflowClient

    template = tmp_path_factory.mktemp("empty-store") / "mlflow.db"
    MlflowClient(f"sqlite:///{template}").search_experiments()  # creates and migrates the tables

    def _copy(path: Path) -> str:
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"

    return _copy


@pytest.fixture
def store(tmp_path, empty_store) -> str:
    return empty_store(tmp_path / "mlflow.db")


@dataclass(frozen=True)
class RealSweep:
    folder: Path  # where `python -m sweep` ran (its multirun/ and auto-reports/)
    store: str
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def real_sweep(tmp_path_factory, weights_cache, empty_store) -> RealSweep:
    """helpers.cli.REAL_SWEEP, logged into an experiment an older version of the tool created (no
    experiment kind). It runs once per test run: the first worker to ask runs it, the others wait."""
    from mlflow.tracking import MlflowClient

    from helpers.cli import FAST, REAL_SWEEP, REAL_SWEEP_ID, run_cli

    folder = _shared(tmp_path_factory) / "real-sweep"
    with FileLock(f"{folder}.lock"):
        result = folder / "result.json"
        if not result.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            store = empty_store(folder / "mlflow.db")
            MlflowClient(store).create_experiment(
                EXPERIMENT, artifact_location=(folder / "art").as_uri()
            )
            done = run_cli(
                [
                    *REAL_SWEEP,
                    f"sweep_id={REAL_SWEEP_ID}",
                    "report.on_sweep_end=true",
                    f"report.out={folder / 'auto-reports'}",
                    f"tracking.uri={store}",
                    *FAST,
                ],
                folder,
            )
            result.write_text(
                json.dumps(
                    {"store": store, "rc": done.returncode, "out": done.stdout, "err": done.stderr}
                )
            )
    saved = json.loads(result.read_text())
    return RealSweep(folder, saved["store"], saved["rc"], saved["out"], saved["err"])


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
def mlflow_server(tmp_path, empty_store):
    """A real tracking server over a fresh, initialised SQLite store."""
    store = empty_store(tmp_path / "server.db")
    tracking.init_store(store, EXPERIMENT)
    with serving(store, tmp_path) as url:
        yield url


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(THREADS)


def pytest_collection_modifyitems(config, items):
    """End-to-end test files first (all their tests slow), then the most slow tests first; each file's
    tests kept together and in order. Under --dist loadfile the long files then start first and the
    short ones fill in at the end; xdist's own order (most tests first) started the few-test end-to-end
    files (SLURM, servers, the UI) last, and one worker ran them alone while the other had nothing."""
    tests: dict = {}
    for item in items:
        n, slow = tests.get(item.path, (0, 0))
        tests[item.path] = (n + 1, slow + (item.get_closest_marker("slow") is not None))
    order = sorted(tests, key=lambda p: (tests[p][1] < tests[p][0], -tests[p][1]))
    first = {path: rank for rank, path in enumerate(order)}
    items.sort(key=lambda item: first[item.path])


# ---- image trees shared by the data tests and their end-to-end jobs


@pytest.fixture(scope="module")
def digits_tree(tmp_path_factory):
    from helpers.images import write_tree
    from sweep import data

    digits = data.Digits()
    root = tmp_path_factory.mktemp("digits-tree")
    write_tree(root, digits.items("train"), "train")
    write_tree(root, digits.items("eval"), "val")
    return root


@pytest.fixture(scope="module")
def corrupt_tree(digits_tree, tmp_path_factory):
    """The digits tree (1,797 PNGs) with one truncated image in val and a text file beside it."""
    from helpers.images import truncate

    root = tmp_path_factory.mktemp("corrupt") / "tree"
    shutil.copytree(digits_tree, root)
    bad = sorted((root / "val" / "class_3").iterdir())[0]
    truncate(bad)
    (root / "val" / "class_3" / "labels.csv").write_text("file,label\n")
    return root, bad
