"""`python -m sweep.server`: MLflow's own tracking server over the sweep store, bound to loopback by default.

The store is initialised first (tables and experiment), so workers on other nodes can log to it at once.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sweep import tracking


def command(
    backend_uri: str,
    host: str = "127.0.0.1",
    port: int = 5000,
    artifacts: str | None = None,
    workers: int = 1,
) -> list[str]:
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    cmd = [
        mlflow,
        "server",
        "--backend-store-uri",
        backend_uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    if artifacts:
        cmd += ["--artifacts-destination", artifacts]
    return cmd


def environment() -> dict[str, str]:
    # MLflow's background job runner (GenAI features) is not needed here and slows start-up.
    return {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def wait_healthy(url: str, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> float:
    """Seconds until `url`/health answers; raises if the server exits or the timeout passes."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=2) as r:
                if r.status == 200:
                    return time.monotonic() - t0
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"mlflow server at {url} did not answer within {timeout:.0f}s")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sweep.server", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--backend-store-uri",
        default=None,
        help=tracking.DEFAULT_URI_HELP + " (a postgresql:// URI works too)",
    )
    ap.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to let other nodes log to it")
    ap.add_argument("--port", type=int, default=5000)
    ap.add_argument(
        "--artifacts-destination",
        default=None,
        help="artifact root (default: mlflow's ./mlartifacts)",
    )
    ap.add_argument("--experiment", default=tracking.DEFAULT_EXPERIMENT)
    args = ap.parse_args(argv)
    uri = (
        args.backend_store_uri or os.environ.get(tracking.TRACKING_URI_ENV) or tracking.DEFAULT_URI
    )
    if uri.startswith("http"):
        raise SystemExit(
            f"sweep.server: error: --backend-store-uri={uri} is a server; give a database URI"
        )
    if uri.startswith("sqlite"):
        uri = tracking.resolve_uri(uri)
        tracking.init_store(uri, args.experiment)
    cmd = command(uri, args.host, args.port, args.artifacts_destination)
    print(
        f"tracking server on http://{args.host}:{args.port} over {uri}; jobs log to it with "
        f"tracking.uri=http://<this host>:{args.port}",
        flush=True,
    )
    if uri.startswith("sqlite"):
        print_newest_sweep_link(uri, args.experiment, f"http://{args.host}:{args.port}")
    os.execvpe(cmd[0], cmd, environment())


def print_newest_sweep_link(uri: str, experiment: str, ui: str) -> None:
    sweep_id = tracking.newest_sweep(uri, experiment)
    if sweep_id:
        exp_id, view = tracking.share_sweep_view(uri, experiment, sweep_id)
        print(f"newest sweep {sweep_id}: {tracking.sweep_link(ui, exp_id, view)}", flush=True)


if __name__ == "__main__":
    main()
