"""Many concurrent writers through `mlflow server`: SQLite behind the server vs PostgreSQL behind it.

W writer processes each log R runs with the full schema of a job (every param of a composed config,
every metric and tag the jobs write), as a SLURM array logging to one server would. Then every run is
read back: runs lost, duplicated, incomplete (a field missing or wrong) or not FINISHED, errors the
writers saw after MLflow's own retries, runs/s, and the p50/p95 latency of one write call.

    python benchmarks/tracking_load.py                       # 16 writers x 25 runs, both backends
    python benchmarks/tracking_load.py --writers 4 --runs 5 --backends postgresql --json

PostgreSQL: the database in $SWEEP_POSTGRES_URI (a fresh database is made in it per round), else a
server started for the run with scripts/postgres-local.sh (Debian's postgresql; installs it as root).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing as mp
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sweep import tracking
from sweep.cli import server

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "load"


def payload() -> tuple[dict, dict, dict]:
    """(params, metrics, tags) of one job as a job logs them."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from sweep import config

    with initialize_config_dir(config_dir=str(config.config_dir()), version_base="1.3"):
        cfg = compose("sweep", overrides=["model=tiny_cnn", "pruner=dg_group"])
    params = tracking.flatten(OmegaConf.to_container(cfg, resolve=False), drop=tracking.NOT_PARAMS)
    names = [*tracking.METRICS_PER_MODEL, *tracking.REQUIRED_METRICS, tracking.METRIC_RATIO_USED]
    names += [tracking.DENSE_PREFIX + m for m in tracking.METRICS_PER_MODEL]
    names += [tracking.STAGE_METRIC.format(s) for s in ("build", "weights", "prune", "measure")]
    metrics = {m: float(i) + 0.5 for i, m in enumerate(dict.fromkeys(names))}
    tags = {
        tracking.TAG_DEVICE: "cpu",
        tracking.TAG_KIND: "structural",
        tracking.TAG_FAMILY: "depgraph",
        tracking.TAG_LATENCY_FLAG: "none",
        tracking.TAG_WEIGHTS: "trained",
        tracking.TAG_NOOP: "false",
        tracking.TAG_SPEEDUP_POSSIBLE: "true",
        tracking.TAG_GIT_COMMIT: "0" * 40,
        **{v: "1.0" for v in tracking.TAG_VERSIONS},
    }
    return {k: str(v) for k, v in params.items()}, metrics, tags


def writer(url: str, experiment_id: str, w: int, runs: int, data, out) -> None:
    """One process: `runs` runs, each created, logged in one batch and ended, as a job does."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (MLflow prints "View run ..." per ended run)
    params, metrics, tags = data
    client = MlflowClient(url)
    lat, errors = [], []
    for r in range(runs):
        try:
            t = time.perf_counter()
            run = client.create_run(
                experiment_id,
                run_name=f"w{w}-r{r}",
                tags={tracking.TAG_ROLE: "job", tracking.TAG_JOB_KEY: f"w{w}r{r}"},
            )
            lat.append(time.perf_counter() - t)
            ts = int(time.time() * 1000)
            ms = [Metric(k, v, ts, 0) for k, v in metrics.items()]
            ps = [Param(k, v) for k, v in params.items()]
            ts_ = [RunTag(k, v) for k, v in tags.items()]
            for i in range(0, max(len(ps), len(ts_)), 100):  # MLflow's limits per batch
                t = time.perf_counter()
                client.log_batch(
                    run.info.run_id,
                    metrics=ms if i == 0 else [],
                    params=ps[i : i + 100],
                    tags=ts_[i : i + 100],
                )
                lat.append(time.perf_counter() - t)
            t = time.perf_counter()
            client.set_terminated(run.info.run_id, "FINISHED")
            lat.append(time.perf_counter() - t)
        except Exception as e:  # counted, and the writer goes on like the next job would
            errors.append(f"{type(e).__name__}: {str(e)[:200]}")
    out.put((lat, errors))


def verify(url: str, experiment_id: str, writers: int, runs: int, data) -> dict:
    """What the store holds against what was written."""
    from mlflow.tracking import MlflowClient

    params, metrics, tags = data
    found = tracking.all_runs(MlflowClient(url), experiment_id, "")
    by_name: dict[str, list] = {}
    for r in found:
        by_name.setdefault(r.info.run_name, []).append(r)
    want = {f"w{w}-r{r}" for w in range(writers) for r in range(runs)}
    incomplete = unfinished = 0
    for rs in by_name.values():
        for r in rs:
            d = r.data
            ok = all(d.params.get(k) == v for k, v in params.items())
            ok = ok and all(d.metrics.get(k) == v for k, v in metrics.items())
            ok = ok and all(d.tags.get(k) == v for k, v in tags.items())
            incomplete += not ok
            unfinished += r.info.status != "FINISHED"
    return {
        "runs_expected": len(want),
        "runs_found": len(found),
        "lost": len(want - set(by_name)),
        "duplicated": sum(len(rs) - 1 for rs in by_name.values()),
        "incomplete": incomplete,
        "not_finished": unfinished,
    }


@contextlib.contextmanager
def postgres_base():
    """A PostgreSQL server URI: $SWEEP_POSTGRES_URI, or one started for this run."""
    if os.environ.get(server.POSTGRES_URI_ENV):
        yield os.environ[server.POSTGRES_URI_ENV]
        return
    folder = Path(tempfile.mkdtemp(prefix="sweep-pg-"))
    script = ROOT / "scripts" / "postgres-local.sh"
    port = server.free_port()
    out = subprocess.run(
        ["bash", str(script), "start", str(folder), str(port)], capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(f"PostgreSQL did not start: {out.stderr.strip()}")
    try:
        yield out.stdout.strip().split("=", 1)[1]
    finally:
        subprocess.run(["bash", str(script), "stop", str(folder)], check=False)
        shutil.rmtree(folder, ignore_errors=True)


def fresh_database(base: str) -> str:
    """A new, empty database on the server of `base` (a fresh store for each round)."""
    import sqlalchemy

    name = "load_" + secrets.token_hex(4)
    engine = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return base.rsplit("/", 1)[0] + "/" + name


@contextlib.contextmanager
def serving(store: str, folder: Path, workers: int):
    server.prepare_store(store, EXPERIMENT)
    port = server.free_port()
    log = folder / f"server-{port}.log"
    proc = server.spawn(store, port, log, 180, artifacts=str(folder / "art"), workers=workers)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def one_round(store: str, folder: Path, args, data) -> dict:
    with serving(store, folder, args.workers) as url:
        from mlflow.tracking import MlflowClient

        exp = MlflowClient(url).get_experiment_by_name(EXPERIMENT).experiment_id
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        procs = [
            ctx.Process(target=writer, args=(url, exp, w, args.runs, data, out))
            for w in range(args.writers)
        ]
        t0 = time.perf_counter()
        for p in procs:
            p.start()
        results = [out.get() for _ in procs]
        wall = time.perf_counter() - t0
        for p in procs:
            p.join()
        lat = sorted(x for r in results for x in r[0])
        errors = [e for r in results for e in r[1]]
        figures = verify(url, exp, args.writers, args.runs, data)
    q = statistics.quantiles(lat, n=20) if len(lat) > 1 else [0.0] * 19
    return {
        **figures,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "seconds": round(wall, 1),
        "runs_per_s": round(args.writers * args.runs / wall, 1),
        "write_p50_ms": round(1000 * statistics.median(lat), 1) if lat else 0.0,
        "write_p95_ms": round(1000 * q[18], 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writers", type=int, default=16)
    ap.add_argument("--runs", type=int, default=25, help="runs per writer")
    ap.add_argument("--workers", type=int, default=4, help="mlflow server worker processes")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="one JSON line per backend and round")
    args = ap.parse_args()
    data = payload()
    print(
        f"{args.writers} writers x {args.runs} runs, {len(data[0])} params, {len(data[1])} metrics, "
        f"{len(data[2]) + 2} tags per run; mlflow server with {args.workers} workers",
        flush=True,
    )
    rows = []
    with postgres_base() if "postgresql" in args.backends else contextlib.nullcontext() as pg:
        for i in range(args.rounds):
            for backend in args.backends.split(","):
                folder = Path(tempfile.mkdtemp(prefix=f"load-{backend}-"))
                store = (
                    f"sqlite:///{folder / 'mlflow.db'}"
                    if backend == "sqlite"
                    else fresh_database(pg)
                )
                row = {"backend": backend, "round": i + 1, **one_round(store, folder, args, data)}
                rows.append(row)
                print(json.dumps(row) if args.json else _line(row), flush=True)
    bad = sum(r["lost"] + r["duplicated"] + r["incomplete"] + r["not_finished"] for r in rows)
    sys.exit(1 if bad and args.json else 0)


def _line(r: dict) -> str:
    return (
        f"{r['backend']:<10} round {r['round']}: {r['runs_found']}/{r['runs_expected']} runs, "
        f"lost {r['lost']}, duplicated {r['duplicated']}, incomplete {r['incomplete']}, "
        f"not finished {r['not_finished']}, writer errors {r['errors']}; {r['seconds']} s, "
        f"{r['runs_per_s']} runs/s, write p50 {r['write_p50_ms']} ms, p95 {r['write_p95_ms']} ms"
        + (f"\n           first error: {r['first_error']}" if r["first_error"] else "")
    )


if __name__ == "__main__":
    main()
