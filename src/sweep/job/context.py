"""What the stages of a job read: the job itself (frozen), the bench every stage measures against
(frozen, made once), and the state a pruning schedule carries from one step to the next (mutable, in
one named object)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

from sweep import limits, targets, tracking, training
from sweep.data import Batches, Dataset
from sweep.job.identity import run_name_of
from sweep.job.results import Result
from sweep.measure.counting import Counts
from sweep.pruners.base import Calibration, Pruner

__all__ = ["Bench", "Job", "Progress", "Step", "schedule"]


# ---- the job ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Job(Result):
    """A job's config and the objects its config names. `model_params` is the dense model's size once
    it is built (the limits scale with it): `with_model_params` returns the job that knows it."""

    cfg: DictConfig
    pruner: Pruner
    dataset: Dataset
    device: torch.device
    watchdog: limits.Watchdog
    run_id: str  # the job's MLflow run (an artifact names it)
    round_to: int | None = None  # prune.round_to as applied to the method (auto resolved)
    model_params: int = 0
    # what the gradient stages need and the micro-batches that fit them (CPU; None: whole batches)
    memory: limits.MemoryPlan | None = None

    def with_model_params(self, n: int, memory: limits.MemoryPlan | None = None) -> Job:
        return dataclasses.replace(self, model_params=n, memory=memory or self.memory)

    def micro_batch(self, batch: int, copies: int = limits.OPTIMIZER_COPIES) -> int | None:
        """The part of a `batch` a gradient stage runs backward through at once: None for the whole
        batch (it fits, or nothing was counted), else the largest part that fits (sweep.limits)."""
        if self.memory is None:
            return None
        micro = self.memory.micro_batch(batch, copies)
        return micro if 0 < micro < batch else None

    def calibration_micro_batch(self) -> int:
        """The most images a gradient criterion runs backward through at once while pruning: a few
        (`limits.CALIBRATION_MICRO_BATCH`), fewer where memory is short, never 0."""
        size = self.pruner.calibration_batch_size
        most = min(size, limits.CALIBRATION_MICRO_BATCH)
        if self.memory is None:
            return most
        return max(1, self.memory.micro_batch(size, limits.GRADIENT_COPIES, most=most))

    @property
    def run_name(self) -> str:
        return run_name_of(self.cfg)

    @property
    def class_map(self) -> list[int] | None:
        """With a kept pretrained head: the head's class for each of the dataset's labels (None: the
        labels are the head's classes)."""
        return self.dataset.class_map if self.cfg.model.head == "keep" else None

    @property
    def chance_loss(self) -> float:
        """A uniform guess's loss over the dataset's classes (ln C): training that ends above it and
        above where it started diverged (`training.TrainResult.diverged`)."""
        return math.log(self.dataset.num_classes)

    def lr(self, asked: float | None) -> float:
        """A training phase's learning rate: the one its settings ask for, else the model's
        `finetune_lr` (fine-tuning and sparse training alike)."""
        return asked if asked is not None else self.cfg.model.finetune_lr

    def budget(
        self, *, epochs: int, lr: float | None, max_steps: int | None, time_budget_s: float | None
    ) -> training.Budget:
        """A training phase's budget: its own length and learning rate, fine-tuning's batch size,
        weight decay and schedule (the one builder of fine-tuning's and sparse training's)."""
        f = self.cfg.finetune
        return training.Budget(
            epochs=epochs,
            lr=self.lr(lr),
            batch_size=f.batch_size,
            weight_decay=f.weight_decay,
            schedule=f.schedule,
            max_steps=max_steps,
            time_budget_s=time_budget_s,
            micro_batch=self.micro_batch(f.batch_size),
        )

    def stage_timeout_s(self, name: str) -> float | None:
        value = self.cfg.job.stage_timeout_s[name]
        if value != "auto":
            return value
        target = targets.of_config(self.cfg.target)
        trials = self.cfg.target.max_trials if target is not None else 1
        return limits.auto_stage_timeout_s(name, self.model_params, trials)

    def params(self) -> dict:
        cfg = OmegaConf.to_container(self.cfg, resolve=True)
        params = tracking.flatten(cfg, drop=tracking.NOT_PARAMS)
        params.update(
            {
                tracking.PARAM_MODEL: self.cfg.model.alias,
                tracking.PARAM_MODEL_NAME: self.cfg.model.name,
                tracking.PARAM_PRUNER: self.pruner.name,
                tracking.PARAM_RATIO: self.cfg.ratio,
                tracking.PARAM_DATASET: self.dataset.name,
                tracking.PARAM_RATIO_MEANS: self.pruner.ratio_means,
            }
        )
        if self.round_to is not None:
            params[tracking.PARAM_ROUND_TO_USED] = self.round_to
        if targets.of_config(self.cfg.target) is not None:
            del params[tracking.PARAM_RATIO]  # searched: the metric ratio_used says what was found
        return params

    def tags(self) -> dict:
        from sweep import provenance

        kind, family = self.pruner.kind, self.pruner.family
        tags = {
            tracking.TAG_DEVICE: provenance.device_description(self.device),
            tracking.TAG_KIND: kind.value,
            tracking.TAG_FAMILY: family.name,
            tracking.TAG_FAMILY_TITLE: family.title,
            tracking.TAG_SPEEDUP_POSSIBLE: kind.dense_speedup_possible,
            tracking.TAG_SPARSE_KERNELS: kind.sparse_kernel_speedup_possible,
            **self.dataset.notes(),  # an image tree's unreadable and ignored files
        }
        target = targets.of_config(self.cfg.target)
        if target is not None:
            tags[tracking.TAG_TARGET] = target.label
        return tags


@dataclass(frozen=True, kw_only=True)
class Bench(Result):
    """What every stage after the weights reads, made once: the dense model, the dataset's splits
    through the model's preprocessing, one example input, the pruner's calibration batches and the
    dense model's counts (every step and the measure stage compare to them)."""

    dense: nn.Module
    train: Batches
    eval: Batches
    example: torch.Tensor  # one input image, on the job's device
    preprocess: dict  # timm's data config the transform was made from
    calibration: Calibration | None
    dense_counts: Counts
    weights_id: str = ""  # what identifies the dense weights (sweep.job.shared's keys)

    def params(self) -> dict:
        if self.calibration is None:
            return {}
        n = sum(len(y) for _, y in self.calibration.batches)
        return {tracking.PARAM_CALIBRATION_SAMPLES: n}


@dataclass(frozen=True)
class Step:
    """Step `index` (1..n) of the pruning schedule; one-shot is step 1 of 1."""

    index: int
    n: int

    @property
    def last(self) -> bool:
        return self.index == self.n


def schedule(cfg: DictConfig) -> list[Step]:
    return [Step(k, cfg.prune.steps) for k in range(1, cfg.prune.steps + 1)]


@dataclass
class Progress:
    """What a schedule carries from step to step."""

    prune_seconds: float = 0.0  # in the pruner (with a target: the searches), over every step
    step_start: float = 1.0  # with a target: what the model the next step starts from reaches
    trained: list[training.TrainResult] = field(default_factory=list)  # fine-tuning, every step's
    step_eval: Batches | None = None  # the eval samples each intermediate step is scored on
