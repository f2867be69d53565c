"""A running sweep's progress: jobs done and left, and an estimate of the time left from the jobs that
finished so far, model by model (a model none of whose jobs has finished has no estimate yet, and the
line says so). Each job reads it from the store as it starts, logs it, and sends it to the sweep's
parent run, whose metric history the MLflow UI charts."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from sweep.tracking.names import PARAM_MODEL, PROGRESS_METRICS, TAG_JOB_KEY
from sweep.tracking.queries import search_runs
from sweep.tracking.run import metric_entities
from sweep.tracking.store import client as _client

__all__ = ["SweepProgress", "progress_of", "send_progress"]

_ENDED = ("FINISHED", "FAILED", "KILLED")


@dataclass(frozen=True)
class SweepProgress:
    total: int
    done: int
    running: int
    left_s: float | None  # None: some model has no finished job to estimate from
    per_model_s: dict[str, float] = field(default_factory=dict)  # median seconds of a finished job
    unknown: tuple[str, ...] = ()  # models with jobs left and none finished

    @property
    def left(self) -> int:
        return max(0, self.total - self.done)

    def line(self) -> str:
        said = f"{self.done} done, {self.left} left"
        if not self.left:
            return said
        each = ", ".join(f"{m} {s:.0f} s a job" for m, s in self.per_model_s.items())
        if self.left_s is None:
            known = f" ({each})" if each else ""
            return f"{said}; time left unknown until a job of {', '.join(self.unknown)} ends{known}"
        return f"{said}; about {_duration(self.left_s)} left ({each}, {self.running} at a time)"

    def metrics(self) -> dict[str, float]:
        done, left, eta = PROGRESS_METRICS
        return {done: self.done, left: self.left} | ({eta: self.left_s} if self.left_s else {})


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"{seconds:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def progress_of(
    uri: str,
    experiment: str,
    sweep_id: str,
    total: int,
    models: list[str],
    since_ms: int = 0,
    processed: int = 0,
) -> SweepProgress:
    """From the sweep's runs: a job of this command (`total` jobs, started at `since_ms`) is done once
    a run with its key that started after it ended (a re-run's latest counts; what an earlier
    command on the same sweep ran is not this command's), or once the launcher moved past it (`processed`:
    jobs before this one in a launcher that runs them in turn, skipped ones too). The jobs left of
    each model take its finished jobs' median time, this command's or earlier, divided among the
    jobs that run at once. `models`: the grid's models (each has total / len(models) jobs)."""
    latest: dict[str, object] = {}
    for r in search_runs(uri, experiment, sweep_id):  # oldest first
        latest[r.data.tags.get(TAG_JOB_KEY, r.info.run_id)] = r
    finished = [r for r in latest.values() if r.info.status in _ENDED]
    ended = [r for r in finished if r.info.start_time >= since_ms]
    running = 1 + sum(r.info.status == "RUNNING" for r in latest.values())  # and the one asking
    seconds: dict[str, list[float]] = {}
    for r in finished:
        if r.info.status == "FINISHED" and r.info.end_time:
            took = (r.info.end_time - r.info.start_time) / 1000
            seconds.setdefault(r.data.params.get(PARAM_MODEL, "?"), []).append(took)
    per_model = {m: statistics.median(s) for m, s in seconds.items()}
    each = total / max(1, len(models))
    done = min(total, max(len(ended), processed)) if total else len(ended)
    done_of = {m: sum(r.data.params.get(PARAM_MODEL) == m for r in ended) for m in models}
    # jobs the launcher moved past without a run ending (skipped) are spread over the models
    spread = (done - len(ended)) / max(1, len(models))
    left_of = {m: max(0.0, each - done_of[m] - spread) for m in models}
    unknown = tuple(m for m in models if left_of[m] and m not in per_model)
    left_s = None
    if not unknown:
        left_s = sum(left_of[m] * per_model.get(m, 0.0) for m in models) / running
    return SweepProgress(
        total=total,
        done=done,
        running=running,
        left_s=left_s,
        per_model_s={m: per_model[m] for m in models if m in per_model},
        unknown=unknown,
    )


def send_progress(uri: str, parent_run_id: str, progress: SweepProgress) -> None:
    """The figures to the sweep's parent run, at step = jobs done (the UI charts their history)."""
    metrics = metric_entities(progress.metrics(), step=progress.done)
    _client(uri).log_batch(parent_run_id, metrics=metrics)
