"""One job: build -> weights -> prune -> measure -> evaluate -> log.

Each stage is timed and logs what it measured as soon as it has it, so a job that fails half-way keeps
its dense figures in its (FAILED) run.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import logging
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sweep import tracking, weights
from sweep.config import check_job_config
from sweep.data import Dataset, to_model_input
from sweep.evaluate import at_chance, top1
from sweep.measure.counting import Counts, count
from sweep.measure.latency import LatencySettings, paired_speedup, time_models
from sweep.pruners.base import Pruner

log = logging.getLogger("sweep")

STAGES = ("build", "weights", "prune", "measure", "evaluate", "log")
# Logged data is sent to MLflow after these stages, and in any case when the run ends (also on failure
# or SIGTERM): each send costs a store round trip, which adds up over a grid of short jobs.
CHECKPOINT_STAGES = ("measure",)


@dataclass
class Job:
    """A job's config plus the objects it names."""

    cfg: DictConfig
    pruner: Pruner
    dataset: Dataset
    ratio: float
    device: torch.device

    @property
    def run_name(self) -> str:
        return run_name_of(self.cfg)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus"


@functools.lru_cache(maxsize=None)
def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--verify", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@functools.lru_cache(maxsize=None)
def versions() -> dict[str, str]:
    import mlflow
    import timm
    import torch_pruning

    return {"torch_version": torch.__version__, "timm_version": timm.__version__,
            "torch_pruning_version": getattr(torch_pruning, "__version__", "unknown"),
            "mlflow_version": mlflow.__version__}


def prepare(cfg: DictConfig) -> Job:
    """Instantiate what the config names (inside the job's run, so a failure here is recorded)."""
    return Job(cfg=cfg, pruner=instantiate(cfg.pruner), dataset=instantiate(cfg.dataset),
               ratio=float(cfg.ratio), device=resolve_device(str(cfg.device)))


def sweep_id_of(cfg: DictConfig) -> str:
    return str(cfg.sweep_id or time.strftime("%Y%m%d-%H%M%S-single"))


def run_name_of(cfg: DictConfig) -> str:
    return f"{cfg.model.alias}/{cfg.pruner.name}/{float(cfg.ratio):g}"


def job_params(job: Job) -> dict:
    cfg = OmegaConf.to_container(job.cfg, resolve=True)
    for private in ("tracking", "sweep_id", "hydra", "force"):
        cfg.pop(private, None)
    params = tracking.flatten(cfg)
    params.update({
        tracking.PARAM_MODEL: job.cfg.model.alias,
        tracking.PARAM_MODEL_NAME: job.cfg.model.name,
        tracking.PARAM_PRUNER: job.pruner.name,
        tracking.PARAM_RATIO: job.ratio,
        tracking.PARAM_DATASET: job.dataset.name,
        "pruner.ratio_means": job.pruner.ratio_means,
    })
    return params


@contextlib.contextmanager
def stage(job: Job, run: tracking.JobRun, name: str):
    assert name in STAGES
    t0 = time.perf_counter()
    yield
    dt = time.perf_counter() - t0
    run.log_metrics({tracking.STAGE_METRIC.format(name): dt})
    if name in CHECKPOINT_STAGES:
        run.flush()
    log.info("%s: %s done in %.1fs", job.run_name, name, dt)


def _count_metrics(c: Counts, prefix: str = "") -> dict[str, float]:
    return {f"{prefix}params_total": c.params_total, f"{prefix}params_nonzero": c.params_nonzero,
            f"{prefix}macs": c.macs, f"{prefix}macs_nonzero": c.macs_nonzero, f"{prefix}sparsity": c.sparsity}


def is_noop(dense: Counts, pruned: Counts) -> bool:
    """Nothing removed and nothing zeroed: the pruner did not prune."""
    return pruned.params_total >= dense.params_total and pruned.params_nonzero >= dense.params_nonzero


def eval_samples(cfg, device: torch.device, n_split: int, per_image_s: float) -> int:
    if cfg.max_samples is None:
        return n_split
    if cfg.max_samples != "auto":
        return min(n_split, int(cfg.max_samples))
    if device.type == "cuda":
        return n_split
    fit = int(float(cfg.time_budget_s) / max(per_image_s, 1e-9))
    return min(n_split, max(int(cfg.min_samples), fit))


def job_key(cfg: DictConfig) -> str:
    """Stable identity of a job: its resolved config minus where things are written and tracked (and
    minus `force`). Includes sweep_id, so re-running a sweep finds its own finished jobs."""
    import hashlib
    import json

    c = OmegaConf.to_container(cfg, resolve=True)
    for volatile in ("hydra", "tracking", "force"):
        c.pop(volatile, None)
    c.get("weights", {}).pop("cache_dir", None)
    return hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:20]


def run_job(cfg: DictConfig) -> dict[str, float]:
    check_job_config(cfg)  # bad input: no run is created
    m = cfg.model
    uri, sweep_id, run_name = tracking.resolve_uri(cfg.tracking.uri), sweep_id_of(cfg), run_name_of(cfg)
    experiment, key = str(cfg.tracking.experiment), job_key(cfg)
    log.info("[job %s/%s] %s (sweep %s)", _job_num(), os.environ.get("SWEEP_NUM_JOBS", "?"), run_name, sweep_id)
    if not cfg.get("force", False):
        done = tracking.finished_run_with_key(uri, experiment, key)
        if done is not None:
            log.info("%s: skipped, already FINISHED in this sweep as run %s (force=true re-runs it)",
                     run_name, done.info.run_id)
            return {"status": "SKIPPED"}
    tags = {tracking.TAG_SWEEP_ID: sweep_id, tracking.TAG_GIT_COMMIT: git_commit(), tracking.TAG_JOB_KEY: key,
            tracking.TAG_ROLE: "job", **versions()}
    if cfg.tracking.get("parent_run_id"):
        tags[tracking.TAG_PARENT] = cfg.tracking.parent_run_id

    with tracking.job_run(uri, experiment, run_name, tags) as run:
        job = prepare(cfg)
        run.set_tags({tracking.TAG_DEVICE: device_description(job.device), tracking.TAG_KIND: job.pruner.kind.value,
                      tracking.TAG_FAMILY: job.pruner.family,
                      tracking.TAG_SPEEDUP_POSSIBLE: job.pruner.kind.dense_speedup_possible})
        run.log_params(job_params(job))
        torch.manual_seed(int(cfg.seed))

        with stage(job, run, "build"):
            model, source, note = weights.build_start(m, job.dataset.num_classes, int(cfg.seed))
            example = to_model_input(job.dataset.eval().images[:1], int(m.input_size)).to(job.device)

        with stage(job, run, "weights"):
            dense, winfo = weights.fit(model, source, note, m, job.dataset, job.device,
                                       cfg.weights.cache_dir, int(cfg.seed))
            run.set_tags({tracking.TAG_WEIGHTS: winfo.source, **({"weights_note": winfo.note} if winfo.note else {})})

        with stage(job, run, "prune"):
            pruned = copy.deepcopy(dense)
            torch.manual_seed(int(cfg.seed))  # random importance picks the same channels in every run
            t0 = time.perf_counter()
            pruned = job.pruner.prune(pruned, job.ratio, example).eval()
            prune_seconds = time.perf_counter() - t0
            with torch.no_grad():
                out = pruned(example)
            expected = (1, job.dataset.num_classes)
            if tuple(out.shape) != expected:
                raise RuntimeError(f"pruned model outputs shape {tuple(out.shape)}, expected {expected}")
            run.log_metrics({"prune_seconds": prune_seconds})

        with stage(job, run, "measure"):
            c_dense, c_pruned = count(dense, example), count(pruned, example)
            noop = is_noop(c_dense, c_pruned)
            run.log_metrics({**_count_metrics(c_dense, tracking.DENSE_PREFIX), **_count_metrics(c_pruned)})
            run.set_tags({tracking.TAG_NOOP: noop})
            if noop:
                log.warning("%s: pruning changed nothing (no parameter removed or zeroed): flagged as no-op",
                            job.run_name)
            settings = LatencySettings(**OmegaConf.to_container(cfg.measure, resolve=True))
            batch = to_model_input(job.dataset.eval().images[:settings.batch_size], int(m.input_size))
            if len(batch) < settings.batch_size:  # tiny eval split: repeat to the requested batch
                batch = batch.repeat((settings.batch_size + len(batch) - 1) // len(batch), 1, 1, 1)[:settings.batch_size]
            timing = time_models([dense, pruned], batch, settings, job.device)
            lat_dense, lat_pruned = timing.stats
            speedup = paired_speedup(lat_dense.samples_ms, lat_pruned.samples_ms, settings.bootstrap, int(cfg.seed))
            run.log_params({"measure.threads_used": timing.threads, "measure.iters_used": timing.iters,
                            "measure.warmup_iters_used": max(lat_dense.warmup_iters, lat_pruned.warmup_iters),
                            "measure.warmup_stable": lat_dense.warmup_stable})
            run.log_metrics({**lat_dense.metrics(tracking.DENSE_PREFIX), **lat_pruned.metrics(), **speedup.metrics()})

        with stage(job, run, "evaluate"):
            split = job.dataset.eval()
            per_image_s = (lat_dense.median_ms + lat_pruned.median_ms) / 1000.0 / settings.batch_size
            n = eval_samples(cfg.eval, job.device, len(split), per_image_s)
            split = split.head(n)
            run.log_params({"eval.samples_used": n})
            bs = int(cfg.eval.batch_size)
            acc_dense = top1(dense, split, int(m.input_size), bs, job.device, f"{job.run_name} dense")
            run.log_metrics({"dense_accuracy_top1": acc_dense})
            acc_pruned = top1(pruned, split, int(m.input_size), bs, job.device, f"{job.run_name} pruned")
            chance = at_chance(acc_dense, n, job.dataset.num_classes)
            if chance:
                log.warning("%s: dense accuracy %.1f%% on %d samples is at chance (weights: %s): "
                            "accuracy figures of this run mean nothing", job.run_name, 100 * acc_dense, n,
                            winfo.source)

        with stage(job, run, "log"):
            metrics = {
                "accuracy_top1": acc_pruned,
                "accuracy_delta": acc_pruned - acc_dense,
                "params_reduction": 1 - c_pruned.params_total / c_dense.params_total,
                "macs_reduction": 1 - c_pruned.macs / c_dense.macs if c_dense.macs else 0.0,
            }
            run.log_metrics(metrics)
            run.set_tags({tracking.TAG_AT_CHANCE: chance})
            hydra_dir = _hydra_output_dir()
            if hydra_dir is not None and (hydra_dir / ".hydra").is_dir():
                run.log_artifacts(hydra_dir / ".hydra", "hydra")

        log.info("%s: params %s -> %s (non-zero %s), MACs %s -> %s, latency %.2f -> %.2f ms "
                 "(speedup %.2fx [%.2f, %.2f]), top-1 %.1f%% -> %.1f%%%s", job.run_name,
                 f"{c_dense.params_total:,}", f"{c_pruned.params_total:,}", f"{c_pruned.params_nonzero:,}",
                 f"{c_dense.macs:,}", f"{c_pruned.macs:,}", lat_dense.median_ms, lat_pruned.median_ms,
                 speedup.value, speedup.ci_low, speedup.ci_high, 100 * acc_dense, 100 * acc_pruned,
                 " [NO-OP]" if noop else "")
        return {**metrics, "speedup": speedup.value, "noop": float(noop)}


def run_job_isolated(cfg: DictConfig) -> dict:
    """Run a job inside a sweep: a failure is recorded in its FAILED run and reported by the CLI's
    summary, and the next job goes on."""
    try:
        return run_job(cfg)
    except Exception as e:  # KeyboardInterrupt and SIGTERM still stop the sweep
        from sweep.errors import SweepConfigError

        if isinstance(e, SweepConfigError):
            raise
        log.exception("job %s/%s/%s failed", cfg.model.get("alias"), cfg.pruner.get("name"), cfg.get("ratio"))
        return {"status": "FAILED", "error": f"{type(e).__name__}: {e}"}


def _hydra_output_dir() -> Path | None:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return Path(HydraConfig.get().runtime.output_dir)


def _job_num() -> int | str:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return 1
    try:
        return int(HydraConfig.get().job.num) + 1
    except Exception:
        return 1
