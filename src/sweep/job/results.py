"""Recording, in one place: every stage returns results that know their own params, metrics and tags
(`Result`), artifacts to upload (`Artifact`) or models to log (`tracking.ModelForm`); the `Recorder` writes them to the job's run. The bottom
of `sweep.job`: every stage imports it, it imports no stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sweep import tracking

__all__ = ["Artifact", "Recorder", "Result"]


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
        if isinstance(item, tracking.ModelForm):  # the stage is sent back what became of it
            return self.run.log_model(item)
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
