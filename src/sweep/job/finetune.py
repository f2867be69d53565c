"""The finetune stages (after each intermediate step of a schedule, and the recovery fine-tuning at the
end) and their budgets."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass

import torch
import torch.nn as nn

from sweep import tracking, training
from sweep.data import Batches
from sweep.job.context import Bench, Job, Progress, Step
from sweep.job.evaluate import Accuracy, eval_samples, top1_of
from sweep.job.results import Result
from sweep.models import weights
from sweep.pruners.base import PruneKind

__all__ = ["Recovered", "StepTuned", "finetune", "finetune_step"]

log = logging.getLogger("sweep")


def _budget(job: Job, train: Batches, step: Step, whole: bool = False) -> training.Budget | None:
    """Step `step`'s share of the fine-tuning budget (all of it for one-shot, or `whole`): the
    optimizer steps of `finetune.epochs` (at most `max_steps`) and `time_budget_s` split evenly over
    the schedule's steps, so every schedule trains as long as one-shot. None: nothing to train."""
    f = job.cfg.finetune
    if f.epochs == 0:
        return None
    budget = job.budget(
        epochs=f.epochs, lr=f.lr, max_steps=f.max_steps, time_budget_s=f.time_budget_s
    )
    if step.n == 1 or whole:
        return budget
    total = f.epochs * math.ceil(len(train) / f.batch_size)
    total = min(total, f.max_steps or total)
    share = total * step.index // step.n - total * (step.index - 1) // step.n
    if share == 0:
        return None
    seconds = f.time_budget_s / step.n if f.time_budget_s is not None else None
    return dataclasses.replace(budget, max_steps=share, time_budget_s=seconds)


def _train(
    job: Job, bench: Bench, model: nn.Module, budget, step: Step, after_epoch=None
) -> training.TrainResult:
    f = job.cfg.finetune
    distill = (
        training.Distill(bench.dense.eval(), f.distill.weight, f.distill.temperature)
        if f.distill.weight
        else None
    )
    # each step's share sees its own shuffle of the train split (one-shot: the seed's own)
    seed = job.cfg.seed if step.n == 1 else job.cfg.seed * 1009 + step.index
    torch.manual_seed(seed)
    return training.train(
        model,
        bench.train,
        budget,
        device=job.device,
        seed=seed,
        label=f"{job.run_name} fine-tune" + (f" step {step.index}/{step.n}" if step.n > 1 else ""),
        distill=distill,
        keep_zeros=job.pruner.kind is not PruneKind.STRUCTURAL,
        class_map=job.class_map,
        chance_loss=job.chance_loss,
        after_epoch=after_epoch,
    )


@dataclass(frozen=True, kw_only=True)
class StepTuned(Result):
    """After an intermediate step: its fine-tuning's end loss and top-1 (at MLflow step k)."""

    step: Step
    lr: float | None
    loss_end: float | None
    accuracy: float

    def params(self) -> dict:
        return {} if self.lr is None else {tracking.PARAM_LR_USED: self.lr}

    def step_metrics(self) -> dict:
        metrics = {tracking.STEP_ACCURACY: self.accuracy}
        if self.loss_end is not None:
            metrics[tracking.STEP_FINETUNE_LOSS_END] = self.loss_end
        return {self.step.index: metrics}


def _step_split(
    job: Job, model: nn.Module, bench: Bench, progress: Progress, steps: int
) -> Batches:
    """The eval samples an intermediate step is scored on: as `eval.max_samples` says, with 1/steps of
    `eval.time_budget_s` each (timed on this model once)."""
    if progress.step_eval is None:
        x = bench.eval.first(min(job.cfg.eval.batch_size, len(bench.eval))).to(job.device)
        with torch.no_grad():
            model.eval()(x)
            t0 = time.perf_counter()
            model(x)
        per_image_s = (time.perf_counter() - t0) / len(x) * steps
        n = eval_samples(job.cfg.eval, job.device, len(bench.eval), per_image_s)
        progress.step_eval = bench.eval.head(n)
    return progress.step_eval


def finetune_step(
    job: Job, bench: Bench, pruned: nn.Module, step: Step, progress: Progress
) -> StepTuned:
    """Fine-tuning after an intermediate step of an iterative schedule, with its share of the budget;
    top-1 after it is the step's `step_accuracy_top1`."""
    budget = _budget(job, bench.train, step)
    loss_end = None
    if budget is not None:
        result = _train(job, bench, model=pruned, budget=budget, step=step)
        progress.trained.append(result)
        loss_end = result.loss_end
    split = _step_split(job, pruned, bench=bench, progress=progress, steps=step.n)
    accuracy = top1_of(job, pruned, split, f"after step {step.index}")
    lr = job.lr(job.cfg.finetune.lr) if job.cfg.finetune.epochs else None
    return StepTuned(step=step, lr=lr, loss_end=loss_end, accuracy=accuracy)


@dataclass(frozen=True, kw_only=True)
class Recovered(Result):
    """The pruned model after recovery fine-tuning (= one-shot without it), and how the training went
    over every step of the schedule."""

    accuracy: float
    result: training.TrainResult | None
    init: str  # inherited | scratch
    init_method: str | None  # scratch: how the model was re-initialised
    lr: float | None
    trained: tuple[training.TrainResult, ...] = ()
    params_nonzero: int = 0
    # recovery as history: (optimizer steps, top-1) from one-shot (step 0, None for scratch) to the end
    curve: tuple[tuple[int, float], ...] = ()

    def params(self) -> dict:
        return {} if self.lr is None else {tracking.PARAM_LR_USED: self.lr}

    def metrics(self) -> dict:
        if not self.trained:
            return {}
        return {
            tracking.FINETUNE_SECONDS: sum(r.seconds for r in self.trained),
            tracking.FINETUNE_STEPS: sum(r.steps for r in self.trained),
            tracking.FINETUNE_PARAMS_NONZERO: self.params_nonzero,
            tracking.FINETUNE_LOSS_START: self.trained[0].loss_start,
            tracking.FINETUNE_LOSS_FIRST: self.trained[0].loss_first,
            tracking.FINETUNE_LOSS_END: self.trained[-1].loss_end,
        }

    def step_metrics(self) -> dict:
        """The recovery fine-tuning's loss and top-1 at MLflow step = its optimizer steps."""
        points: dict[int, dict] = {}
        for step, top1 in self.curve:
            points.setdefault(step, {})[tracking.FINETUNE_CURVE_TOP1] = top1
        losses = self.result.losses if self.curve and self.result is not None else []
        for step, loss in loss_points(losses):
            points.setdefault(step, {})[tracking.FINETUNE_CURVE_LOSS] = loss
        return points

    def tags(self) -> dict:
        tags = {tracking.TAG_FINETUNE_INIT: self.init}
        if self.init_method is not None:
            tags[tracking.TAG_FINETUNE_INIT_METHOD] = self.init_method
        if self.trained:
            tags[tracking.TAG_FINETUNE_STOPPED_BY] = self.stopped_by
            tags[tracking.TAG_DIVERGED] = self.diverged
        return tags

    @property
    def diverged(self) -> bool:
        """Each step's fine-tuning is judged on its own (the next step's pruning raises the loss)."""
        return any(r.diverged for r in self.trained)

    @property
    def stopped_by(self) -> str:
        runs = self.trained
        return next(
            (r.stopped_by for r in runs if r.stopped_by == "non_finite_loss"), runs[-1].stopped_by
        )


def finetune(
    job: Job, bench: Bench, pruned: nn.Module, acc: Accuracy, progress: Progress
) -> Recovered:
    """Recovery fine-tuning of the pruned model, the same budget for every method (an iterative
    schedule's last share); with finetune.init=scratch the pruned architecture re-initialised and
    trained with the whole budget instead."""
    f, last = job.cfg.finetune, Step(job.cfg.prune.steps, job.cfg.prune.steps)
    how = None
    if f.init == "scratch":
        how = weights.reinitialise(pruned, job.cfg.model, job.dataset.num_classes, job.cfg.seed + 1)
    budget = _budget(job, bench.train, last, whole=f.init == "scratch")
    lr = job.lr(job.cfg.finetune.lr) if f.epochs else None
    result, curve = None, [] if how else [(0, acc.oneshot)]
    if budget is not None:
        every = _every_epochs(job, pruned, acc=acc, curve=curve)
        result = _train(job, bench, model=pruned, budget=budget, step=last, after_epoch=every)
        progress.trained.append(result)
    if not progress.trained:
        return Recovered(accuracy=acc.oneshot, result=None, init=f.init, init_method=how, lr=lr)
    recovered = top1_of(job, pruned, acc.eval, "fine-tuned")
    curve = [*curve, (result.steps, recovered)] if result is not None else []
    nonzero = sum(int(torch.count_nonzero(p)) for p in pruned.parameters())
    done = Recovered(
        accuracy=recovered,
        result=result or progress.trained[-1],
        init=f.init,
        init_method=how,
        lr=lr,
        trained=tuple(progress.trained),
        params_nonzero=nonzero,
        curve=tuple(curve),
    )
    if done.diverged:
        log.warning(
            "%s: fine-tuning diverged (loss %.4g -> %.4g, stopped by %s): flagged, and kept out of "
            "the report's ranking",
            job.run_name,
            done.trained[0].loss_start,
            done.trained[-1].loss_end,
            done.stopped_by,
        )
    return done


def _every_epochs(job: Job, pruned: nn.Module, acc: Accuracy, curve: list):
    """What runs after each epoch of recovery fine-tuning: top-1 on the eval split every
    `finetune.eval_every` epochs, added to `curve` (None: never)."""
    every = job.cfg.finetune.eval_every
    if not every:
        return None

    def after(epochs: int, steps: int) -> None:
        if epochs % every == 0:
            curve.append((steps, top1_of(job, pruned, acc.eval, f"fine-tuning epoch {epochs}")))

    return after


# the loss history's points: the mean over each of about this many stretches of fine-tuning
LOSS_POINTS = 50


def loss_points(losses: list[float]) -> list[tuple[int, float]]:
    """(step at the end of a stretch, mean loss over it): every step's loss is too many points for
    the UI's charts and too noisy to compare methods by."""
    width = max(1, math.ceil(len(losses) / LOSS_POINTS))
    return [
        (min(i + width, len(losses)), sum(chunk) / len(chunk))
        for i in range(0, len(losses), width)
        if (chunk := losses[i : i + width])
    ]
