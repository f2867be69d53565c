"""The prune stage: one step of the schedule, at the config's ratio or searched to its cost target."""

from __future__ import annotations

import copy
import dataclasses
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from omegaconf import OmegaConf

from sweep import targets, tracking
from sweep.job import shared
from sweep.job.context import Bench, Job, Progress, Step
from sweep.job.results import Result
from sweep.measure import deployed, runtimes
from sweep.measure.counting import count
from sweep.measure.latency import LatencySettings, Speedup, time_models
from sweep.pruners.base import PruneKind

__all__ = ["Pruned", "TargetMissed", "prune_step", "step_target"]

log = logging.getLogger("sweep")


@dataclass(frozen=True, kw_only=True)
class Pruned(Result):
    """One step's pruned model, the ratio the method ran at (the target's search result, or `ratio`),
    and how a searched target landed."""

    model: nn.Module
    ratio: float
    step: Step
    prune_seconds: float  # in the pruner so far, every step
    target: targets.Target | None = None  # the job's target (not the step's share of it)
    found: targets.Found | None = None
    kept: dict | None = None  # with several steps: what this step's model kept of the dense one

    def metrics(self) -> dict:
        metrics = {
            tracking.PRUNE_SECONDS: self.prune_seconds,
            tracking.METRIC_RATIO_USED: self.ratio,
        }
        if self.target is not None and self.step.last:
            found = self.found
            metrics |= {
                tracking.TARGET_ASKED: self.target.value,
                tracking.TARGET_VALUE: found.reached,
                tracking.TARGET_CI_LOW: found.low,
                tracking.TARGET_CI_HIGH: found.high,
                tracking.TARGET_REACHED: float(found.within),
                tracking.TARGET_TRIALS: len(found.trials),
                tracking.TARGET_REFINE_RATIO: found.refine_ratio,
            }
        return metrics

    def tags(self) -> dict:
        if self.target is None or not self.step.last:
            return {}
        tags = {tracking.TAG_TARGET_LANDING: self.found.landing}
        if not self.found.within:
            tags[tracking.TAG_TARGET_STOPPED_BY] = self.found.stopped_by
            tags[tracking.TAG_TARGET_NOTE] = self.found.note
        return tags

    def step_metrics(self) -> dict:
        return {self.step.index: self.kept} if self.kept else {}


@dataclass(frozen=True, kw_only=True)
class TargetMissed(Result):
    """A target no ratio of the method reaches (the job ends not applicable)."""

    asked: float

    def metrics(self) -> dict:
        return {tracking.TARGET_ASKED: self.asked, tracking.TARGET_REACHED: 0.0}


def prune_step(job: Job, bench: Bench, base: nn.Module, step: Step, progress: Progress) -> Pruned:
    """Step `step` of the schedule on `base` (the dense model, or what the step before left)."""
    target = targets.of_config(job.cfg.target)
    t0 = time.perf_counter()
    found = None
    if target is None:
        ratio = job.pruner.schedule(job.cfg.ratio, step.n)[step.index - 1]
        model = _prune_at(job, bench, base, ratio)
    else:
        try:
            found = _search(
                job, bench, base=base, target=step_target(target, step), start=progress.step_start
            )
        except targets.TargetNotReached as e:
            e.result = TargetMissed(asked=target.value)
            raise
        model, ratio, progress.step_start = found.model, found.ratio, found.reached
        if step.last and not found.within:
            log.warning("%s: %s", job.run_name, found.note)
    progress.prune_seconds += time.perf_counter() - t0
    _check_output(model, bench)
    kept = _kept(job, bench, model=model, step=step, ratio=ratio)
    return Pruned(
        model=model,
        ratio=ratio,
        step=step,
        prune_seconds=progress.prune_seconds,
        target=target,
        found=found,
        kept=kept,
    )


def _check_output(pruned: nn.Module, bench: Bench) -> None:
    with torch.no_grad():
        out, want = pruned(bench.example), bench.dense(bench.example)
    if out.shape != want.shape:
        raise RuntimeError(
            f"pruned model outputs shape {tuple(out.shape)}, the dense model {tuple(want.shape)}"
        )


def _kept(job: Job, bench: Bench, model: nn.Module, step: Step, ratio: float) -> dict | None:
    """With several steps: the fractions of the dense model's cost step `step` kept (masks: non-zero)."""
    if step.n == 1:
        return None
    dense, pruned = bench.dense_counts, count(model, bench.example)
    masks = job.pruner.kind is not PruneKind.STRUCTURAL
    macs, params = ("macs_nonzero", "params_nonzero") if masks else ("macs", "params_total")
    kept = {
        tracking.STEP_MACS_KEPT: getattr(pruned, macs) / max(1, getattr(dense, macs)),
        tracking.STEP_PARAMS_KEPT: getattr(pruned, params) / max(1, getattr(dense, params)),
        tracking.STEP_RATIO: ratio,
    }
    log.info(
        "%s: pruning step %d/%d at ratio %.4g: MACs kept %.3f, params kept %.3f",
        job.run_name,
        step.index,
        step.n,
        ratio,
        kept[tracking.STEP_MACS_KEPT],
        kept[tracking.STEP_PARAMS_KEPT],
    )
    return kept


def step_target(target: targets.Target, step: Step) -> targets.Target:
    """Where step k of n aims: an equal share of the cost to remove (a speedup: of its logarithm), the
    last step the target itself."""
    if step.last:
        return target
    f = step.index / step.n
    value = target.value**f if target.kind == "speedup" else 1 - (1 - target.value) * f
    return dataclasses.replace(target, value=value)


# ---- the search glue: a method's pruning at a ratio, as targets.search tries it ----------------------
def _prune_at(job: Job, bench: Bench, base: nn.Module, ratio: float, fine=False) -> nn.Module:
    """A pruned copy of `base` at `ratio`: the method's `prune`, or with `fine` its finest steps."""
    pruned = copy.deepcopy(base)
    torch.manual_seed(job.cfg.seed)  # random importance picks the same channels in every run
    step = job.pruner.refine if fine else job.pruner.prune
    return step(pruned, ratio, bench.example, bench.calibration).eval()


def _search(job: Job, bench: Bench, base: nn.Module, target, start: float) -> targets.Found:
    if target.kind != "speedup":
        return targets.method_search(
            job.pruner,
            base,
            dense=bench.dense_counts,
            example=bench.example,
            target=target,
            calibration=bench.calibration,
            seed=job.cfg.seed,
            start=start,
        )
    if job.pruner.kind is not PruneKind.STRUCTURAL:
        raise targets.TargetNotReached(
            f"target {target.label} needs a method that removes channels; {job.pruner.name} is "
            f"{job.pruner.kind.value} (dense kernels do the same work, so no speedup to search)"
        )
    # the search weighs readings of one job against each other and the target, by each timing's own
    # spread: the run-to-run spread between jobs would only blunt its steps
    measure: LatencySettings = OmegaConf.to_object(job.cfg.measure)
    settings = dataclasses.replace(measure, run_to_run_cv=0.0)
    x = bench.eval.first(settings.batch_size)
    if target.runtime == tracking.EAGER:
        return _speedup_search(
            job,
            bench,
            base=base,
            target=target,
            start=start,
            read=_eager_reader(job, bench, x, settings),
        )
    with tempfile.TemporaryDirectory(prefix="sweep-target-") as tmp:
        runtime = runtimes.get(target.runtime)
        read = _runtime_reader(
            job, bench, x=x, settings=settings, runtime=runtime, workdir=Path(tmp)
        )
        return _speedup_search(job, bench, base=base, target=target, start=start, read=read)


def _speedup_search(job: Job, bench: Bench, base: nn.Module, target, start: float, read):
    """targets.search over the method's ratio, each trial's speedup read by `read(model)` (also the
    reading that confirms where the search stops)."""
    refine = None
    if job.pruner.refines:

        def refine(model: nn.Module):
            return _speedup_trial(job, bench, model, read, fine=True)

    trial = _speedup_trial(job, bench, base, read)
    return targets.search(trial, target, start=start, refine=refine, confirm=read)


def _eager_reader(job: Job, bench: Bench, x, settings):
    def read(model: nn.Module) -> targets.Reading:
        timing = time_models([bench.dense, model], x, settings, job.device)
        return _reading(timing.speedup(0, 1, settings.bootstrap, job.cfg.seed))

    return read


def _runtime_reader(job: Job, bench: Bench, x, settings, runtime: runtimes.Runtime, workdir: Path):
    """Readings in a deployment runtime, dense and pruned timed as the measure stage times them there
    (the dense model exported once); a runtime that cannot take a model ends the job not applicable."""
    ctx = shared.runtime_context(job, bench, settings=settings, workdir=workdir, x=x)

    def read(model: nn.Module) -> targets.Reading:
        try:
            r = deployed.time_in(
                runtime,
                bench.dense,
                pruned=model,
                x=x,
                ctx=ctx,
                settings=settings,
                seed=job.cfg.seed,
            )
        finally:  # a trial model's id may be a later one's: nothing of it stays cached
            for cache in (ctx.exports, ctx.references, ctx.export_errors):
                cache.pop(id(model), None)
        return _reading(r.speedup)

    return read


def _reading(s: Speedup) -> targets.Reading:
    return targets.Reading(value=s.value, low=s.ci_low, high=s.ci_high)


def _speedup_trial(job: Job, bench: Bench, base: nn.Module, read, fine=False):
    """prune a fresh copy of `base` at a ratio -> (model, its speedup over the dense model, read)."""

    def trial(ratio: float):
        model = _prune_at(job, bench, base=base, ratio=ratio, fine=fine)
        return model, read(model)

    return trial
