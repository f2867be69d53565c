"""The tracking path through a real `mlflow server`: restarted mid-sweep, gone for good, PostgreSQL under
many writers, and basic authentication."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from helpers.cli import FAST, ROOT, job_env, run_cli
from helpers.runs import EXPERIMENT
from helpers.servers import can_start_postgres, free_port, postgres, start_server, stop
from sweep import tracking

pytestmark = pytest.mark.slow
EXPERIMENT = EXPERIMENT
GRID = ["-m", "model=tiny_cnn", "pruner=l1_unstructured,dg_random", "ratio=0.3,0.5"]
NO_CREDENTIALS = {"MLFLOW_TRACKING_USERNAME": "", "MLFLOW_TRACKING_PASSWORD": ""}
# jobs that log their ONNX form as an MLflow model (what `sweep.cli.register` registers)
WITH_MODELS = [*(a for a in FAST if not a.startswith("log_models")), "log_models=[onnx]"]


def _register(url: str, sweep_id: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sweep.cli.register",
            f"--tracking-uri={url}",
            f"--sweep-id={sweep_id}",
            "--max-top1-drop=1",  # the gate is tested on its own: here, the store
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def _points(runs) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in runs:
        out.setdefault(r.info.run_name, []).append(r)
    return out


def test_server_restarted_mid_sweep_loses_nothing(tmp_path, weights_cache, empty_store):
    """Stopped for 10 s while jobs log: MLflow's client retries, and every point ends FINISHED once."""
    store = empty_store(tmp_path / "server.db")
    tracking.init_store(store, EXPERIMENT)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(store, tmp_path, port)
    restarted = threading.Event()

    def restart_after_first_run():
        nonlocal proc
        while not tracking.search_runs(store, EXPERIMENT, "restart"):
            time.sleep(0.2)
        stop(proc)
        time.sleep(10)
        proc = start_server(store, tmp_path, port)
        restarted.set()

    t = threading.Thread(target=restart_after_first_run, daemon=True)
    t.start()
    try:
        r = run_cli([*GRID, "sweep_id=restart", f"tracking.uri={url}", *FAST], cwd=tmp_path)
        t.join(timeout=300)
    finally:
        stop(proc)
    assert restarted.is_set()
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    points = _points(tracking.search_runs(store, EXPERIMENT, "restart"))
    assert len(points) == 4 and all(len(v) == 1 for v in points.values()), sorted(points)
    for (run,) in points.values():
        assert run.info.status == "FINISHED"
        assert set(tracking.REQUIRED_METRICS) <= set(run.data.metrics)


def test_server_gone_past_the_retry_budget_then_resume(tmp_path, weights_cache, empty_store):
    """A server that stays away: the job fails naming it; the same sweep_id later runs only what is
    missing."""
    store = empty_store(tmp_path / "server.db")
    tracking.init_store(store, EXPERIMENT)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(store, tmp_path, port)
    # a small retry budget (MLflow's own variables), so the test does not wait minutes
    budget = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
    args = [*GRID, "sweep_id=gone", f"tracking.uri={url}", *FAST]
    job = subprocess.Popen(
        [sys.executable, "-m", "sweep", *args],
        cwd=tmp_path,
        env=job_env(budget),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not any(
        r.info.status == "FINISHED" for r in tracking.search_runs(store, EXPERIMENT, "gone")
    ):
        assert job.poll() is None, job.stderr.read()[-3000:]
        time.sleep(0.2)
    stop(proc)
    out, err = job.communicate(timeout=600)
    assert job.returncode != 0
    assert f"sweep: error: tracking store {url} stopped answering" in err  # one line naming it
    done = {
        r.info.run_name
        for r in tracking.search_runs(store, EXPERIMENT, "gone")
        if r.info.status == "FINISHED"
    }
    assert 1 <= len(done) < 4
    proc = start_server(store, tmp_path, port)
    try:
        again = run_cli([*args, "tracking.stale_after_s=1"], cwd=tmp_path)
    finally:
        stop(proc)
    assert again.returncode == 0, again.stderr[-3000:]
    points = _points(tracking.search_runs(store, EXPERIMENT, "gone"))
    finished = {n for n, rs in points.items() for r in rs if r.info.status == "FINISHED"}
    assert len(finished) == 4
    assert all(sum(r.info.status == "FINISHED" for r in rs) == 1 for rs in points.values())
    assert f"sweep gone: {4 - len(done)} finished" in again.stdout  # only what was missing ran


@pytest.fixture(scope="module")
def postgres_uri():
    if not can_start_postgres():
        if os.environ.get("CI"):
            pytest.fail(
                "CI must run the PostgreSQL tests: they need root to install Debian's postgresql"
            )
        pytest.skip("needs PostgreSQL (installed, $SWEEP_POSTGRES_URI, or root to install it)")
    with postgres() as uri:
        yield uri


def test_many_writers_through_the_server_on_postgresql(postgres_uri):
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "tracking_load.py"),
            "--writers=8",
            "--runs=10",
            "--backends=postgresql",
            "--json",
        ],
        env={**os.environ, "SWEEP_POSTGRES_URI": postgres_uri},
        capture_output=True,
        text=True,
        timeout=900,
    )
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert r.returncode == 0 and len(rows) == 1, r.stdout[-2000:] + r.stderr[-3000:]
    row = rows[0]
    assert row["runs_found"] == row["runs_expected"] == 80
    assert (
        row["lost"],
        row["duplicated"],
        row["incomplete"],
        row["not_finished"],
        row["errors"],
    ) == (0,) * 5


def test_server_command_on_postgresql_migrates_once_and_takes_a_sweep(
    postgres_uri, tmp_path, weights_cache
):
    import sqlalchemy

    name = f"t{os.getpid()}_{int(time.time())}"
    engine = sqlalchemy.create_engine(postgres_uri, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    db = postgres_uri.rsplit("/", 1)[0] + "/" + name
    args = ["--backend", "postgresql", "--workers", "2"]
    proc, url = _sweep_server(args, tmp_path, {"SWEEP_POSTGRES_URI": db})
    try:
        r = run_cli([*GRID, "sweep_id=pg", f"tracking.uri={url}", *WITH_MODELS], cwd=tmp_path)
        registered = _register(url, "pg")
    finally:
        stop(proc)
    assert r.returncode == 0, r.stderr[-3000:]
    # the best structural run at each ratio, in the registry on PostgreSQL
    assert registered.returncode == 0, registered.stderr[-3000:]
    assert "registered test_resnet-pruned version 1 @ratio30" in registered.stdout
    runs = tracking.search_runs(db, EXPERIMENT, "pg")
    assert len(runs) == 4 and all(x.info.status == "FINISHED" for x in runs)
    assert "over 127.0.0.1" in (tmp_path / "server.log").read_text()  # the URI shown without user


def test_unreachable_postgres_is_one_line(tmp_path):
    port = free_port()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "sweep.cli.server",
            "--backend-store-uri",
            f"postgresql://u:secret@127.0.0.1:{port}/x",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.startswith(
        f"sweep.cli.server: error: database 127.0.0.1:{port}/x cannot be used"
    )
    assert "secret" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_basic_auth_refuses_without_credentials_and_logs_with_them(
    tmp_path, weights_cache, empty_store
):
    store = empty_store(tmp_path / "server.db")
    creds = {"MLFLOW_TRACKING_USERNAME": "lab", "MLFLOW_TRACKING_PASSWORD": "s3cret-Pass-2026"}
    args = ["--auth", f"--auth-db=sqlite:///{tmp_path / 'auth.db'}", f"--backend-store-uri={store}"]
    proc, url = _sweep_server(args, tmp_path, creds)
    try:
        args = ["model=tiny_cnn", "pruner=dg_group", "sweep_id=auth", f"tracking.uri={url}"]
        args += WITH_MODELS
        refused = run_cli(args, cwd=tmp_path, env_extra=NO_CREDENTIALS)
        wrong = run_cli(args, cwd=tmp_path, env_extra={**creds, "MLFLOW_TRACKING_PASSWORD": "nope"})
        assert tracking.search_runs(store, EXPERIMENT) == []  # nothing written
        ok = run_cli(args, cwd=tmp_path, env_extra=creds)
        not_registered = _register(url, "auth", NO_CREDENTIALS)
        registered = _register(url, "auth", creds)
    finally:
        stop(proc)
    assert not_registered.returncode == 2
    assert "refused this client (UNAUTHENTICATED)" in not_registered.stderr
    assert registered.returncode == 0, registered.stderr[-3000:]
    assert "registered test_resnet-pruned version 1 @ratio50" in registered.stdout
    for r in (refused, wrong):
        assert r.returncode == 2
        assert "refused this client (UNAUTHENTICATED)" in r.stderr
    assert ok.returncode == 0, ok.stderr[-3000:]
    (run,) = tracking.search_runs(store, EXPERIMENT, "auth")
    assert run.info.status == "FINISHED"
    logged = json.dumps([run.data.params, run.data.tags]) + ok.stdout + ok.stderr
    logged += (tmp_path / "server.log").read_text()
    assert creds["MLFLOW_TRACKING_PASSWORD"] not in logged


def _sweep_server(args: list[str], folder, env: dict) -> tuple[subprocess.Popen, str]:
    """`python -m sweep.cli.server ARGS` on a free port, answering when this returns."""
    from sweep.cli import server

    port = free_port()
    with open(folder / "server.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sweep.cli.server", *args, f"--port={port}"],
            cwd=folder,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    server.wait_healthy(url, timeout=150, proc=proc)
    return proc, url
