"""The regularize stage of a method that trains for sparsity (sweep.pruners.regularized): a copy of the
dense model trained on the train split with the method's regularizer, which the prune stage then
prunes. The dense model every figure compares against stays as it was."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch
import torch.nn as nn

from sweep import tracking, training
from sweep.job.context import Bench, Job
from sweep.job.results import Result

__all__ = ["Regularized", "regularize"]

log = logging.getLogger("sweep")


@dataclass(frozen=True, kw_only=True)
class Regularized(Result):
    model: nn.Module  # the dense architecture, trained for sparsity
    result: training.TrainResult
    lr: float

    def params(self) -> dict:
        return {tracking.PARAM_REGULARIZE_LR_USED: self.lr}

    def metrics(self) -> dict:
        r = self.result
        return {
            tracking.REGULARIZE_SECONDS: r.seconds,
            tracking.REGULARIZE_STEPS: r.steps,
            tracking.REGULARIZE_LOSS_FIRST: r.loss_first,
            tracking.REGULARIZE_LOSS_START: r.loss_start,
            tracking.REGULARIZE_LOSS_END: r.loss_end,
        }

    def tags(self) -> dict:
        return {
            tracking.TAG_REGULARIZE_STOPPED_BY: self.result.stopped_by,
            tracking.TAG_REGULARIZE_DIVERGED: self.result.diverged,
        }


def regularize(job: Job, bench: Bench) -> Regularized:
    """The method's sparse training of a copy of the dense model, with its own budget (its
    `regularize` settings; batch size, weight decay and schedule as fine-tuning's)."""
    s = job.pruner.regularize
    budget = job.budget(
        epochs=s.epochs, lr=s.lr, max_steps=s.max_steps, time_budget_s=s.time_budget_s
    )
    model = copy.deepcopy(bench.dense)
    with job.pruner.regularizing(model, bench.example) as after_backward:
        torch.manual_seed(job.cfg.seed)
        result = training.train(
            model,
            bench.train,
            budget,
            device=job.device,
            seed=job.cfg.seed,
            label=f"{job.run_name} regularize",
            class_map=job.class_map,
            after_backward=after_backward,
            chance_loss=job.chance_loss,
        )
    if result.diverged:
        log.warning(
            "%s: sparse training diverged (loss %.4g -> %.4g, stopped by %s): flagged, and kept out "
            "of the report's ranking",
            job.run_name,
            result.loss_first,
            result.loss_end,
            result.stopped_by,
        )
    return Regularized(model=model.eval(), result=result, lr=budget.lr)
