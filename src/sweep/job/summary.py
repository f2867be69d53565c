"""The log stage: the job's headline figures (`Summary`: top-1 after fine-tuning against the dense
model's, and what pruning removed), its summary line, the Hydra config and, with `save_model`, the
model. The top of the stages: it reads what the others computed.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch.nn as nn

from sweep import tracking
from sweep.job.context import Bench, Job
from sweep.job.evaluate import Accuracy
from sweep.job.finetune import Recovered
from sweep.job.measure import Measured
from sweep.job.results import Artifact, Result
from sweep.training.evaluate import at_chance

__all__ = ["Summary", "saved_model", "summarize"]

log = logging.getLogger("sweep")


@dataclass(frozen=True, kw_only=True)
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
            tracking.MACS_KEPT: m.pruned.macs / m.dense.macs if m.dense.macs else 1.0,
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
    job: Job,
    bench: Bench,
    pruned: nn.Module,
    measured: Measured,
    accuracy: Accuracy,
    recovered: Recovered,
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
        yield from saved_model(job, pruned, bench.preprocess)
    log.info(summary.line(job.run_name))
    return summary


def saved_model(job: Job, model: nn.Module, preprocess: dict) -> Iterator[Artifact]:
    """The pruned (and fine-tuned) model as an artifact that loads without running code: weights in
    safetensors, the pruned shapes in JSON (sweep.models.artifacts; reload with sweep.models.artifacts.load)."""
    from sweep.models import artifacts

    create = {
        "num_classes": getattr(model, "num_classes", None),
        **dict(job.cfg.model.get("kwargs") or {}),
    }
    extra = {"preprocess": preprocess, "pruner": job.pruner.name, "run_id": job.run_id}
    with tempfile.TemporaryDirectory() as tmp:
        artifacts.save(model, tmp, timm_name=job.cfg.model.name, create=create, extra=extra)
        yield Artifact(tmp, tracking.MODEL_ARTIFACT_DIR)
    model.to(job.device)


def _hydra_output_dir() -> Path | None:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return Path(HydraConfig.get().runtime.output_dir)
