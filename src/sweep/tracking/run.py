"""One MLflow run per job: buffered params, metrics and tags sent together, and the run's lifecycle
(FINISHED, FAILED with its error and traceback, KILLED on SIGTERM), with its heartbeat and system metrics;
the sweep's parent run."""

from __future__ import annotations

import contextlib
import math
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweep.errors import NotApplicable, one_line
from sweep.tracking.liveness import (
    DEFAULT_HEARTBEAT_S,
    Heartbeat,
    JobKilled,
    hold_sigterm,
    sigterm_raises,
    system_metrics,
)
from sweep.tracking.names import (
    TAG_COMMAND,
    TAG_ERROR,
    TAG_NOT_APPLICABLE,
    TAG_ROLE,
    TAG_SWEEP_ID,
    TRACEBACK_ARTIFACT,
)
from sweep.tracking.queries import parent_run_of
from sweep.tracking.store import client as _client
from sweep.tracking.store import init_store

__all__ = ["JobRun", "close_parent_run", "flatten", "job_run", "metric_entities", "open_parent_run"]


def _fmt(value: Any) -> str:
    s = str(value)
    return s if len(s) <= 6000 else s[:5997] + "..."


def _tag_value(value: Any) -> str:
    return _fmt(value).lower() if isinstance(value, bool) else _fmt(value)


def metric_entities(metrics: Mapping[str, float | int | None], step: int = 0) -> list:
    """MLflow Metric entities, leaving out missing and NaN values."""
    from mlflow.entities import Metric

    ts = int(time.time() * 1000)
    return [
        Metric(k, float(v), ts, step)
        for k, v in metrics.items()
        if v is not None and not (isinstance(v, float) and math.isnan(v))
    ]


def flatten(d: Mapping, prefix: str = "", drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """Nested mappings as one level of dotted keys, leaving out the keys in `drop` (dotted) and all below."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if key in drop:
            continue
        if isinstance(v, Mapping):
            out.update(flatten(v, key + ".", drop))
        else:
            out[key] = v
    return out


@dataclass
class JobRun:
    """One MLflow run. Metrics, params and tags are buffered and sent together by `flush` (at the
    job's checkpoint stages, and when the run ends however it ends), so a failure loses nothing measured."""

    uri: str
    experiment_id: str
    run_id: str
    _params: dict[str, str] = field(default_factory=dict)
    _pending_metrics: list = field(default_factory=list)
    _pending_params: list = field(default_factory=list)
    _pending_tags: list = field(default_factory=list)
    _latest: dict[str, float] = field(default_factory=dict)  # step 0's value of every metric

    @property
    def client(self):
        return _client(self.uri)

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        new = {k: _fmt(v) for k, v in params.items() if k not in self._params}
        self._pending_params += [Param(k, v) for k, v in new.items()]
        self._params.update(new)

    def log_metrics(self, metrics: Mapping[str, float | int | None], step: int = 0) -> None:
        """`step`: MLflow's step of the values (the pruning step of a `step_*` metric)."""
        entities = metric_entities(metrics, step)
        self._pending_metrics += entities
        self._latest.update({m.key: m.value for m in entities if m.step == 0})

    @property
    def logged_metrics(self) -> dict[str, float]:
        """What the run holds so far at step 0 (sent or still buffered)."""
        return dict(self._latest)

    def log_model(self, form):
        """A tracking.ModelForm as a logged model of this run (tracking.Logged: its id, or why not)."""
        from sweep.tracking.models import log_model

        return log_model(self.uri, self.run_id, self.experiment_id, form)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self._pending_tags += [RunTag(k, _tag_value(v)) for k, v in tags.items()]

    def flush(self) -> None:
        # MLflow's limits per batch: 1000 metrics, 100 params, 100 tags
        m, p, t = self._pending_metrics, self._pending_params, self._pending_tags
        self._pending_metrics, self._pending_params, self._pending_tags = [], [], []
        while m or p or t:
            self.client.log_batch(self.run_id, metrics=m[:1000], params=p[:100], tags=t[:100])
            m, p, t = m[1000:], p[100:], t[100:]

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)


@contextlib.contextmanager
def job_run(
    uri: str,
    experiment: str,
    run_name: str,
    tags: Mapping[str, Any],
    heartbeat_s: float | None = DEFAULT_HEARTBEAT_S,
    system_metrics_s: float | None = None,
) -> Iterator[JobRun]:
    """Open a run; end it FINISHED, FAILED (with the error as tag and traceback artifact) or KILLED.
    While it is open, its heartbeat tag is refreshed every `heartbeat_s` seconds, and with
    `system_metrics_s` MLflow's system metrics are sampled that often."""
    experiment_id = init_store(uri, experiment)
    client = _client(uri)
    release = hold_sigterm()  # a SIGTERM from here on is raised inside the try below
    try:
        run = client.create_run(
            experiment_id, run_name=run_name, tags={k: _tag_value(v) for k, v in tags.items()}
        )
    except BaseException:
        with contextlib.suppress(JobKilled):  # no run to end: the error that stopped it is the news
            release()
        raise
    job = JobRun(uri, experiment_id, run.info.run_id)
    status = "FINISHED"
    try:
        release()
        with (
            sigterm_raises(),
            Heartbeat(uri, job.run_id, heartbeat_s),
            system_metrics(uri, job.run_id, system_metrics_s),
        ):
            yield job
    except (KeyboardInterrupt, JobKilled) as e:
        status = "KILLED"
        job.set_tags({TAG_ERROR: one_line(e)})
        raise
    except NotApplicable as e:  # a reason, not a fault: no traceback
        status = "FAILED"
        job.set_tags({TAG_ERROR: one_line(e), TAG_NOT_APPLICABLE: True})
        raise
    except BaseException as e:
        status = "FAILED"
        job.set_tags({TAG_ERROR: one_line(e)})
        with contextlib.suppress(Exception):
            job.log_text("".join(traceback.format_exception(e)), TRACEBACK_ARTIFACT)
        raise
    finally:
        job.flush()
        client.set_terminated(job.run_id, status)


# ---- the sweep's parent run ---------------------------------------------------------------------------
def open_parent_run(uri: str, experiment: str, sweep_id: str, command: str) -> str:
    """The parent run of a sweep: reused (set RUNNING again) when the same sweep_id is run again."""
    client = _client(uri)
    experiment_id = init_store(uri, experiment)
    found = parent_run_of(uri, experiment, sweep_id)
    if found:
        client.update_run(found, status="RUNNING")
        return found
    run = client.create_run(
        experiment_id,
        run_name=f"sweep {sweep_id}",
        tags={TAG_SWEEP_ID: sweep_id, TAG_ROLE: "sweep", TAG_COMMAND: _fmt(command)},
    )
    return run.info.run_id


def close_parent_run(uri: str, run_id: str, status: str, metrics: Mapping[str, float]) -> None:
    client = _client(uri)
    client.log_batch(run_id, metrics=metric_entities(metrics))
    client.set_terminated(run_id, status)
