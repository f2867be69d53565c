"""Real servers on loopback for the tests that need one."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(store: str, folder: Path):
    """A real `mlflow server` on a free loopback port over `store`; yields its http URI."""
    from sweep import server

    port = free_port()
    with open(folder / "server.log", "w") as out:
        proc = subprocess.Popen(
            server.command(store, port=port, artifacts=str(folder / "artifacts")),
            env=server.environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        server.wait_healthy(url, timeout=150, proc=proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
