"""The stages that set a job up: the job from its config, the model and its data (`build`), its
weights, and the bench every later stage reads (calibration batches, the dense model's counts)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.nn as nn
from hydra.utils import instantiate
from omegaconf import DictConfig

from sweep import limits, provenance, tracking
from sweep.data import Batches, Dataset, preprocessing
from sweep.errors import NotApplicable
from sweep.job import shared
from sweep.job.context import Bench, Job
from sweep.job.results import Result
from sweep.measure.counting import count
from sweep.measure.memory import activation_mb, inference_mb, weights_mb
from sweep.models import weights
from sweep.pruners import published
from sweep.pruners.base import Calibration

__all__ = ["Built", "Weights", "bench_of", "build", "calibration_of", "job_of", "load_weights"]

log = logging.getLogger("sweep")


# prune.round_to=auto: the multiple of channels that fills the device's units (CUDA: fp16/bf16 tensor
# cores take multiples of 8; CPU: oneDNN's and ONNX Runtime's blocked layouts, 16 fp32 lanes of AVX-512)
ROUND_TO_AUTO = {"cuda": 8, "cpu": 16}


def job_of(cfg: DictConfig, dataset: Dataset, watchdog: limits.Watchdog, run_id: str) -> Job:
    """The pruner and device the config names, with the checked dataset (inside the job's run, so a
    failure here is recorded)."""
    pruner, device = instantiate(cfg.pruner), provenance.resolve_device(cfg.device)
    # a published architecture is built by the model's weights policy
    if isinstance(pruner, published.TimmPublished):
        pruner.start = weights.published_start(cfg.model, cfg.seed)
    return Job(
        cfg=cfg,
        pruner=pruner,
        dataset=dataset,
        device=device,
        watchdog=watchdog,
        run_id=run_id,
        round_to=_round_to(cfg.prune.round_to, device, pruner),
    )


def _round_to(value, device: torch.device, pruner) -> int | None:
    """prune.round_to applied to the method (resolved for the device when auto); a method without
    channel counts to round is not applicable."""
    if value is None:
        return None
    if not hasattr(pruner, "round_to"):
        raise NotApplicable(
            f"prune.round_to={value}: {pruner.name} has no channel counts to round "
            f"({pruner.kind.value}); structural DepGraph methods have"
        )
    pruner.round_to = ROUND_TO_AUTO.get(device.type, 16) if value == "auto" else value
    return pruner.round_to


@dataclass(frozen=True, kw_only=True)
class Built(Result):
    model: nn.Module
    train: Batches  # the dataset's splits through the model's own preprocessing
    eval: Batches
    example: torch.Tensor  # one input image, on the job's device
    preprocess: dict  # timm's data config the transform was made from
    start: str  # pretrained | random
    note: str  # why pretrained weights were not used, if they were asked for
    model_params: int
    memory_gb_used: float | None  # the auto memory limit set for this model, GiB
    memory: limits.MemoryPlan | None  # what the gradient stages need (CPU)
    micro_batches: dict  # the micro-batch of each gradient stage, by param name
    kept_dense: tuple[str, ...]  # layers the method leaves whole (it cannot prune them)

    def params(self) -> dict:
        params = {tracking.PARAM_DATA_PREFIX + k: v for k, v in self.preprocess.items()}
        if self.memory_gb_used is not None:
            params[tracking.PARAM_MEMORY_USED] = self.memory_gb_used
        return params | self.micro_batches

    def tags(self) -> dict:
        return {tracking.TAG_KEPT_DENSE: ",".join(self.kept_dense)} if self.kept_dense else {}


def build(job: Job) -> Built:
    cfg, classes = job.cfg, job.dataset.num_classes
    # timm's model as built, shared by the jobs of a model in this process (sweep.job.shared)
    model, start, note = shared.dense_start(
        cfg, classes, lambda: weights.build_start(cfg.model, classes, cfg.seed)
    )
    class_map = job.class_map
    if class_map is not None and max(class_map) >= model.num_classes:
        raise RuntimeError(
            f"{job.cfg.model.name} has {model.num_classes} classes; dataset {job.dataset.name} "
            f"maps into classes up to {max(class_map)}"
        )
    transform, preprocess = preprocessing(model, job.cfg.model.input_size)
    train = Batches(job.dataset, "train", transform)
    held_out = Batches(job.dataset, "eval", transform)
    example = held_out.first(1).to(job.device)
    job = job.with_model_params(sum(p.numel() for p in model.parameters()))
    job, memory_gb = _memory(job, model, example)
    # before weights (which may train): a method that cannot apply says so at once
    kept = check_method(job, model.to(job.device), example)
    return Built(
        model=model,
        train=train,
        eval=held_out,
        example=example,
        preprocess=preprocess,
        start=start,
        note=note,
        model_params=job.model_params,
        memory_gb_used=memory_gb,
        memory=job.memory,
        micro_batches=_micro_batches(job),
        kept_dense=kept,
    )


def _memory(job: Job, model: nn.Module, example: torch.Tensor) -> tuple[Job, float | None]:
    """The job's memory plan (CPU: what its gradient stages need, counted before any runs, and the
    micro-batches that fit them under the limit) and its automatic limit, GiB (None: not automatic).
    A gradient stage that does not fit even one image at a time is refused here, before any
    training, with what it needs. The limit is on the process's resident memory: a GPU's memory is
    not in it, and there batches run whole."""
    auto = job.cfg.job.max_memory_gb == "auto"
    if job.device.type != "cpu":
        if auto:
            job.watchdog.memory_mb = limits.auto_memory_mb(job.watchdog.start_mb, job.model_params)
        return job, round(job.watchdog.memory_mb / 1024, 2) if auto else None
    given = job.watchdog.memory_mb if not auto else None
    plan = limits.MemoryPlan(
        start_mb=job.watchdog.start_mb,
        weights_mb=weights_mb(model),
        per_image_mb=activation_mb(model, example),
        ceiling_mb=given if given is not None else 0.9 * limits.physical_memory_mb(),
    )
    job = job.with_model_params(job.model_params, memory=plan)
    needs = [plan.need_mb(batch, copies) for batch, copies in _gradient_stages(job, plan)]
    # evaluation: forward passes at the eval batch, beside the models the weight copies count
    needs.append(job.cfg.eval.batch_size * inference_mb(model, example))
    if auto:
        job.watchdog.memory_mb = plan.limit_mb(needs)
        return job, round(job.watchdog.memory_mb / 1024, 2)
    return job, None


def _gradient_stages(job: Job, plan: limits.MemoryPlan) -> list[tuple[int, int]]:
    """(images at once, copies of the weights) of each stage of the job that computes gradients, or
    runs the model on a calibration batch; refuses the job where one cannot fit even one image."""
    cfg, pruner = job.cfg, job.pruner
    stages = []
    for key, batch in _training_batches(job).values():
        micro = _fitting(plan, batch, limits.OPTIMIZER_COPIES, f"training at {key}={batch}")
        stages.append((micro, limits.OPTIMIZER_COPIES))
    if pruner.calibration_batches:
        _fitting(plan, 1, limits.GRADIENT_COPIES, f"{pruner.name}'s gradients while pruning")
        stages.append((job.calibration_micro_batch(), limits.GRADIENT_COPIES))
    if cfg.quantize.precision != "none":  # INT8 calibration: forward passes at the timed batch
        stages.append((cfg.measure.batch_size, 1))  # (as a backward pass's: an upper bound)
    return stages


def _fitting(plan: limits.MemoryPlan, batch: int, copies: int, what: str) -> int:
    micro = plan.micro_batch(batch, copies)
    if micro < 1:
        raise NotApplicable(plan.refusal(what, copies))
    return micro


def _training_batches(job: Job) -> dict[str, tuple[str, int]]:
    """Each stage of the job that trains the whole model: its micro-batch param -> (the key of its
    batch size, the batch size). Fine-tuning's batch is sparse training's too."""
    cfg, out = job.cfg, {}
    if cfg.finetune.epochs > 0 or job.pruner.regularize is not None:
        out[tracking.PARAM_FINETUNE_MICRO_BATCH] = ("finetune.batch_size", cfg.finetune.batch_size)
    if cfg.model.head == "finetune" and cfg.model.train.epochs > 0:
        b = cfg.model.train.batch_size
        out[tracking.PARAM_TRAIN_MICRO_BATCH] = ("model.train.batch_size", b)
    return out


def _micro_batches(job: Job) -> dict[str, int]:
    """The micro-batches the job's gradient stages run (logged as params), where it has such stages."""
    out = {name: job.micro_batch(b) or b for name, (_, b) in _training_batches(job).items()}
    if job.pruner.calibration_batches:
        out[tracking.PARAM_CALIBRATION_MICRO_BATCH] = job.calibration_micro_batch()
    return out


def check_method(job: Job, model: nn.Module, example: torch.Tensor) -> tuple[str, ...]:
    """The method's own check that it applies to the model; returns the layers it keeps whole. A
    structural method's check prunes a copy of the model (and, where that fails, finds the layers to
    keep whole: a few prunings more), so it runs under the prune stage's limit for three prunes (a
    library call that hangs there must not hang the job)."""
    limit = job.cfg.job.stage_timeout_s.prune
    if limit == "auto":
        limit = limits.auto_stage_timeout_s("prune", job.model_params, 3)
    job.watchdog.stage("preflight", limit, "job.stage_timeout_s.prune")
    job.pruner.check(model, job.cfg.model.name, example)
    kept = tuple(job.pruner.kept_dense or ())
    if kept:
        log.info(
            "%s: %s cannot prune %s; pruning the rest of the model and keeping those whole",
            job.run_name,
            job.pruner.name,
            ", ".join(kept),
        )
    job.watchdog.stage("build", job.stage_timeout_s("build"), "job.stage_timeout_s.build")
    return kept


@dataclass(frozen=True, kw_only=True)
class Weights(Result):
    model: nn.Module
    info: weights.WeightsInfo

    def params(self) -> dict:
        path = self.info.cache_path
        return {tracking.PARAM_WEIGHTS_CACHE: path} if path else {}

    def tags(self) -> dict:
        note = {tracking.TAG_WEIGHTS_NOTE: self.info.note} if self.info.note else {}
        return {tracking.TAG_WEIGHTS: self.info.source, **note}


def load_weights(job: Job, built: Built) -> Weights:
    cfg = job.cfg
    dense, info = weights.fit(
        built.model,
        source=built.start,
        note=built.note,
        model_cfg=cfg.model,
        train_split=built.train,
        preprocess=built.preprocess,
        device=job.device,
        cache_dir=cfg.weights.cache_dir,
        seed=cfg.seed,
        micro_batch=job.micro_batch(cfg.model.train.batch_size),
    )
    return Weights(model=dense, info=info)


def _weights_id(info: weights.WeightsInfo) -> str:
    """What identifies the dense model's weights beyond its config and seed: the trained file, as it
    is on disk (a file trained again is other weights)."""
    path = info.cache_path
    stat = os.stat(path) if path and os.path.exists(path) else None
    when = f"{stat.st_size}:{stat.st_mtime_ns}" if stat else ""
    return f"{info.source}|{info.trained_epochs}|{path or ''}|{when}|{info.note}"


def calibration_of(job: Job, train: Batches) -> Calibration | None:
    """The pruner's calibration batches: shuffled (seeded) from the train split, never the eval split."""
    n = job.pruner.calibration_batches
    if not n:
        return None
    batches = []
    size = job.pruner.calibration_batch_size
    for x, y in train.iterate(size, shuffle=True, seed=job.cfg.seed):
        if job.class_map is not None:
            y = torch.tensor(job.class_map)[y]
        batches.append((x.to(job.device), y.to(job.device)))
        if len(batches) == n:
            break
    return Calibration(batches, micro_batch=job.calibration_micro_batch())


def bench_of(job: Job, built: Built, weighted: Weights) -> Bench:
    info, dense = weighted.info, weighted.model
    return Bench(
        dense=dense,
        weights_id=_weights_id(info),
        train=built.train,
        eval=built.eval,
        example=built.example,
        preprocess=built.preprocess,
        calibration=calibration_of(job, built.train),
        dense_counts=count(dense, built.example),
    )
