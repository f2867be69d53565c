"""One job: build -> weights -> prune -> measure -> evaluate -> finetune -> log.

Each stage is a function of the job and what earlier stages returned; it is timed, and logs what it
measured as soon as it has it, so a job that fails half-way keeps its dense figures in its FAILED run.
An iterative schedule (`prune.steps=N`) runs prune -> finetune N - 1 times before the last prune, each
fine-tuning with 1/N of the budget; the stages' seconds add up over the steps.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sweep import limits, provenance, targets, tracking, training, weights
from sweep.config import check_job_config
from sweep.data import Batches, Dataset, preprocessing
from sweep.errors import NotApplicable, SweepConfigError, first_line, one_line
from sweep.evaluate import at_chance, top1
from sweep.measure import deployed, peak
from sweep.measure import runtimes as RT
from sweep.measure.counting import Counts, count
from sweep.measure.latency import (
    LatencySettings,
    LatencyStats,
    Speedup,
    paired_speedup,
    resolve_threads,
    time_models,
)
from sweep.pruners.base import Calibration, PruneKind, Pruner

log = logging.getLogger("sweep")

STAGES = ("build", "weights", "prune", "measure", "evaluate", "finetune", "log")
# Logged data is sent to MLflow after these stages, and in any case when the run ends (also on failure
# or SIGTERM): each send costs a store round trip, which adds up over a grid of short jobs.
CHECKPOINT_STAGES = ("measure",)


# ---- what a job is -------------------------------------------------------------------------------------
def run_name_of(cfg: DictConfig) -> str:
    target = targets.of_config(cfg.target)
    level = target.label if target else f"{cfg.ratio:g}"
    return f"{cfg.model.alias}/{cfg.pruner.name}/{level}{protocol_suffix(cfg)}"


def protocol_suffix(cfg: DictConfig) -> str:
    """`/steps5`, `/scratch`: the protocol of a run whose schedule or init is not the default."""
    steps, init = cfg.prune.steps, cfg.finetune.init
    return (f"/steps{steps}" if steps > 1 else "") + (f"/{init}" if init != "inherited" else "")


def sweep_id_of(cfg: DictConfig) -> str:
    return cfg.sweep_id or time.strftime("%Y%m%d-%H%M%S-single")


def job_key(cfg: DictConfig) -> str:
    """Stable identity of a job: its resolved config minus where things are written and tracked (and
    minus `force`). Includes sweep_id, so re-running a sweep finds its own finished jobs."""
    flat = tracking.flatten(OmegaConf.to_container(cfg, resolve=True), drop=tracking.NOT_IDENTITY)
    return hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:20]


@dataclass
class Job:
    """A job's config, its run, and the objects its config names."""

    cfg: DictConfig
    run: tracking.JobRun
    pruner: Pruner
    dataset: Dataset
    device: torch.device
    limits: limits.Watchdog
    model_params: int = 0  # the dense model's, once built (limits scale with it)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # summed over a schedule's steps
    prune_seconds: float = 0.0  # in the pruner (with a target: the searches), over every step
    step_start: float = 1.0  # with a target: what the model the next step starts from reaches
    trained: list[training.TrainResult] = field(default_factory=list)  # fine-tuning, every step's
    step_eval: Batches | None = None  # the eval samples each intermediate step is scored on
    dense_counts: Counts | None = None  # the dense model's, traced once (every step compares to it)

    def counts_of_dense(self, dense: nn.Module, example: torch.Tensor) -> Counts:
        if self.dense_counts is None:
            self.dense_counts = count(dense, example)
        return self.dense_counts

    @property
    def run_name(self) -> str:
        return run_name_of(self.cfg)

    @property
    def head_map(self) -> list[int] | None:
        """With a kept pretrained head: the head's class for each of the dataset's labels."""
        return self.dataset.class_map if self.cfg.model.head == "keep" else None

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
                "pruner.ratio_means": self.pruner.ratio_means,
            }
        )
        if targets.of_config(self.cfg.target) is not None:
            del params[tracking.PARAM_RATIO]  # searched: the metric ratio_used says what was found
        return params


@dataclass
class Built:
    model: nn.Module
    train: Batches  # the dataset's splits through the model's own preprocessing
    eval: Batches
    example: torch.Tensor  # one input image, on the job's device
    preprocess: dict  # timm's data config the transform was made from
    start: str  # pretrained | random
    note: str  # why pretrained weights were not used, if they were asked for


@dataclass
class Measured:
    dense: Counts
    pruned: Counts
    noop: bool
    latency: tuple[LatencyStats, LatencyStats]  # dense, pruned
    speedup: Speedup
    batch_size: int
    # dense and pruned latency in each runtime timed besides eager
    runtime_latency: dict[str, tuple[LatencyStats, LatencyStats]] = field(default_factory=dict)
    onnx_saved: bool = False


@dataclass
class Accuracy:
    dense: float
    oneshot: float  # the pruned model before fine-tuning
    samples: int
    at_chance: bool
    eval: Batches  # the samples evaluated


@dataclass
class Recovered:
    accuracy: float  # the pruned model after fine-tuning (= one-shot without it)
    result: training.TrainResult | None


def stage(name: str):
    """Time a stage, log its seconds, and send what was logged at checkpoint stages."""
    assert name in STAGES

    def decorate(fn):
        @functools.wraps(fn)
        def timed(job: Job, *args):
            job.limits.stage(name, job.stage_timeout_s(name), f"job.stage_timeout_s.{name}")
            t0 = time.perf_counter()
            out = fn(job, *args)
            dt = time.perf_counter() - t0
            job.limits.stage(f"after {name}", None)
            total = job.stage_seconds[name] = job.stage_seconds.get(name, 0.0) + dt
            job.run.log_metrics({tracking.STAGE_METRIC.format(name): total})
            if name in CHECKPOINT_STAGES:
                job.run.flush()
            log.info("%s: %s done in %.1fs", job.run_name, name, dt)
            return out

        return timed

    return decorate


# ---- the stages --------------------------------------------------------------------------------------------
def prepare(
    cfg: DictConfig, run: tracking.JobRun, dataset: Dataset, watchdog: limits.Watchdog
) -> Job:
    """The pruner and device the config names, with the checked dataset (inside the job's run, so a
    failure here is recorded)."""
    job = Job(
        cfg,
        run,
        instantiate(cfg.pruner),
        dataset,
        provenance.resolve_device(cfg.device),
        watchdog,
    )
    run.set_tags(
        {
            tracking.TAG_DEVICE: provenance.device_description(job.device),
            tracking.TAG_KIND: job.pruner.kind.value,
            tracking.TAG_FAMILY: job.pruner.family.name,
            tracking.TAG_FAMILY_TITLE: job.pruner.family.title,
            tracking.TAG_SPEEDUP_POSSIBLE: job.pruner.kind.dense_speedup_possible,
            tracking.TAG_SPARSE_KERNELS: job.pruner.kind.sparse_kernel_speedup_possible,
            **dataset.notes(),  # an image tree's unreadable and ignored files
        }
    )
    target = targets.of_config(cfg.target)
    if target is not None:
        run.set_tags({tracking.TAG_TARGET: target.label})
    run.log_params(job.params())
    return job


@stage("build")
def build(job: Job) -> Built:
    model, start, note = weights.build_start(job.cfg.model, job.dataset.num_classes, job.cfg.seed)
    class_map = job.head_map
    if class_map is not None and max(class_map) >= model.num_classes:
        raise RuntimeError(
            f"{job.cfg.model.name} has {model.num_classes} classes; dataset {job.dataset.name} "
            f"maps into classes up to {max(class_map)}"
        )
    transform, preprocess = preprocessing(model, job.cfg.model.input_size)
    job.run.log_params({f"data.{k}": v for k, v in preprocess.items()})
    train, held_out = (
        Batches(job.dataset, "train", transform),
        Batches(job.dataset, "eval", transform),
    )
    example = held_out.first(1).to(job.device)
    job.model_params = sum(p.numel() for p in model.parameters())
    if job.cfg.job.max_memory_gb == "auto":
        job.limits.memory_mb = limits.auto_memory_mb(job.limits.start_mb, job.model_params)
        job.run.log_params({"job.max_memory_gb_used": round(job.limits.memory_mb / 1024, 2)})
    # before weights (which may train): a method that cannot apply says so at once
    _preflight(job, model.to(job.device), example)
    return Built(model, train, held_out, example, preprocess, start, note)


def _preflight(job: Job, model: nn.Module, example: torch.Tensor) -> None:
    """The method's check. A structural method's check prunes a copy of the model (and, where that
    fails, finds the layers to keep whole: a few prunings more), so it runs under the prune stage's
    limit for three prunes (a library call that hangs there must not hang the job)."""
    limit = job.cfg.job.stage_timeout_s.prune
    if limit == "auto":
        limit = limits.auto_stage_timeout_s("prune", job.model_params, 3)
    job.limits.stage("preflight", limit, "job.stage_timeout_s.prune")
    job.pruner.check(model, job.cfg.model.name, example)
    kept = job.pruner.kept_dense
    if kept:
        log.info(
            "%s: %s cannot prune %s; pruning the rest of the model and keeping those whole",
            job.run_name,
            job.pruner.name,
            ", ".join(kept),
        )
        job.run.set_tags({tracking.TAG_KEPT_DENSE: ",".join(kept)})
    job.limits.stage("build", job.stage_timeout_s("build"), "job.stage_timeout_s.build")


@stage("weights")
def load_weights(job: Job, built: Built) -> nn.Module:
    cfg = job.cfg
    dense, info = weights.fit(
        built.model,
        built.start,
        built.note,
        cfg.model,
        built.train,
        built.preprocess,
        job.device,
        cfg.weights.cache_dir,
        cfg.seed,
    )
    job.run.set_tags(
        {tracking.TAG_WEIGHTS: info.source, **({"weights_note": info.note} if info.note else {})}
    )
    if info.cache_path:
        job.run.log_params({"weights.cache_path": info.cache_path})
    return dense


@dataclass
class Pruned:
    model: nn.Module
    ratio: float  # the ratio the method ran at (the target's search result, or `ratio`)
    found: targets.Found | None = None  # with a target: how the search landed


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


def calibration_of(job: Job, built: Built) -> Calibration | None:
    """The pruner's calibration batches: shuffled (seeded) from the train split, never the eval split."""
    n = job.pruner.calibration_batches
    if not n:
        return None
    batches = []
    for x, y in built.train.iterate(
        job.pruner.calibration_batch_size, shuffle=True, seed=job.cfg.seed
    ):
        if job.head_map is not None:
            y = torch.tensor(job.head_map)[y]
        batches.append((x.to(job.device), y.to(job.device)))
        if len(batches) == n:
            break
    job.run.log_params({"pruner.calibration_samples": sum(len(y) for _, y in batches)})
    return Calibration(batches)


def _prune_at(job: Job, base: nn.Module, ratio: float, built: Built, cal, fine=False) -> nn.Module:
    """A pruned copy of `base` at `ratio`: the method's `prune`, or with `fine` its finest steps."""
    pruned = copy.deepcopy(base)
    torch.manual_seed(job.cfg.seed)  # random importance picks the same channels in every run
    step = job.pruner.refine if fine else job.pruner.prune
    return step(pruned, ratio, built.example, cal).eval()


def _speedup_reading(job: Job, dense: nn.Module, model: nn.Module, x, settings) -> targets.Reading:
    lat = time_models([dense, model], x, settings, job.device).stats
    s = paired_speedup(lat[0].samples_ms, lat[1].samples_ms, settings.bootstrap, job.cfg.seed)
    return targets.Reading(s.value, s.ci_low, s.ci_high)


def _speedup_trial(job: Job, dense: nn.Module, base: nn.Module, built: Built, cal, fine=False):
    """prune a fresh copy of `base` at a ratio -> (model, its speedup over the dense model, measured)."""
    settings: LatencySettings = OmegaConf.to_object(job.cfg.measure)
    x = built.eval.first(settings.batch_size)

    def trial(ratio: float):
        model = _prune_at(job, base, ratio, built, cal, fine)
        return model, _speedup_reading(job, dense, model, x, settings)

    return trial


def step_target(target: targets.Target, step: Step) -> targets.Target:
    """Where step k of n aims: an equal share of the cost to remove (a speedup: of its logarithm), the
    last step the target itself."""
    if step.last:
        return target
    f = step.index / step.n
    value = target.value**f if target.kind == "speedup" else 1 - (1 - target.value) * f
    return dataclasses.replace(target, value=value)


def _search(job: Job, dense, base, built: Built, target, cal, start: float) -> Pruned:
    if target.kind != "speedup":
        found = targets.method_search(
            job.pruner,
            base,
            job.counts_of_dense(dense, built.example),
            built.example,
            target,
            cal,
            job.cfg.seed,
            start,
        )
        return Pruned(found.model, found.ratio, found)
    if job.pruner.kind is not PruneKind.STRUCTURAL:
        raise targets.TargetNotReached(
            f"target {target.label} needs a method that removes channels; {job.pruner.name} is "
            f"{job.pruner.kind.value} (dense kernels do the same work, so no speedup to search)"
        )
    settings: LatencySettings = OmegaConf.to_object(job.cfg.measure)
    x = built.eval.first(settings.batch_size)
    confirm = functools.partial(_speedup_reading, job, dense, x=x, settings=settings)
    refine = None
    if job.pruner.refines:

        def refine(model: nn.Module):
            return _speedup_trial(job, dense, model, built, cal, fine=True)

    trial = _speedup_trial(job, dense, base, built, cal)
    found = targets.search(trial, target, start, refine, confirm)
    return Pruned(found.model, found.ratio, found)


def _log_target(job: Job, target: targets.Target, found: targets.Found) -> None:
    job.run.log_metrics(
        {
            "target_asked": target.value,
            "target_value": found.reached,
            "target_value_ci_low": found.low,
            "target_value_ci_high": found.high,
            "target_reached": float(found.within),
            "target_trials": len(found.trials),
            "target_refine_ratio": found.refine_ratio,
        }
    )
    tags = {tracking.TAG_TARGET_LANDING: found.landing}
    if not found.within:
        tags |= {
            tracking.TAG_TARGET_STOPPED_BY: found.stopped_by,
            tracking.TAG_TARGET_NOTE: found.note,
        }
        log.warning("%s: %s", job.run_name, found.note)
    job.run.set_tags(tags)


@stage("prune")
def prune(job: Job, dense: nn.Module, base: nn.Module, built: Built, step: Step, cal) -> nn.Module:
    """Step `step` of the schedule on `base` (the dense model, or what the step before left)."""
    target = targets.of_config(job.cfg.target)
    t0 = time.perf_counter()
    if target is None:
        ratio = job.pruner.schedule(job.cfg.ratio, step.n)[step.index - 1]
        result = Pruned(_prune_at(job, base, ratio, built, cal), ratio)
    else:
        aim = step_target(target, step)
        try:
            result = _search(job, dense, base, built, aim, cal, job.step_start)
        except targets.TargetNotReached:
            job.run.log_metrics({"target_asked": target.value, "target_reached": 0.0})
            raise
        job.step_start = result.found.reached
        if step.last:
            _log_target(job, target, result.found)
    job.prune_seconds += time.perf_counter() - t0
    job.run.log_metrics(
        {"prune_seconds": job.prune_seconds, tracking.METRIC_RATIO_USED: result.ratio}
    )
    pruned, example = result.model, built.example
    with torch.no_grad():
        out, want = pruned(example), dense(example)
    if out.shape != want.shape:
        raise RuntimeError(
            f"pruned model outputs shape {tuple(out.shape)}, the dense model {tuple(want.shape)}"
        )
    if step.n > 1:
        _log_step_cost(job, dense, pruned, built, step, result.ratio)
    return pruned


def _log_step_cost(job: Job, dense, pruned, built: Built, step: Step, ratio: float) -> None:
    c_dense, c_pruned = job.counts_of_dense(dense, built.example), count(pruned, built.example)
    masks = job.pruner.kind is not PruneKind.STRUCTURAL
    macs, params = ("macs_nonzero", "params_nonzero") if masks else ("macs", "params_total")
    kept = {
        "step_macs_kept": getattr(c_pruned, macs) / max(1, getattr(c_dense, macs)),
        "step_params_kept": getattr(c_pruned, params) / max(1, getattr(c_dense, params)),
        "step_ratio": ratio,
    }
    job.run.log_metrics(kept, step=step.index)
    log.info(
        "%s: pruning step %d/%d at ratio %.4g: MACs kept %.3f, params kept %.3f",
        job.run_name,
        step.index,
        step.n,
        ratio,
        kept["step_macs_kept"],
        kept["step_params_kept"],
    )


def is_noop(dense: Counts, pruned: Counts) -> bool:
    """Nothing removed and nothing zeroed: the pruner did not prune."""
    return (
        pruned.params_total >= dense.params_total and pruned.params_nonzero >= dense.params_nonzero
    )


def _count_metrics(c: Counts, prefix: str = "") -> dict[str, float]:
    return {
        f"{prefix}params_total": c.params_total,
        f"{prefix}params_nonzero": c.params_nonzero,
        f"{prefix}macs": c.macs,
        f"{prefix}macs_nonzero": c.macs_nonzero,
        f"{prefix}sparsity": c.sparsity,
    }


@stage("measure")
def measure(job: Job, dense: nn.Module, pruned: nn.Module, built: Built) -> Measured:
    c_dense, c_pruned = job.counts_of_dense(dense, built.example), count(pruned, built.example)
    noop = is_noop(c_dense, c_pruned)
    job.run.log_metrics(
        {**_count_metrics(c_dense, tracking.DENSE_PREFIX), **_count_metrics(c_pruned)}
    )
    job.run.set_tags({tracking.TAG_NOOP: noop})
    job.run.flush()  # the counts stay if the process dies while timing (minutes on large models)
    if noop:
        log.warning(
            "%s: pruning changed nothing (no parameter removed or zeroed): flagged as no-op",
            job.run_name,
        )
    settings: LatencySettings = OmegaConf.to_object(job.cfg.measure)
    timed = _timed_models(job, dense, pruned, settings)
    timing = time_models(timed, built.eval.first(settings.batch_size), settings, job.device)
    lat_dense, lat_pruned = timing.stats
    job.run.set_tags({tracking.TAG_LATENCY_FLAG: timing.flag})
    if timing.flag != "none":
        log.warning("%s: latency not to be trusted (%s)", job.run_name, timing.flag)
    speedup = paired_speedup(
        lat_dense.samples_ms, lat_pruned.samples_ms, settings.bootstrap, job.cfg.seed
    )
    job.run.log_params(
        {
            "measure.threads_used": timing.threads,
            "measure.iters_used": timing.iters,
            "measure.warmup_iters_used": max(lat_dense.warmup_iters, lat_pruned.warmup_iters),
            "measure.warmup_stable": lat_dense.warmup_stable and lat_pruned.warmup_stable,
        }
    )
    job.run.log_metrics(
        {**lat_dense.metrics(tracking.DENSE_PREFIX), **lat_pruned.metrics(), **speedup.metrics()}
    )
    job.run.flush()  # eager's figures stay if a runtime below takes long or dies
    measured = Measured(
        c_dense, c_pruned, noop, (lat_dense, lat_pruned), speedup, settings.batch_size
    )
    _deployed(job, dense, pruned, built.eval.first(settings.batch_size), settings, measured)
    return measured


def _runtime_context(job: Job, settings: LatencySettings, workdir: Path) -> RT.Context:
    return RT.Context(
        job.device,
        settings.precision,
        resolve_threads(settings.threads),
        workdir,
        settings.onnx_exporter,
        settings.channels_last,
    )


def _peak_metrics(job: Job, runtime: RT.Runtime, ctx: RT.Context, settings, m: Measured) -> dict:
    """The runtime's peak on this machine (cached) and each model's efficiency against it."""
    if not settings.peak:
        return {}
    found = peak.cached(
        runtime,
        ctx,
        settings,
        job.cfg.weights.cache_dir,
        provenance.device_description(job.device),
    )
    key = functools.partial(tracking.runtime_key, runtime.name)
    d, p = m.runtime_latency.get(runtime.name, m.latency)
    return {
        **{key(k): v for k, v in found.metrics().items()},
        key("dense_efficiency"): peak.efficiency(m.dense.macs, m.batch_size, d.median_ms, found),
        key("efficiency"): peak.efficiency(m.pruned.macs, m.batch_size, p.median_ms, found),
    }


def _log_runtime(job: Job, r: deployed.RuntimeResult) -> None:
    """One runtime's figures under its names (`<runtime>/...`), and its trust flag."""
    key = functools.partial(tracking.runtime_key, r.runtime)
    job.run.set_tags({key(tracking.TAG_RUNTIME_FLAG): r.flag})
    if r.flag != "none":
        log.warning("%s: %s latency not to be trusted (%s)", job.run_name, r.runtime, r.flag)
    job.run.log_metrics(
        {
            **r.dense.metrics(key(tracking.DENSE_PREFIX)),
            **r.pruned.metrics(key("")),
            **{key(k): v for k, v in r.speedup.metrics().items()},
            key("dense_export_seconds"): r.export_s[0],
            key("export_seconds"): r.export_s[1],
            key("dense_build_seconds"): r.build_s[0],
            key("build_seconds"): r.build_s[1],
            key("dense_max_abs_diff"): r.max_abs_diff[0],
            key("max_abs_diff"): r.max_abs_diff[1],
        }
    )
    log.info(
        "%s: %s latency %.3f -> %.3f ms (speedup %.2fx [%.2f, %.2f])",
        job.run_name,
        r.runtime,
        r.dense.median_ms,
        r.pruned.median_ms,
        r.speedup.value,
        r.speedup.ci_low,
        r.speedup.ci_high,
    )


def _deployed(job: Job, dense: nn.Module, pruned: nn.Module, x, settings, m: Measured) -> None:
    """Dense and pruned timed in every runtime of measure.runtimes besides eager; a runtime that
    cannot take a model is not applicable for this job, with its reason, and the job goes on."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sweep-runtimes-") as tmp:
        ctx = _runtime_context(job, settings, Path(tmp))
        job.run.log_metrics(_peak_metrics(job, RT.get(tracking.EAGER), ctx, settings, m))
        for name in dict.fromkeys(settings.runtimes):
            if name == tracking.EAGER:
                continue
            runtime, key = RT.get(name), functools.partial(tracking.runtime_key, name)
            try:
                if not job.pruner.kind.dense_speedup_possible and not runtime.sparse_kernels:
                    raise RT.RuntimeNotApplicable(
                        f"{name}: masks keep dense shapes and {name} has no sparse kernel for "
                        f"them: no speedup to measure"
                    )
                r = deployed.time_in(runtime, dense, pruned, x, ctx, settings, job.cfg.seed)
            except RT.RuntimeNotApplicable as e:
                log.warning("%s: %s not applicable: %s", job.run_name, name, first_line(e))
                job.run.set_tags({key(tracking.TAG_RUNTIME_NA): first_line(e)})
                continue
            m.runtime_latency[name] = (r.dense, r.pruned)
            _log_runtime(job, r)
            job.run.log_metrics(_peak_metrics(job, runtime, ctx, settings, m))
            if job.cfg.save_model and r.file is not None and not m.onnx_saved:
                job.run.log_artifacts(r.file.parent, MODEL_ARTIFACT_DIR)  # what was timed
                m.onnx_saved = True
            job.run.flush()
        if ctx.exports:
            job.run.set_tags({tracking.TAG_ONNX_EXPORTER: RT.exporter_used(ctx)})


def _timed_models(job: Job, dense: nn.Module, pruned: nn.Module, settings) -> list[nn.Module]:
    """The models as timed: a 2:4 model runs on sparse kernels where the device has them, against a
    dense copy in the same dtype (so the speedup is the kernels', not the cast's)."""
    accelerate = getattr(job.pruner, "accelerate", None)
    if accelerate is None:
        return [dense, pruned]
    sparse, layers = accelerate(copy.deepcopy(pruned), job.device, settings.precision)
    job.run.log_metrics({"sparse_kernel_layers": layers})
    if not layers:
        return [dense, pruned]
    return [copy.deepcopy(dense).to(next(sparse.parameters()).dtype), sparse]


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


def _top1(job: Job, model: nn.Module, batches: Batches, what: str) -> float:
    return top1(
        model, batches, job.cfg.eval.batch_size, job.device, job.head_map, f"{job.run_name} {what}"
    )


@stage("evaluate")
def evaluate(
    job: Job, dense: nn.Module, pruned: nn.Module, built: Built, measured: Measured
) -> Accuracy:
    per_image_s = sum(s.median_ms for s in measured.latency) / 1000.0 / measured.batch_size
    n = eval_samples(job.cfg.eval, job.device, len(built.eval), per_image_s)
    split = built.eval.head(n)
    job.run.log_params({"eval.samples_used": n})
    acc_dense = _top1(job, dense, split, "dense")
    job.run.log_metrics({"dense_accuracy_top1": acc_dense})
    acc_oneshot = _top1(job, pruned, split, "pruned")
    job.run.log_metrics({"accuracy_top1_oneshot": acc_oneshot})
    chance = at_chance(acc_dense, n, job.dataset.num_classes)
    if chance:
        log.warning(
            "%s: dense accuracy %.1f%% on %d samples is at chance: accuracy figures of this run "
            "mean nothing",
            job.run_name,
            100 * acc_dense,
            n,
        )
    return Accuracy(acc_dense, acc_oneshot, n, chance, split)


def _budget(job: Job, built: Built, step: Step, whole: bool = False) -> training.Budget | None:
    """Step `step`'s share of the fine-tuning budget (all of it for one-shot, or `whole`): the
    optimizer steps of `finetune.epochs` (at most `max_steps`) and `time_budget_s` split evenly over
    the schedule's steps, so every schedule trains as long as one-shot. None: nothing to train."""
    f = job.cfg.finetune
    if f.epochs == 0:
        return None
    lr = f.lr if f.lr is not None else job.cfg.model.finetune_lr
    job.run.log_params({"finetune.lr_used": lr})
    if step.n == 1 or whole:
        return training.Budget(
            f.epochs, lr, f.batch_size, f.weight_decay, f.schedule, f.max_steps, f.time_budget_s
        )
    total = f.epochs * math.ceil(len(built.train) / f.batch_size)
    total = min(total, f.max_steps or total)
    share = total * step.index // step.n - total * (step.index - 1) // step.n
    if share == 0:
        return None
    seconds = f.time_budget_s / step.n if f.time_budget_s is not None else None
    return training.Budget(f.epochs, lr, f.batch_size, f.weight_decay, f.schedule, share, seconds)


def _train(job: Job, dense: nn.Module, model: nn.Module, built: Built, budget, step: Step):
    f = job.cfg.finetune
    distill = (
        training.Distill(dense.eval(), f.distill.weight, f.distill.temperature)
        if f.distill.weight
        else None
    )
    # each step's share sees its own shuffle of the train split (one-shot: the seed's own)
    seed = job.cfg.seed if step.n == 1 else job.cfg.seed * 1009 + step.index
    torch.manual_seed(seed)
    result = training.train(
        model,
        built.train,
        budget,
        job.device,
        seed,
        f"{job.run_name} fine-tune" + (f" step {step.index}/{step.n}" if step.n > 1 else ""),
        distill,
        keep_zeros=job.pruner.kind is not PruneKind.STRUCTURAL,
        targets=job.head_map,
    )
    result.chance_loss = math.log(job.dataset.num_classes)
    job.trained.append(result)
    return result


def _step_split(job: Job, model: nn.Module, built: Built, steps: int) -> Batches:
    """The eval samples an intermediate step is scored on: as `eval.max_samples` says, with 1/steps of
    `eval.time_budget_s` each (timed on this model once)."""
    if job.step_eval is None:
        x = built.eval.first(min(job.cfg.eval.batch_size, len(built.eval))).to(job.device)
        with torch.no_grad():
            model.eval()(x)
            t0 = time.perf_counter()
            model(x)
        per_image_s = (time.perf_counter() - t0) / len(x) * steps
        job.step_eval = built.eval.head(
            eval_samples(job.cfg.eval, job.device, len(built.eval), per_image_s)
        )
    return job.step_eval


@stage("finetune")
def finetune_step(job: Job, dense: nn.Module, pruned: nn.Module, built: Built, step: Step) -> None:
    """Fine-tuning after an intermediate step of an iterative schedule, with its share of the budget;
    top-1 after it is the step's `step_accuracy_top1`."""
    budget = _budget(job, built, step)
    metrics = {}
    if budget is not None:
        result = _train(job, dense, pruned, built, budget, step)
        metrics["step_finetune_loss_end"] = result.loss_end
    split = _step_split(job, pruned, built, step.n)
    metrics["step_accuracy_top1"] = _top1(job, pruned, split, f"after step {step.index}")
    job.run.log_metrics(metrics, step=step.index)


@stage("finetune")
def finetune(
    job: Job, dense: nn.Module, pruned: nn.Module, built: Built, acc: Accuracy
) -> Recovered:
    """Recovery fine-tuning of the pruned model, the same budget for every method (an iterative
    schedule's last share); with finetune.init=scratch the pruned architecture re-initialised and
    trained with the whole budget instead."""
    f, last = job.cfg.finetune, Step(job.cfg.prune.steps, job.cfg.prune.steps)
    job.run.set_tags({tracking.TAG_FINETUNE_INIT: f.init})
    scratch = f.init == "scratch"
    if scratch:
        how = weights.reinitialise(pruned, job.cfg.model, job.dataset.num_classes, job.cfg.seed + 1)
        job.run.set_tags({tracking.TAG_FINETUNE_INIT_METHOD: how})
    budget = _budget(job, built, last, whole=scratch)
    result = None
    if budget is not None:
        result = _train(job, dense, pruned, built, budget, last)
    if not job.trained:
        return Recovered(acc.oneshot, None)
    recovered = _top1(job, pruned, acc.eval, "fine-tuned")
    job.run.log_metrics(
        {
            "finetune_seconds": sum(r.seconds for r in job.trained),
            "finetune_steps": sum(r.steps for r in job.trained),
            "finetune_params_nonzero": sum(
                int(torch.count_nonzero(p)) for p in pruned.parameters()
            ),
        }
    )
    _log_divergence(job, job.trained)
    return Recovered(recovered, result or job.trained[-1])


def _log_divergence(job: Job, results: list[training.TrainResult]) -> None:
    """Each step's fine-tuning is judged on its own (the next step's pruning raises the loss again)."""
    start, end = results[0].loss_start, results[-1].loss_end
    diverged = any(r.diverged for r in results)
    stopped = next(
        (r.stopped_by for r in results if r.stopped_by == "non_finite_loss"),
        results[-1].stopped_by,
    )
    job.run.log_metrics({"finetune_loss_start": start, "finetune_loss_end": end})
    job.run.set_tags({"finetune_stopped_by": stopped, tracking.TAG_DIVERGED: diverged})
    if diverged:
        log.warning(
            "%s: fine-tuning diverged (loss %.4g -> %.4g, stopped by %s): flagged, and kept out of "
            "the report's ranking",
            job.run_name,
            start,
            end,
            stopped,
        )


def _save_model(job: Job, model: nn.Module, built: Built) -> None:
    """The pruned (and fine-tuned) model as an artifact that loads without running code: weights in
    safetensors, the pruned shapes in JSON (sweep.artifacts; reload with sweep.artifacts.load)."""
    import tempfile

    from sweep import artifacts

    create = {
        "num_classes": getattr(model, "num_classes", None),
        **dict(job.cfg.model.get("kwargs") or {}),
    }
    extra = {"preprocess": built.preprocess, "pruner": job.pruner.name, "run_id": job.run.run_id}
    with tempfile.TemporaryDirectory() as tmp:
        artifacts.save(model, tmp, job.cfg.model.name, create, extra)
        job.run.log_artifacts(tmp, MODEL_ARTIFACT_DIR)
    model.to(job.device)


MODEL_ARTIFACT_DIR = "model"


@stage("log")
def log_results(
    job: Job, pruned: nn.Module, built: Built, m: Measured, acc: Accuracy, rec: Recovered
) -> dict[str, float]:
    metrics = {
        "accuracy_top1": rec.accuracy,
        "accuracy_delta": rec.accuracy - acc.dense,
        "params_reduction": 1 - m.pruned.params_total / m.dense.params_total,
        "macs_reduction": 1 - m.pruned.macs / m.dense.macs if m.dense.macs else 0.0,
    }
    job.run.log_metrics(metrics)
    if job.cfg.prune.steps > 1:  # the schedule's last point: its final top-1
        job.run.log_metrics({"step_accuracy_top1": rec.accuracy}, step=job.cfg.prune.steps)
    # after fine-tuning only: one-shot structural pruning at a high ratio is at chance by design
    pruned_chance = (
        rec.result is not None
        and not acc.at_chance
        and at_chance(rec.accuracy, acc.samples, job.dataset.num_classes)
    )
    job.run.set_tags(
        {tracking.TAG_AT_CHANCE: acc.at_chance, tracking.TAG_PRUNED_AT_CHANCE: pruned_chance}
    )
    hydra_dir = _hydra_output_dir()
    if hydra_dir is not None and (hydra_dir / ".hydra").is_dir():
        job.run.log_artifacts(hydra_dir / ".hydra", "hydra")
    if job.cfg.save_model:
        _save_model(job, pruned, built)
    (d, p), s = m.latency, m.speedup
    log.info(
        "%s: params %s -> %s (non-zero %s), MACs %s -> %s, latency %.2f -> %.2f ms (speedup %.2fx "
        "[%.2f, %.2f]), top-1 %.1f%% -> %.1f%% one-shot, %.1f%% fine-tuned%s",
        job.run_name,
        f"{m.dense.params_total:,}",
        f"{m.pruned.params_total:,}",
        f"{m.pruned.params_nonzero:,}",
        f"{m.dense.macs:,}",
        f"{m.pruned.macs:,}",
        d.median_ms,
        p.median_ms,
        s.value,
        s.ci_low,
        s.ci_high,
        100 * acc.dense,
        100 * acc.oneshot,
        100 * rec.accuracy,
        " [NO-OP]" if m.noop else "",
    )
    return {**metrics, "speedup": s.value, "noop": float(m.noop)}


# ---- the job ---------------------------------------------------------------------------------------------
def _run_tags(cfg: DictConfig, key: str) -> dict[str, str]:
    tags = {
        tracking.TAG_SWEEP_ID: sweep_id_of(cfg),
        tracking.TAG_GIT_COMMIT: provenance.git_commit(),
        tracking.TAG_JOB_KEY: key,
        tracking.TAG_ROLE: "job",
        **provenance.versions(),
    }
    if cfg.tracking.parent_run_id:
        tags[tracking.TAG_PARENT] = cfg.tracking.parent_run_id
    return tags


def _already_finished(cfg: DictConfig, uri: str, key: str) -> bool:
    if cfg.force:
        return False
    done = tracking.finished_run_with_key(uri, cfg.tracking.experiment, key)
    if done is not None:
        log.info(
            "%s: skipped, already FINISHED in this sweep as run %s (force=true re-runs it)",
            run_name_of(cfg),
            done.info.run_id,
        )
    return done is not None


def run_job(cfg: DictConfig) -> dict:
    dataset = check_job_config(cfg)  # bad input: no run is created
    uri, key = tracking.resolve_uri(cfg.tracking.uri), job_key(cfg)
    log.info(
        "[job %s/%s] %s (sweep %s)",
        _job_num(),
        os.environ.get("SWEEP_NUM_JOBS", "?"),
        run_name_of(cfg),
        sweep_id_of(cfg),
    )
    if _already_finished(cfg, uri, key):
        return {"status": "SKIPPED"}
    # what earlier jobs of this process left behind, measured before anything of this job exists
    provenance.release_memory()
    rss_mb = provenance.rss_mb()
    with (
        tracking.job_run(
            uri,
            cfg.tracking.experiment,
            run_name_of(cfg),
            _run_tags(cfg, key),
            cfg.tracking.heartbeat_s,
            cfg.tracking.system_metrics_s,
        ) as run,
        _watchdog(cfg.job, rss_mb) as watchdog,
    ):
        try:
            return _stages(prepare(cfg, run, dataset, watchdog), rss_mb)
        except limits.LimitExceeded as e:
            run.set_tags({tracking.TAG_LIMIT: f"{e.stage}:{e.limit}"})
            raise


def _stages(job: Job, rss_mb: float) -> dict:
    job.run.log_metrics({"process_rss_mb": rss_mb})
    torch.manual_seed(job.cfg.seed)
    built = build(job)
    dense = load_weights(job, built)
    cal = calibration_of(job, built)
    pruned = dense
    for step in schedule(job.cfg):
        pruned = prune(job, dense, pruned, built, step, cal)
        if not step.last:
            finetune_step(job, dense, pruned, built, step)
    measured = measure(job, dense, pruned, built)
    accuracy = evaluate(job, dense, pruned, built, measured)
    recovered = finetune(job, dense, pruned, built, accuracy)
    return log_results(job, pruned, built, measured, accuracy, recovered)


def _watchdog(cfg, start_mb: float) -> limits.Watchdog:
    """The job's limits; an auto memory limit is set once the model is built (it scales with it)."""
    memory = cfg.max_memory_gb
    if memory == "auto":  # until the model is known: the machine's safety margin
        memory_mb = 0.9 * limits.physical_memory_mb()
    else:
        memory_mb = None if memory is None else memory * limits.GIB
    return limits.Watchdog(cfg.timeout_s, memory_mb, start_mb=start_mb)


def run_job_isolated(cfg: DictConfig) -> dict:
    """Run a job inside a sweep: a failure is recorded in its FAILED run and reported by the CLI's
    summary, and the next job goes on."""
    try:
        return run_job(cfg)
    except SweepConfigError:
        raise
    except NotApplicable as e:  # a reason, not a fault: one line, no traceback
        log.warning("job %s not applicable: %s", run_name_of(cfg), one_line(e))
        return {"status": "FAILED", "error": one_line(e), "not_applicable": True}
    except Exception as e:  # KeyboardInterrupt and SIGTERM still stop the sweep
        log.exception("job %s failed", run_name_of(cfg))
        return {"status": "FAILED", "error": one_line(e)}


def _hydra_output_dir() -> Path | None:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return Path(HydraConfig.get().runtime.output_dir)


def _job_num() -> int | str:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return 1
    num = HydraConfig.get().job.get("num")
    return num + 1 if isinstance(num, int) else 1
