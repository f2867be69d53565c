"""The typed config schema: dataclasses registered in Hydra's ConfigStore, and every range check.

Hydra merges conf/sweep.yaml and the group yamls onto these dataclasses, so a wrongly typed override
(`ratio=abc`, `measure.batch_size=two`) is rejected by Hydra itself, numbers arrive as numbers, and a
yaml only states the keys that differ from the defaults here. What a type cannot say (a ratio in [0, 1),
a positive batch size, one of a few names) is each field's `check` metadata, checked by `check_ranges`
before anything is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Optional, Union

from omegaconf import MISSING

from sweep.config.checks import NON_NEGATIVE, POSITIVE, Check, checked
from sweep.errors import SweepConfigError
from sweep.tracking import (
    DEFAULT_EXPERIMENT,
    DEFAULT_HEARTBEAT_S,
    DEFAULT_STALE_AFTER_S,
    DEFAULT_URI,
    MODEL_FORMS,
    TRACKING_URI_ENV,
)

HEADS = ("keep", "fit", "finetune")


@dataclass
class TrainConfig:
    """Training on the dataset's train split before pruning, as `model.head` says (0 epochs = none);
    the result is cached. With head=fit only the new classifier trains, on frozen features."""

    epochs: int = checked(10, NON_NEGATIVE)
    lr: float = checked(1e-3, POSITIVE)
    batch_size: int = checked(64, POSITIVE)
    weight_decay: float = checked(0.05, NON_NEGATIVE)


@dataclass
class ModelConfig:
    alias: str = MISSING
    name: str = MISSING  # timm model name
    # side length the model sees; null: the model's own (timm's pretrained config)
    input_size: Optional[int] = checked(None, POSITIVE)
    # pretrained: timm's weights (random when unreachable); random: timm's initialisation
    weights: str = checked("pretrained", Check(choices=("pretrained", "random")))
    # a local checkpoint used as the pretrained weights (air-gapped clusters, tests)
    pretrained_file: Optional[str] = None
    # keep: the pretrained classifier (the dataset maps its classes into it); fit: a new head for the
    # dataset's classes trained on frozen features (linear probe); finetune: the whole model trained
    head: str = checked("fit", Check(choices=HEADS))
    train: TrainConfig = field(default_factory=TrainConfig)
    # learning rate of recovery fine-tuning after pruning, unless finetune.lr says otherwise: low for
    # pretrained weights, as high as training from scratch for the tiny models
    finetune_lr: float = checked(1e-4, POSITIVE)
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed to timm.create_model


# Where dense and pruned models are timed (sweep.measure.runtimes); eager is always measured.
RUNTIMES = ("eager", "compile", "onnxruntime", "openvino", "tensorrt")
ONNX_EXPORTERS = ("auto", "torchscript", "dynamo")
INTERLEAVES = ("block", "call")  # the latency harness's schemes (measure.interleave)


@dataclass
class MeasureConfig:
    """The latency harness (sweep.measure.latency.LatencySettings is built from this)."""

    batch_size: int = checked(1, POSITIVE)
    precision: str = checked("fp32", Check(choices=("fp32", "fp16", "bf16")))
    channels_last: bool = False
    compile: bool = False
    warmup_min: int = checked(3, Check(lo=1))
    warmup_max: int = checked(50, Check(lo=1))
    warmup_tol: float = checked(0.05, POSITIVE)
    iters: Union[int, str] = checked("auto", Check(lo=1, auto=("auto",)))  # timed rounds
    iters_min: int = checked(10, Check(lo=1))  # fewest timed rounds
    iters_max: int = checked(1000, Check(lo=1))  # most timed calls per model
    time_budget_s: float = checked(4.0, POSITIVE)
    threads: Union[int, str] = checked("auto", Check(lo=1, auto=("auto",)))
    bootstrap: int = checked(1000, NON_NEGATIVE)
    # block: per round each model runs untimed, then back-to-back timed calls; call: one each in turn
    interleave: str = checked("block", Check(choices=INTERLEAVES))
    block_ms: float = checked(5.0, POSITIVE)  # the span of a timed block, ms
    contention_max: float = checked(0.1, Check(lo=0, hi=1))  # above it: the timing is `contended`
    instances: int = checked(2, Check(lo=1))  # of each model (sessions, copies), timed in turn
    # a speedup's CV from one job to the next on this machine, which one job cannot see: added to each
    # interval (benchmarks/repeatability.py measures it; 0: the job's own spread only)
    run_to_run_cv: float = checked(0.02, Check(lo=0, hi=0.5))
    # the runtimes dense and pruned are timed in, eager always; e.g. [eager,onnxruntime,openvino]
    runtimes: list[str] = field(default_factory=lambda: ["eager"])
    # ONNX exporter for onnxruntime / openvino / tensorrt. auto: TorchScript's, dynamo's where it fails
    onnx_exporter: str = checked("auto", Check(choices=ONNX_EXPORTERS))
    # each runtime's peak (GEMM, depthwise-conv microbenchmarks, cached): `efficiency` is a fraction of it
    peak: bool = True
    # per-layer time in each runtime's own profiler; auto: where pruning pays less than its MACs say
    profile: Union[bool, str] = checked("auto", Check(choices=("auto",), flag=True))


@dataclass
class EvalConfig:
    batch_size: int = checked(64, POSITIVE)
    # auto: the whole eval split on GPU; on CPU as many samples as fit time_budget_s (>= min_samples)
    max_samples: Optional[Union[int, str]] = checked("auto", Check(lo=1, auto=("auto",)))
    min_samples: int = checked(32, Check(lo=1))
    time_budget_s: float = checked(60.0, POSITIVE)


@dataclass
class DistillConfig:
    """Knowledge distillation from the dense model while fine-tuning: loss = (1 - weight) * CE +
    weight * T^2 * KL(teacher || student) at temperature T."""

    weight: float = checked(0.0, Check(lo=0, hi=1))
    temperature: float = checked(4.0, POSITIVE)


INITS = ("inherited", "scratch")


@dataclass
class FinetuneConfig:
    """Recovery fine-tuning of the pruned model on the train split, the same budget for every method.
    Masks stay masks: a zeroed weight stays zero."""

    epochs: int = checked(0, NON_NEGATIVE)  # 0: one-shot (accuracy_top1 = accuracy_top1_oneshot)
    lr: Optional[float] = checked(None, POSITIVE)  # null: the model's own model.finetune_lr
    schedule: str = checked("cosine", Check(choices=("cosine", "constant")))
    weight_decay: float = checked(0.0, NON_NEGATIVE)
    batch_size: int = checked(64, POSITIVE)
    max_steps: Optional[int] = checked(None, Check(lo=1))  # stop after this many optimizer steps
    time_budget_s: Optional[float] = checked(None, POSITIVE)  # or after this many seconds
    distill: DistillConfig = field(default_factory=DistillConfig)
    # inherited: the pruned weights are fine-tuned; scratch: the pruned architecture is re-initialised
    # (timm's own init) and trained with the same budget (the control of Liu et al., ICLR 2019)
    init: str = checked("inherited", Check(choices=INITS))
    # top-1 on the eval split every this many epochs of recovery fine-tuning, logged as metric history
    # (`finetune_top1`, step = optimizer steps) beside the loss; 0: only before and after
    eval_every: int = checked(1, NON_NEGATIVE)


@dataclass
class PruneConfig:
    """The pruning schedule. steps=N reaches the same final ratio or cost target in N equal steps, the
    fine-tuning budget split evenly between them (after each step), so its total is one-shot's."""

    steps: int = checked(1, Check(lo=1, hi=100))
    # structural methods: channel counts rounded to a multiple of this (Torch-Pruning's round_to), for
    # kernels that run fastest on whole vector or tensor-core widths; auto: 8 on CUDA, 16 on a CPU
    # (sweep.job.build.ROUND_TO_AUTO); null: the method's own setting (none for the shipped ones)
    round_to: Optional[Union[int, str]] = checked(None, Check(lo=1, auto=("auto",)))


@dataclass
class TargetConfig:
    """Prune to a cost instead of a ratio: at most one of macs, params (fractions of the dense model's
    to keep) or speedup (measured on the job's device). The ratio is searched until the reached value
    is within `tolerance` of the target (fractions: absolute; speedup: relative, or the target inside
    the measured interval), then the method's finest steps close what is left; where neither can, the
    job lands on the nearest point at or beyond the target and says why. A target no ratio reaches ends
    the job not applicable. Mask methods reach macs/params by non-zero counts."""

    # or `published`: the MACs of the pruned architecture timm publishes for the model (timm_published)
    macs: Optional[Union[float, int, str]] = checked(
        None, Check(lo=0, hi=1, lo_open=True, auto=("published",))
    )
    params: Optional[float] = checked(None, Check(lo=0, hi=1, lo_open=True))
    speedup: Optional[float] = checked(None, Check(lo=1, lo_open=True))
    tolerance: float = checked(0.02, POSITIVE)
    max_trials: int = checked(12, Check(lo=1))
    max_ratio: float = checked(0.95, Check(lo=0, hi=1, lo_open=True, hi_open=True))
    # where a speedup target is measured: the runtime the model ships in (its speedup can differ from
    # eager's); the measure stage then times that runtime too. macs and params targets ignore it
    runtime: str = checked("eager", Check(choices=RUNTIMES))


TARGETS = ("macs", "params", "speedup")
QUANTIZE = ("none", "int8")


@dataclass
class QuantizeConfig:
    """conf/quantize/*.yaml: post-training static quantization of the dense and the fine-tuned pruned
    model in every runtime of measure.runtimes, with that runtime's own tool (sweep.measure.quantized),
    calibrated on `calibration_samples` train images (never the eval split)."""

    # none: FP32 only; int8: post-training static INT8 beside FP32 (quantize=int8 selects it)
    precision: str = checked("none", Check(choices=QUANTIZE))
    # train images the INT8 models are calibrated on, the same for dense and pruned in every runtime
    calibration_samples: int = checked(128, POSITIVE)
    # the runtimes to quantize in, each one the job is timed in (eager always is); null: all of them
    runtimes: Optional[list[str]] = None


@dataclass
class ReportConfig:
    on_sweep_end: bool = (
        False  # render the report (and log it to the sweep's run) when a multirun ends
    )
    out: str = "reports"


@dataclass
class WeightsConfig:
    cache_dir: str = "${oc.env:SWEEP_CACHE_DIR,.cache/sweep}"  # trained weights, shared by jobs


@dataclass
class TrackingConfig:
    uri: str = f"${{oc.env:{TRACKING_URI_ENV},{DEFAULT_URI}}}"
    experiment: str = DEFAULT_EXPERIMENT
    parent_run_id: Optional[str] = None  # the sweep's parent run; the CLI fills it in
    # a running job's heartbeat tag is refreshed this often, s (null: none)
    heartbeat_s: Optional[float] = checked(DEFAULT_HEARTBEAT_S, POSITIVE)
    # a sweep command ends FAILED any RUNNING run (of any sweep) whose heartbeat is older than this, s
    stale_after_s: float = checked(DEFAULT_STALE_AFTER_S, POSITIVE)
    # MLflow's system metrics (CPU, memory, GPU) sampled this often, s, while a job runs; null: off (the
    # default: a sampling thread beside a CPU latency measurement is one more thing on its cores)
    system_metrics_s: Optional[float] = checked(None, POSITIVE)


@dataclass
class StageTimeoutConfig:
    """Seconds a stage may run (null: no limit). auto: scales with the model (pruning: 300 s + 3 s per
    million parameters, per trial of a target search)."""

    build: Optional[float] = checked(None, POSITIVE)
    weights: Optional[float] = checked(None, POSITIVE)
    regularize: Optional[float] = checked(None, POSITIVE)
    prune: Optional[Union[int, float, str]] = checked(
        "auto", Check(lo=0, lo_open=True, auto=("auto",))
    )
    measure: Optional[float] = checked(None, POSITIVE)
    evaluate: Optional[float] = checked(None, POSITIVE)
    finetune: Optional[float] = checked(None, POSITIVE)
    quantize: Optional[float] = checked(None, POSITIVE)
    log: Optional[float] = checked(None, POSITIVE)
    ship: Optional[float] = checked(None, POSITIVE)


@dataclass
class JobConfig:
    """Limits of one job (sweep.limits): a job over one ends FAILED with the stage and the limit named,
    and the sweep goes on. Not part of a job's identity: a resumed sweep with other limits skips what
    finished."""

    timeout_s: Optional[float] = checked(None, POSITIVE)  # the whole job; null: no limit
    stage_timeout_s: StageTimeoutConfig = field(default_factory=StageTimeoutConfig)
    # resident memory of the job's process, GiB. auto: its memory at the job's start + 40x the fp32
    # weights + 1.5x the largest counted need of a stage (training, gradient criteria, evaluation), at
    # least 4 GiB above the start, at most 90 % of the machine's; a training batch over it runs in parts
    # (gradients accumulated); null: no limit
    max_memory_gb: Optional[Union[int, float, str]] = checked(
        "auto", Check(lo=0, lo_open=True, auto=("auto",))
    )


@dataclass
class SweepConfig:
    model: ModelConfig = MISSING
    pruner: Any = MISSING  # conf/pruner/*.yaml: a _target_ and its arguments
    dataset: Any = MISSING  # conf/dataset/*.yaml: a _target_ and its arguments
    ratio: float = checked(0.5, Check(lo=0, hi=1, hi_open=True))
    target: TargetConfig = field(default_factory=TargetConfig)  # a cost to reach instead of `ratio`
    prune: PruneConfig = field(default_factory=PruneConfig)  # one-shot or iterative
    seed: int = checked(0, NON_NEGATIVE)
    sweep_id: Optional[str] = None
    force: bool = False
    device: str = checked("auto", Check(choices=("auto", "cpu", "cuda"), prefixes=("cuda:",)))
    weights: WeightsConfig = field(default_factory=WeightsConfig)
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    # INT8 after fine-tuning (quantize=int8): dense and pruned, in each runtime, beside their FP32
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    job: JobConfig = field(default_factory=JobConfig)  # time and memory limits
    save_model: bool = False  # log the pruned (and fine-tuned) model as a run artifact
    # the forms of the fine-tuned pruned model logged as MLflow models of its run (and the dense
    # model's once per sweep and model): what `sweep.cli.register` registers. onnx_int8 needs
    # quantize=int8; pytorch is saved through torch.export (about 1 s a tiny model); []: none
    log_models: list[str] = field(default_factory=lambda: list(MODEL_FORMS))
    # modules imported before anything is checked or built: a user's package that registers timm
    # models or defines pruners and datasets (e.g. imports=[my_method])
    imports: list[str] = field(default_factory=list)
    report: ReportConfig = field(default_factory=ReportConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


SCHEMA_NAME = "sweep_schema"


def register() -> None:
    """Put the schema into Hydra's ConfigStore (idempotent); conf/sweep.yaml names it first in its defaults."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=SCHEMA_NAME, node=SweepConfig)


def _walk(schema: type, prefix: str = ""):
    """(dotted key, Check, nested dataclass) for every field of `schema`, depth first."""
    for f in fields(schema):
        key = prefix + f.name
        if "check" in f.metadata:
            yield key, f.metadata["check"]
        sub = f.default_factory if callable(f.default_factory) else None
        if sub is not None and is_dataclass(sub):
            yield from _walk(sub, key + ".")
        elif f.name == "model":
            yield from _walk(ModelConfig, key + ".")


CHECKS: dict[str, Check] = dict(_walk(SweepConfig))


def _get(cfg: Any, key: str) -> Any:
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def check_ranges(cfg: Any) -> None:
    """One line naming the first value outside its range, with what would be valid."""
    for key, check in CHECKS.items():
        value = _get(cfg, key)
        if not check.ok(value):
            raise SweepConfigError(f"{key}={value!r} is not valid: {check.describe()}")
    asked = [f"target.{k}={cfg.target[k]}" for k in TARGETS if cfg.target[k] is not None]
    if len(asked) > 1:
        raise SweepConfigError(f"{' and '.join(asked)}: set at most one target per job")
    if cfg.finetune.init == "scratch" and cfg.finetune.epochs == 0:
        raise SweepConfigError(
            "finetune.init=scratch needs training: a re-initialised model is at chance; set "
            "finetune.epochs >= 1 (the budget it is trained with)"
        )
    m = cfg.measure
    _check_names("measure.runtimes", m.runtimes, RUNTIMES, "a runtime")
    _check_names("log_models", cfg.log_models, MODEL_FORMS, "a model form")
    timed = ["eager", *m.runtimes, cfg.target.runtime]
    for name in cfg.quantize.runtimes or ():
        if name not in timed:
            raise SweepConfigError(
                f"quantize.runtimes: {name!r} is not timed in this job: choose from "
                f"{', '.join(dict.fromkeys(timed))} (measure.runtimes adds runtimes)"
            )
    if m.warmup_max < m.warmup_min or m.iters_max < m.iters_min:
        raise SweepConfigError(
            "measure: warmup_max must be >= warmup_min and iters_max >= iters_min"
        )


def _check_names(key: str, given, valid: tuple[str, ...], what: str) -> None:
    for name in given:
        if name not in valid:
            raise SweepConfigError(f"{key}: {name!r} is not {what}: choose from {', '.join(valid)}")


def describe_type_error(message: str) -> str | None:
    """A one-line message for Hydra's complaint about a wrongly typed value, or None if it is not one.
    Hydra says e.g. "Value 'abc' of type 'str' could not be converted to Float ... full_key: ratio"."""
    import re

    value = re.search(r"Value '(.*?)' (?:of type '\w+' )?could not be converted to (\w+)", message)
    key = re.search(r"full_key: ([\w.]+)", message)
    union = re.search(r"Value '(.*?)' of type '\w+' is incompatible with type hint", message)
    if union and key and key.group(1) in CHECKS:  # a Union field (measure.profile: auto|true|false)
        return f"{key.group(1)}={union.group(1)!r} is not valid: {CHECKS[key.group(1)].describe()}"
    if not value or not key:
        return None
    check = CHECKS.get(key.group(1))
    hint = f": {check.describe()}" if check else ""
    kind = {"Float": "number", "Integer": "whole number", "Boolean": "true/false"}.get(
        value.group(2), value.group(2)
    )
    return f"{key.group(1)}={value.group(1)!r} is not a {kind}{hint}"
