"""Real servers on loopback for the tests that need one."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from sweep.cli.server import free_port

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def serving(store: str, folder: Path):
    """A real `mlflow server` on a free loopback port over `store`; yields its http URI."""
    port = free_port()
    proc = start_server(store, folder, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def start_server(store: str, folder: Path, port: int, **kw) -> subprocess.Popen:
    """`mlflow server` over `store` on `port`, answering on /health when this returns."""
    from sweep.cli import server

    return server.spawn(
        store, port, folder / f"server-{port}.log", artifacts=str(folder / "artifacts"), **kw
    )


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def can_start_postgres() -> bool:
    """A PostgreSQL server can be had: given, installed, or installable (root)."""
    return bool(
        os.environ.get("SWEEP_POSTGRES_URI")
        or any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        or (os.geteuid() == 0 and shutil.which("apt-get"))
    )


@contextlib.contextmanager
def postgres():
    """A PostgreSQL server's URI: $SWEEP_POSTGRES_URI, or one started with scripts/postgres-local.sh
    (in a folder the postgres user can enter: pytest's own tmp folders are root's alone)."""
    if os.environ.get("SWEEP_POSTGRES_URI"):
        yield os.environ["SWEEP_POSTGRES_URI"]
        return
    folder = Path(tempfile.mkdtemp(prefix="sweep-pg-"))
    script = ROOT / "scripts" / "postgres-local.sh"
    started = subprocess.run(
        ["bash", str(script), "start", str(folder), str(free_port())],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert started.returncode == 0, started.stderr[-3000:]
    try:
        yield started.stdout.strip().split("=", 1)[1]
    finally:
        subprocess.run(["bash", str(script), "stop", str(folder)], timeout=120, check=False)
        shutil.rmtree(folder, ignore_errors=True)
