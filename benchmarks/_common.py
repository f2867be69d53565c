"""Helpers shared by the benchmark scripts: run the real CLI, read runs back through sweep.tracking."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def run_sweep(args: list[str], cwd: Path) -> float:
    """`python -m sweep ARGS` in cwd; returns its wall time in seconds; raises on failure."""
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "sweep", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-2000:] + r.stderr[-4000:])
        raise SystemExit(f"sweep failed with exit status {r.returncode}")
    return time.perf_counter() - t0


def temp_store(prefix: str) -> tuple[Path, str]:
    """A new temporary folder and the URI of a SQLite store in it (every benchmark's own store)."""
    import tempfile

    work = Path(tempfile.mkdtemp(prefix=prefix))
    return work, f"sqlite:///{work / 'mlflow.db'}"


def fresh_sweep(prefix: str, sweep_id: str, args: list[str]) -> tuple[str, float]:
    """`python -m sweep ARGS` into a new SQLite store in a new temporary folder, as sweep `sweep_id`;
    returns the store's URI and the wall time in seconds."""
    work, store = temp_store(prefix)
    seconds = run_sweep([*args, f"tracking.uri={store}", f"sweep_id={sweep_id}"], work)
    return store, seconds


def cv(values: list[float]) -> float:
    """Coefficient of variation (sample standard deviation / mean)."""
    return statistics.stdev(values) / statistics.mean(values) if len(values) > 1 else 0.0
