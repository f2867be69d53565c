"""The runs of one sweep, read back from MLflow as rows, and how a row's figures are written.

One row per run; the repeats (seeds) of a grid point combine into one row whose metrics are their means
and `std` their standard deviations. The report, its comparison sections and its figures all read these.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass, field, replace

from sweep import tracking as T
from sweep.errors import SweepConfigError, first_line
from sweep.schema import RUNTIMES

SEED_MODEL_ORDER = ["c", "e", "v", "m"]
# the cost level of a run pruned at a ratio, for comparing methods: the dense MACs it keeps, to 10 %
MACS_BUCKET = "MACs ≈ "


@dataclass
class Row:
    """One run, or the repeats of one grid point combined (`n` runs: metrics are their means and
    `std` their standard deviations)."""

    model: str
    model_name: str
    pruner: str
    ratio: float
    status: str
    metrics: dict
    tags: dict
    params: dict
    epochs: int = 0  # recovery fine-tuning epochs (finetune.epochs)
    # how the row is named in a table: the model, plus the epochs when a sweep varies them
    label: str = ""
    seed: int = 0
    target: str = ""  # the cost the job pruned to (e.g. macs=0.5); empty: pruned at `ratio`
    n: int = 1  # finished runs behind the figures
    std: dict = field(default_factory=dict)  # per metric, over those runs
    failed_runs: int = 0  # repeats of this grid point that did not finish
    # the protocol when not the default (one-shot, inherited weights), as run names end: steps5,
    # scratch, steps5/scratch
    protocol: str = ""

    @property
    def method(self) -> str:
        """The method as compared: the pruner, with its protocol when not the default."""
        return f"{self.pruner}/{self.protocol}" if self.protocol else self.pruner

    @property
    def level(self) -> str:
        """The cost level the job was asked for: its target, or its ratio."""
        return self.target or f"ratio={self.ratio:g}"

    @property
    def point(self) -> tuple:
        """The grid point, seeds aside."""
        return (self.model, self.method, self.level, self.epochs)

    @property
    def key(self) -> tuple:
        return (*self.point, self.seed)

    @property
    def oneshot(self) -> float | None:
        """Top-1 of the pruned model before fine-tuning (older runs: accuracy_top1 when not fine-tuned)."""
        m = self.metrics
        return m.get("accuracy_top1_oneshot", m.get("accuracy_top1") if self.epochs == 0 else None)

    @property
    def family(self) -> str:
        return self.tags.get(T.TAG_FAMILY) or "other"

    @property
    def kind(self) -> str:
        return self.tags.get(T.TAG_KIND, "")

    def flag(self, tag: str) -> bool:
        return self.tags.get(tag) == "true"

    @property
    def masks(self) -> bool:
        """Dense shapes and no sparse kernels timed: no speedup to claim."""
        return self.tags.get(T.TAG_SPEEDUP_POSSIBLE) == "false" and not self.metrics.get(
            "sparse_kernel_layers"
        )

    def _kept(self, what: str) -> float | None:
        # masks keep every weight in place: their cost is what is left non-zero (as targets count it)
        num = what if self.kind == "structural" else f"{what}_nonzero"
        m = self.metrics
        den = m.get(T.DENSE_PREFIX + num)
        return m[num] / den if den and m.get(num) is not None else None

    @property
    def macs_kept(self) -> float | None:
        return self._kept("macs")

    @property
    def params_kept(self) -> float | None:
        return self._kept("params_total" if self.kind == "structural" else "params")

    @property
    def error(self) -> str:
        return first_line(self.tags[T.TAG_ERROR]) if self.tags.get(T.TAG_ERROR) else ""


@dataclass
class Sweep:
    sweep_id: str
    rows: list[Row]  # one per grid point (repeated seeds combined)
    models: list[str] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)  # cost levels asked for: ratios, targets
    epochs: list[int] = field(default_factory=list)  # fine-tuning epochs in the sweep
    seeds: list[int] = field(default_factory=list)
    runs: list[Row] = field(default_factory=list)  # every run, one per seed


def model_key(alias: str) -> tuple:
    return (
        (SEED_MODEL_ORDER.index(alias), "")
        if alias in SEED_MODEL_ORDER
        else (len(SEED_MODEL_ORDER), alias)
    )


def level_key(level: str) -> tuple:
    """Ratios first (ascending), then targets by kind, least pruned first; MACs buckets likewise."""
    name, _, value = level.partition("=")
    if level.startswith(MACS_BUCKET):
        return (2, "", -float(level[len(MACS_BUCKET) :].rstrip(" %")))
    try:
        v = float(value)
    except ValueError:
        return (3, level, 0.0)
    return (0, "", v) if name == "ratio" else (1, name, -v if name != "speedup" else v)


def _run_key(x: Row) -> tuple:
    return (model_key(x.model), x.pruner, x.protocol, level_key(x.level), x.epochs, x.seed)


def load_sweep(uri: str, experiment: str, sweep_id: str | None) -> Sweep:
    runs = _chosen_runs(uri, experiment, sweep_id)
    # A grid point run more than once (a re-run after a failure) counts by its latest run.
    latest: dict[tuple, Row] = {}
    for r in sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id)):
        row = _row(r)
        latest[row.key] = row
    each = sorted(latest.values(), key=_run_key)
    groups: dict[tuple, list[Row]] = {}
    for x in each:
        groups.setdefault(x.point, []).append(x)
    rows = [combine(g) for g in groups.values()]
    epochs = sorted({x.epochs for x in rows})
    for x in rows + each:
        x.label = row_label(x.model, x.epochs, epochs)
    return Sweep(
        runs[0].data.tags.get(T.TAG_SWEEP_ID),
        rows,
        sorted({x.model for x in rows}, key=model_key),
        sorted({x.level for x in rows}, key=level_key),
        epochs,
        sorted({x.seed for x in each}),
        each,
    )


def _chosen_runs(uri: str, experiment: str, sweep_id: str | None) -> list:
    """The runs of `sweep_id` (default: the newest sweep, whose latest run started last)."""
    runs = T.search_runs(uri, experiment)
    if not runs:
        raise SweepConfigError(f"experiment {experiment!r} in {uri} has no runs")
    if sweep_id is None:
        latest = max(runs, key=lambda r: (r.info.start_time, r.info.run_id))
        sweep_id = latest.data.tags.get(T.TAG_SWEEP_ID)
    chosen = [r for r in runs if r.data.tags.get(T.TAG_SWEEP_ID) == sweep_id]
    if not chosen:
        known = sorted({r.data.tags.get(T.TAG_SWEEP_ID, "") for r in runs})
        raise SweepConfigError(
            f"sweep {sweep_id!r} has no runs in experiment {experiment!r}: "
            f"choose from {', '.join(known[-10:])}"
        )
    return chosen


def combine(rows: list[Row]) -> Row:
    """The repeats (seeds) of one grid point as one row: each metric's mean over the finished runs and
    its standard deviation. A point none of whose runs finished is shown by its last run."""
    done = [r for r in rows if r.status == "FINISHED"]
    if len(rows) == 1 or not done:
        return rows[-1]
    keys = set.intersection(*(set(r.metrics) for r in done))
    spread = len(done) > 1
    tags = dict(done[0].tags)
    for tag in (T.TAG_AT_CHANCE, T.TAG_NOOP, T.TAG_DIVERGED, T.TAG_PRUNED_AT_CHANCE):
        tags[tag] = "true" if any(r.flag(tag) for r in done) else "false"
    nearest = [r for r in done if r.tags.get(T.TAG_TARGET_LANDING) == "nearest"]
    if nearest:  # any seed that missed the tolerance marks the point
        for tag in (T.TAG_TARGET_LANDING, T.TAG_TARGET_STOPPED_BY, T.TAG_TARGET_NOTE):
            tags[tag] = nearest[0].tags.get(tag, "")
    flag_tags = {k for r in done for k in r.tags if k.endswith(T.TAG_LATENCY_FLAG)}
    for tag in flag_tags | {T.TAG_LATENCY_FLAG}:  # eager's, and each runtime's
        untrusted = {f for r in done for f in r.tags.get(tag, "none").split(",")}
        tags[tag] = ",".join(sorted(untrusted - {"none", ""})) or "none"
    return replace(
        done[0],
        metrics={k: statistics.fmean(r.metrics[k] for r in done) for k in keys},
        std={k: statistics.stdev(r.metrics[k] for r in done) if spread else 0.0 for k in keys},
        tags=tags,
        n=len(done),
        failed_runs=len(rows) - len(done),
    )


def row_label(model: str, epochs: int, sweep_epochs: list[int]) -> str:
    """A row's name: the model, with its fine-tuning epochs when the sweep varies them."""
    return f"{model} ft{epochs}" if len(sweep_epochs) > 1 else model


def to_float(v, default: float = math.nan) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def _row(r) -> Row:
    p, m, tags = r.data.params, dict(r.data.metrics), dict(r.data.tags)
    name_parts = (r.info.run_name or "").split("/")
    model = p.get(T.PARAM_MODEL) or name_parts[0]
    pruner = p.get(T.PARAM_PRUNER) or (name_parts[1] if len(name_parts) > 1 else "?")
    target = tags.get(T.TAG_TARGET, "")
    ratio = to_float(p.get(T.PARAM_RATIO, m.get(T.METRIC_RATIO_USED)))
    if math.isnan(ratio) and not target and len(name_parts) > 2:
        ratio = to_float(name_parts[2])
    return Row(
        model,
        p.get(T.PARAM_MODEL_NAME, model),
        pruner,
        ratio,
        r.info.status,
        m,
        tags,
        dict(p),
        int(to_float(p.get("finetune.epochs"), 0)),
        seed=int(to_float(p.get("seed"), 0)),
        target=target,
        protocol=protocol_of(p),
    )


def protocol_of(params: dict) -> str:
    """steps5, scratch, steps5/scratch or "" from a run's params (runs before these keys: "")."""
    steps = int(to_float(params.get("prune.steps"), 1))
    init = params.get("finetune.init", "inherited")
    return "/".join(
        ([f"steps{steps}"] if steps > 1 else []) + ([init] if init != "inherited" else [])
    )


def point_name(point: tuple) -> str:
    """A grid point (Row.point) as its runs are named: `model/pruner/ratio` or
    `model/pruner/macs=0.5`, with `/ftN` when fine-tuned."""
    model, pruner, level, epochs = point
    level = level.removeprefix("ratio=")
    return f"{model}/{pruner}/{level}" + (f"/ft{epochs}" if epochs else "")


def speedup_interval(row: Row, runtime: str = T.EAGER) -> tuple[float, float, float] | None:
    """(speedup, low, high) in a runtime: its 95 % bootstrap interval, or with repeats the mean ± one
    standard deviation over seeds; None where the run has no speedup there."""
    key = functools.partial(T.runtime_key, runtime)
    v = row.metrics.get(key("speedup"))
    if v is None:
        return None
    if row.n > 1:
        sd = row.std.get(key("speedup"), 0.0)
        return v, v - sd, v + sd
    return v, row.metrics.get(key("speedup_ci_low"), v), row.metrics.get(key("speedup_ci_high"), v)


def fmt_count(v) -> str:
    return "?" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{int(round(v)):,}"


def fmt_pct(v) -> str:
    return "?" if v is None else f"{100 * v:.1f}%"


def fmt_macs(v) -> str:
    if v is None:
        return "?"
    return f"{v / 1e9:.2f} G" if v >= 1e8 else f"{v / 1e6:.2f} M"


def _figure(row: Row, key: str, scale: float, digits: int, unit: str) -> str:
    """A metric as written in the report; with repeats, `mean ± std` over them."""
    v = row.metrics.get(key)
    if v is None:
        return "?"
    spread = f" ± {scale * row.std[key]:.{digits}f}" if row.n > 1 and key in row.std else ""
    return f"{scale * v:.{digits}f}{spread}{unit}"


def pct_of(row: Row, key: str) -> str:
    """A fraction as a percentage: `90.0%`, with repeats `90.0 ± 1.0%`."""
    return _figure(row, key, 100.0, 1, "%")


def ms_of(row: Row, key: str) -> str:
    return _figure(row, key, 1.0, 2, "ms")


def oneshot_of(row: Row) -> str:
    if "accuracy_top1_oneshot" in row.metrics:
        return pct_of(row, "accuracy_top1_oneshot")
    return fmt_pct(row.oneshot)


def seeds_note(row: Row) -> str:
    return f" ({row.n} seeds)" if row.n > 1 else ""


def flags(row: Row) -> list[str]:
    out = []
    if row.status != "FINISHED":
        if row.flag(T.TAG_NOT_APPLICABLE):
            out.append(f"n/a: {row.error}")
        else:
            out.append(f"{row.status.lower()}: {row.error}" if row.error else row.status.lower())
    if row.failed_runs:
        out.append(f"{row.failed_runs} of {row.n + row.failed_runs} runs did not finish")
    if row.status != "FINISHED":
        return out  # what it would have measured is not there
    if row.flag(T.TAG_NOOP):
        out.append("no-op")
    if row.tags.get(T.TAG_TARGET_LANDING) == "nearest":
        reached = row.metrics.get("target_value")
        at = "?" if reached is None else f"{reached:.3g}"
        why = row.tags.get(T.TAG_TARGET_STOPPED_BY, "")
        out.append(f"target not within tolerance: nearest point {at} ({why})")
    if row.tags.get(T.TAG_KEPT_DENSE):
        out.append(f"kept whole: {row.tags[T.TAG_KEPT_DENSE]}")
    if row.flag(T.TAG_AT_CHANCE):
        out.append("accuracy at chance")
    if row.flag(T.TAG_DIVERGED):
        out.append("fine-tuning diverged")
    if row.flag(T.TAG_PRUNED_AT_CHANCE):
        out.append("at chance after fine-tuning")
    if row.masks:
        out.append("masks: no dense speedup possible")
    elif row.metrics.get("sparse_kernel_layers"):
        out.append(f"2:4 sparse kernels ({int(row.metrics['sparse_kernel_layers'])} layers)")
    untrusted = row.tags.get(T.TAG_LATENCY_FLAG, "none")
    if untrusted not in ("none", ""):
        out.append(f"latency not trusted: {untrusted}")
    for rt in row_runtimes(row)[1:]:
        flag = row.tags.get(T.runtime_key(rt, T.TAG_RUNTIME_FLAG), "none")
        if flag not in ("none", ""):
            out.append(f"{rt} latency not trusted: {flag}")
    return out


def runtime_na(row: Row, runtime: str) -> str:
    """Why a runtime did not time this run ("" when it did or was not asked)."""
    if runtime == T.EAGER:
        return ""
    return first_line(row.tags.get(T.runtime_key(runtime, T.TAG_RUNTIME_NA), ""))


def row_runtimes(row: Row) -> list[str]:
    """The runtimes this run was timed in or asked for (eager first, then schema order)."""
    found = [T.EAGER]
    for rt in RUNTIMES[1:]:
        if T.runtime_key(rt, "speedup") in row.metrics or runtime_na(row, rt):
            found.append(rt)
    return found


def sweep_runtimes(sweep: Sweep) -> list[str]:
    """Every runtime any run of the sweep was timed in or asked for, eager first."""
    seen = {rt for r in sweep.runs for rt in row_runtimes(r)}
    return [rt for rt in RUNTIMES if rt in seen]


def speed(r: Row, runtime: str = T.EAGER) -> str:
    m, key = r.metrics, functools.partial(T.runtime_key, runtime)
    if r.flag(T.TAG_NOOP):
        return "n/a (no-op)"
    if r.masks:
        return "n/a (masks)"
    if key("speedup") not in m:
        return "n/a" if runtime_na(r, runtime) else "—"
    v = m[key("speedup")]
    if r.n > 1:
        return f"{v:.2f}x ± {r.std.get(key('speedup'), 0.0):.2f}"
    lo, hi = m.get(key("speedup_ci_low"), v), m.get(key("speedup_ci_high"), v)
    return f"{v:.2f}x [{lo:.2f}, {hi:.2f}]"


def budgets(sweep: Sweep, model: str | None = None) -> list[tuple]:
    """The distinct recovery fine-tuning budgets (epochs, lr, distillation weight) of finished runs
    (of one model's, when given)."""
    return sorted(
        {
            (
                r.epochs,
                r.params.get("finetune.lr_used", r.params.get("finetune.lr", "?")),
                r.params.get("finetune.distill.weight", "0"),
            )
            for r in sweep.runs
            if r.status == "FINISHED" and r.epochs and model in (None, r.model)
        }
    )


def budget_said(budgets: list[tuple]) -> str:
    return "; ".join(
        f"{e} epoch{'s' if e != 1 else ''} at lr {lr}"
        + (f", distillation weight {w}" if w not in ("0", "0.0") else "")
        for e, lr, w in budgets
    )
