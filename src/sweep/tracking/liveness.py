"""Telling a live run from a dead one: SIGTERM ends a job's run KILLED, a heartbeat tag marks a running
run alive, and a later command ends FAILED the runs whose heartbeat stopped (or whose sweep ended
without them)."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator

from sweep.tracking.names import TAG_ERROR, TAG_HEARTBEAT, TAG_PARENT, TAG_STALE
from sweep.tracking.queries import all_runs
from sweep.tracking.store import client as _client
from sweep.tracking.store import eq as _eq

__all__ = [
    "DEFAULT_HEARTBEAT_S",
    "DEFAULT_STALE_AFTER_S",
    "Heartbeat",
    "JobKilled",
    "fail_orphans",
    "fail_stale",
    "hold_sigterm",
    "last_sign_of_life",
    "running_runs",
    "sigterm_raises",
    "system_metrics",
]

DEFAULT_HEARTBEAT_S = 30.0  # tracking.heartbeat_s
DEFAULT_STALE_AFTER_S = (
    600.0  # tracking.stale_after_s: a RUNNING run this long without a heartbeat is dead
)


class JobKilled(BaseException):
    """Raised in the job on SIGTERM (scheduler time limit, preemption) so its run ends KILLED."""


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises JobKilled in the main thread while inside (elsewhere signals cannot be handled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if _HELD["depth"]:
            _HELD["signum"] = signum
            return
        raise JobKilled(f"received signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# a SIGTERM that arrived while held back (hold_sigterm), raised once it is let through
_HELD: dict[str, int | None] = {"depth": 0, "signum": None}


def hold_sigterm() -> Callable[[], None]:
    """Hold back what SIGTERM raises until the returned call lets it through (which then raises it):
    a run created while it is held exists before the signal can end it, so it ends KILLED rather than
    left RUNNING (a SIGTERM inside MLflow's create_run was raised before the run's id was known)."""
    _HELD["depth"] += 1

    def release() -> None:
        _HELD["depth"] -= 1
        signum, _HELD["signum"] = _HELD["signum"], None
        if signum is not None and not _HELD["depth"]:
            raise JobKilled(f"received signal {signum}")

    return release


class Heartbeat:
    """Sets a RUNNING run's `heartbeat` tag to the time every `every_s` seconds from a daemon thread, so
    that a run whose process or node died (SIGKILL, a lost node) can be told from one still working and
    ended FAILED by a later command (`fail_stale`). A failed beat is retried at the next one; it never
    fails the job."""

    def __init__(self, uri: str, run_id: str, every_s: float | None):
        self.uri, self.run_id, self.every_s = uri, run_id, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="sweep-heartbeat", daemon=True)

    def _beat(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                _client(self.uri).set_tag(self.run_id, TAG_HEARTBEAT, f"{time.time():.0f}")
            if self._stop.wait(self.every_s):
                return

    def __enter__(self) -> Heartbeat:
        if self.every_s:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


def last_sign_of_life(run) -> float:
    """Unix time, s, of a run's newest heartbeat, or of its start when it never beat."""
    beat = run.data.tags.get(TAG_HEARTBEAT, "")
    start = run.info.start_time / 1000
    try:
        return max(start, float(beat))
    except ValueError:
        return start


def running_runs(uri: str, experiment: str) -> list:
    """Every RUNNING run of an experiment, jobs and sweeps."""
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return all_runs(client, exp.experiment_id, "attributes.status = 'RUNNING'")


def fail_stale(uri: str, experiment: str, older_than_s: float) -> list:
    """End FAILED every RUNNING run of the experiment (any sweep, jobs and sweep runs alike) whose last
    sign of life is older than `older_than_s`: its process or node died without ending it. What it
    logged stays. Returns the runs so ended."""
    from mlflow.entities import RunTag

    client = _client(uri)
    now, stale = time.time(), []
    for r in running_runs(uri, experiment):
        age = now - last_sign_of_life(r)
        if age <= older_than_s:
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now - age))
        reason = f"no heartbeat since {when} ({age:.0f} s > {older_than_s:g} s): its process or node died"
        client.log_batch(r.info.run_id, tags=[RunTag(TAG_ERROR, reason), RunTag(TAG_STALE, "true")])
        client.set_terminated(r.info.run_id, "FAILED")
        stale.append(r)
    return stale


@contextlib.contextmanager
def system_metrics(uri: str, run_id: str, every_s: float | None) -> Iterator[None]:
    """MLflow's system metrics (`system/cpu_utilization_percentage`, memory, disk, network, and GPU
    utilisation and memory where pynvml sees one) sampled every `every_s` seconds while inside."""
    if not every_s:
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, sampling_interval=every_s, tracking_uri=uri)
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()


def fail_orphans(uri: str, parent_run_id: str) -> int:
    """Jobs of a finished sweep whose run is still RUNNING died without ending it (killed hard, out of
    memory, os._exit): record them as FAILED. Returns how many."""
    client = _client(uri)
    run = client.get_run(parent_run_id)
    orphans = client.search_runs(
        [run.info.experiment_id],
        run_view_type=1,
        max_results=1000,
        filter_string=f"{_eq(f'tags.`{TAG_PARENT}`', parent_run_id)} and attributes.status = 'RUNNING'",
    )
    for o in orphans:
        client.set_tag(
            o.info.run_id,
            TAG_ERROR,
            "the job ended without finishing its run (killed hard, out of memory or os._exit)",
        )
        client.set_terminated(o.info.run_id, "FAILED")
    return len(orphans)
