"""Recording, in one place: every stage returns results that know their own params, metrics and tags
(`Result`), or artifacts to upload (`Artifact`); the `Recorder` writes them to the job's run. The job's
last stage (`summarize`) computes the headline figures, logs the summary line and yields the artifacts.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch.nn as nn

from sweep import tracking
from sweep.evaluate import at_chance

if TYPE_CHECKING:
    from sweep.job.accuracy import Accuracy, Recovered
    from sweep.job.context import Bench, Job
    from sweep.job.measure import Measured

__all__ = ["Artifact", "Recorder", "Result", "Summary", "summarize"]

log = logging.getLogger("sweep")


class Result:
    """What a stage computed, saying what of it is recorded and under which names (`sweep.tracking`)."""

    def params(self) -> Mapping:
        return {}

    def metrics(self) -> Mapping:
        return {}

    def tags(self) -> Mapping:
        return {}

    def step_metrics(self) -> Mapping[int, Mapping]:
        """Metrics at MLflow steps (a pruning schedule's step k)."""
        return {}


@dataclass(frozen=True)
class Artifact:
    """A folder to upload under `path` while it exists (a stage yields it from inside the folder's
    context)."""

    folder: Path | str
    path: str


@dataclass
class Recorder:
    """Writes results to the job's run (buffered: sent at `flush`, and when the run ends however it
    ends, so a failure loses nothing recorded)."""

    run: tracking.JobRun

    def record(self, item: Result | Artifact):
        if isinstance(item, Artifact):
            self.run.log_artifacts(item.folder, item.path)
            return item
        self.run.log_params(item.params())
        self.run.log_metrics(item.metrics())
        self.run.set_tags(item.tags())
        for step, metrics in item.step_metrics().items():
            self.run.log_metrics(metrics, step=step)
        return item

    def metrics(self, metrics: Mapping) -> None:
        self.run.log_metrics(metrics)

    def flush(self) -> None:
        self.run.flush()


@dataclass(frozen=True)
class Summary(Result):
    """The job's headline figures: top-1 after fine-tuning against the dense model's, and what pruning
    removed."""

    measured: Measured
    accuracy: Accuracy
    recovered: Recovered
    steps: int
    num_classes: int

    def metrics(self) -> dict:
        m, rec = self.measured, self.recovered
        return {
            tracking.ACCURACY: rec.accuracy,
            tracking.ACCURACY_DELTA: rec.accuracy - self.accuracy.dense,
            tracking.PARAMS_REDUCTION: 1 - m.pruned.params_total / m.dense.params_total,
            tracking.MACS_REDUCTION: 1 - m.pruned.macs / m.dense.macs if m.dense.macs else 0.0,
        }

    def step_metrics(self) -> dict:
        # the schedule's last point: its final top-1
        return (
            {self.steps: {tracking.STEP_ACCURACY: self.recovered.accuracy}}
            if self.steps > 1
            else {}
        )

    def tags(self) -> dict:
        # after fine-tuning only: one-shot structural pruning at a high ratio is at chance by design
        acc, rec = self.accuracy, self.recovered
        pruned_chance = (
            rec.result is not None
            and not acc.at_chance
            and at_chance(rec.accuracy, acc.samples, self.num_classes)
        )
        return {tracking.TAG_AT_CHANCE: acc.at_chance, tracking.TAG_PRUNED_AT_CHANCE: pruned_chance}

    def figures(self) -> dict[str, float]:
        """What the job returns to the sweep's summary."""
        s = self.measured.speedup
        return {**self.metrics(), "speedup": s.value, "noop": float(self.measured.noop)}

    def line(self, run_name: str) -> str:
        m, acc, rec = self.measured, self.accuracy, self.recovered
        (d, p), s = m.latency, m.speedup
        return (
            f"{run_name}: params {m.dense.params_total:,} -> {m.pruned.params_total:,} (non-zero "
            f"{m.pruned.params_nonzero:,}), MACs {m.dense.macs:,} -> {m.pruned.macs:,}, latency "
            f"{d.median_ms:.2f} -> {p.median_ms:.2f} ms (speedup {s.value:.2f}x [{s.ci_low:.2f}, "
            f"{s.ci_high:.2f}]), top-1 {100 * acc.dense:.1f}% -> {100 * acc.oneshot:.1f}% one-shot, "
            f"{100 * rec.accuracy:.1f}% fine-tuned{' [NO-OP]' if m.noop else ''}"
        )


def summarize(
    job: Job, bench: Bench, pruned: nn.Module, measured, accuracy, recovered
) -> Iterator[Result | Artifact]:
    """The log stage: the summary (returned), the Hydra config and, with `save_model`, the model."""
    summary = Summary(
        measured=measured,
        accuracy=accuracy,
        recovered=recovered,
        steps=job.cfg.prune.steps,
        num_classes=job.dataset.num_classes,
    )
    yield summary
    hydra_dir = _hydra_output_dir()
    if hydra_dir is not None and (hydra_dir / ".hydra").is_dir():
        yield Artifact(hydra_dir / ".hydra", tracking.HYDRA_ARTIFACT_DIR)
    if job.cfg.save_model:
        yield from _saved_model(job, pruned, bench.preprocess)
    log.info(summary.line(job.run_name))
    return summary


def _saved_model(job: Job, model: nn.Module, preprocess: dict) -> Iterator[Artifact]:
    """The pruned (and fine-tuned) model as an artifact that loads without running code: weights in
    safetensors, the pruned shapes in JSON (sweep.artifacts; reload with sweep.artifacts.load)."""
    from sweep import artifacts

    create = {
        "num_classes": getattr(model, "num_classes", None),
        **dict(job.cfg.model.get("kwargs") or {}),
    }
    extra = {"preprocess": preprocess, "pruner": job.pruner.name, "run_id": job.run_id}
    with tempfile.TemporaryDirectory() as tmp:
        artifacts.save(model, tmp, job.cfg.model.name, create, extra)
        yield Artifact(tmp, tracking.MODEL_ARTIFACT_DIR)
    model.to(job.device)


def _hydra_output_dir() -> Path | None:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return Path(HydraConfig.get().runtime.output_dir)
