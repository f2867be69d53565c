"""The measure stage: dense and pruned counted (parameters, MACs), timed side by side in eager PyTorch,
then in every deployment runtime of `measure.runtimes`. It yields each result as soon as it has it, so
the counts are recorded before the timing starts and eager's figures before any runtime's."""

from __future__ import annotations

import copy
import functools
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch.nn as nn
from omegaconf import OmegaConf

from sweep import provenance, targets, tracking
from sweep.errors import first_line
from sweep.job import profile, shared
from sweep.job.context import Bench, Job
from sweep.job.results import Artifact, Result
from sweep.measure import deployed, peak, quantized, runtimes
from sweep.measure.counting import Counts, count
from sweep.measure.latency import (
    LatencySettings,
    LatencyStats,
    Speedup,
    Timing,
    time_models,
)
from sweep.measure.runtimes.eager import safetensors_bytes

__all__ = [
    "Counted",
    "InRuntime",
    "Measured",
    "Timed",
    "is_noop",
    "masks_without_kernels",
    "measure",
    "runtimes_of",
]

log = logging.getLogger("sweep")


def is_noop(dense: Counts, pruned: Counts) -> bool:
    """Nothing removed and nothing zeroed: the pruner did not prune."""
    return (
        pruned.params_total >= dense.params_total and pruned.params_nonzero >= dense.params_nonzero
    )


@dataclass(frozen=True, kw_only=True)
class Counted(Result):
    dense: Counts
    pruned: Counts
    file_mb: tuple[float, float]  # dense, pruned: the weights in safetensors, MB

    @property
    def noop(self) -> bool:
        return is_noop(self.dense, self.pruned)

    def metrics(self) -> dict:
        sizes = deployed.file_metrics(
            self.file_mb, dense=tracking.DENSE_PREFIX + tracking.FILE_MB, pruned=tracking.FILE_MB
        )
        return {**self.dense.metrics(tracking.DENSE_PREFIX), **self.pruned.metrics(), **sizes}

    def tags(self) -> dict:
        return {tracking.TAG_NOOP: self.noop}


@dataclass(frozen=True, kw_only=True)
class Timed(Result):
    """Dense and pruned in eager PyTorch, timed interleaved, and the paired speedup."""

    timing: Timing
    speedup: Speedup
    sparse_kernel_layers: int | None  # 2:4 only: layers timed on sparse kernels

    def params(self) -> dict:
        d, p = self.timing.stats
        return {
            tracking.PARAM_THREADS_USED: self.timing.threads,
            tracking.PARAM_ITERS_USED: self.timing.iters,
            tracking.PARAM_HARNESS_USED: self.timing.harness,
            tracking.PARAM_WARMUP_USED: max(d.warmup_iters, p.warmup_iters),
            tracking.PARAM_WARMUP_STABLE: d.warmup_stable and p.warmup_stable,
        }

    def metrics(self) -> dict:
        d, p = self.timing.stats
        layers = self.sparse_kernel_layers
        sparse = {} if layers is None else {tracking.SPARSE_KERNEL_LAYERS: layers}
        return {
            **d.metrics(tracking.DENSE_PREFIX),
            **p.metrics(),
            **self.speedup.metrics(),
            **self.timing.metrics(),
            **sparse,
        }

    def tags(self) -> dict:
        return {
            tracking.TAG_LATENCY_FLAG: self.timing.flag,
            tracking.TAG_SLOWER_THAN_DENSE: self.timing.slower_than_dense(self.speedup),
        }


@dataclass(frozen=True, kw_only=True)
class InRuntime(Result):
    """One runtime's figures under its names (`<runtime>/...`; the INT8 stage's, `int8`:
    `<runtime>/int8/...`), or why it could not run: the measure and quantize stages' one type."""

    runtime: str
    result: deployed.RuntimeResult | quantized.Int8Result | None = None
    not_applicable: str = ""
    peak: dict = field(default_factory=dict)  # its peak on this machine, each model's efficiency
    int8: bool = False

    def metrics(self) -> dict:
        key, r = self._key(), self.result
        return {**(r.metrics() if r else {}), **{key(k): v for k, v in self.peak.items()}}

    def _key(self):
        return functools.partial(
            tracking.int8_key if self.int8 else tracking.runtime_key, self.runtime
        )

    def tags(self) -> dict:
        key = self._key()
        if self.not_applicable:
            return {key(tracking.TAG_RUNTIME_NA): self.not_applicable}
        if self.result is None:
            return {}
        tags = {
            key(tracking.TAG_RUNTIME_FLAG): self.result.flag,
            key(tracking.TAG_SLOWER_THAN_DENSE): self.result.slower_than_dense,
        }
        dense, pruned = getattr(self.result, "kernels", ("", ""))
        if dense or pruned:
            tags[key(tracking.INT8_KERNELS)] = f"dense={dense} pruned={pruned}"
        return tags


@dataclass(frozen=True, kw_only=True)
class Exporter(Result):
    name: str

    def tags(self) -> dict:
        return {tracking.TAG_ONNX_EXPORTER: self.name}


@dataclass(frozen=True)
class Measured:
    dense: Counts
    pruned: Counts
    noop: bool
    latency: tuple[LatencyStats, LatencyStats]  # dense, pruned
    speedup: Speedup
    batch_size: int


def measure(job: Job, bench: Bench, pruned: nn.Module) -> Iterator[Result | Artifact]:
    counted = Counted(
        dense=bench.dense_counts,
        pruned=count(pruned, bench.example),
        file_mb=(safetensors_bytes(bench.dense) / 1e6, safetensors_bytes(pruned) / 1e6),
    )
    yield counted
    if counted.noop:
        log.warning(
            "%s: pruning changed nothing (no parameter removed or zeroed): flagged as no-op",
            job.run_name,
        )
    settings: LatencySettings = OmegaConf.to_object(job.cfg.measure)
    x = bench.eval.first(settings.batch_size)
    timed = _time_eager(job, bench.dense, pruned=pruned, x=x, settings=settings)
    yield timed
    measured = Measured(
        dense=counted.dense,
        pruned=counted.pruned,
        noop=counted.noop,
        latency=tuple(timed.timing.stats),
        speedup=timed.speedup,
        batch_size=settings.batch_size,
    )
    eager = profile.Timed(
        runtime=tracking.EAGER,
        dense_ms=measured.latency[0].median_ms,
        pruned_ms=measured.latency[1].median_ms,
        speedup=timed.speedup.value,
        slower=timed.timing.slower_than_dense(timed.speedup),
        trusted=timed.timing.flag == "none",
    )
    yield from _deployed(job, bench, pruned, x=x, settings=settings, m=measured, timed=[eager])
    return measured


def _time_eager(job: Job, dense: nn.Module, pruned: nn.Module, x, settings) -> Timed:
    models, layers = _timed_models(job, dense, pruned, settings)
    timing = time_models(models, x, settings, job.device)
    if timing.flag != "none":
        log.warning("%s: latency not to be trusted (%s)", job.run_name, timing.flag)
    speedup = timing.speedup(0, 1, settings.bootstrap, job.cfg.seed)
    return Timed(timing=timing, speedup=speedup, sparse_kernel_layers=layers)


def _timed_models(job: Job, dense: nn.Module, pruned: nn.Module, settings):
    """The models as timed: a 2:4 model runs on sparse kernels where the device has them, against a
    dense copy in the same dtype (so the speedup is the kernels', not the cast's)."""
    if not job.pruner.accelerates:
        return [dense, pruned], None
    sparse, layers = job.pruner.accelerate(copy.deepcopy(pruned), job.device, settings.precision)
    if not layers:
        return [dense, pruned], layers
    return [copy.deepcopy(dense).to(next(sparse.parameters()).dtype), sparse], layers


def _deployed(
    job: Job, bench: Bench, pruned: nn.Module, x, settings, m: Measured, timed: list[profile.Timed]
) -> Iterator[Result | Artifact]:
    """Dense and pruned timed in every runtime of measure.runtimes besides eager (the dense model's
    files made once across jobs: sweep.job.shared); a runtime that cannot take a model is not
    applicable for this job, with its reason, and the job goes on. Then, where measure.profile says
    so, their layers profiled in each runtime that timed them."""
    models = (bench.dense, pruned)
    with tempfile.TemporaryDirectory(prefix="sweep-runtimes-") as tmp:
        ctx = shared.runtime_context(job, bench, settings=settings, workdir=Path(tmp), x=x)
        # each runtime's peak (cached per machine): its models' efficiency, and its profiled layers'
        found = _found_peak(job, runtimes.get(tracking.EAGER), ctx=ctx, settings=settings)
        peaks = {tracking.EAGER: found}
        yield InRuntime(runtime=tracking.EAGER, peak=_peak(found, m=m, latency=m.latency))
        saved = False
        for name in runtimes_of(job, settings)[1:]:
            runtime = runtimes.get(name)
            try:
                r = _time_in(job, runtime, models=models, x=x, ctx=ctx, settings=settings)
            except runtimes.RuntimeNotApplicable as e:
                log.warning("%s: %s not applicable: %s", job.run_name, name, first_line(e))
                yield InRuntime(runtime=name, not_applicable=first_line(e))
                continue
            timed.append(_timed_of(r))
            found = peaks[name] = _found_peak(job, runtime, ctx=ctx, settings=settings)
            yield InRuntime(
                runtime=name, result=r, peak=_peak(found, m=m, latency=(r.dense, r.pruned))
            )
            if job.cfg.save_model and r.file is not None and not saved:
                # what was timed: before fine-tuning, kept apart from the forms that ship
                yield Artifact(r.file.parent, tracking.TIMED_ARTIFACT_DIR)
                saved = True
        if ctx.exports:
            yield Exporter(name=runtimes.exporter_used(ctx))
        reason = _why_profile(job, settings, m=m, timed=timed)
        if reason:
            gemm = {name: p.gemm for name, p in peaks.items() if p is not None}
            yield from profile.profile(
                job, models, x=x, ctx=ctx, timed=timed, reason=reason, peaks=gemm
            )


def _timed_of(r: deployed.RuntimeResult) -> profile.Timed:
    return profile.Timed(
        runtime=r.runtime,
        dense_ms=r.dense.median_ms,
        pruned_ms=r.pruned.median_ms,
        speedup=r.speedup.value,
        slower=r.slower_than_dense,
        trusted=r.flag == "none",
    )


def _why_profile(job: Job, settings, m: Measured, timed: list[profile.Timed]) -> str:
    """Why this job's layers are profiled ("" when not): never masks (their time is dense's) or a
    pruning that changed nothing."""
    if not job.pruner.kind.dense_speedup_possible or m.noop or not m.dense.macs:
        return ""
    return profile.why_profile(settings.profile, timed, macs_kept=m.pruned.macs / m.dense.macs)


def runtimes_of(job: Job, settings) -> list[str]:
    """The runtimes a job is timed in: eager, those of measure.runtimes, a speedup target's."""
    return list(dict.fromkeys([tracking.EAGER, *settings.runtimes, *_target_runtime(job)]))


def _target_runtime(job: Job) -> list[str]:
    """The runtime a speedup target was searched in, timed here too (its reading is the report's)."""
    target = targets.of_config(job.cfg.target)
    return [target.runtime] if target is not None and target.kind == "speedup" else []


def masks_without_kernels(job: Job, runtime: runtimes.Runtime, int8: bool = False) -> str:
    """Why a mask method has no speedup to measure in `runtime` ("" where it may have one): masks
    keep dense shapes, and only a runtime with sparse kernels for them could run them faster (none
    has INT8 ones here). The one place that decides it, for the measure and quantize stages."""
    if job.pruner.kind.dense_speedup_possible or (runtime.sparse_kernels and not int8):
        return ""
    if int8:
        return f"{runtime.name}: masks keep dense shapes: no INT8 speedup"
    return (
        f"{runtime.name}: masks keep dense shapes and {runtime.name} has no sparse kernel for them: "
        f"no speedup to measure"
    )


def _time_in(job: Job, runtime: runtimes.Runtime, models, x, ctx, settings):
    if masks := masks_without_kernels(job, runtime):
        raise runtimes.RuntimeNotApplicable(masks)
    dense, pruned = models
    r = deployed.time_in(
        runtime, dense, pruned=pruned, x=x, ctx=ctx, settings=settings, seed=job.cfg.seed
    )
    if r.flag != "none":
        log.warning("%s: %s latency not to be trusted (%s)", job.run_name, r.runtime, r.flag)
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
    return r


def _peak(found: peak.Peak | None, m: Measured, latency) -> dict:
    """A runtime's peak on this machine and each model's efficiency against it, at the dense and
    pruned `latency` it timed ({} without a peak: measure.peak=false)."""
    if found is None:
        return {}
    d, p = latency
    return {
        **found.metrics(),
        tracking.DENSE_PREFIX + tracking.EFFICIENCY: peak.efficiency(
            m.dense.macs, m.batch_size, d.median_ms, found
        ),
        tracking.EFFICIENCY: peak.efficiency(m.pruned.macs, m.batch_size, p.median_ms, found),
    }


def _found_peak(job: Job, runtime: runtimes.Runtime, ctx: runtimes.Context, settings):
    if not settings.peak:
        return None
    return peak.cached(
        runtime,
        ctx,
        settings,
        cache_dir=job.cfg.weights.cache_dir,
        device_description=provenance.device_description(job.device),
    )
