"""Everything MLflow: the schema, the store, one run per job, and reading runs back.

Jobs, the report and the tests all use the names defined here; sweep.runschema documents them (the docs'
schema page is rendered from it, and a test fails when a name here is missing there).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import signal
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweep.errors import NotApplicable, SweepConfigError, one_line

# ---- schema -------------------------------------------------------------------------------------------
# Params identifying a job (the rest of the resolved config is logged too, flattened with dots).
PARAM_MODEL = "model"  # alias, e.g. c or tiny_vit
PARAM_MODEL_NAME = "model_name"  # timm name, e.g. convnext_large
PARAM_PRUNER = "pruner"
PARAM_RATIO = "ratio"
PARAM_DATASET = "dataset"

# Metrics, for the pruned model; each has a dense_ twin measured in the same job (see DENSE_TWINS).
METRICS_PER_MODEL = (
    "params_total",  # count
    "params_nonzero",  # count
    "macs",  # multiply-accumulates per image, dense kernels
    "macs_nonzero",  # multiply-accumulates per image if zero weights were skipped
    "sparsity",  # fraction of zero weights in prunable layers, 0..1
    "latency_ms",  # median per batch, ms
    "latency_p90_ms",  # 90th percentile per batch, ms
    "latency_std_ms",  # standard deviation per batch, ms
    "throughput",  # images / s at measure.batch_size
    "peak_mem_mb",  # weights + inference peak, MiB
    "accuracy_top1",  # fraction 0..1 on the evaluated samples
)
DENSE_PREFIX = "dense_"
STAGE_METRIC = "stage_{}_seconds"  # wall time of each pipeline stage, s
REQUIRED_METRICS = (
    "params_total",
    "params_nonzero",
    "macs",
    "latency_ms",
    "accuracy_top1",
    "dense_params_total",
    "dense_macs",
    "dense_latency_ms",
    "dense_accuracy_top1",
    "speedup",
    "prune_seconds",
)

# Deployed latency (measure.runtimes): eager keeps the names above; every other runtime logs the same
# figures under its name, `<runtime>/<metric>` (onnxruntime/speedup, onnxruntime/dense_latency_ms), and
# tags `<runtime>/latency_flag` or, where it cannot run, `<runtime>/not_applicable` (the reason).
EAGER = "eager"
RUNTIME_METRICS = (
    "latency_ms",  # per batch, ms; with its dense_ twin, as for eager
    "latency_p90_ms",
    "latency_std_ms",
    "throughput",  # images / s
    "speedup",  # dense / pruned median latency, paired rounds in this runtime
    "speedup_ci_low",
    "speedup_ci_high",
    "efficiency",  # achieved MAC/s (dense-kernel MACs) / the runtime's GEMM peak, 0..1; dense_ twin
    "peak_gemm_gmacs_per_s",  # the runtime's measured peak on this machine: a large GEMM, GMAC/s
    "peak_dwconv_gmacs_per_s",  # and a depthwise convolution, GMAC/s
    "export_seconds",  # PyTorch -> the runtime's form (ONNX export, compilation), s; dense_ twin
    "build_seconds",  # the runtime's session / compiled model, s; dense_ twin
    "max_abs_diff",  # max |runtime output - eager output| on the timed batch; dense_ twin
)
TAG_RUNTIME_FLAG = "latency_flag"  # <runtime>/latency_flag: none, or why (output_mismatch, ...)
TAG_RUNTIME_NA = (
    "not_applicable"  # <runtime>/not_applicable: why the runtime could not time this job
)
TAG_ONNX_EXPORTER = "onnx_exporter"  # torchscript | dynamo: the exporter that made the ONNX files


def runtime_key(runtime: str, name: str) -> str:
    """The metric or tag `name` of a runtime: eager's own name, else `<runtime>/<name>`."""
    return name if runtime == EAGER else f"{runtime}/{name}"


METRIC_RATIO_USED = (
    "ratio_used"  # the ratio the method ran at: `ratio`, or what a target's search found
)

TAG_SWEEP_ID = "sweep_id"
TAG_TARGET = "target"  # the cost a job pruned to, e.g. macs=0.5 (kept fraction); absent: ratio
TAG_LATENCY_FLAG = "latency_flag"  # none, or why a latency figure is not to be trusted
TAG_DEVICE = "device"
TAG_GIT_COMMIT = "git_commit"
TAG_ERROR = "error"  # first line of the exception of a FAILED run
TAG_LIMIT = "limit_exceeded"  # <stage>:timeout or <stage>:memory when a job ran past a limit
TAG_NOT_APPLICABLE = "not_applicable"  # true: FAILED because the method cannot make this grid point
TAG_WEIGHTS = "weights"  # trained | pretrained | random
TAG_AT_CHANCE = "accuracy_at_chance"  # true when dense accuracy is not above chance
TAG_NOOP = "noop"  # true when pruning changed nothing
# true when fine-tuning's loss went non-finite or ended above where it started (a bad learning rate)
TAG_DIVERGED = "finetune_diverged"
# true when the pruned model is at chance after fine-tuning while its dense model is not
TAG_PRUNED_AT_CHANCE = "pruned_at_chance"
# How a target was met: within (the ratio search landed within tolerance), refined (the method's finest
# steps closed the gap), nearest (neither could: the nearest point at or beyond the target, reason in
# target_note); target_stopped_by says what stopped it there: granularity or noise
TAG_TARGET_LANDING = "target_landing"
TAG_TARGET_STOPPED_BY = "target_stopped_by"
TAG_TARGET_NOTE = "target_note"
# An image tree's unreadable files (truncated, not an image, a mode without RGB): how many the job left
# out (dataset.on_bad_file=skip), the first few as "path: reason; ...", and how many files of class
# folders were not images at all (ignored)
TAG_DATA_UNREADABLE = "data_unreadable_files"
TAG_DATA_UNREADABLE_EXAMPLES = "data_unreadable_examples"
TAG_DATA_IGNORED = "data_ignored_files"
# inherited | scratch (finetune.init), and how a scratch model was re-initialised
TAG_FINETUNE_INIT = "finetune_init"
TAG_FINETUNE_INIT_METHOD = "finetune_init_method"
# Per pruning step of an iterative schedule (prune.steps > 1), logged at MLflow step k = 1..N: what the
# model kept after step k (fractions of the dense model's), the ratio step k ran at, and top-1 after the
# fine-tuning that followed it (the last step's is accuracy_top1)
STEP_METRICS = (
    "step_macs_kept",
    "step_params_kept",
    "step_ratio",
    "step_accuracy_top1",
    "step_finetune_loss_end",
)
# layers a structural method left whole because the library cannot prune them (path patterns, ","-joined)
TAG_KEPT_DENSE = "pruning_kept_dense"
TAG_KIND = "pruning_kind"  # unstructured | semi_structured | structured_mask | structural
TAG_FAMILY = "pruning_family"  # torch.nn.utils.prune | depgraph
TAG_FAMILY_TITLE = "pruning_family_title"  # the family's title (the report's section for it)
TAG_SPEEDUP_POSSIBLE = "dense_speedup_possible"  # false for masks: dense kernels do the same work
TAG_SPARSE_KERNELS = (
    "sparse_kernel_speedup_possible"  # true for 2:4: sparse tensor cores (CUDA) run it faster
)
TAG_VERSIONS = ("torch_version", "timm_version", "torch_pruning_version", "mlflow_version")
TAG_JOB_KEY = "job_key"  # stable hash of the job's config (resume and dedupe)
TAG_ROLE = "run_role"  # job | sweep (the parent run of a multirun)
TAG_HEARTBEAT = (
    "heartbeat"  # unix time, s, of a RUNNING run's last sign of life (every heartbeat_s)
)
TAG_STALE = "stale"  # true: ended FAILED by a later command because its heartbeat had stopped
TAG_PARENT = "mlflow.parentRunId"  # MLflow's own nesting tag: the UI shows jobs under their sweep

DEFAULT_EXPERIMENT = "pruning-sweep"
# The MLflow UI opens an experiment of this kind on its runs table, not on the GenAI overview.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
# A view of one sweep in the UI (filter, visible columns) is an experiment tag with this prefix.
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
UI_COLUMNS = (
    ("params", PARAM_MODEL),
    ("params", PARAM_PRUNER),
    ("params", PARAM_RATIO),
    ("params", "finetune.epochs"),
    ("metrics", "speedup"),
    ("metrics", "accuracy_top1"),
    ("metrics", "accuracy_top1_oneshot"),
    ("metrics", "macs_reduction"),
)
UI_ORDER_BY = "accuracy_top1"  # within each model's group, the best top-1 after fine-tuning first
# MLflow's description of a run (markdown, shown on the run's page): the sweep run's holds the report link
TAG_NOTE = "mlflow.note.content"
NOTE_MAX_CHARS = 7000  # a tag value holds 8,000 characters in MLflow's SQL stores
DEFAULT_UI = "http://127.0.0.1:5000"  # where `make ui` serves a local store
# The one default store: SQLite in the directory the command runs from, unless the environment names one.
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
DEFAULT_URI = "sqlite:///mlflow.db"
DEFAULT_URI_HELP = f"default: ${TRACKING_URI_ENV} or {DEFAULT_URI}"
# Config keys that say where a job is written or tracked, not what it computes: neither logged as params
# nor part of its identity (job_key). `weights.cache_dir` is logged but is not identity either.
NOT_PARAMS = ("hydra", "tracking", "sweep_id", "force", "report")
NOT_IDENTITY = ("hydra", "tracking", "force", "weights.cache_dir", "report", "job")
DEFAULT_HEARTBEAT_S = 30.0  # tracking.heartbeat_s
DEFAULT_STALE_AFTER_S = (
    600.0  # tracking.stale_after_s: a RUNNING run this long without a heartbeat is dead
)

# Values that go into MLflow filter strings (sweep_id, run ids): nothing that could end a quoted string.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}")
NAME_HELP = "letters, digits and _ . : + -, starting with a letter or digit, at most 128"


def check_name(key: str, value: str) -> str:
    """`value`, or one line saying why it cannot name a sweep (it is matched inside MLflow queries)."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise SweepConfigError(f"{key}={value!r} is not valid: use {NAME_HELP}")
    return value


def _eq(key: str, value: str) -> str:
    """`key = 'value'` for a filter string; a value with a quote is refused, never escaped."""
    if not NAME_RE.fullmatch(value):
        raise ValueError(f"{value!r} cannot go into an MLflow query ({NAME_HELP})")
    return f"{key} = '{value}'"


# ---- store ---------------------------------------------------------------------------------------------
def resolve_uri(uri: str | None) -> str:
    """Absolute form of a tracking URI: a relative SQLite path is taken from the current directory, so
    every job of a sweep (whatever its working directory) writes to the same file."""
    uri = uri or os.environ.get(TRACKING_URI_ENV) or DEFAULT_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri[len("sqlite:///") :]).resolve())
    elif "://" not in uri:
        raise SweepConfigError(
            f"tracking.uri={uri!r} is not supported: use sqlite:///PATH (embedded) or http(s)://HOST:PORT (mlflow server)"
        )
    return uri


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, with one line, when the store cannot be used."""
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as r:
                r.read()
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise SweepConfigError(
                f"tracking server {uri} is unreachable ({reason}); start it with `make server` "
                f"or set tracking.uri / MLFLOW_TRACKING_URI"
            ) from None
        check_credentials(uri)
    elif uri.startswith("sqlite:///"):
        parent = Path(uri[len("sqlite:///") :]).parent
        if not parent.is_dir():
            raise SweepConfigError(f"tracking.uri={uri}: folder {parent} does not exist")


def check_credentials(uri: str) -> None:
    """A server with authentication on refuses a client without (valid) credentials: say so in one line
    before anything is written. Credentials come from MLflow's own environment variables or its
    credentials file, never from the command line."""
    from mlflow.exceptions import MlflowException

    try:
        _client(uri).search_experiments(max_results=1)
    except MlflowException as e:
        if e.get_http_status_code() not in (401, 403):
            raise
        raise SweepConfigError(
            f"tracking server {uri} refused this client ({e.error_code}): set "
            f"MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or ~/.mlflow/credentials) to an "
            f"account with write access"
        ) from None


@functools.cache
def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def init_store(uri: str, experiment: str) -> str:
    """Create the store's tables and the experiment once, before parallel writers start (a fresh SQLite
    store raced by several processes loses runs), as a model-training experiment (also one created
    before the tool set that). Returns the experiment id."""
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return exp.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:///"):
        artifact_location = (
            Path(uri[len("sqlite:///") :]).parent / "mlartifacts" / experiment
        ).as_uri()
    try:
        return client.create_experiment(
            experiment,
            artifact_location=artifact_location,
            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
        )
    except Exception:  # another process created it first
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            raise
        return exp.experiment_id


# ---- one run per job -----------------------------------------------------------------------------------
class JobKilled(BaseException):
    """Raised in the job on SIGTERM (scheduler time limit, preemption) so its run ends KILLED."""


def _fmt(value: Any) -> str:
    s = str(value)
    return s if len(s) <= 6000 else s[:5997] + "..."


def _tag_value(value: Any) -> str:
    return _fmt(value).lower() if isinstance(value, bool) else _fmt(value)


def _metrics(metrics: Mapping[str, float | int | None], step: int = 0) -> list:
    """MLflow Metric entities, leaving out missing and NaN values."""
    from mlflow.entities import Metric

    ts = int(time.time() * 1000)
    return [
        Metric(k, float(v), ts, step)
        for k, v in metrics.items()
        if v is not None and not (isinstance(v, float) and math.isnan(v))
    ]


def flatten(d: Mapping, prefix: str = "", drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """Nested mappings as one level of dotted keys, leaving out the keys in `drop` (dotted) and all below."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if key in drop:
            continue
        if isinstance(v, Mapping):
            out.update(flatten(v, key + ".", drop))
        else:
            out[key] = v
    return out


@dataclass
class JobRun:
    """One MLflow run. Metrics, params and tags are buffered and sent together by `flush` (at the
    pipeline's checkpoints, and when the run ends however it ends), so a failure loses nothing measured."""

    uri: str
    experiment_id: str
    run_id: str
    _params: dict[str, str] = field(default_factory=dict)
    _pending_metrics: list = field(default_factory=list)
    _pending_params: list = field(default_factory=list)
    _pending_tags: list = field(default_factory=list)

    @property
    def client(self):
        return _client(self.uri)

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        new = {k: _fmt(v) for k, v in params.items() if k not in self._params}
        self._pending_params += [Param(k, v) for k, v in new.items()]
        self._params.update(new)

    def log_metrics(self, metrics: Mapping[str, float | int | None], step: int = 0) -> None:
        """`step`: MLflow's step of the values (the pruning step of a `step_*` metric)."""
        self._pending_metrics += _metrics(metrics, step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self._pending_tags += [RunTag(k, _tag_value(v)) for k, v in tags.items()]

    def flush(self) -> None:
        # MLflow's limits per batch: 1000 metrics, 100 params, 100 tags
        m, p, t = self._pending_metrics, self._pending_params, self._pending_tags
        self._pending_metrics, self._pending_params, self._pending_tags = [], [], []
        while m or p or t:
            self.client.log_batch(self.run_id, metrics=m[:1000], params=p[:100], tags=t[:100])
            m, p, t = m[1000:], p[100:], t[100:]

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises JobKilled in the main thread while inside (elsewhere signals cannot be handled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise JobKilled(f"received signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Heartbeat:
    """Sets a RUNNING run's `heartbeat` tag to the time every `every_s` seconds from a daemon thread, so
    that a run whose process or node died (SIGKILL, a lost node) can be told from one still working and
    ended FAILED by a later command (`fail_stale`). A failed beat is retried at the next one; it never
    fails the job."""

    def __init__(self, uri: str, run_id: str, every_s: float | None):
        self.uri, self.run_id, self.every_s = uri, run_id, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="sweep-heartbeat", daemon=True)

    def _beat(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                _client(self.uri).set_tag(self.run_id, TAG_HEARTBEAT, f"{time.time():.0f}")
            if self._stop.wait(self.every_s):
                return

    def __enter__(self) -> Heartbeat:
        if self.every_s:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


def last_sign_of_life(run) -> float:
    """Unix time, s, of a run's newest heartbeat, or of its start when it never beat."""
    beat = run.data.tags.get(TAG_HEARTBEAT, "")
    start = run.info.start_time / 1000
    try:
        return max(start, float(beat))
    except ValueError:
        return start


def running_runs(uri: str, experiment: str) -> list:
    """Every RUNNING run of an experiment, jobs and sweeps."""
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return _all_runs(client, exp.experiment_id, "attributes.status = 'RUNNING'")


def fail_stale(uri: str, experiment: str, older_than_s: float) -> list:
    """End FAILED every RUNNING run of the experiment (any sweep, jobs and sweep runs alike) whose last
    sign of life is older than `older_than_s`: its process or node died without ending it. What it
    logged stays. Returns the runs so ended."""
    from mlflow.entities import RunTag

    client = _client(uri)
    now, stale = time.time(), []
    for r in running_runs(uri, experiment):
        age = now - last_sign_of_life(r)
        if age <= older_than_s:
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now - age))
        reason = f"no heartbeat since {when} ({age:.0f} s > {older_than_s:g} s): its process or node died"
        client.log_batch(r.info.run_id, tags=[RunTag(TAG_ERROR, reason), RunTag(TAG_STALE, "true")])
        client.set_terminated(r.info.run_id, "FAILED")
        stale.append(r)
    return stale


@contextlib.contextmanager
def system_metrics(uri: str, run_id: str, every_s: float | None) -> Iterator[None]:
    """MLflow's system metrics (`system/cpu_utilization_percentage`, memory, disk, network, and GPU
    utilisation and memory where pynvml sees one) sampled every `every_s` seconds while inside."""
    if not every_s:
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, sampling_interval=every_s, tracking_uri=uri)
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()


@contextlib.contextmanager
def job_run(
    uri: str,
    experiment: str,
    run_name: str,
    tags: Mapping[str, Any],
    heartbeat_s: float | None = DEFAULT_HEARTBEAT_S,
    system_metrics_s: float | None = None,
) -> Iterator[JobRun]:
    """Open a run; end it FINISHED, FAILED (with the error as tag and traceback artifact) or KILLED.
    While it is open, its heartbeat tag is refreshed every `heartbeat_s` seconds, and with
    `system_metrics_s` MLflow's system metrics are sampled that often."""
    experiment_id = init_store(uri, experiment)
    client = _client(uri)
    run = client.create_run(
        experiment_id, run_name=run_name, tags={k: _tag_value(v) for k, v in tags.items()}
    )
    job = JobRun(uri, experiment_id, run.info.run_id)
    status = "FINISHED"
    try:
        with (
            sigterm_raises(),
            Heartbeat(uri, job.run_id, heartbeat_s),
            system_metrics(uri, job.run_id, system_metrics_s),
        ):
            yield job
    except (KeyboardInterrupt, JobKilled) as e:
        status = "KILLED"
        job.set_tags({TAG_ERROR: one_line(e)})
        raise
    except NotApplicable as e:  # a reason, not a fault: no traceback
        status = "FAILED"
        job.set_tags({TAG_ERROR: one_line(e), TAG_NOT_APPLICABLE: True})
        raise
    except BaseException as e:
        status = "FAILED"
        job.set_tags({TAG_ERROR: one_line(e)})
        with contextlib.suppress(Exception):
            job.log_text("".join(traceback.format_exception(e)), "traceback.txt")
        raise
    finally:
        job.flush()
        client.set_terminated(job.run_id, status)


# ---- the sweep's parent run ---------------------------------------------------------------------------
def open_parent_run(uri: str, experiment: str, sweep_id: str, command: str) -> str:
    """The parent run of a sweep: reused (set RUNNING again) when the same sweep_id is run again."""
    client = _client(uri)
    experiment_id = init_store(uri, experiment)
    found = parent_run_of(uri, experiment, sweep_id)
    if found:
        client.update_run(found, status="RUNNING")
        return found
    run = client.create_run(
        experiment_id,
        run_name=f"sweep {sweep_id}",
        tags={TAG_SWEEP_ID: sweep_id, TAG_ROLE: "sweep", "command": _fmt(command)},
    )
    return run.info.run_id


def close_parent_run(uri: str, run_id: str, status: str, metrics: Mapping[str, float]) -> None:
    client = _client(uri)
    client.log_batch(run_id, metrics=_metrics(metrics))
    client.set_terminated(run_id, status)


def fail_orphans(uri: str, parent_run_id: str) -> int:
    """Jobs of a finished sweep whose run is still RUNNING died without ending it (killed hard, out of
    memory, os._exit): record them as FAILED. Returns how many."""
    client = _client(uri)
    run = client.get_run(parent_run_id)
    orphans = client.search_runs(
        [run.info.experiment_id],
        run_view_type=1,
        max_results=1000,
        filter_string=f"{_eq(f'tags.`{TAG_PARENT}`', parent_run_id)} and attributes.status = 'RUNNING'",
    )
    for o in orphans:
        client.set_tag(
            o.info.run_id,
            TAG_ERROR,
            "the job ended without finishing its run (killed hard, out of memory or os._exit)",
        )
        client.set_terminated(o.info.run_id, "FAILED")
    return len(orphans)


def _first_run(
    uri: str, experiment: str, filter_string: str = "", order_by: list[str] | None = None
):
    """The first run of an experiment that matches, or None (also when there is no such experiment)."""
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    found = client.search_runs(
        [exp.experiment_id], filter_string=filter_string, max_results=1, order_by=order_by
    )
    return found[0] if found else None


def finished_run_with_key(uri: str, experiment: str, key: str):
    """A FINISHED job run with this key, or None."""
    return _first_run(
        uri, experiment, f"{_eq(f'tags.{TAG_JOB_KEY}', key)} and attributes.status = 'FINISHED'"
    )


# ---- reading back --------------------------------------------------------------------------------------
def search_runs(uri: str, experiment: str, sweep_id: str | None = None) -> list:
    """All job runs of an experiment (optionally one sweep), oldest first; sweep parent runs left out."""
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    query = _eq(f"tags.{TAG_SWEEP_ID}", sweep_id) if sweep_id else ""
    runs = _all_runs(client, exp.experiment_id, query)
    return [r for r in runs if r.data.tags.get(TAG_ROLE) != "sweep"]


def _all_runs(client, experiment_id: str, query: str) -> list:
    """Every run that matches, oldest first, page by page."""
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=query,
            max_results=1000,
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


# ---- the MLflow UI and the report ---------------------------------------------------------------------------
def share_sweep_view(uri: str, experiment: str, sweep_id: str) -> tuple[str, str]:
    """A saved view of one sweep for the MLflow UI; returns (experiment id, view key) for `sweep_link`.

    What a first look should show is the jobs, with their figures. Jobs are nested under the sweep's
    run (`mlflow.parentRunId`: the run pages, `fail_orphans` and older stores rely on it), and the UI's
    table folds nested runs under a collapsed parent row; a shared view cannot open that row (MLflow
    drops `runsExpanded` from shared views). Its grouping can: grouped rows ignore nesting, and groups
    open expanded. So the view groups the sweep's runs by model, each group's jobs sorted by top-1
    after fine-tuning, with the key params and metrics as columns. The sweep's own run has no model:
    it lands in MLflow's "Additional runs" group, opened too, so the report on its page is one click
    away."""
    import json
    import re

    client = _client(uri)
    experiment_id = init_store(uri, experiment)
    key = re.sub(r"[^A-Za-z0-9_.-]", "-", sweep_id)
    by_model = {"mode": "param", "groupByData": PARAM_MODEL}
    view = {
        "searchFilter": _eq(f"tags.{TAG_SWEEP_ID}", sweep_id),
        "orderByKey": f"metrics.`{UI_ORDER_BY}`",
        "orderByAsc": False,
        "selectedColumns": [f"{kind}.`{name}`" for kind, name in UI_COLUMNS],
        "groupBy": {"aggregateFunction": "average", "groupByKeys": [by_model]},
        # the UI's id of the group of runs without the grouping key ("Additional runs")
        "groupsExpanded": {f"{by_model['mode']}.{by_model['groupByData']}": True},
    }
    client.set_experiment_tag(experiment_id, SHARED_VIEW_PREFIX + key, json.dumps(view))
    return experiment_id, key


def sweep_link(ui: str, experiment_id: str, view_key: str) -> str:
    """The UI's runs table of one sweep, in model-training mode (MLflow 3's GenAI/training switch)."""
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={view_key}"


def ui_of(uri: str) -> str:
    """Where the UI of a store is: the tracking server itself, or `make ui`'s address for a local store."""
    return uri if uri.startswith(("http://", "https://")) else DEFAULT_UI


def parent_run_of(uri: str, experiment: str, sweep_id: str) -> str | None:
    run = _first_run(
        uri, experiment, f"{_eq(f'tags.{TAG_SWEEP_ID}', sweep_id)} and tags.{TAG_ROLE} = 'sweep'"
    )
    return run.info.run_id if run else None


def log_report(
    uri: str, experiment: str, sweep_id: str, folder: Path, summary: str = ""
) -> str | None:
    """The rendered report as artifacts (`report/`) of the sweep's parent run, and the run's description
    (its page's first view) a link to it over `summary`; the run's id, or None when the sweep has no
    parent run (a single job)."""
    parent = parent_run_of(uri, experiment, sweep_id)
    if parent is None:
        return None
    client = _client(uri)
    client.log_artifacts(parent, str(folder), "report")
    exp_id = client.get_run(parent).info.experiment_id
    link = f"#/experiments/{exp_id}/runs/{parent}/artifacts/report/benchmark.md"
    note = (
        f"**[The benchmark report]({link})** (artifacts: `report/benchmark.md` and its figures)\n\n"
    )
    room = NOTE_MAX_CHARS - len(note)
    if len(summary) > room:
        summary = summary[: summary.rfind("\n", 0, room)] + "\n\n(... the rest in the report)"
    client.set_tag(parent, TAG_NOTE, note + summary)
    return parent


def newest_sweep(uri: str, experiment: str) -> str | None:
    """The sweep_id of the run that started last, if any."""
    run = _first_run(uri, experiment, order_by=["attributes.start_time DESC"])
    return run.data.tags.get(TAG_SWEEP_ID) if run else None
