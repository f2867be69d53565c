"""`python -m sweep.cli.server`: MLflow's own tracking server over the sweep store, bound to loopback by default.

The store is initialised first (tables, migrations and experiment, once, before the server's workers
start), so workers on other nodes can log to it at once. `--backend postgresql` puts it on PostgreSQL (many
concurrent writers); `--auth` starts MLflow's basic-auth app (credentials from the environment, never the
command line).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sweep import tracking
from sweep.errors import SweepConfigError, first_line

POSTGRES_URI_ENV = "SWEEP_POSTGRES_URI"  # what scripts/postgres-local.sh prints
DEFAULT_POSTGRES_URI = "postgresql://mlflow@127.0.0.1:5432/mlflow"
BACKENDS = {"sqlite": ("sqlite:///",), "postgresql": ("postgresql://", "postgresql+")}
# The server's admin account: MLflow's own variables, else the client's (one pair of variables for a
# single-user lab). Read from the environment only, so no password is on a command line or in a log.
ADMIN_ENV = ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD")
CLIENT_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


def command(
    backend_uri: str,
    host: str = "127.0.0.1",
    port: int = 5000,
    artifacts: str | None = None,
    workers: int = 1,
    auth: bool = False,
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
    if auth:
        cmd += ["--app-name", "basic-auth"]
    return cmd


def environment(auth_db: str | None = None, folder: Path | None = None) -> dict[str, str]:
    """The server's environment; with `auth_db`, MLflow's basic-auth app configured to keep its users
    there, its admin account taken from the environment."""
    # MLflow's background job runner (GenAI features) is not needed here and slows start-up.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    if auth_db is None:
        return env
    for admin, client in zip(ADMIN_ENV, CLIENT_ENV):
        env.setdefault(admin, env.get(client, ""))
        if not env[admin]:
            raise SweepConfigError(
                f"--auth needs the admin account in the environment: set {admin} (or {client})"
            )
    # the auth app's CSRF key: one per server start unless given (its workers share this environment)
    env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))
    ini = (folder or Path.cwd()) / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = {auth_db}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
    return env


def backend_uri(backend: str | None, uri: str | None) -> str:
    """The database the server keeps runs in; `backend` alone picks its default location."""
    if backend == "postgresql" and not uri:
        uri = os.environ.get(POSTGRES_URI_ENV, DEFAULT_POSTGRES_URI)
    uri = uri or os.environ.get(tracking.TRACKING_URI_ENV) or tracking.DEFAULT_URI
    if uri.startswith("http"):
        raise SweepConfigError(f"--backend-store-uri={uri} is a server; give a database URI")
    if backend and not uri.startswith(BACKENDS[backend]):
        raise SweepConfigError(f"--backend={backend} with --backend-store-uri={uri}: they disagree")
    return tracking.resolve_uri(uri) if uri.startswith("sqlite") else uri


def prepare_store(uri: str, experiment: str) -> None:
    """Tables, migrations and the experiment, once, before the server's workers race for them."""
    try:
        if not uri.startswith(
            "sqlite"
        ):  # MLflow itself retries an unreachable database for minutes
            import sqlalchemy

            engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": 5})
            engine.connect().close()
            engine.dispose()
        tracking.init_store(uri, experiment)
    except Exception as e:
        shown = uri.split("@")[-1]  # never a password from a URI
        hint = (
            f"; start one with scripts/postgres-local.sh or set {POSTGRES_URI_ENV}"
            if uri.startswith("postgresql")
            else ""
        )
        raise SweepConfigError(f"database {shown} cannot be used: {first_line(e)}{hint}") from None


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


def free_port() -> int:
    """A loopback port nothing listens on now (for a server a test, benchmark or script starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(backend_uri: str, port: int, log: Path, timeout: float = 150.0, **kw) -> subprocess.Popen:
    """`mlflow server` over `backend_uri` on a loopback `port`, its output appended to `log`; returns
    once it answers on /health (tests and benchmarks start servers this way)."""
    with open(log, "a") as out:
        proc = subprocess.Popen(
            command(backend_uri, port=port, **kw),
            env=environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_healthy(f"http://127.0.0.1:{port}", timeout=timeout, proc=proc)
    return proc


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m sweep.cli.server", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--backend-store-uri", default=None, help=tracking.DEFAULT_URI_HELP)
    ap.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default=None,
        help=f"postgresql: ${POSTGRES_URI_ENV} or {DEFAULT_POSTGRES_URI} unless --backend-store-uri says",
    )
    ap.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to let other nodes log to it")
    ap.add_argument("--port", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=1, help="server processes (more for PostgreSQL)")
    ap.add_argument(
        "--artifacts-destination",
        default=None,
        help="artifact root (default: mlflow's ./mlartifacts)",
    )
    ap.add_argument(
        "--auth",
        action="store_true",
        help="MLflow's basic-auth app; admin account from MLFLOW_AUTH_ADMIN_USERNAME/_PASSWORD "
        "(or MLFLOW_TRACKING_USERNAME/_PASSWORD)",
    )
    ap.add_argument("--auth-db", default="sqlite:///basic_auth.db", help="where --auth keeps users")
    ap.add_argument("--experiment", default=tracking.DEFAULT_EXPERIMENT)
    return ap


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        uri = backend_uri(args.backend, args.backend_store_uri)
        prepare_store(uri, args.experiment)
        auth_db = tracking.resolve_uri(args.auth_db) if args.auth else None
        env = environment(auth_db)
    except SweepConfigError as e:
        print(f"sweep.cli.server: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    cmd = command(
        uri,
        args.host,
        port=args.port,
        artifacts=args.artifacts_destination,
        workers=args.workers,
        auth=args.auth,
    )
    print(
        f"tracking server on http://{args.host}:{args.port} over {uri.split('@')[-1]}"
        f"{' with basic auth' if args.auth else ''}; jobs log to it with "
        f"tracking.uri=http://<this host>:{args.port}",
        flush=True,
    )
    print_newest_sweep_link(uri, args.experiment, f"http://{args.host}:{args.port}")
    os.execvpe(cmd[0], cmd, env)


def print_newest_sweep_link(uri: str, experiment: str, ui: str) -> None:
    sweep_id = tracking.newest_sweep(uri, experiment)
    if sweep_id:
        exp_id, view = tracking.share_sweep_view(uri, experiment, sweep_id)
        print(f"newest sweep {sweep_id}: {tracking.sweep_link(ui, exp_id, view)}", flush=True)


if __name__ == "__main__":
    main()
