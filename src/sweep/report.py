"""`python -m sweep.report`: the benchmark document, rendered from what jobs logged to MLflow (and
nothing else). The same store gives byte-identical Markdown.

    python -m sweep.report [--tracking-uri URI] [--experiment NAME] [--sweep ID] [--out DIR]
                           [--baseline SWEEP_ID] [--latency-threshold 0.05] [--accuracy-threshold 0.01]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sweep import tracking as T
from sweep.errors import SweepConfigError, first_line
from sweep.pruners import families

SEED_MODEL_ORDER = ["c", "e", "v", "m"]


@dataclass
class Row:
    model: str
    model_name: str
    pruner: str
    ratio: float
    status: str
    metrics: dict
    tags: dict
    params: dict
    epochs: int = 0  # recovery fine-tuning epochs (finetune.epochs)
    label: str = (
        ""  # how the row is named in a table: the model, plus the epochs when a sweep varies them
    )

    @property
    def key(self) -> tuple:
        return (self.model, self.pruner, self.ratio, self.epochs)

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
        return self.tags.get(T.TAG_SPEEDUP_POSSIBLE) == "false"

    @property
    def error(self) -> str:
        return first_line(self.tags[T.TAG_ERROR]) if self.tags.get(T.TAG_ERROR) else ""


@dataclass
class Sweep:
    sweep_id: str
    rows: list[Row]
    models: list[str] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)  # fine-tuning epochs in the sweep


def _model_key(alias: str) -> tuple:
    return (
        (SEED_MODEL_ORDER.index(alias), "")
        if alias in SEED_MODEL_ORDER
        else (len(SEED_MODEL_ORDER), alias)
    )


def load_sweep(uri: str, experiment: str, sweep_id: str | None) -> Sweep:
    runs = T.search_runs(uri, experiment)
    if not runs:
        raise SweepConfigError(f"experiment {experiment!r} in {uri} has no runs")
    if sweep_id is None:  # the newest sweep: the one whose latest run started last
        latest = max(runs, key=lambda r: (r.info.start_time, r.info.run_id))
        sweep_id = latest.data.tags.get(T.TAG_SWEEP_ID)
    chosen = [r for r in runs if r.data.tags.get(T.TAG_SWEEP_ID) == sweep_id]
    if not chosen:
        known = sorted({r.data.tags.get(T.TAG_SWEEP_ID, "") for r in runs})
        raise SweepConfigError(
            f"sweep {sweep_id!r} has no runs in experiment {experiment!r}: "
            f"choose from {', '.join(known[-10:])}"
        )
    # A grid point run more than once (a re-run after a failure) counts by its latest run.
    latest: dict[tuple, Row] = {}
    for r in sorted(chosen, key=lambda r: (r.info.start_time, r.info.run_id)):
        row = _row(r)
        latest[row.key] = row
    rows = sorted(latest.values(), key=lambda x: (_model_key(x.model), x.pruner, x.ratio, x.epochs))
    epochs = sorted({x.epochs for x in rows})
    for x in rows:
        x.label = _row_label(x.model, x.epochs, epochs)
    models = sorted({x.model for x in rows}, key=_model_key)
    return Sweep(sweep_id, rows, models, sorted({x.ratio for x in rows}), epochs)


def _row_label(model: str, epochs: int, sweep_epochs: list[int]) -> str:
    """A row's name: the model, with its fine-tuning epochs when the sweep varies them."""
    return f"{model} ft{epochs}" if len(sweep_epochs) > 1 else model


def _row(r) -> Row:
    p = r.data.params
    name_parts = (r.info.run_name or "").split("/")
    model = p.get(T.PARAM_MODEL) or name_parts[0]
    pruner = p.get(T.PARAM_PRUNER) or (name_parts[1] if len(name_parts) > 1 else "?")
    ratio = float(p.get(T.PARAM_RATIO) or (name_parts[2] if len(name_parts) > 2 else "nan"))
    epochs = int(p.get("finetune.epochs", 0))
    return Row(
        model,
        p.get(T.PARAM_MODEL_NAME, model),
        pruner,
        ratio,
        r.info.status,
        dict(r.data.metrics),
        dict(r.data.tags),
        dict(p),
        epochs,
    )


# ---- formatting ---------------------------------------------------------------------------------------
def _int(v) -> str:
    return "?" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{int(round(v)):,}"


def _ms(v) -> str:
    return "?" if v is None else f"{v:.2f}ms"


def _pct(v) -> str:
    return "?" if v is None else f"{100 * v:.1f}%"


def _macs(v) -> str:
    if v is None:
        return "?"
    return f"{v / 1e9:.2f} G" if v >= 1e8 else f"{v / 1e6:.2f} M"


def _accuracy_note(row: Row) -> str:
    """The final top-1 and how it came about: `85.3% (one-shot 10.3%, fine-tuned 3 ep)`."""
    m = row.metrics
    if row.epochs == 0:
        return f"{_pct(m.get('accuracy_top1'))} (one-shot)"
    return (
        f"{_pct(m.get('accuracy_top1'))} (one-shot {_pct(row.oneshot)}, fine-tuned {row.epochs} ep)"
    )


def seed_line(row: Row, dense: bool = False) -> str:
    """The seed document's line: `c: 196,245,706 params, 17.05ms, 8.6%`, with honest notes."""
    name = row.label or row.model
    if row.status != "FINISHED":
        return f"{name}: {row.status}: {row.error or 'no error recorded'}"
    if row.flag(T.TAG_NOOP) and not dense:
        return f"{name}: NO-OP: pruning changed nothing, not a result"
    pre = T.DENSE_PREFIX if dense else ""
    m = row.metrics
    line = f"{name}: {_int(m.get(pre + 'params_total'))} params"
    if not dense and row.kind != "structural":
        line += f" ({_int(m.get('params_nonzero'))} non-zero)"
    acc = _pct(m.get("dense_accuracy_top1")) if dense else _accuracy_note(row)
    line += f", {_ms(m.get(pre + 'latency_ms'))}, {acc}"
    if row.flag(T.TAG_AT_CHANCE):
        line += " (accuracy at chance)"
    return line


def dense_summary(rows: list[Row]) -> Row:
    """One row standing for the dense model: the median of each dense_ metric over the jobs that measured it."""
    metrics = {}
    for key in {k for r in rows for k in r.metrics if k.startswith(T.DENSE_PREFIX)}:
        metrics[key] = statistics.median(r.metrics[key] for r in rows if key in r.metrics)
    first = rows[0]
    tags = {k: v for k, v in first.tags.items() if k in (T.TAG_AT_CHANCE, T.TAG_WEIGHTS)}
    return Row(
        first.model,
        first.model_name,
        "dense",
        0.0,
        "FINISHED",
        metrics,
        tags,
        {},
        label=first.model,
    )


def flags(row: Row) -> list[str]:
    out = []
    if row.status != "FINISHED":
        out.append(f"{row.status.lower()}: {row.error}" if row.error else row.status.lower())
    if row.flag(T.TAG_NOOP):
        out.append("no-op")
    if row.flag(T.TAG_AT_CHANCE):
        out.append("accuracy at chance")
    if row.masks:
        out.append("masks: no dense speedup possible")
    return out


def _speed(r: Row) -> str:
    m = r.metrics
    if r.flag(T.TAG_NOOP):
        return "n/a (no-op)"
    if r.masks:
        return "n/a (masks)"
    lo, hi = m.get("speedup_ci_low", m["speedup"]), m.get("speedup_ci_high", m["speedup"])
    return f"{m['speedup']:.2f}x [{lo:.2f}, {hi:.2f}]"


def table(rows: list[Row]) -> list[str]:
    out = [
        "| model | params (total / non-zero) | MACs (dense kernels / non-zero) | latency median ± std | "
        "speedup [95% CI] | top-1 one-shot | top-1 fine-tuned (vs dense) | flags |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m = r.metrics
        if r.status != "FINISHED" or not m.get("latency_ms"):
            out.append(
                f"| {r.label or r.model} | | | | | | | {'; '.join(flags(r)) or 'incomplete'} |"
            )
            continue
        delta = f"({100 * m.get('accuracy_delta', 0.0):+.1f} pt)"
        tuned = (
            f"{_pct(m.get('accuracy_top1'))}, {r.epochs} ep {delta}"
            if r.epochs
            else f"not fine-tuned {delta}"
        )
        out.append(
            f"| {r.label or r.model} | {_int(m.get('params_total'))} / {_int(m.get('params_nonzero'))} | "
            f"{_macs(m.get('macs'))} / {_macs(m.get('macs_nonzero'))} | "
            f"{m['latency_ms']:.2f} ± {m.get('latency_std_ms', 0.0):.2f} ms | {_speed(r)} | {_pct(r.oneshot)} | "
            f"{tuned} | {'; '.join(flags(r))} |"
        )
    return out


def _missing(model: str, pruner: str, ratio: float, epochs: int = 0, label: str = "") -> Row:
    return Row(
        model,
        model,
        pruner,
        ratio,
        "MISSING",
        {},
        {T.TAG_ERROR: "no run logged for this grid point"},
        {},
        epochs,
        label or model,
    )


def _header(sweep: Sweep) -> list[str]:
    devices = sorted({r.tags.get(T.TAG_DEVICE, "?") for r in sweep.rows})
    commits = sorted({r.tags.get(T.TAG_GIT_COMMIT, "?")[:12] for r in sweep.rows})
    n_ok = sum(r.status == "FINISHED" for r in sweep.rows)
    return [
        "# Benchmarks Result",
        "",
        f"Sweep `{sweep.sweep_id}`: {len(sweep.rows)} runs ({n_ok} finished), models "
        f"{', '.join(sweep.models)}, ratios {', '.join(f'{q:g}' for q in sweep.ratios)}. "
        f"Device: {'; '.join(devices)}. Commit: {', '.join(commits)}.",
        "",
        "Each line: `model: parameters, median latency per batch, top-1 accuracy`. Dense figures are "
        "measured in the same job as the pruned ones. Masks (unstructured and structured-mask "
        "methods) keep dense shapes: their latency cannot improve on dense kernels, so no speedup is "
        "claimed for them.",
        "",
        _finetune_note(sweep),
        "",
    ]


def _finetune_note(sweep: Sweep) -> str:
    """What the accuracy figures are read after: one-shot alone misleads (published results are read
    after recovery fine-tuning)."""
    done = [r for r in sweep.rows if r.status == "FINISHED"]
    budgets = sorted(
        {
            (
                r.epochs,
                r.params.get("finetune.lr_used", r.params.get("finetune.lr", "?")),
                r.params.get("finetune.distill.weight", "0"),
            )
            for r in done
            if r.epochs
        }
    )
    if not budgets:
        return (
            "Top-1 is one-shot: the pruned models were not fine-tuned (finetune.epochs=0), so structural "
            "methods at high ratios may look far worse than they are after recovery fine-tuning."
        )
    said = "; ".join(
        f"{e} epoch{'s' if e != 1 else ''} at lr {lr}"
        + (f", distillation weight {w}" if w not in ("0", "0.0") else "")
        for e, lr, w in budgets
    )
    return (
        f"Top-1 is given one-shot (right after pruning) and after recovery fine-tuning on the train split "
        f"({said}), the same budget for every method."
    )


def _original(sweep: Sweep) -> list[str]:
    lines = [
        "## Original (not pruned)",
        "",
        "Every job measures its own dense model; each line gives the median over the sweep's finished jobs "
        "of that model.",
        "",
        "```bash",
        "# N(params), Latency, Accuracy",
    ]
    dense_rows = []
    for model in sweep.models:
        done = [
            r
            for r in sweep.rows
            if r.model == model and r.status == "FINISHED" and "dense_latency_ms" in r.metrics
        ]
        if done:
            dense_rows.append(dense_summary(done))
            lines.append(seed_line(dense_rows[-1], dense=True))
        else:
            lines.append(f"{model}: no finished run measured the dense model")
    lines += ["```", ""]
    chance = [r.model for r in dense_rows if r.flag(T.TAG_AT_CHANCE)]
    if chance:
        lines += [
            f"> Accuracy of {', '.join(chance)} is at chance (weights: "
            f"{', '.join(sorted({r.tags.get(T.TAG_WEIGHTS, '?') for r in dense_rows if r.model in chance}))}): "
            "their accuracy figures are not results.",
            "",
        ]
    return lines


def _at(rows: dict, sweep: Sweep, key: tuple) -> Row:
    if key in rows:
        return rows[key]
    model, pruner, ratio, epochs = key
    return _missing(model, pruner, ratio, epochs, _row_label(model, epochs, sweep.epochs))


def _method_sections(sweep: Sweep) -> list[str]:
    """One section per family (in the families' own order), one sub-section per method and ratio."""
    rows = {r.key: r for r in sweep.rows}
    known = families()
    by_family: dict[str, list[str]] = {}
    for r in sweep.rows:
        if r.pruner not in by_family.setdefault(r.family, []):
            by_family[r.family].append(r.pruner)
    lines = []
    for fam in sorted(by_family, key=lambda f: (known[f].rank if f in known else len(known), f)):
        lines += [f"## {known[fam].title if fam in known else fam}", ""]
        for pruner in sorted(by_family[fam]):
            sample = next(r for r in sweep.rows if r.pruner == pruner)
            means = sample.params.get("pruner.ratio_means", "")
            for ratio in sweep.ratios:
                section = [
                    _at(rows, sweep, (m, pruner, ratio, e))
                    for m in sweep.models
                    for e in sweep.epochs
                ]
                lines += [f"### {pruner} ({sample.kind or 'unknown kind'}, ratio={ratio:g})", ""]
                if means:
                    lines += [f"ratio = {means}.", ""]
                lines += ["```bash"] + [seed_line(r) for r in section] + ["```", ""]
                lines += table(section) + [""]
    return lines


def render(
    sweep: Sweep,
    figures: dict[str, str],
    baseline: Sweep | None = None,
    latency_threshold: float = 0.05,
    accuracy_threshold: float = 0.01,
) -> str:
    lines = _header(sweep) + _original(sweep) + _method_sections(sweep)
    if figures:
        lines += ["## Figures", ""]
        for title, path in figures.items():
            lines += [f"### {title}", "", f"![{title}]({path})", ""]
    if baseline is not None:
        lines += regressions(sweep, baseline, latency_threshold, accuracy_threshold)
    return "\n".join(lines).rstrip() + "\n"


def _point(key: tuple) -> str:
    model, pruner, ratio, epochs = key
    return f"{model}/{pruner}/{ratio:g}" + (f"/ft{epochs}" if epochs else "")


def regressions(
    sweep: Sweep, baseline: Sweep, latency_threshold: float, accuracy_threshold: float
) -> list[str]:
    base = {r.key: r for r in baseline.rows if r.status == "FINISHED"}
    lines = [
        f"## Compared with sweep `{baseline.sweep_id}`",
        "",
        f"Regression: latency up by more than {100 * latency_threshold:.1f} % or top-1 down by more than "
        f"{100 * accuracy_threshold:.1f} points.",
        "",
        "| model | pruner | ratio | latency then → now | top-1 then → now | regression |",
        "|---|---|---|---|---|---|",
    ]
    found = []
    for r in sweep.rows:
        b = base.get(r.key)
        if b is None or r.status != "FINISHED" or "latency_ms" not in r.metrics:
            continue
        lat0, lat1 = b.metrics["latency_ms"], r.metrics["latency_ms"]
        acc0, acc1 = b.metrics.get("accuracy_top1", 0.0), r.metrics.get("accuracy_top1", 0.0)
        why = []
        if lat1 > lat0 * (1 + latency_threshold):
            why.append(f"latency +{100 * (lat1 / lat0 - 1):.1f} %")
        if acc1 < acc0 - accuracy_threshold:
            why.append(f"top-1 {100 * (acc1 - acc0):+.1f} pt")
        lines.append(
            f"| {r.label or r.model} | {r.pruner} | {r.ratio:g} | {lat0:.2f} → {lat1:.2f} ms | "
            f"{_pct(acc0)} → {_pct(acc1)} | {'; '.join(why)} |"
        )
        if why:
            found.append(f"- {_point(r.key)}: {'; '.join(why)}")
    gone = sorted(
        set(base) - {r.key for r in sweep.rows if r.status == "FINISHED"},
        key=lambda k: (_model_key(k[0]), *k[1:]),
    )
    found += [f"- {_point(k)}: finished in the baseline, not in this sweep" for k in gone]
    lines += ["", "### Regressions", ""] + (found or ["None."]) + [""]
    return lines


# ---- figures ------------------------------------------------------------------------------------------
def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated by another with lower-or-equal cost and higher-or-equal accuracy."""
    front, best = [], -math.inf
    for cost, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if acc > best:
            front.append((cost, acc))
            best = acc
    return front


_PNG_META = {
    "Software": None
}  # no matplotlib version in the file: the same store gives the same bytes


def _label(ax, title: str, xlabel: str, ylabel: str = "top-1 accuracy (%)") -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.grid(alpha=0.3)


def _save(plt, fig, out: Path) -> None:
    fig.tight_layout()
    fig.savefig(out, dpi=110, metadata=_PNG_META)
    plt.close(fig)


def _accuracy_figure(plt, sweep: Sweep, done: list[Row], xkey: str, xlabel: str, out: Path) -> None:
    """Top-1 against a cost (MACs or latency), one panel per model, with the Pareto front."""
    models = [m for m in sweep.models if any(r.model == m for r in done)]
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), squeeze=False)
    scale = 1e6 if xkey == "macs" else 1.0
    for ax, model in zip(axes[0], models):
        mine = [r for r in done if r.model == model]
        for pruner in sorted({r.pruner for r in mine}):
            pts = [
                (r.metrics[xkey] / scale, 100 * r.metrics["accuracy_top1"])
                for r in mine
                if r.pruner == pruner
            ]
            ax.scatter(*zip(*pts), label=pruner, s=22)
        d = mine[0].metrics
        dense = (d["dense_" + xkey] / scale, 100 * d["dense_accuracy_top1"])
        ax.scatter(
            [dense[0]], [dense[1]], marker="*", s=120, color="black", label="dense", zorder=3
        )
        front = pareto(
            [(r.metrics[xkey] / scale, 100 * r.metrics["accuracy_top1"]) for r in mine] + [dense]
        )
        ax.step(
            *zip(*front),
            where="post",
            color="grey",
            linestyle="--",
            linewidth=1,
            label="Pareto front",
        )
        _label(
            ax, model + (" (accuracy at chance)" if mine[0].flag(T.TAG_AT_CHANCE) else ""), xlabel
        )
    axes[0][0].legend(fontsize=7)
    _save(plt, fig, out)


def _speedup_figure(plt, sweep: Sweep, structural: list[Row], out: Path) -> None:
    """Speedup (with its 95 % interval) against ratio, one panel per structural method."""
    pruners = sorted({r.pruner for r in structural})
    fig, axes = plt.subplots(1, len(pruners), figsize=(4.2 * len(pruners), 3.6), squeeze=False)
    for ax, pruner in zip(axes[0], pruners):
        for model in sweep.models:
            pts = sorted(
                (
                    r.ratio,
                    r.metrics["speedup"],
                    r.metrics.get("speedup_ci_low", r.metrics["speedup"]),
                    r.metrics.get("speedup_ci_high", r.metrics["speedup"]),
                )
                for r in structural
                if r.pruner == pruner and r.model == model
            )
            if pts:
                x, y, lo, hi = zip(*pts)
                ax.errorbar(
                    x,
                    y,
                    yerr=[[a - b for a, b in zip(y, lo)], [b - a for a, b in zip(y, hi)]],
                    marker="o",
                    capsize=3,
                    label=model,
                )
        ax.axhline(1.0, color="grey", linewidth=1)
        _label(ax, pruner, "ratio", "speedup vs dense (x, 95% CI)")
        ax.legend(fontsize=7)
    _save(plt, fig, out)


def _recovery_figure(plt, sweep: Sweep, done: list[Row], out: Path) -> None:
    """Top-1 against fine-tuning epochs, one panel per model, a line per method and ratio."""
    models = [m for m in sweep.models if any(r.model == m for r in done)]
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        mine = [r for r in done if r.model == model]
        for pruner, ratio in sorted({(r.pruner, r.ratio) for r in mine}):
            pts = sorted(
                (r.epochs, 100 * r.metrics["accuracy_top1"])
                for r in mine
                if (r.pruner, r.ratio) == (pruner, ratio)
            )
            ax.plot(*zip(*pts), marker="o", label=f"{pruner} {ratio:g}")
        dense = statistics.median(r.metrics["dense_accuracy_top1"] for r in mine)
        ax.axhline(100 * dense, color="black", linestyle="--", linewidth=1, label="dense")
        _label(ax, model, "fine-tuning epochs after pruning")
    axes[0][0].legend(fontsize=6)
    _save(plt, fig, out)


def figures(sweep: Sweep, out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [
        r
        for r in sweep.rows
        if r.status == "FINISHED" and not r.flag(T.TAG_NOOP) and "latency_ms" in r.metrics
    ]
    if not done:
        return {}
    made: dict[str, str] = {}
    for xkey, xlabel, fname, what in (
        ("macs", "MACs per image (millions, dense kernels)", "accuracy_vs_macs.png", "MACs"),
        ("latency_ms", "median latency per batch (ms)", "accuracy_vs_latency.png", "latency"),
    ):
        _accuracy_figure(plt, sweep, done, xkey, xlabel, out / fname)
        made[f"Accuracy vs {what} (per model, Pareto front dashed)"] = fname
    structural = [r for r in done if not r.masks]
    if structural:
        _speedup_figure(plt, sweep, structural, out / "speedup_vs_ratio.png")
        made["Speedup vs ratio (structural methods only)"] = "speedup_vs_ratio.png"
    if len(sweep.epochs) > 1:
        _recovery_figure(plt, sweep, done, out / "recovery.png")
        made["Recovery: top-1 vs fine-tuning epochs (per model)"] = "recovery.png"
    return made


def write_report(
    uri: str,
    experiment: str,
    sweep_id: str | None,
    out_dir: Path,
    baseline: str | None = None,
    latency_threshold: float = 0.05,
    accuracy_threshold: float = 0.01,
) -> Path:
    uri = T.resolve_uri(uri)
    T.check_reachable(uri)
    sweep = load_sweep(uri, experiment, sweep_id)
    base = load_sweep(uri, experiment, baseline) if baseline else None
    out = out_dir / sweep.sweep_id
    out.mkdir(parents=True, exist_ok=True)
    doc = render(sweep, figures(sweep, out), base, latency_threshold, accuracy_threshold)
    path = out / "benchmark.md"
    path.write_text(doc)
    # next to the data it was made from: one click from the sweep's row in the MLflow UI
    T.log_report(uri, experiment, sweep.sweep_id, out)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m sweep.report", description="Render the benchmark document from MLflow."
    )
    ap.add_argument("--tracking-uri", default=None, help=T.DEFAULT_URI_HELP)
    ap.add_argument("--experiment", default=T.DEFAULT_EXPERIMENT)
    ap.add_argument(
        "--sweep", default=None, help="sweep_id (default: the newest sweep in the experiment)"
    )
    ap.add_argument(
        "--out", default="reports", type=Path, help="output folder (a sub-folder per sweep)"
    )
    ap.add_argument("--baseline", default=None, help="an earlier sweep_id to compare with")
    ap.add_argument(
        "--latency-threshold",
        type=float,
        default=0.05,
        help="relative latency increase that is a regression",
    )
    ap.add_argument(
        "--accuracy-threshold",
        type=float,
        default=0.01,
        help="top-1 drop (fraction) that is a regression",
    )
    args = ap.parse_args(argv)
    try:
        path = write_report(
            args.tracking_uri,
            args.experiment,
            args.sweep,
            args.out,
            args.baseline,
            args.latency_threshold,
            args.accuracy_threshold,
        )
    except SweepConfigError as e:
        print(f"sweep.report: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(path)
    uri = T.resolve_uri(args.tracking_uri)
    parent = T.parent_run_of(uri, args.experiment, path.parent.name)
    if parent is not None:
        print(f"logged as artifacts report/ of the sweep's run {parent}")


if __name__ == "__main__":
    main()
