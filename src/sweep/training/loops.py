"""Training loops: the whole model (tiny models before pruning, recovery fine-tuning after it) and a
linear probe (a new head on frozen features).

Recovery fine-tuning keeps a mask method's zeros at zero (`keep_zeros`), can distil from the dense
model, and stops at its budget (epochs, optimizer steps or seconds), so every method of a sweep gets
the same one.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.nn import functional

from sweep.data import Batches

log = logging.getLogger(__name__)


@dataclass
class Budget:
    epochs: int
    lr: float
    batch_size: int
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine | constant | onecycle
    max_steps: int | None = None
    time_budget_s: float | None = None
    # the most images one forward and backward pass takes (None: the whole batch): a batch larger
    # than the machine's memory allows is run in parts and their gradients accumulated before the
    # optimizer's step, so the effective batch, learning rate and step count stay the batch's
    micro_batch: int | None = None


@dataclass
class Distill:
    teacher: nn.Module
    weight: float
    temperature: float


# Losses averaged at the start and the end of training, to tell a run that diverged
LOSS_WINDOW = 5
# A loss this many times a uniform guess's (ln classes) is a blow-up whatever it started from
FAR_ABOVE_CHANCE = 10.0


@dataclass(kw_only=True)
class TrainResult:
    steps: int
    seconds: float
    stopped_by: str  # epochs | max_steps | time_budget | non_finite_loss
    losses: list[float] = field(default_factory=list)  # every step's loss
    # the loss of a uniform guess over the classes (ln C): a loss that rose but stays below it is a
    # short run's noise (an iterative step starts from a low loss), not a divergence
    chance_loss: float = 0.0

    @property
    def loss_start(self) -> float:
        head = self.losses[:LOSS_WINDOW]
        return sum(head) / len(head) if head else math.nan

    @property
    def loss_end(self) -> float:
        tail = self.losses[-LOSS_WINDOW:]
        return sum(tail) / len(tail) if tail else math.nan

    @property
    def loss_first(self) -> float:
        """The loss of the first batch, before any update: where training really started."""
        return self.losses[0] if self.losses else math.nan

    @property
    def diverged(self) -> bool:
        """A loss went non-finite; or training ended no lower than a uniform guess's loss and above
        where it started (before the first update, or its first steps' mean: a loss that blew up at
        once has a first-steps mean far above where it started); or it ended far above a uniform
        guess's loss, however it started."""
        if any(not math.isfinite(v) for v in self.losses):
            return True
        if len(self.losses) <= LOSS_WINDOW:
            return False
        end = self.loss_end
        if self.chance_loss and end > FAR_ABOVE_CHANCE * self.chance_loss:
            return True
        return end >= self.chance_loss and end > min(self.loss_first, self.loss_start)


def zero_masks(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, mask of its non-zeros) for every weight of a conv or linear layer that has zeros."""
    out = []
    for m in model.modules():
        w = getattr(m, "weight", None)
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) and w is not None:
            mask = w.detach() != 0
            if not bool(mask.all()):
                out.append((w, mask))
    return out


def _scheduler(opt, budget: Budget, total_steps: int):
    if budget.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=budget.lr, total_steps=max(1, total_steps)
        )
    if budget.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / max(1, total_steps)))
        )
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


def _loss(
    logits: torch.Tensor, y: torch.Tensor, x: torch.Tensor, distill: Distill | None
) -> torch.Tensor:
    ce = functional.cross_entropy(logits, y)
    if distill is None or distill.weight == 0:
        return ce
    with torch.no_grad():
        teacher = distill.teacher(x)
    t = distill.temperature
    kd = (
        functional.kl_div(
            functional.log_softmax(logits / t, dim=1),
            functional.log_softmax(teacher / t, dim=1),
            log_target=True,
            reduction="batchmean",
        )
        * t
        * t
    )
    return (1 - distill.weight) * ce + distill.weight * kd


def _step(
    model, opt, sched, x, y, distill: Distill | None, masks, after_backward=None, micro=None
) -> float:
    """One optimizer step on the batch (x, y), run in parts of at most `micro` images: each part's
    mean loss weighted by its share of the batch, so the accumulated gradient is the batch's mean.
    BatchNorm normalises each part by the part's own statistics (as ghost batch normalisation
    does) and updates its running statistics once per part, by a momentum that moves them as far in
    the step's parts as one update of the whole batch would; with the whole batch in one part nothing
    differs from a plain step."""
    opt.zero_grad(set_to_none=True)
    step, loss = micro or len(x), 0.0
    with _momentum_per_step(model, parts=math.ceil(len(x) / step)):
        for i in range(0, len(x), step):
            xs, ys = x[i : i + step], y[i : i + step]
            part = _loss(model(xs), ys, xs, distill) * (len(xs) / len(x))
            part.backward()
            loss += part.detach()
    if after_backward is not None:  # a sparsity regularizer's gradient, added before the update
        after_backward(model)
    opt.step()
    sched.step()
    with torch.no_grad():
        for w, mask in masks:  # a mask method's zeros stay zero
            w.mul_(mask)
    return float(loss)


@contextlib.contextmanager
def _momentum_per_step(model: nn.Module, parts: int):
    """BatchNorm's momentum m as 1 - (1 - m)^(1/parts) while a step runs in `parts` parts: its
    running statistics keep (1 - m) of what they were per optimizer step, as with the whole batch
    (else a step in 4 parts would forget the statistics before pruning 4x as fast)."""
    norms = [
        m
        for m in (model.modules() if parts > 1 else ())
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum is not None
    ]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 1 - (1 - m.momentum) ** (1 / parts)
    try:
        yield
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum


def _stop(budget: Budget, losses: list[float], t0: float) -> str:
    """Why training stops after this step ("" when it goes on)."""
    step = len(losses)
    if not math.isfinite(losses[-1]):  # it never comes back: the rest would be spent on NaNs
        return "non_finite_loss"
    if budget.max_steps is not None and step >= budget.max_steps:
        return "max_steps"
    if budget.time_budget_s is not None and time.perf_counter() - t0 >= budget.time_budget_s:
        return "time_budget"
    return ""


def _optimizer(model: nn.Module, budget: Budget, samples: int):
    """AdamW and the budget's schedule over the steps it will take."""
    opt = torch.optim.AdamW(model.parameters(), lr=budget.lr, weight_decay=budget.weight_decay)
    total = budget.epochs * math.ceil(samples / budget.batch_size)
    return opt, _scheduler(opt, budget, min(total, budget.max_steps or total))


def train(
    model: nn.Module,
    batches: Batches,
    budget: Budget,
    device: torch.device,
    seed: int,
    label: str,
    distill: Distill | None = None,
    keep_zeros: bool = False,
    class_map: list[int] | None = None,
    after_backward: Callable[[nn.Module], None] | None = None,
    chance_loss: float = 0.0,
    after_epoch: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train every parameter of `model` on `batches`; `class_map` maps labels to the model's classes;
    `after_backward(model)` runs after each backward pass, before the optimizer's step, `after_epoch(
    epochs, steps done)` after every epoch but the last; `chance_loss` (ln C) is what the result's
    divergence rule compares against."""
    masks = zero_masks(model) if keep_zeros else []
    model.to(device).train()
    opt, sched = _optimizer(model, budget, len(batches))
    class_of = torch.tensor(class_map) if class_map is not None else None
    step_on = functools.partial(_step, model, opt, sched=sched, distill=distill, masks=masks)
    step_on = functools.partial(step_on, after_backward=after_backward, micro=budget.micro_batch)
    t0, stopped, losses = time.perf_counter(), "", []
    for epoch in range(budget.epochs):
        loss_sum, seen = 0.0, 0
        for x, y in batches.iterate(budget.batch_size, shuffle=True, seed=seed * 1000 + epoch):
            y = class_of[y] if class_of is not None else y
            losses.append(step_on(x=x.to(device), y=y.to(device)))
            loss_sum, seen = loss_sum + losses[-1] * len(y), seen + len(y)
            stopped = _stop(budget, losses, t0)
            if stopped:
                break
        _log_epoch(label, f"{epoch + 1}/{budget.epochs}", loss_sum / max(1, seen), t0)
        if stopped:
            break
        if after_epoch is not None and epoch + 1 < budget.epochs:
            after_epoch(epoch + 1, len(losses))
            model.train()
    model.eval()
    return TrainResult(
        steps=len(losses),
        seconds=time.perf_counter() - t0,
        stopped_by=stopped or "epochs",
        losses=losses,
        chance_loss=chance_loss,
    )


def _log_epoch(label: str, epoch: str, loss: float, t0: float) -> None:
    log.info(
        "training %s: epoch %s, loss %.3f, %.0fs", label, epoch, loss, time.perf_counter() - t0
    )


@torch.no_grad()
def features(
    model: nn.Module, batches: Batches, batch_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pre-logits features (what the classifier reads) of every image, and the labels."""
    model.to(device).eval()
    feats, labels = [], []
    for x, y in batches.iterate(batch_size):
        feats.append(
            model.forward_head(model.forward_features(x.to(device)), pre_logits=True).float().cpu()
        )
        labels.append(y)
    return torch.cat(feats), torch.cat(labels)


def linear_probe(
    model: nn.Module, batches: Batches, budget: Budget, device: torch.device, seed: int, label: str
) -> None:
    """Fit the model's (new) classifier on frozen features of the train split."""
    head = model.get_classifier()
    if not isinstance(head, nn.Linear):
        raise TypeError(
            f"model.head=fit needs a linear classifier; {label} has {type(head).__name__}: "
            f"use model.head=finetune"
        )
    t0 = time.perf_counter()
    x, y = features(model, batches, budget.batch_size, device)
    head.to(device).train()
    opt = torch.optim.AdamW(head.parameters(), lr=budget.lr, weight_decay=budget.weight_decay)
    steps = budget.epochs * math.ceil(len(y) / budget.batch_size)
    sched = _scheduler(opt, budget, steps)
    g = torch.Generator().manual_seed(seed)
    for _ in range(budget.epochs):
        order = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), budget.batch_size):
            idx = order[i : i + budget.batch_size]
            loss = functional.cross_entropy(head(x[idx].to(device)), y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    head.eval()
    log.info(
        "linear probe %s: %d epochs on %d features, loss %.3f, %.0fs",
        label,
        budget.epochs,
        len(y),
        loss.item(),
        time.perf_counter() - t0,
    )
