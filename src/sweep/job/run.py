"""A job: its recipe of stages (`_stages`), run inside its MLflow run with its limits, skipped when the
sweep already finished it, and isolated inside a sweep (a failure is a FAILED run; the next job goes on).
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from dataclasses import dataclass, field

import torch
from omegaconf import DictConfig

from sweep import limits, provenance, targets, tracking
from sweep.config import check_job_config
from sweep.errors import NotApplicable, SweepConfigError, one_line
from sweep.job import (
    build,
    evaluate,
    finetune,
    measure,
    prune,
    quantize,
    regularize,
    results,
    ship,
    summary,
)
from sweep.job.context import Bench, Job, Progress, schedule
from sweep.job.identity import job_key, run_name_of, sweep_id_of
from sweep.measure import latency

__all__ = ["CHECKPOINT_STAGES", "STAGES", "run_job", "run_job_isolated"]

log = logging.getLogger("sweep")

STAGES = tracking.STAGES
# what `python -m sweep` tells each job of its grid (sweep.cli.main sets them)
NUM_JOBS_ENV, MODELS_ENV = "SWEEP_NUM_JOBS", "SWEEP_MODELS"
STARTED_ENV = (
    "SWEEP_STARTED_MS"  # when the command started (ms): earlier commands' jobs are not its
)
# What was recorded is sent to MLflow after each result of these stages, and in any case when the run
# ends (also on failure or SIGTERM): each send costs a store round trip, which adds up over a grid of
# short jobs; the measure and quantize stages' figures stay if the process dies while timing (minutes
# on large models).
CHECKPOINT_STAGES = ("measure", "quantize")


def _stages(job: Job, stage: Stages) -> dict:
    """The recipe: every stage computes, `stage` times it and records what it returns (and gives it
    the job and the bench, where it takes them)."""
    torch.manual_seed(job.cfg.seed)
    built = stage("build", build.build)
    job = stage.job = job.with_model_params(built.model_params, memory=built.memory)
    weighted = stage("weights", build.load_weights, built=built)
    stage.bench = stage.record(build.bench_of(job=job, built=built, weighted=weighted))
    progress, pruned = Progress(), weighted.model
    if job.pruner.regularize is not None:  # a method that trains for sparsity first
        pruned = stage("regularize", regularize.regularize).model
    for step in schedule(job.cfg):
        pruned = stage("prune", prune.prune_step, base=pruned, step=step, progress=progress).model
        if not step.last:
            stage("finetune", finetune.finetune_step, pruned=pruned, step=step, progress=progress)
    measured = stage("measure", measure.measure, pruned=pruned)
    acc = stage("evaluate", evaluate.evaluate, pruned=pruned, measured=measured)
    recovered = stage("finetune", finetune.finetune, pruned=pruned, acc=acc, progress=progress)
    if job.cfg.quantize.precision != "none":  # the shipped forms: INT8 in each runtime
        stage("quantize", quantize.quantize, pruned=pruned, acc=acc)
    done = stage("log", summary.summarize, pruned=pruned, measured=measured, accuracy=acc, recovered=recovered)  # fmt: skip
    if job.cfg.log_models:  # the forms that ship, as MLflow models of the run (and dense's)
        stage("ship", ship.ship, pruned=pruned, run=stage.recorder.run)
    return done.figures()


@dataclass
class Stages:
    """Runs a stage under its limit, times it (seconds summed over a schedule's steps) and records
    what it returns; a stage that yields results has each recorded as it comes (and sent, at a
    checkpoint stage), and returns its generator's value."""

    job: Job
    recorder: results.Recorder
    bench: Bench | None = None  # once built
    seconds: dict[str, float] = field(default_factory=dict)
    peaks: dict[str, float] = field(default_factory=dict)  # resident memory, MiB

    def record(self, result):
        return self.recorder.record(result)

    def inputs(self, fn, given: dict) -> dict:
        """A stage's keyword inputs: what the recipe names, and `job` and `bench` where it takes them."""
        wants = inspect.signature(fn).parameters
        shared = {"job": self.job, "bench": self.bench}
        return {k: v for k, v in shared.items() if k in wants and v is not None} | given

    def __call__(self, name: str, fn, **given):
        assert name in STAGES, name
        timeout = self.job.stage_timeout_s(name)
        self.job.watchdog.stage(name, timeout, f"job.stage_timeout_s.{name}")
        t0 = time.perf_counter()
        try:
            out = fn(**self.inputs(fn, given))
            if inspect.isgenerator(out):
                out = self._drain(out, flush=name in CHECKPOINT_STAGES)
            else:
                self.recorder.record(out)
        except Exception as e:  # what a stage found before it failed (a target out of reach)
            if isinstance(getattr(e, "result", None), results.Result):
                self.recorder.record(e.result)
            raise
        dt = time.perf_counter() - t0
        peak = self.peaks[name] = max(self.peaks.get(name, 0.0), self.job.watchdog.stage_peak_mb())
        self.job.watchdog.stage(f"after {name}", None)
        total = self.seconds[name] = self.seconds.get(name, 0.0) + dt
        self.recorder.metrics(
            {
                tracking.STAGE_METRIC.format(name): total,
                tracking.STAGE_PEAK_METRIC.format(name): peak,
            }
        )
        if name in CHECKPOINT_STAGES:
            self.recorder.flush()
        log.info("%s: %s done in %.1fs", self.job.run_name, name, dt)
        return out

    def _drain(self, results, flush: bool):
        """Records each item a stage yields and sends the stage what recording returned (a logged
        model's id, or why it could not be logged)."""
        recorded = None
        while True:
            try:
                item = results.send(recorded)
            except StopIteration as done:
                return done.value
            recorded = self.recorder.record(item)
            if flush:
                self.recorder.flush()


# ---- the job in its run -----------------------------------------------------------------------------------
def run_job(cfg: DictConfig) -> dict:
    dataset = check_job_config(cfg)  # bad input: no run is created
    published = targets.published.asks_published(cfg)
    cfg = targets.published.resolve(cfg)  # target.macs=published: the published MACs, counted
    uri, key = tracking.resolve_uri(cfg.tracking.uri), job_key(cfg)
    if _already_finished(cfg, uri, key):
        return {"status": "SKIPPED"}
    log.info(
        "[job %s/%s] %s (sweep %s)%s",
        _job_num(),
        os.environ.get(NUM_JOBS_ENV, "?"),
        run_name_of(cfg),
        sweep_id_of(cfg),
        _progress(cfg, uri),
    )
    # what earlier jobs of this process left behind, measured before anything of this job exists
    provenance.release_memory()
    rss_mb = provenance.rss_mb()
    with (
        tracking.job_run(
            uri,
            cfg.tracking.experiment,
            run_name_of(cfg),
            _run_tags(cfg, key) | ({tracking.TAG_TARGET_SOURCE: "published"} if published else {}),
            heartbeat_s=cfg.tracking.heartbeat_s,
            system_metrics_s=cfg.tracking.system_metrics_s,
        ) as run,
        _watchdog(cfg.job, rss_mb) as watchdog,
    ):
        try:
            recorder = results.Recorder(run)
            recorder.metrics({tracking.PROCESS_RSS_MB: rss_mb})
            job = recorder.record(build.job_of(cfg, dataset, watchdog, run.run_id))
            return _stages(job, Stages(job=job, recorder=recorder))
        except limits.LimitExceeded as e:
            run.set_tags({tracking.TAG_LIMIT: f"{e.stage}:{e.limit}"})
            raise


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


def _progress(cfg: DictConfig, uri: str) -> str:
    """The sweep's progress as this job starts (": 7 done, 209 left; about ..."), also sent to the
    sweep's parent run; "" outside a multirun."""
    total = int(os.environ.get(NUM_JOBS_ENV, "0") or 0)
    if total < 2 or not cfg.tracking.parent_run_id:
        return ""
    models = [m for m in os.environ.get(MODELS_ENV, "").split(",") if m] or [cfg.model.alias]
    sweep = sweep_id_of(cfg)
    num = _job_num()
    now = tracking.progress_of(
        uri,
        cfg.tracking.experiment,
        sweep,
        total=total,
        models=models,
        since_ms=int(os.environ.get(STARTED_ENV, "0") or 0),
        processed=num - 1 if isinstance(num, int) and _runs_in_turn() else 0,
    )
    tracking.send_progress(uri, cfg.tracking.parent_run_id, now)
    return f": {now.line()}"


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
    if done is not None and _timed_by_another_harness(cfg, done):
        return False
    if done is not None:
        log.info(
            "%s: skipped, already FINISHED in this sweep as run %s (force=true re-runs it)",
            run_name_of(cfg),
            done.info.run_id,
        )
    return done is not None


def _timed_by_another_harness(cfg: DictConfig, done) -> bool:
    """A finished run whose latencies another harness scheme or version read is re-timed, not kept
    beside this release's figures: the two do not compare (a resumed sweep never mixes them)."""
    was = done.data.params.get(tracking.PARAM_HARNESS_USED, tracking.HARNESS_BEFORE_PARAM)
    now = latency.harness_id(cfg.measure.interleave)
    if was != now:
        log.info(
            "%s: re-run: its finished run %s was timed by harness %s, this release times with %s",
            run_name_of(cfg),
            done.info.run_id,
            was,
            now,
        )
    return was != now


def _watchdog(cfg, start_mb: float) -> limits.Watchdog:
    """The job's limits; an auto memory limit is set once the model is built (it scales with it)."""
    memory = cfg.max_memory_gb
    if memory == "auto":  # until the model is known: the machine's safety margin
        memory_mb = 0.9 * limits.physical_memory_mb()
    else:
        memory_mb = None if memory is None else memory * limits.GIB
    return limits.Watchdog(cfg.timeout_s, memory_mb, start_mb=start_mb)


def _runs_in_turn() -> bool:
    """Whether Hydra's launcher runs the grid's jobs one after another in this process (its basic
    launcher): then the jobs before this one are done, skipped ones too."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return False
    launcher = HydraConfig.get().runtime.choices.get("hydra/launcher", "basic")
    return launcher == "basic"


def _job_num() -> int | str:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return 1
    num = HydraConfig.get().job.get("num")
    return num + 1 if isinstance(num, int) else 1
