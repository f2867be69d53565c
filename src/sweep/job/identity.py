"""What a job is called (its run name), which sweep it belongs to, and its identity (`job_key`: what
makes two jobs the same job, so that a resumed sweep finds the ones it finished)."""

from __future__ import annotations

import hashlib
import json
import time

from omegaconf import DictConfig, OmegaConf

from sweep import targets, tracking

__all__ = ["LATER_KEYS", "job_key", "level_of", "protocol_suffix", "run_name_of", "sweep_id_of"]


def level_of(cfg: DictConfig) -> str:
    """The cost level the job was asked for: its target's label (`macs=0.5`), or its ratio."""
    target = targets.of_config(cfg.target)
    return target.label if target else f"{cfg.ratio:g}"


def run_name_of(cfg: DictConfig) -> str:
    return f"{cfg.model.alias}/{cfg.pruner.name}/{level_of(cfg)}{protocol_suffix(cfg)}"


def protocol_suffix(cfg: DictConfig) -> str:
    """`/steps5`, `/scratch`, `/round16`: the protocol of a run whose schedule, init or channel
    rounding is not the default."""
    steps, init, round_to = cfg.prune.steps, cfg.finetune.init, cfg.prune.round_to
    return (
        (f"/steps{steps}" if steps > 1 else "")
        + (f"/{init}" if init != "inherited" else "")
        + (f"/round{round_to}" if round_to is not None else "")
    )


def sweep_id_of(cfg: DictConfig) -> str:
    return cfg.sweep_id or time.strftime("%Y%m%d-%H%M%S-single")


# Config keys added after sweeps had been run, with their defaults: at the default they are left out of
# a job's identity, so a sweep resumed across the upgrade still finds the jobs it finished.
LATER_KEYS = {
    "prune.round_to": None,
    "target.runtime": "eager",
    "quantize.precision": "none",
    "quantize.calibration_samples": 128,
    "quantize.runtimes": None,
    # a finished run timed by another harness is re-timed on resume (its `measure.harness_used`)
    "measure.interleave": "block",
    "measure.block_ms": 5.0,
    "measure.contention_max": 0.1,
    "measure.instances": 2,
    "measure.run_to_run_cv": 0.02,
    "measure.profile": "auto",
    "log_models": ["onnx", "onnx_int8", "pytorch"],
    "finetune.eval_every": 1,
}


def job_key(cfg: DictConfig) -> str:
    """Stable identity of a job: its resolved config minus where things are written and tracked (and
    minus `force`). Includes sweep_id, so re-running a sweep finds its own finished jobs."""
    flat = tracking.flatten(OmegaConf.to_container(cfg, resolve=True), drop=tracking.NOT_IDENTITY)
    flat = {k: v for k, v in flat.items() if k not in LATER_KEYS or v != LATER_KEYS[k]}
    return hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:20]
