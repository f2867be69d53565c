"""The runs of one sweep, read back from MLflow as rows (`sweep.report.cells` writes their figures).

One row per run; the repeats (seeds) of a grid point combine into one row whose metrics are their means
and `std` their standard deviations. The report, its comparison sections and its figures all read these.
"""

from __future__ import annotations

import collections
import math
import statistics
from dataclasses import dataclass, field, replace

from sweep import tracking
from sweep.errors import SweepConfigError, first_line

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
    # set where the sweep's runs were timed by more than one latency harness and this one's differs
    # from most: their speedups do not compare
    harness_note: str = ""
    run_id: str = ""
    # recovery fine-tuning's top-1 history: (optimizer steps, top-1), one-shot at 0 (first seed's)
    curve: tuple[tuple[int, float], ...] = ()

    @property
    def harness(self) -> str:
        """The latency harness that timed the run (`measure.harness_used`)."""
        return self.params.get(tracking.PARAM_HARNESS_USED, tracking.HARNESS_BEFORE_PARAM)

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
        return self.tags.get(tracking.TAG_FAMILY) or "other"

    @property
    def kind(self) -> str:
        return self.tags.get(tracking.TAG_KIND, "")

    def flag(self, tag: str) -> bool:
        return self.tags.get(tag) == "true"

    @property
    def diverged(self) -> bool:
        """Its fine-tuning, or a method's sparse training before pruning, diverged: its top-1 is the
        learning rate's, not the method's."""
        return self.flag(tracking.TAG_DIVERGED) or self.flag(tracking.TAG_REGULARIZE_DIVERGED)

    @property
    def masks(self) -> bool:
        """Dense shapes and no sparse kernels timed: no speedup to claim."""
        return self.tags.get(tracking.TAG_SPEEDUP_POSSIBLE) == "false" and not self.metrics.get(
            "sparse_kernel_layers"
        )

    def _kept(self, what: str) -> float | None:
        # masks keep every weight in place: their cost is what is left non-zero (as targets count it)
        num = what if self.kind == "structural" else f"{what}_nonzero"
        m = self.metrics
        den = m.get(tracking.DENSE_PREFIX + num)
        return m[num] / den if den and m.get(num) is not None else None

    @property
    def macs_kept(self) -> float | None:
        return self._kept("macs")

    @property
    def params_kept(self) -> float | None:
        return self._kept("params_total" if self.kind == "structural" else "params")

    @property
    def error(self) -> str:
        return (
            first_line(self.tags[tracking.TAG_ERROR]) if self.tags.get(tracking.TAG_ERROR) else ""
        )


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
    _note_harnesses(each)
    _read_curves(uri, each)
    groups: dict[tuple, list[Row]] = {}
    for x in each:
        groups.setdefault(x.point, []).append(x)
    rows = [combine(g) for g in groups.values()]
    epochs = sorted({x.epochs for x in rows})
    for x in rows + each:
        x.label = row_label(x.model, x.epochs, epochs)
    return Sweep(
        runs[0].data.tags.get(tracking.TAG_SWEEP_ID),
        rows,
        models=sorted({x.model for x in rows}, key=model_key),
        levels=sorted({x.level for x in rows}, key=level_key),
        epochs=epochs,
        seeds=sorted({x.seed for x in each}),
        runs=each,
    )


def _read_curves(uri: str, rows: list[Row]) -> None:
    """Each finished run's recovery history (`finetune_top1`), read only where the run logged one."""
    client = tracking.client(uri)
    for r in rows:
        if r.status == "FINISHED" and tracking.FINETUNE_CURVE_TOP1 in r.metrics:
            history = client.get_metric_history(r.run_id, tracking.FINETUNE_CURVE_TOP1)
            r.curve = tuple(sorted((m.step, m.value) for m in history))


def harnesses(rows: list[Row]) -> dict[str, int]:
    """Finished runs per latency harness, the most common first."""
    found = collections.Counter(r.harness for r in rows if r.status == "FINISHED")
    return dict(found.most_common())


def _note_harnesses(rows: list[Row]) -> None:
    """Mark the runs timed by another harness than most of the sweep's (never silently mixed)."""
    found = harnesses(rows)
    if len(found) < 2:
        return
    most = next(iter(found))
    for r in rows:
        if r.status == "FINISHED" and r.harness != most:
            r.harness_note = f"timed by latency harness {r.harness}, most of the sweep by {most}"


def _chosen_runs(uri: str, experiment: str, sweep_id: str | None) -> list:
    """The runs of `sweep_id` (default: the newest sweep, whose latest run started last)."""
    runs = tracking.search_runs(uri, experiment)
    if not runs:
        raise SweepConfigError(f"experiment {experiment!r} in {uri} has no runs")
    if sweep_id is None:
        latest = max(runs, key=lambda r: (r.info.start_time, r.info.run_id))
        sweep_id = latest.data.tags.get(tracking.TAG_SWEEP_ID)
    chosen = [r for r in runs if r.data.tags.get(tracking.TAG_SWEEP_ID) == sweep_id]
    if not chosen:
        known = sorted({r.data.tags.get(tracking.TAG_SWEEP_ID, "") for r in runs})
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
    flagged = (
        tracking.TAG_DIVERGED,
        tracking.TAG_REGULARIZE_DIVERGED,
        tracking.TAG_PRUNED_AT_CHANCE,
    )
    flagged += tuple(
        {k for r in done for k in r.tags if k.endswith(tracking.TAG_SLOWER_THAN_DENSE)}
    )
    for tag in (tracking.TAG_AT_CHANCE, tracking.TAG_NOOP, *flagged):
        tags[tag] = "true" if any(r.flag(tag) for r in done) else "false"
    nearest = [r for r in done if r.tags.get(tracking.TAG_TARGET_LANDING) == "nearest"]
    if nearest:  # any seed that missed the tolerance marks the point
        for tag in (
            tracking.TAG_TARGET_LANDING,
            tracking.TAG_TARGET_STOPPED_BY,
            tracking.TAG_TARGET_NOTE,
        ):
            tags[tag] = nearest[0].tags.get(tag, "")
    flag_tags = {k for r in done for k in r.tags if k.endswith(tracking.TAG_LATENCY_FLAG)}
    for tag in flag_tags | {tracking.TAG_LATENCY_FLAG}:  # eager's, and each runtime's
        untrusted = {f for r in done for f in r.tags.get(tag, "none").split(",")}
        tags[tag] = ",".join(sorted(untrusted - {"none", ""})) or "none"
    return replace(
        done[0],
        metrics={k: statistics.fmean(r.metrics[k] for r in done) for k in keys},
        std={k: statistics.stdev(r.metrics[k] for r in done) if spread else 0.0 for k in keys},
        tags=tags,
        n=len(done),
        failed_runs=len(rows) - len(done),
        harness_note=next((r.harness_note for r in done if r.harness_note), ""),
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
    model = p.get(tracking.PARAM_MODEL) or name_parts[0]
    pruner = p.get(tracking.PARAM_PRUNER) or (name_parts[1] if len(name_parts) > 1 else "?")
    target = tags.get(tracking.TAG_TARGET, "")
    ratio = to_float(p.get(tracking.PARAM_RATIO, m.get(tracking.METRIC_RATIO_USED)))
    if math.isnan(ratio) and not target and len(name_parts) > 2:
        ratio = to_float(name_parts[2])
    return Row(
        model,
        p.get(tracking.PARAM_MODEL_NAME, model),
        pruner=pruner,
        ratio=ratio,
        status=r.info.status,
        metrics=m,
        tags=tags,
        params=dict(p),
        epochs=int(to_float(p.get("finetune.epochs"), 0)),
        seed=int(to_float(p.get("seed"), 0)),
        target=target,
        protocol=protocol_of(p),
        run_id=r.info.run_id,
    )


def protocol_of(params: dict) -> str:
    """steps5, scratch, round16, steps5/scratch/round16 or "" from a run's params (runs before these
    keys: "")."""
    steps = int(to_float(params.get("prune.steps"), 1))
    init = params.get("finetune.init", "inherited")
    round_to = params.get("prune.round_to", "None")
    return "/".join(
        ([f"steps{steps}"] if steps > 1 else [])
        + ([init] if init != "inherited" else [])
        + ([f"round{round_to}"] if round_to not in ("None", "") else [])
    )


def point_name(point: tuple) -> str:
    """A grid point (Row.point) as its runs are named: `model/pruner/ratio` or
    `model/pruner/macs=0.5`, with `/ftN` when fine-tuned."""
    model, pruner, level, epochs = point
    level = level.removeprefix("ratio=")
    return f"{model}/{pruner}/{level}" + (f"/ft{epochs}" if epochs else "")
