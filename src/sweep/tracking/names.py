"""Every MLflow param, metric and tag name a run carries, defined once here with its meaning.

Jobs, the report and the tests use these constants; the docs' schema page is rendered from `SCHEMA`
(`python -m sweep.cli.reference`). Adding a metric is one line here (`X = metric("x", "unit and meaning")`)
and the code that computes it; a test fails when a job logs a name this module does not describe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["param", "metric", "tag"]


@dataclass(frozen=True)
class Entry:
    """One row of the schema: names that share a meaning (a unit, or their values)."""

    kind: Kind
    names: tuple[str, ...]
    meaning: str
    shown: str = ""  # how the docs show the names where they are a pattern, not a list

    @property
    def title(self) -> str:
        return self.shown or ", ".join(f"`{n}`" for n in self.names)


SCHEMA: list[Entry] = []


def _define(kind: Kind, names: str | tuple[str, ...], meaning: str, shown: str = ""):
    SCHEMA.append(Entry(kind, (names,) if isinstance(names, str) else names, meaning, shown))
    return names


def param(names, meaning: str, shown: str = ""):
    return _define("param", names, meaning, shown)


def metric(names, meaning: str, shown: str = ""):
    return _define("metric", names, meaning, shown)


def tag(names, meaning: str, shown: str = ""):
    return _define("tag", names, meaning, shown)


# ---- params -------------------------------------------------------------------------------------------
PARAM_MODEL = param("model", "alias (`c`, `tiny_vit`, or the timm name when given by name)")
PARAM_MODEL_NAME = param("model_name", "timm model name")
PARAM_PRUNER = param("pruner", "pruning method (`conf/pruner/<name>.yaml`)")
PARAM_RATIO = param("ratio", "fraction pruned, in [0, 1)")
PARAM_DATASET = param("dataset", "dataset name")
PARAM_RATIO_MEANS = param("pruner.ratio_means", "what `ratio` is a fraction of, for this method")
param((), "except `tracking.*` and `sweep_id`", "every other key of the resolved config, flattened (`model.input_size`, `measure.batch_size`, `pruner.importance.p`, ...)")  # fmt: skip
PARAM_THREADS_USED, PARAM_ITERS_USED, PARAM_WARMUP_USED, PARAM_WARMUP_STABLE = param(
    ("measure.threads_used", "measure.iters_used", "measure.warmup_iters_used", "measure.warmup_stable"),
    "what the latency harness actually used",
)  # fmt: skip
HARNESS_BEFORE_PARAM = "call/1"  # what timed the runs logged before `measure.harness_used` existed
CONTENDED = "contended"  # the `latency_flag` of a timing other processes took the cores from
PARAM_HARNESS_USED = param("measure.harness_used", "the latency harness's scheme and version that timed the run, e.g. `block/6` (`measure.interleave`; version 6 adds the machine's run-to-run spread, `measure.run_to_run_cv`, to every interval, 5 and before the job's own spread only; versions 5 and 6 call OpenVINO through its sync API, as benchmark_app does, 4 through start_async + wait; 4 to 6 read OpenVINO's calls by its own request latency, as benchmark_app does, 3 the host clock around them; 3 to 6 time `measure.instances` instances of each model, 2 one; absent on runs timed before it was logged: `call/1`, one call per model in turn, bootstrap over single calls). Figures of different schemes are not comparable: the report says so where a sweep mixes them, and a resumed sweep re-times a finished job timed by another")  # fmt: skip
PARAM_EVAL_SAMPLES = param("eval.samples_used", "eval samples behind `accuracy_top1`")
PARAM_DATA_PREFIX = "data."
param((), "the preprocessing the model was fed (timm's resolved data config)", "`data.input_size`, `data.interpolation`, `data.crop_pct`, `data.mean`, `data.std`, ...")  # fmt: skip
PARAM_LR_USED = param("finetune.lr_used", "the fine-tuning learning rate in effect (`finetune.lr` or `model.finetune_lr`)")  # fmt: skip
param((), "the cost target (flattened config); a job with a target logs no `ratio` param (its ratio was searched: metric `ratio_used`)", "`target.macs`, `target.params`, `target.speedup`, `target.tolerance`, ...")  # fmt: skip
PARAM_CALIBRATION_SAMPLES = param("pruner.calibration_samples", "train images the gradient criteria (Taylor, Hessian) read")  # fmt: skip
PARAM_REGULARIZE_LR_USED = param("pruner.regularize.lr_used", "methods that train for sparsity: the learning rate of their sparse training (`pruner.regularize.lr` or `model.finetune_lr`)")  # fmt: skip
PARAM_ROUND_TO_USED = param("prune.round_to_used", "with `prune.round_to`: the multiple channel counts were rounded to (`auto` resolved for the job's device)")  # fmt: skip
PARAM_QUANTIZE_CALIBRATION = param("quantize.calibration_samples_used", "`quantize=int8`: train images the INT8 models were calibrated on (the same for every runtime, dense and pruned)")  # fmt: skip
PARAM_FINETUNE_MICRO_BATCH, PARAM_TRAIN_MICRO_BATCH = param(("finetune.micro_batch_used", "model.train.micro_batch_used"), "on a CPU, where the job trains (fine-tuning or sparse training; `model.head=finetune`): the most images one forward and backward pass took; below the batch size where the batch does not fit the memory limit (gradients accumulated over the parts: the same effective batch)")  # fmt: skip
PARAM_CALIBRATION_MICRO_BATCH = param("pruner.calibration_micro_batch_used", "gradient criteria (Taylor, Hessian): the most calibration images one backward pass took while pruning (at most 4, fewer where memory is short; gradients accumulated over a batch's parts)")  # fmt: skip
PARAM_MEMORY_USED = param("job.max_memory_gb_used", "the memory limit in effect, GiB (with `job.max_memory_gb=auto`)")  # fmt: skip
PARAM_WEIGHTS_CACHE = param("weights.cache_path", "the trained-weights file the job read or wrote (when it trains)")  # fmt: skip
param((), "", "`force` and `tracking.*` are not logged; the parent run has no params")

# ---- metrics: each per-model one also exists with the dense_ prefix, for the job's unpruned model ----
DENSE_PREFIX = "dense_"
COUNT_METRICS = PARAMS_TOTAL, PARAMS_NONZERO, MACS, MACS_NONZERO, SPARSITY = (
    *metric(("params_total", "params_nonzero"), "count"),
    *metric(("macs", "macs_nonzero"), "multiply-accumulates per image"),
    metric("sparsity", "fraction of zero weights in prunable layers, 0..1"),
)
LATENCY_METRICS = LATENCY_MS, LATENCY_P90_MS, LATENCY_STD_MS, THROUGHPUT, PEAK_MEM_MB = (
    *metric(
        ("latency_ms", "latency_p90_ms", "latency_std_ms"),
        "ms per batch of `measure.batch_size` (median, 90th percentile, standard deviation)",
    ),  # fmt: skip
    metric("throughput", "images / s"),
    metric(
        "peak_mem_mb",
        "MiB: weights plus the peak of one inference above what was resident before (CUDA: allocated memory; CPU: process RSS); in another runtime (`<runtime>/peak_mem_mb`, `<runtime>/int8/peak_mem_mb`), the weights as the bytes of the form it runs from (`file_mb`) plus the peak of one inference above what was resident before: CPU on Linux only, else NaN",
    ),  # fmt: skip
)
FILE_MB = metric("file_mb", "MB (10^6 bytes) on disk of the form that ships: eager, the weights in safetensors; onnxruntime and tensorrt, the ONNX file; openvino, its IR (.xml + .bin); INT8 (`<runtime>/int8/file_mb`): PyTorch's quantized state dict, the QDQ ONNX file, NNCF's IR (`dense_` the dense model's)", "`file_mb`, `<runtime>/file_mb`, `<runtime>/int8/file_mb` (and `dense_`)")  # fmt: skip
ACCURACY = metric("accuracy_top1", "fraction 0..1, after recovery fine-tuning (`= accuracy_top1_oneshot` when `finetune.epochs=0`); `dense_accuracy_top1` for the dense model")  # fmt: skip
DENSE_ACCURACY = DENSE_PREFIX + ACCURACY
METRICS_PER_MODEL = (*COUNT_METRICS, *LATENCY_METRICS, ACCURACY)
# the names of a speedup's 95 % interval, after its own name (`speedup` -> `speedup_ci_low`)
CI_LOW, CI_HIGH = "_ci_low", "_ci_high"
SPEEDUP_METRICS = SPEEDUP, SPEEDUP_CI_LOW, SPEEDUP_CI_HIGH = metric(
    ("speedup", "speedup" + CI_LOW, "speedup" + CI_HIGH),
    "`dense_latency_ms / latency_ms`, and its 95 % interval: a bootstrap over the instances of each model (`measure.instances`) and runs of consecutive paired rounds, so a difference between instances and drift within the timing widen it, and the machine's run-to-run CV (`measure.run_to_run_cv`) added in quadrature: where another job's reading of the pair is expected to fall",
)
CPU_CONTENTION = metric("cpu_contention", "share 0..1 of the timed cores that other processes took while the models were timed (Linux: busy and steal time of those cores in /proc/stat minus the process's own CPU time, beyond cores the timing left free); above `measure.contention_max` the timing's flag is `contended`", "`cpu_contention`, `<runtime>/cpu_contention`, `<runtime>/int8/cpu_contention`")  # fmt: skip
PARAMS_REDUCTION, MACS_REDUCTION = metric(("params_reduction", "macs_reduction"), "`1 - pruned / dense`, 0..1")  # fmt: skip
MACS_KEPT = metric("macs_kept", "`1 - macs_reduction`: fraction of the dense MACs kept (each logged model carries it)")  # fmt: skip
ACCURACY_DELTA = metric("accuracy_delta", "`accuracy_top1 - dense_accuracy_top1`")
ACCURACY_ONESHOT = metric("accuracy_top1_oneshot", "fraction 0..1: the pruned model right after pruning, before fine-tuning")  # fmt: skip
FINETUNE_SECONDS, FINETUNE_STEPS = metric(("finetune_seconds", "finetune_steps"), "s and optimizer steps of recovery fine-tuning, summed over a schedule's steps (only when `finetune.epochs > 0`)")  # fmt: skip
FINETUNE_LOSS_START, FINETUNE_LOSS_END = metric(("finetune_loss_start", "finetune_loss_end"), "training loss of recovery fine-tuning, mean over its first and its last 5 steps (with `prune.steps > 1`: the first step's start, the last step's end)")  # fmt: skip
FINETUNE_LOSS_FIRST = metric("finetune_loss_first", "training loss of recovery fine-tuning on its first batch, before any update (with `prune.steps > 1`: the first step's)")  # fmt: skip
FINETUNE_CURVE_LOSS, FINETUNE_CURVE_TOP1 = metric(("finetune_loss", "finetune_top1"), "history of recovery fine-tuning at MLflow step = optimizer steps since it started (the UI's charts): the training loss (mean over each stretch of about 1/50 of the steps), and top-1 on the eval split every `finetune.eval_every` epochs (step 0: one-shot top-1; the last point: `accuracy_top1`)")  # fmt: skip
FINETUNE_PARAMS_NONZERO = metric("finetune_params_nonzero", "count: non-zero parameters after fine-tuning (masks: not above `params_nonzero`)")  # fmt: skip
REGULARIZE_SECONDS, REGULARIZE_STEPS = metric(("regularize_seconds", "regularize_steps"), "methods that train for sparsity (`pruner.regularize`): s and optimizer steps of their sparse training of the dense model before pruning (the report counts them with fine-tuning's)")  # fmt: skip
REGULARIZE_LOSS_FIRST, REGULARIZE_LOSS_START, REGULARIZE_LOSS_END = metric(("regularize_loss_first", "regularize_loss_start", "regularize_loss_end"), "training loss of the sparse training: its first batch's (before any update), the mean over its first and over its last 5 steps")  # fmt: skip
PRUNE_SECONDS = metric("prune_seconds", "s spent in the pruner (with a target: the whole search), over every step of a schedule")  # fmt: skip
METRIC_RATIO_USED = metric("ratio_used", "the ratio the method ran at: `ratio`, or what the target's search found")  # fmt: skip
TARGET_ASKED, TARGET_VALUE = metric(("target_asked", "target_value"), "with a target: the fraction kept (or speedup) asked for, and what the pruned model reached")  # fmt: skip
TARGET_CI_LOW, TARGET_CI_HIGH = metric(("target_value_ci_low", "target_value_ci_high"), "`target.speedup` only: the 95 % interval of the speedup the search accepted (two readings averaged; each timing's own spread, without `measure.run_to_run_cv`: the search weighs readings of one job against each other)")  # fmt: skip
TARGET_REACHED, TARGET_TRIALS = metric(("target_reached", "target_trials"), "1 when the target was met within tolerance (landing `within` or `refined`), 0 when the job landed on the nearest point (`nearest`) or could not reach it; prunes the search made, both stages")  # fmt: skip
TARGET_REFINE_RATIO = metric("target_refine_ratio", "the ratio of the method's finest steps on top of `ratio_used` (0 when its ratio alone landed)")  # fmt: skip
# Per pruning step of an iterative schedule (prune.steps > 1), logged at MLflow step k = 1..N
STEP_MACS_KEPT, STEP_PARAMS_KEPT, STEP_RATIO = metric(("step_macs_kept", "step_params_kept", "step_ratio"), "`prune.steps > 1`, at MLflow step k = 1..N: fraction of the dense MACs and params kept after step k (masks: non-zero), the ratio step k ran at")  # fmt: skip
STEP_ACCURACY, STEP_FINETUNE_LOSS_END = metric(("step_accuracy_top1", "step_finetune_loss_end"), "`prune.steps > 1`, at step k: top-1 after step k's fine-tuning (at N: `accuracy_top1`), and its mean loss over the last 5 steps")  # fmt: skip
STEP_METRICS = (STEP_MACS_KEPT, STEP_PARAMS_KEPT, STEP_RATIO, STEP_ACCURACY, STEP_FINETUNE_LOSS_END)
SPARSE_KERNEL_LAYERS = metric("sparse_kernel_layers", "2:4 only: layers timed on sparse tensor-core kernels (0 where the device has none)")  # fmt: skip
PROCESS_RSS_MB = metric("process_rss_mb", "MiB: resident memory of the job's process when the job starts, after garbage collection: what earlier jobs in the same process left behind (flat across a sweep)")  # fmt: skip
STAGES = (
    "build",
    "weights",
    "regularize",
    "prune",
    "measure",
    "evaluate",
    "finetune",
    "quantize",
    "log",
    "ship",
)
STAGE_METRIC = "stage_{}_seconds"  # wall time of each stage of the job, s
metric(tuple(STAGE_METRIC.format(s) for s in STAGES), "s per stage of the job (summed over a schedule's steps)", f"`stage_<{','.join(STAGES)}>_seconds`")  # fmt: skip
STAGE_PEAK_METRIC = "stage_{}_peak_rss_mb"  # the process's highest resident memory in each stage
metric(tuple(STAGE_PEAK_METRIC.format(s) for s in STAGES), "MiB: the process's highest resident memory in each stage (sampled a few times a second by the job's limit watchdog, the highest over a schedule's steps), beside the limit in force (`job.max_memory_gb_used`)", f"`stage_<{','.join(STAGES)}>_peak_rss_mb`")  # fmt: skip
EFFICIENCY = metric("efficiency", "achieved MAC/s (dense-kernel `macs` x batch / `latency_ms`) over eager's measured GEMM peak, 0..1 (`dense_efficiency` for the dense model)")  # fmt: skip
PEAK_METRICS = PEAK_GEMM, PEAK_DWCONV = metric(("peak_gemm_gmacs_per_s", "peak_dwconv_gmacs_per_s"), "GMAC/s: eager's measured peak on this machine on a GEMM and a depthwise convolution (cached per machine)")  # fmt: skip

# Deployed latency (measure.runtimes): eager keeps the names above; every other runtime logs the same
# figures under its name, `<runtime>/<metric>`, and tags `<runtime>/latency_flag` or `<runtime>/not_applicable`.
EAGER = "eager"
metric((), "the same figures in a runtime of `measure.runtimes` (`compile`, `onnxruntime`, `openvino`, `tensorrt`), e.g. `onnxruntime/latency_ms`, `onnxruntime/dense_latency_ms`; eager's keep the names above", "`<runtime>/latency_ms`, `<runtime>/latency_p90_ms`, `<runtime>/latency_std_ms`, `<runtime>/throughput` (and `<runtime>/dense_*`)")  # fmt: skip
metric((), "dense / pruned median latency in that runtime, paired rounds, and its 95 % interval (as `speedup`'s)", "`<runtime>/speedup`, `<runtime>/speedup_ci_low`, `<runtime>/speedup_ci_high`")  # fmt: skip
metric((), "as for eager, against that runtime's own measured peak", "`<runtime>/efficiency`, `<runtime>/dense_efficiency`, `<runtime>/peak_gemm_gmacs_per_s`, `<runtime>/peak_dwconv_gmacs_per_s`")  # fmt: skip
EXPORT_SECONDS, BUILD_SECONDS = metric(("export_seconds", "build_seconds"), "s: PyTorch to the runtime's form (ONNX export, compilation), and building its session; never inside a latency", "`<runtime>/export_seconds`, `<runtime>/build_seconds` (and `dense_` twins)")  # fmt: skip
MAX_ABS_DIFF = metric("max_abs_diff", "max absolute difference between the runtime's output and eager's on the timed batch", "`<runtime>/max_abs_diff`, `<runtime>/dense_max_abs_diff`")  # fmt: skip
# Per-layer profiles (measure.profile): eager's under these names, another runtime's `<runtime>/<name>`.
PROFILE_METRICS = PROFILE_COVERAGE, PROFILE_MISALIGNED = (
    metric(
        "profile_coverage",
        "share of the harness's median latency that the layers the runtime's own profiler timed, and that map to a module, account for (the pruned model; `dense_profile_coverage` the dense one's): near 1 when the profile explains the latency",
        "`profile_coverage`, `<runtime>/profile_coverage` (and `dense_`)",
    ),  # fmt: skip
    metric(
        "profile_misaligned_share",
        "share 0..1 of the pruned model's profiled layer time in layers whose channel counts (in or out) are not multiples of 16",
        "`profile_misaligned_share`, `<runtime>/profile_misaligned_share`",
    ),  # fmt: skip
)
TAG_PROFILED = tag("profiled", "why the job's layers were profiled: `measure.profile=true`, or what `auto` saw (e.g. `onnxruntime: slower than dense`); absent when they were not")  # fmt: skip
TAG_SLOW_LAYERS = tag("slow_layers", "a profiled runtime's few layers behind most of the gap between the speedup the MACs predict and the one measured, JSON: `[{layer, op, channels, aligned, dense_ms, pruned_ms, gap_ms, share}]` (`gap_ms`: the pruned layer's ms beyond its dense ms scaled by its MAC ratio; `share`: of the positive gaps; `aligned`: channels multiples of 16)", "`slow_layers`, `<runtime>/slow_layers`")  # fmt: skip
TAG_PROFILE_NA = tag("profile_not_applicable", "why a runtime's layers could not be profiled (no profiler wired, or it failed); the job's other figures stand", "`profile_not_applicable`, `<runtime>/profile_not_applicable`")  # fmt: skip
RUNTIME_METRICS = (LATENCY_MS, LATENCY_P90_MS, LATENCY_STD_MS, THROUGHPUT, *SPEEDUP_METRICS, CPU_CONTENTION, EFFICIENCY, *PEAK_METRICS, EXPORT_SECONDS, BUILD_SECONDS, MAX_ABS_DIFF, PEAK_MEM_MB, FILE_MB)  # fmt: skip
# Post-training INT8 (quantize=int8): per runtime under `<runtime>/int8/` (eager's under `int8/`), the
# four models (dense and pruned, FP32 and INT8) timed in one interleaved harness.
INT8 = "int8"
metric((), "the INT8 models' latency in that runtime (`dense_`: the dense model's INT8), timed in the same interleaved rounds as the FP32 models", "`<runtime>/int8/latency_ms`, `<runtime>/int8/latency_p90_ms`, `<runtime>/int8/latency_std_ms`, `<runtime>/int8/throughput` (and `<runtime>/int8/dense_*`)")  # fmt: skip
metric((), "what pruning adds on top of INT8: dense INT8 / pruned INT8 median latency, and its 95 % interval (as `speedup`'s)", "`<runtime>/int8/speedup`, `<runtime>/int8/speedup_ci_low`, `<runtime>/int8/speedup_ci_high`")  # fmt: skip
INT8_FP32_LATENCY = metric("fp32_latency_ms", "ms: the FP32 pruned model's median latency in the INT8 harness's rounds (`dense_fp32_latency_ms`: the dense model's)", "`<runtime>/int8/fp32_latency_ms`, `<runtime>/int8/dense_fp32_latency_ms`")  # fmt: skip
SPEEDUP_PRUNING = metric(("speedup_pruning", "speedup_pruning_ci_low", "speedup_pruning_ci_high"), "pruning alone: dense FP32 / pruned FP32 in the INT8 harness's rounds, and its interval", "`<runtime>/int8/speedup_pruning` (and `_ci_low`, `_ci_high`)")  # fmt: skip
SPEEDUP_QUANTIZATION = metric(("speedup_quantization", "speedup_quantization_ci_low", "speedup_quantization_ci_high"), "quantization alone: dense FP32 / dense INT8, and its interval", "`<runtime>/int8/speedup_quantization` (and `_ci_low`, `_ci_high`)")  # fmt: skip
SPEEDUP_BOTH = metric(("speedup_both", "speedup_both_ci_low", "speedup_both_ci_high"), "pruning and quantization: dense FP32 / pruned INT8, and its interval", "`<runtime>/int8/speedup_both` (and `_ci_low`, `_ci_high`)")  # fmt: skip
metric((), "top-1 of the INT8 model read from the runtime itself (not PyTorch), on the images behind `accuracy_top1` (`dense_`: the dense INT8 model's)", "`<runtime>/int8/accuracy_top1`, `<runtime>/int8/dense_accuracy_top1`")  # fmt: skip
QUANTIZE_SECONDS = metric("quantize_seconds", "s: calibrating and quantizing with the runtime's own tool (ONNX Runtime's quantizer, NNCF, PyTorch's FX), never inside a latency", "`<runtime>/int8/quantize_seconds` (and `dense_`)")  # fmt: skip
INT8_METRICS = (LATENCY_MS, LATENCY_P90_MS, LATENCY_STD_MS, THROUGHPUT, *SPEEDUP_METRICS, CPU_CONTENTION, INT8_FP32_LATENCY, *SPEEDUP_PRUNING, *SPEEDUP_QUANTIZATION, *SPEEDUP_BOTH, ACCURACY, QUANTIZE_SECONDS, PEAK_MEM_MB, FILE_MB)  # fmt: skip
SYSTEM_PREFIX = "system/"
metric((), "with `tracking.system_metrics_s`: MLflow's system metrics over the job, e.g. `system/cpu_utilization_percentage` (%), `system/system_memory_usage_megabytes` (MB), `system/gpu_0_utilization_percentage` and `system/gpu_0_memory_usage_megabytes` where a GPU is seen (pynvml)", "`system/*`")  # fmt: skip
REQUIRED_METRICS = (PARAMS_TOTAL, PARAMS_NONZERO, MACS, LATENCY_MS, ACCURACY, DENSE_PREFIX + PARAMS_TOTAL, DENSE_PREFIX + MACS, DENSE_PREFIX + LATENCY_MS, DENSE_ACCURACY, SPEEDUP, PRUNE_SECONDS)  # fmt: skip

# ---- tags ----------------------------------------------------------------------------------------------
TAG_SWEEP_ID = tag("sweep_id", "shared by every job of one multirun (pass `sweep_id=...` to choose it)")  # fmt: skip
TAG_DEVICE = tag("device", "e.g. `cpu: x86_64, 2 cpus`, `cuda: NVIDIA H100 80GB HBM3`")
TAG_GIT_COMMIT = tag("git_commit", "commit of this checkout, or `unknown`")
TAG_VERSIONS = tag(("torch_version", "timm_version", "torch_pruning_version", "mlflow_version"), "versions")  # fmt: skip
TAG_KIND = tag("pruning_kind", "`unstructured`, `semi_structured`, `structured_mask`, `structural`")
TAG_FAMILY = tag("pruning_family", "`torch.nn.utils.prune`, `depgraph`, `semi_structured`, `attention_heads`")  # fmt: skip
TAG_FAMILY_TITLE = tag("pruning_family_title", "the family's title, the report's section for it (a user's own family is titled from it)")  # fmt: skip
TAG_SPEEDUP_POSSIBLE = tag("dense_speedup_possible", "`false` for masks: dense kernels do the same work")  # fmt: skip
TAG_SPARSE_KERNELS = tag("sparse_kernel_speedup_possible", "`true` for 2:4: sparse tensor cores (CUDA, compute capability >= 8.0, fp16/bf16) run it faster")  # fmt: skip
TAG_TARGET = tag("target", "the cost the job pruned to, e.g. `macs=0.5`; absent when it pruned at `ratio`")  # fmt: skip
TAG_TARGET_SOURCE = tag("target_source", "`published` when `target.macs=published` set the target: the MACs of the pruned architecture timm publishes for the model; absent otherwise")  # fmt: skip
TAG_TARGET_LANDING = tag("target_landing", "`within` (the ratio search landed within tolerance), `refined` (the method's finest steps did), `nearest` (neither: the nearest point at or beyond the target)")  # fmt: skip
TAG_TARGET_STOPPED_BY, TAG_TARGET_NOTE = tag(("target_stopped_by", "target_note"), "`nearest` only: `granularity` or `noise`, and one line saying where the job landed and why")  # fmt: skip
TAG_FINETUNE_INIT = tag("finetune_init", "`inherited` or `scratch` (`finetune.init`), set when the job fine-tunes")  # fmt: skip
TAG_FINETUNE_INIT_METHOD = tag("finetune_init_method", "scratch only: how it was re-initialised, `timm_init_cut_to_shape` and `+init_weights` where the model's own init ran")  # fmt: skip
TAG_LATENCY_FLAG = tag("latency_flag", "`none`, or why the latency figures are not to be trusted: `warmup_unstable`, `few_iterations`, `contended` (other processes took more than `measure.contention_max` of the timed cores: the speedup is kept out of rankings and never sets `slower_than_dense`)")  # fmt: skip
TAG_NOT_APPLICABLE = tag("not_applicable", "`true` on a FAILED run whose method cannot apply to the model or reach the target (reason in `error`)")  # fmt: skip
TAG_RUNTIME_FLAG = TAG_LATENCY_FLAG  # <runtime>/latency_flag
tag((), "per runtime of `measure.runtimes`: `none`, or `warmup_unstable`, `few_iterations`, `contended`, `output_mismatch` (its output differs from eager's beyond tolerance)", "`<runtime>/latency_flag`")  # fmt: skip
TAG_RUNTIME_NA = TAG_NOT_APPLICABLE  # <runtime>/not_applicable: the reason
tag((), "per runtime: one line saying why it could not time this job (not installed, wrong device or precision, masks, an op it or the exporter lacks); the job still FINISHES", "`<runtime>/not_applicable`")  # fmt: skip
TAG_SLOWER_THAN_DENSE = tag("slower_than_dense", "`true` when the pruned model is slower than the dense one beyond the interval (its speedup's upper bound below 1); `<runtime>/slower_than_dense` per runtime: the report flags it with the hint to try `prune.round_to`", "`slower_than_dense`, `<runtime>/slower_than_dense`")  # fmt: skip
RUNTIME_TAGS = (
    TAG_RUNTIME_FLAG,
    TAG_RUNTIME_NA,
    TAG_SLOWER_THAN_DENSE,
    TAG_SLOW_LAYERS,
    TAG_PROFILE_NA,
)
TAG_INT8_KERNELS = tag("int8/kernels", "`quantize=int8`, eager: the quantized engine each INT8 model was packed for, `dense=<engine> pruned=<engine>` (`x86` first; `onednn` where the x86 engine's kernels run the model slower than its FP32 form, as its depthwise kernel does at some channel counts a pruned model has)")  # fmt: skip
INT8_KERNELS = "kernels"  # <runtime>/int8/kernels
tag((), "`quantize=int8`, per runtime: its INT8 harness's latency flag (as `<runtime>/latency_flag`); one line saying why it has no INT8 figures (no INT8 path, masks, an operator its quantizer cannot take; the job still FINISHES); `true` when the pruned INT8 model is slower than the dense INT8 one beyond the interval", "`<runtime>/int8/latency_flag`, `<runtime>/int8/not_applicable`, `<runtime>/int8/slower_than_dense`")  # fmt: skip
TAG_SHIPPED = tag("shipped_models", "the forms the job logged as MLflow models of its run (`log_models`), e.g. `onnx,onnx_int8,pytorch`: logged models named `pruned-<form>` (the fine-tuned model); the dense model's `dense-<form>` once per sweep and model")  # fmt: skip
TAG_SHIP_NA = tag("ship_not_applicable", "the forms of `log_models` the job could not log as MLflow models and why, `<form>: why; ...` (an exporter that cannot take the model; where `torch.export` refuses it, its safetensors + structure form is kept in `model/`); the job still FINISHES")  # fmt: skip
TAG_DENSE_TOP1_SOURCE = tag("dense_top1_source", "`computed`: this job evaluated the dense model; `shared`: an earlier job with the same inputs did (model, weights file, seed, dataset and split, preprocessing, eval images and batch, device, versions: `weights.cache_dir/shared/`), and every job of a sweep's model is scored on the same eval images (`eval.samples_used`, decided by its first job)")  # fmt: skip
TAG_ONNX_EXPORTER = tag("onnx_exporter", "`torchscript` or `dynamo`: the exporter that made the job's ONNX files")  # fmt: skip
TAG_WEIGHTS, TAG_WEIGHTS_NOTE = tag(("weights", "weights_note"), "`trained`, `pretrained`, `random`; `weights_note` says why pretrained weights were not used")  # fmt: skip
TAG_AT_CHANCE = tag("accuracy_at_chance", "`true` when dense accuracy is not above chance")
TAG_NOOP = tag("noop", "`true` when pruning neither removed nor zeroed anything")
TAG_KEPT_DENSE = tag("pruning_kept_dense", "structural methods: the layers (path patterns, `*` = every repeat of a block, comma-separated) whose output channels were left whole because Torch-Pruning cannot prune them there; absent when none")  # fmt: skip
TAG_FINETUNE_STOPPED_BY = tag("finetune_stopped_by", "`epochs`, `max_steps`, `time_budget` or `non_finite_loss`: what ended recovery fine-tuning (a loss that goes NaN or inf ends it at once)")  # fmt: skip
TAG_DIVERGED = tag("finetune_diverged", "`true` when fine-tuning's loss went non-finite; or its mean over the last 5 steps ended no lower than a uniform guess's loss, ln(classes), and above where it started (its first batch's loss, before any update, or its first 5 steps' mean, whichever is lower: a loss that blew up at once has a first-steps mean far above its start); or it ended above 10 times a uniform guess's loss (a learning rate far too high, say; with `prune.steps > 1`, any step's fine-tuning judged on its own: a short step starting from a low loss may end slightly above it, which is noise, not divergence): the report flags the run and keeps it out of the summary's ranking and the figures, listing it apart")  # fmt: skip
TAG_REGULARIZE_STOPPED_BY, TAG_REGULARIZE_DIVERGED = tag(("regularize_stopped_by", "regularize_diverged"), "methods that train for sparsity: what ended their sparse training (as `finetune_stopped_by`), and `true` when it diverged by `finetune_diverged`'s rule (flagged and kept out of the ranking like it)")  # fmt: skip
TAG_PRUNED_AT_CHANCE = tag("pruned_at_chance", "`true` when the pruned model is at chance after fine-tuning while its dense model is not (the same test as `accuracy_at_chance`); not set by one-shot runs")  # fmt: skip
TAG_DATA_UNREADABLE, TAG_DATA_UNREADABLE_EXAMPLES, TAG_DATA_IGNORED = tag(("data_unreadable_files", "data_unreadable_examples", "data_ignored_files"), "image trees only: how many unreadable images (truncated, not an image, a mode without RGB) the job left out (`dataset.on_bad_file=skip`), the first few as `path: reason; ...` (`none` when there were none), and how many files in class folders were not images at all (ignored)")  # fmt: skip
TAG_ERROR = tag("error", "first line of the exception of a FAILED or KILLED run")
TAG_LIMIT = tag("limit_exceeded", "`<stage>:timeout` or `<stage>:memory`: the job ran past a `job.*` limit there")  # fmt: skip
TAG_JOB_KEY = tag("job_key", "stable hash of the job's config (resume and dedupe)")
TAG_ROLE = tag("run_role", "`job`, or `sweep` for a multirun's parent run")
TAG_HEARTBEAT = tag("heartbeat", "unix time (s) of a running job's or sweep's last sign of life, refreshed every `tracking.heartbeat_s`")  # fmt: skip
TAG_STALE = tag("stale", "`true` on a run ended FAILED by a later command because its heartbeat had stopped (reason in `error`)")  # fmt: skip
TAG_PARENT = tag("mlflow.parentRunId", "the sweep's parent run (MLflow's own nesting tag)")
TAG_COMMAND = tag("command", "parent run only: the command line of the sweep")

# ---- the sweep's run, the experiment, artifacts ----------------------------------------------------
PARENT_METRICS = ("jobs", "jobs_finished", "jobs_failed", "jobs_not_applicable", "jobs_skipped")
# a running sweep's progress, sent to its parent run as each job starts (step = jobs done)
PROGRESS_METRICS = ("jobs_done", "jobs_left", "eta_seconds")
TAG_NOTE = "mlflow.note.content"  # MLflow's description of a run (markdown, shown on its page)
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."  # a view of one sweep in the UI: an experiment tag
MODEL_ARTIFACT_DIR, HYDRA_ARTIFACT_DIR, REPORT_ARTIFACT_DIR = "model", "hydra", "report"
PROFILE_ARTIFACT_DIR = "profile"
TIMED_ARTIFACT_DIR = "timed"  # the ONNX file the runtimes timed: before fine-tuning, not what ships
# Logged models (MLflow 3): their tags, and the forms a job ships
MODEL_FORMS = ("onnx", "onnx_int8", "pytorch")
MODEL_ROLES = ("pruned", "dense")
MODEL_TAGS = MODEL_TAG_ROLE, MODEL_TAG_FORM, MODEL_TAG_MODEL, MODEL_TAG_COST = ("role", "form", "model", "cost")  # fmt: skip
MODEL_METRICS = (
    ACCURACY,
    DENSE_ACCURACY,
    MACS_KEPT,
    SPEEDUP,
)  # what a logged model carries (+ per runtime speedups)
TRACEBACK_ARTIFACT = "traceback.txt"
DEFAULT_EXPERIMENT = "pruning-sweep"
# Config keys that say where a job is written or tracked, not what it computes: neither logged as params
# nor part of its identity (job_key). `weights.cache_dir` is logged but is not identity either.
NOT_PARAMS = ("hydra", "tracking", "sweep_id", "force", "report")
NOT_IDENTITY = ("hydra", "tracking", "force", "weights.cache_dir", "report", "job")

INTRO = (
    "One run per job, named `<model>/<pruner>/<ratio>` (with a target: `<model>/<pruner>/macs=0.5`; a "
    "protocol other than one-shot with inherited weights and the method's own channel counts adds "
    "`/steps5`, `/scratch`, `/round16`), in experiment "
    f"`tracking.experiment` (default `{DEFAULT_EXPERIMENT}`). Names are defined once in "
    "`sweep/tracking/names.py`, with the meanings on this page, and used by jobs, the report and "
    "tests; so are the default store and the config keys left out of params and job identity."
)
PARENT_RUN = (
    f"**Parent run metrics**: {', '.join(f'`{m}`' for m in PARENT_METRICS)} (counts, for the latest "
    f"invocation of the sweep); while it runs, {', '.join(f'`{m}`' for m in PROGRESS_METRICS)} "
    "(jobs ended, jobs left, the estimate of the seconds left from the finished jobs' median time "
    "per model; absent until a job of every model with jobs left has finished), at step = jobs done, "
    f"sent as each job starts. **Parent run artifacts**: `{REPORT_ARTIFACT_DIR}/` (the rendered "
    f"report and its figures); its description (`{TAG_NOTE}`, shown on its page) links the report "
    "above the report's summary."
)
EXPERIMENT = (
    f"**Experiment tags**: `{EXPERIMENT_KIND_TAG}` = `{EXPERIMENT_KIND}`; "
    f"`{SHARED_VIEW_PREFIX}<sweep_id>`, the UI view of one sweep (filter, columns, grouping by model, "
    "order by top-1) that the printed link opens."
)
ARTIFACTS = (
    f"**Artifacts**: `{HYDRA_ARTIFACT_DIR}/` (the job's `config.yaml`, `hydra.yaml`, `overrides.yaml`); "
    f"`{TRACEBACK_ARTIFACT}` for a failed run; with `save_model=true`, `{MODEL_ARTIFACT_DIR}/model.safetensors` "
    f"and `{MODEL_ARTIFACT_DIR}/structure.json` (the pruned model; `sweep.models.artifacts.load` reloads it), and "
    f"`{TIMED_ARTIFACT_DIR}/pruned.onnx` (the file ONNX Runtime, OpenVINO or TensorRT timed, exported "
    f"before fine-tuning: same shapes, not the weights that ship; `{MODEL_ARTIFACT_DIR}/pruned.onnx` until "
    "this release) when the job timed one of them; for a profiled job, "
    f"`{PROFILE_ARTIFACT_DIR}/layers.json` (every runtime's layers, dense beside pruned, in MLflow's "
    f"table form), `{PROFILE_ARTIFACT_DIR}/layers.csv` and `{PROFILE_ARTIFACT_DIR}/layers.png`."
)
MODELS = (
    "**Logged models** (`log_models`, all three forms by default; the experiment's Models view): each "
    "finished job logs the fine-tuned pruned model in the forms it ships, named `pruned-<form>`: "
    f"{', '.join(f'`{f}`' for f in MODEL_FORMS)} (`mlflow.onnx`; the QDQ INT8 file ONNX Runtime's "
    "quantizer made, with `quantize=int8`; `mlflow.pytorch` saved through `torch.export`, no pickle), "
    "each with a signature, an input example, the run's params, tags "
    f"{', '.join(f'`{t}`' for t in MODEL_TAGS)} and `{TAG_SWEEP_ID}`, and metrics "
    f"{', '.join(f'`{m}`' for m in MODEL_METRICS)} and `<runtime>/speedup` (the INT8 form also "
    "`onnxruntime/int8/accuracy_top1`), under the run's names and values. The dense model is logged "
    "once per sweep and model (`dense-<form>`). `python -m sweep.cli.register` registers the best at "
    "each cost as versions of `<timm name>-pruned` with aliases `macs50`, `macs50-int8`, "
    "`macs50-pytorch`."
)


def runtime_key(runtime: str, name: str) -> str:
    """The metric or tag `name` of a runtime: eager's own name, else `<runtime>/<name>`."""
    return name if runtime == EAGER else f"{runtime}/{name}"


def int8_key(runtime: str, name: str) -> str:
    """The INT8 figure or tag `name` of a runtime: `<runtime>/int8/<name>` (eager's: `int8/<name>`)."""
    return runtime_key(runtime, f"{INT8}/{name}")


def named(kind: Kind) -> set[str]:
    """Every exact name of that kind the schema lists."""
    return {n for e in SCHEMA if e.kind == kind for n in e.names}


def describes(kind: Kind, key: str, config_keys: set[str] = frozenset()) -> bool:
    """Whether the schema says what `key` is: a listed name, a metric's dense_ or runtime form, a
    system metric, or (params) a key of the job's config or of its preprocessing."""
    known = named(kind)
    if key in known:
        return True
    if kind == "param":
        return key in config_keys or key.startswith(PARAM_DATA_PREFIX)
    if kind == "metric" and key.startswith(SYSTEM_PREFIX):
        return True
    runtime, _, rest = key.rpartition("/")
    if runtime.rpartition("/")[2] == INT8:
        if kind == "metric":
            return rest.removeprefix(DENSE_PREFIX) in INT8_METRICS
        return kind == "tag" and rest in (
            TAG_RUNTIME_FLAG,
            TAG_RUNTIME_NA,
            TAG_SLOWER_THAN_DENSE,
            INT8_KERNELS,
        )
    if runtime and kind == "metric":
        return rest.removeprefix(DENSE_PREFIX) in (*RUNTIME_METRICS, *PROFILE_METRICS)
    if runtime and kind == "tag":
        return rest in RUNTIME_TAGS
    return kind == "metric" and key.startswith(DENSE_PREFIX) and key[len(DENSE_PREFIX) :] in known


__all__ = [n for n in list(globals()) if n.isupper()] + [
    "Entry",
    "describes",
    "int8_key",
    "named",
    "runtime_key",
]
