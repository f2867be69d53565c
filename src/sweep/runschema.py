"""The MLflow schema written down: every param, metric and tag a job's run carries, with its unit or its
values. The names are `sweep.tracking`'s (jobs, the report and the tests use those constants); this is
their documentation, rendered as the docs' schema page by `sweep.reference`, and the tests fail when a
name `sweep.tracking` defines is missing here.
"""

from __future__ import annotations

INTRO = (
    "One run per job, named `<model>/<pruner>/<ratio>` (with a target: `<model>/<pruner>/macs=0.5`; a "
    "protocol other than one-shot with inherited weights adds `/steps5`, `/scratch`), in experiment "
    "`tracking.experiment` (default `pruning-sweep`). Names are defined once in `sweep/tracking.py` and "
    "used by jobs, the report and tests; so are the default store and the config keys left out of params "
    "and job identity."
)

# (names, meaning): params a job logs
PARAMS = [
    ("`model`", "alias (`c`, `tiny_vit`, or the timm name when given by name)"),
    ("`model_name`", "timm model name"),
    ("`pruner`", "pruning method (`conf/pruner/<name>.yaml`)"),
    ("`ratio`", "fraction pruned, in [0, 1)"),
    ("`dataset`", "dataset name"),
    ("`pruner.ratio_means`", "what `ratio` is a fraction of, for this method"),
    (
        "every other key of the resolved config, flattened (`model.input_size`, `measure.batch_size`, `pruner.importance.p`, ...)",
        "except `tracking.*` and `sweep_id`",
    ),
    (
        "`measure.threads_used`, `measure.iters_used`, `measure.warmup_iters_used`, `measure.warmup_stable`",
        "what the latency harness actually used",
    ),
    ("`eval.samples_used`", "eval samples behind `accuracy_top1`"),
    (
        "`data.input_size`, `data.interpolation`, `data.crop_pct`, `data.mean`, `data.std`, ...",
        "the preprocessing the model was fed (timm's resolved data config)",
    ),
    (
        "`finetune.lr_used`",
        "the fine-tuning learning rate in effect (`finetune.lr` or `model.finetune_lr`)",
    ),
    (
        "`target.macs`, `target.params`, `target.speedup`, `target.tolerance`, ...",
        "the cost target (flattened config); a job with a target logs no `ratio` param (its ratio was searched: metric `ratio_used`)",
    ),
    ("`pruner.calibration_samples`", "train images the gradient criteria (Taylor, Hessian) read"),
    ("`job.max_memory_gb_used`", "the memory limit in effect, GiB (with `job.max_memory_gb=auto`)"),
    ("`weights.cache_path`", "the trained-weights file the job read or wrote (when it trains)"),
    ("`force` and `tracking.*` are not logged; the parent run has no params", ""),
]

# (names, unit and meaning): each per-model metric also exists with a `dense_` prefix, for the unpruned
# model of the same job
METRICS = [
    ("`params_total`, `params_nonzero`", "count"),
    ("`macs`, `macs_nonzero`", "multiply-accumulates per image"),
    ("`sparsity`", "fraction of zero weights in prunable layers, 0..1"),
    (
        "`latency_ms`, `latency_p90_ms`, `latency_std_ms`",
        "ms per batch of `measure.batch_size` (median, 90th percentile, standard deviation)",
    ),
    ("`throughput`", "images / s"),
    (
        "`peak_mem_mb`",
        "MiB: weights plus the peak of one inference above what was resident before (CUDA: allocated memory; CPU: process RSS)",
    ),
    (
        "`accuracy_top1`",
        "fraction 0..1, after recovery fine-tuning (`= accuracy_top1_oneshot` when `finetune.epochs=0`); `dense_accuracy_top1` for the dense model",
    ),
    (
        "`speedup`, `speedup_ci_low`, `speedup_ci_high`",
        "`dense_latency_ms / latency_ms`, and its 95 % bootstrap interval",
    ),
    ("`params_reduction`, `macs_reduction`", "`1 - pruned / dense`, 0..1"),
    ("`accuracy_delta`", "`accuracy_top1 - dense_accuracy_top1`"),
    (
        "`accuracy_top1_oneshot`",
        "fraction 0..1: the pruned model right after pruning, before fine-tuning",
    ),
    (
        "`finetune_seconds`, `finetune_steps`",
        "s and optimizer steps of recovery fine-tuning, summed over a schedule's steps (only when `finetune.epochs > 0`)",
    ),
    (
        "`finetune_loss_start`, `finetune_loss_end`",
        "training loss of recovery fine-tuning, mean over its first and its last 5 steps (with `prune.steps > 1`: the first step's start, the last step's end)",
    ),
    (
        "`finetune_params_nonzero`",
        "count: non-zero parameters after fine-tuning (masks: not above `params_nonzero`)",
    ),
    (
        "`prune_seconds`",
        "s spent in the pruner (with a target: the whole search), over every step of a schedule",
    ),
    ("`ratio_used`", "the ratio the method ran at: `ratio`, or what the target's search found"),
    (
        "`target_asked`, `target_value`",
        "with a target: the fraction kept (or speedup) asked for, and what the pruned model reached",
    ),
    (
        "`target_value_ci_low`, `target_value_ci_high`",
        "`target.speedup` only: the 95 % interval of the speedup the search accepted (two readings averaged)",
    ),
    (
        "`target_reached`, `target_trials`",
        "1 when the target was met within tolerance (landing `within` or `refined`), 0 when the job landed on the nearest point (`nearest`) or could not reach it; prunes the search made, both stages",
    ),
    (
        "`target_refine_ratio`",
        "the ratio of the method's finest steps on top of `ratio_used` (0 when its ratio alone landed)",
    ),
    (
        "`step_macs_kept`, `step_params_kept`, `step_ratio`",
        "`prune.steps > 1`, at MLflow step k = 1..N: fraction of the dense MACs and params kept after step k (masks: non-zero), the ratio step k ran at",
    ),
    (
        "`step_accuracy_top1`, `step_finetune_loss_end`",
        "`prune.steps > 1`, at step k: top-1 after step k's fine-tuning (at N: `accuracy_top1`), and its mean loss over the last 5 steps",
    ),
    (
        "`sparse_kernel_layers`",
        "2:4 only: layers timed on sparse tensor-core kernels (0 where the device has none)",
    ),
    (
        "`process_rss_mb`",
        "MiB: resident memory of the job's process when the job starts, after garbage collection: what earlier jobs in the same process left behind (flat across a sweep)",
    ),
    (
        "`stage_<build,weights,prune,measure,evaluate,finetune,log>_seconds`",
        "s per pipeline stage (summed over a schedule's steps)",
    ),
    (
        "`efficiency`",
        "achieved MAC/s (dense-kernel `macs` x batch / `latency_ms`) over eager's measured GEMM peak, 0..1 (`dense_efficiency` for the dense model)",
    ),
    (
        "`peak_gemm_gmacs_per_s`, `peak_dwconv_gmacs_per_s`",
        "GMAC/s: eager's measured peak on this machine on a GEMM and a depthwise convolution (cached per machine)",
    ),
    (
        "`<runtime>/latency_ms`, `<runtime>/latency_p90_ms`, `<runtime>/latency_std_ms`, `<runtime>/throughput` (and `<runtime>/dense_*`)",
        "the same figures in a runtime of `measure.runtimes` (`compile`, `onnxruntime`, `openvino`, `tensorrt`), e.g. `onnxruntime/latency_ms`, `onnxruntime/dense_latency_ms`; eager's keep the names above",
    ),
    (
        "`<runtime>/speedup`, `<runtime>/speedup_ci_low`, `<runtime>/speedup_ci_high`",
        "dense / pruned median latency in that runtime, paired rounds, and its 95 % bootstrap interval",
    ),
    (
        "`<runtime>/efficiency`, `<runtime>/dense_efficiency`, `<runtime>/peak_gemm_gmacs_per_s`, `<runtime>/peak_dwconv_gmacs_per_s`",
        "as for eager, against that runtime's own measured peak",
    ),
    (
        "`<runtime>/export_seconds`, `<runtime>/build_seconds` (and `dense_` twins)",
        "s: PyTorch to the runtime's form (ONNX export, compilation), and building its session; never inside a latency",
    ),
    (
        "`<runtime>/max_abs_diff`, `<runtime>/dense_max_abs_diff`",
        "max absolute difference between the runtime's output and eager's on the timed batch",
    ),
    (
        "`system/*`",
        "with `tracking.system_metrics_s`: MLflow's system metrics over the job, e.g. `system/cpu_utilization_percentage` (%), `system/system_memory_usage_megabytes` (MB), `system/gpu_0_utilization_percentage` and `system/gpu_0_memory_usage_megabytes` where a GPU is seen (pynvml)",
    ),
]

# (names, values)
TAGS = [
    ("`sweep_id`", "shared by every job of one multirun (pass `sweep_id=...` to choose it)"),
    ("`device`", "e.g. `cpu: x86_64, 2 cpus`, `cuda: NVIDIA H100 80GB HBM3`"),
    ("`git_commit`", "commit of this checkout, or `unknown`"),
    ("`torch_version`, `timm_version`, `torch_pruning_version`, `mlflow_version`", "versions"),
    ("`pruning_kind`", "`unstructured`, `semi_structured`, `structured_mask`, `structural`"),
    (
        "`pruning_family`",
        "`torch.nn.utils.prune`, `depgraph`, `semi_structured`, `attention_heads`",
    ),
    (
        "`pruning_family_title`",
        "the family's title, the report's section for it (a user's own family is titled from it)",
    ),
    ("`dense_speedup_possible`", "`false` for masks: dense kernels do the same work"),
    (
        "`sparse_kernel_speedup_possible`",
        "`true` for 2:4: sparse tensor cores (CUDA, compute capability >= 8.0, fp16/bf16) run it faster",
    ),
    ("`target`", "the cost the job pruned to, e.g. `macs=0.5`; absent when it pruned at `ratio`"),
    (
        "`target_landing`",
        "`within` (the ratio search landed within tolerance), `refined` (the method's finest steps did), `nearest` (neither: the nearest point at or beyond the target)",
    ),
    (
        "`target_stopped_by`, `target_note`",
        "`nearest` only: `granularity` or `noise`, and one line saying where the job landed and why",
    ),
    ("`finetune_init`", "`inherited` or `scratch` (`finetune.init`), set when the job fine-tunes"),
    (
        "`finetune_init_method`",
        "scratch only: how it was re-initialised, `timm_init_cut_to_shape` and `+init_weights` where the model's own init ran",
    ),
    (
        "`latency_flag`",
        "`none`, or why the latency figures are not to be trusted: `warmup_unstable`, `few_iterations`",
    ),
    (
        "`not_applicable`",
        "`true` on a FAILED run whose method cannot apply to the model or reach the target (reason in `error`)",
    ),
    (
        "`<runtime>/latency_flag`",
        "per runtime of `measure.runtimes`: `none`, or `warmup_unstable`, `few_iterations`, `output_mismatch` (its output differs from eager's beyond tolerance)",
    ),
    (
        "`<runtime>/not_applicable`",
        "per runtime: one line saying why it could not time this job (not installed, wrong device or precision, masks, an op it or the exporter lacks); the job still FINISHES",
    ),
    ("`onnx_exporter`", "`torchscript` or `dynamo`: the exporter that made the job's ONNX files"),
    (
        "`weights`",
        "`trained`, `pretrained`, `random`; `weights_note` says why pretrained weights were not used",
    ),
    ("`accuracy_at_chance`", "`true` when dense accuracy is not above chance"),
    ("`noop`", "`true` when pruning neither removed nor zeroed anything"),
    (
        "`pruning_kept_dense`",
        "structural methods: the layers (path patterns, `*` = every repeat of a block, comma-separated) whose output channels were left whole because Torch-Pruning cannot prune them there; absent when none",
    ),
    (
        "`finetune_stopped_by`",
        "`epochs`, `max_steps`, `time_budget` or `non_finite_loss`: what ended recovery fine-tuning (a loss that goes NaN or inf ends it at once)",
    ),
    (
        "`finetune_diverged`",
        "`true` when fine-tuning's loss went non-finite, or its mean over the last 5 steps ended above its mean over the first 5 and no lower than a uniform guess's loss, ln(classes) (a learning rate far too high, say; with `prune.steps > 1`, any step's fine-tuning judged on its own: a short step starting from a low loss may end slightly above it, which is noise, not divergence): the report flags the run and keeps it out of the summary's ranking and the figures, listing it apart",
    ),
    (
        "`pruned_at_chance`",
        "`true` when the pruned model is at chance after fine-tuning while its dense model is not (the same test as `accuracy_at_chance`); not set by one-shot runs",
    ),
    (
        "`data_unreadable_files`, `data_unreadable_examples`, `data_ignored_files`",
        "image trees only: how many unreadable images (truncated, not an image, a mode without RGB) "
        "the job left out (`dataset.on_bad_file=skip`), the first few as `path: reason; ...` (`none` "
        "when there were none), and how many files in class folders were not images at all (ignored)",
    ),
    ("`error`", "first line of the exception of a FAILED or KILLED run"),
    (
        "`limit_exceeded`",
        "`<stage>:timeout` or `<stage>:memory`: the job ran past a `job.*` limit there",
    ),
    ("`job_key`", "stable hash of the job's config (resume and dedupe)"),
    ("`run_role`", "`job`, or `sweep` for a multirun's parent run"),
    (
        "`heartbeat`",
        "unix time (s) of a running job's or sweep's last sign of life, refreshed every `tracking.heartbeat_s`",
    ),
    (
        "`stale`",
        "`true` on a run ended FAILED by a later command because its heartbeat had stopped (reason in `error`)",
    ),
    ("`mlflow.parentRunId`", "the sweep's parent run (MLflow's own nesting tag)"),
    ("`command`", "parent run only: the command line of the sweep"),
]

PARENT_RUN = (
    "**Parent run metrics**: `jobs`, `jobs_finished`, `jobs_failed`, `jobs_not_applicable`, "
    "`jobs_skipped` (counts, for the latest invocation of the sweep). **Parent run artifacts**: "
    "`report/` (the rendered report and its figures); its description (`mlflow.note.content`, shown on "
    "its page) links the report above the report's summary."
)
EXPERIMENT = (
    "**Experiment tags**: `mlflow.experimentKind` = `custom_model_development`; "
    "`mlflow.sharedViewState.<sweep_id>`, the UI view of one sweep (filter, columns, grouping by model, "
    "order by top-1) that the printed link opens."
)
ARTIFACTS = (
    "**Artifacts**: `hydra/` (the job's `config.yaml`, `hydra.yaml`, `overrides.yaml`); `traceback.txt` "
    "for a failed run; with `save_model=true`, `model/model.safetensors` and `model/structure.json` (the "
    "pruned model; `sweep.artifacts.load` reloads it), and `model/pruned.onnx` (the file ONNX Runtime, "
    "OpenVINO or TensorRT timed) when the job timed one of them."
)
