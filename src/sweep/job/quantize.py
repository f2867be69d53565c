"""The quantize stage (`quantize=int8`): the dense and the fine-tuned pruned model as post-training INT8
in every runtime the job is timed in, each with that runtime's own tool (sweep.measure.quantized), top-1
read from the runtime, the four models timed side by side. A runtime that cannot quantize a model has
its INT8 figures not applicable, with the reason in one line; the job's other figures stand."""

from __future__ import annotations

import functools
import logging
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from omegaconf import OmegaConf

from sweep import tracking
from sweep.data.batches import Batches
from sweep.errors import first_line
from sweep.job import shared
from sweep.job.context import Bench, Job
from sweep.job.evaluate import Accuracy
from sweep.job.measure import InRuntime, masks_without_kernels, runtimes_of
from sweep.job.results import Result
from sweep.measure import quantized, runtimes
from sweep.training.evaluate import top1

__all__ = ["Calibrated", "calibration_batches", "quantize"]

log = logging.getLogger("sweep")


@dataclass(frozen=True, kw_only=True)
class Calibrated(Result):
    samples: int  # train images the INT8 models were calibrated on

    def params(self) -> dict:
        return {tracking.PARAM_QUANTIZE_CALIBRATION: self.samples}


def quantize(job: Job, bench: Bench, pruned: nn.Module, acc: Accuracy) -> Iterator[Result]:
    """INT8 in each runtime of the job, after fine-tuning (the model that would ship)."""
    settings = OmegaConf.to_object(job.cfg.measure)
    x = bench.eval.first(settings.batch_size)
    calibration = calibration_batches(job, bench.train, len(x))
    yield Calibrated(samples=len(calibration) * len(x))
    with tempfile.TemporaryDirectory(prefix="sweep-int8-") as tmp:
        # the dense model's INT8 files and their top-1 made once across jobs (sweep.job.shared)
        ctx = shared.runtime_context(job, bench, settings=settings, workdir=Path(tmp), x=x)
        one = functools.partial(
            quantized.quantize_in,
            models=(bench.dense, pruned),
            x=x,
            calibration=calibration,
            top1=functools.partial(_top1_in_runtime, job, bench=bench, images=acc.eval, ctx=ctx),
            ctx=ctx,
            settings=settings,
            seed=job.cfg.seed,
        )
        chosen = job.cfg.quantize.runtimes
        for name in runtimes_of(job, settings):
            if chosen is None or name in chosen:
                yield _in(job, runtimes.get(name), one)


def _in(job: Job, runtime: runtimes.Runtime, quantize_in) -> InRuntime:
    """One runtime's INT8 figures (`quantize_in`: quantized.quantize_in with the job's models). A
    quantizer or runtime that fails on a model raises RuntimeNotApplicable (the runtimes wrap their
    own errors): that runtime's INT8 only. Any other error is a fault: the job fails, with what it
    recorded kept."""
    name = runtime.name
    if masks := masks_without_kernels(job, runtime, int8=True):
        return InRuntime(runtime=name, not_applicable=masks, int8=True)
    try:
        r = quantize_in(runtime)
    except runtimes.RuntimeNotApplicable as e:
        log.warning("%s: INT8 in %s not applicable: %s", job.run_name, name, first_line(e))
        return InRuntime(runtime=name, not_applicable=first_line(e), int8=True)
    s, (d, p) = r.on_int8, r.accuracy
    log.info(
        "%s: %s INT8 top-1 %.1f%% -> %.1f%%, pruning on top of INT8 %.2fx [%.2f, %.2f]",
        job.run_name,
        name,
        100 * d,
        100 * p,
        s.value,
        s.ci_low,
        s.ci_high,
    )
    return InRuntime(runtime=name, result=r, int8=True)


def calibration_batches(job: Job, train: Batches, size: int) -> list[torch.Tensor]:
    """`quantize.calibration_samples` train images (shuffled, seeded; never the eval split) in batches
    of the timed batch's size: the runtimes' files take that shape. At least one batch."""
    want = max(1, math.ceil(job.cfg.quantize.calibration_samples / size))
    batches = []
    for images, _ in train.iterate(size, shuffle=True, seed=job.cfg.seed):
        if len(images) == size:
            batches.append(images.float().cpu())
        if len(batches) == want:
            break
    return batches or [train.first(size).float().cpu()]


class _Forward(nn.Module):
    """A runtime's forward pass as a module, for the evaluation loop PyTorch models go through."""

    def __init__(self, predict):
        super().__init__()
        self.predict = predict

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.predict(images)


def _top1_in_runtime(
    job: Job, loaded: runtimes.Loaded, what: str, *, bench: Bench, images: Batches, ctx
) -> float:
    """An INT8 model's top-1 read from its runtime; the dense one's once per INT8 file kept across
    jobs (the file's path names its model, weights, calibration and library versions)."""

    def compute() -> float:
        return top1(
            _Forward(loaded.predict),
            images,
            batch_size=job.cfg.eval.batch_size,
            device=torch.device("cpu"),
            class_map=job.class_map,
            label=f"{job.run_name} {what} INT8",
        )

    kept = ctx.kept.get(id(bench.dense))
    if (
        what != "dense"
        or kept is None
        or loaded.file is None
        or kept.folder not in loaded.file.parents
    ):
        return compute()
    value, _ = shared.dense_top1(
        job,
        weights_id=bench.weights_id,
        preprocess=bench.preprocess,
        n=len(images),
        compute=compute,
        form=str(loaded.file),
    )
    return value
