"""The evaluate stage: dense and one-shot top-1, on how many eval samples the budget allows."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn as nn

from sweep import tracking
from sweep.data import Batches
from sweep.job import shared
from sweep.job.context import Bench, Job
from sweep.job.measure import Measured
from sweep.job.results import Result
from sweep.training.evaluate import at_chance, top1

__all__ = ["Accuracy", "eval_samples", "evaluate", "top1_of"]

log = logging.getLogger("sweep")


@dataclass(frozen=True, kw_only=True)
class Accuracy(Result):
    dense: float
    oneshot: float  # the pruned model before fine-tuning
    samples: int
    at_chance: bool
    eval: Batches  # the samples evaluated
    dense_shared: bool = False  # dense top-1 read from an earlier job of the same inputs

    def params(self) -> dict:
        return {tracking.PARAM_EVAL_SAMPLES: self.samples}

    def tags(self) -> dict:
        return {tracking.TAG_DENSE_TOP1_SOURCE: "shared" if self.dense_shared else "computed"}

    def metrics(self) -> dict:
        return {tracking.DENSE_ACCURACY: self.dense, tracking.ACCURACY_ONESHOT: self.oneshot}


def eval_samples(cfg, device: torch.device, n_split: int, per_image_s: float) -> int:
    """How many eval samples: eval.max_samples, or (auto) what fits eval.time_budget_s on a CPU."""
    if cfg.max_samples is None:
        return n_split
    if cfg.max_samples != "auto":
        return min(n_split, cfg.max_samples)
    if device.type == "cuda":
        return n_split
    fit = int(cfg.time_budget_s / max(per_image_s, 1e-9))
    return min(n_split, max(cfg.min_samples, fit))


def top1_of(job: Job, model: nn.Module, batches: Batches, what: str) -> float:
    label = f"{job.run_name} {what}"
    return top1(
        model,
        batches,
        batch_size=job.cfg.eval.batch_size,
        device=job.device,
        class_map=job.class_map,
        label=label,
    )


def evaluate(job: Job, bench: Bench, pruned: nn.Module, measured: Measured) -> Accuracy:
    """The evaluate stage: dense and one-shot top-1 on the same eval samples (on a CPU, as many as fit
    `eval.time_budget_s` at the measured latency)."""
    per_image_s = sum(s.median_ms for s in measured.latency) / 1000.0 / measured.batch_size
    # one count per sweep and model (every method scored on the same images), one dense top-1 per
    # set of inputs: what every job of the model would otherwise repeat (sweep.job.shared)
    n, _ = shared.eval_count(
        job,
        len(bench.eval),
        lambda: eval_samples(job.cfg.eval, job.device, len(bench.eval), per_image_s),
    )
    split = bench.eval.head(n)
    acc_dense, reused = shared.dense_top1(
        job,
        weights_id=bench.weights_id,
        preprocess=bench.preprocess,
        n=n,
        compute=lambda: top1_of(job, bench.dense, split, "dense"),
    )
    acc_oneshot = top1_of(job, pruned, split, "pruned")
    chance = at_chance(acc_dense, n, job.dataset.num_classes)
    if chance:
        log.warning(
            "%s: dense accuracy %.1f%% on %d samples is at chance: accuracy figures of this run "
            "mean nothing",
            job.run_name,
            100 * acc_dense,
            n,
        )
    return Accuracy(
        dense=acc_dense,
        oneshot=acc_oneshot,
        samples=n,
        at_chance=chance,
        eval=split,
        dense_shared=reused,
    )
