"""The report's figures (PNG): trade-off curves of top-1 against MACs and latency with the Pareto front,
speedup against MACs kept, recovery against fine-tuning epochs and, per run, against fine-tuning steps. Each point is one grid point of the
sweep; where it ran with several seeds, the point is their mean and its bars one standard deviation.
Inputs are the report's rows (sweep.report.Row), read from MLflow.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from sweep import tracking
from sweep.report import cells
from sweep.report import rows as rows_mod

# no matplotlib version in the file: the same store gives the same bytes
_PNG_META = {"Software": None}


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated by another with lower-or-equal cost and higher-or-equal accuracy."""
    front, best = [], -math.inf
    for cost, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if acc > best:
            front.append((cost, acc))
            best = acc
    return front


def _label(ax, title: str, xlabel: str, ylabel: str = "top-1 accuracy (%)") -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.grid(alpha=0.3)


def _save(plt, fig, out: Path) -> None:
    fig.tight_layout()
    fig.savefig(out, dpi=110, metadata=_PNG_META)
    plt.close(fig)


def _panels(plt, n: int):
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False)
    return fig, axes[0]


def _xy(rows, xkey: str, scale: float, ykey: str = "accuracy_top1", yscale: float = 100.0):
    """x, y and their standard deviations over seeds (0 for a single run)."""
    return (
        [r.metrics[xkey] / scale for r in rows],
        [yscale * r.metrics[ykey] for r in rows],
        [r.std.get(xkey, 0.0) / scale for r in rows],
        [yscale * r.std.get(ykey, 0.0) for r in rows],
    )


def _accuracy_figure(plt, models, done, xkey: str, xlabel: str, out: Path) -> None:
    """Top-1 against a cost (MACs or latency), one panel per model, with the Pareto front."""
    fig, axes = _panels(plt, len(models))
    scale = 1e6 if xkey == "macs" else 1.0
    for ax, model in zip(axes, models):
        mine = [r for r in done if r.model == model]
        for pruner in sorted({r.method for r in mine}):
            x, y, xe, ye = _xy([r for r in mine if r.method == pruner], xkey, scale)
            ax.errorbar(x, y, xerr=xe, yerr=ye, fmt="o", ms=4, capsize=2, label=pruner)
        dense = (
            statistics.median(r.metrics["dense_" + xkey] for r in mine) / scale,
            100 * statistics.median(r.metrics["dense_accuracy_top1"] for r in mine),
        )
        ax.scatter(
            [dense[0]], [dense[1]], marker="*", s=120, color="black", label="dense", zorder=3
        )
        points = [(a, b) for a, b in zip(*_xy(mine, xkey, scale)[:2])]
        front = pareto(points + [dense])
        ax.step(*zip(*front), where="post", color="grey", linestyle="--", linewidth=1)
        chance = (
            " (accuracy at chance)" if any(r.flag(tracking.TAG_AT_CHANCE) for r in mine) else ""
        )
        _label(ax, model + chance, xlabel)
    axes[0].legend(fontsize=6)
    _save(plt, fig, out)


def _speedup_panel(ax, model: str, structural, runtime: str, title: str) -> None:
    """Speedup in one runtime (bars: its 95 % interval, or the std over seeds) against the fraction
    of the dense MACs kept, a line per structural method."""
    mine = [r for r in structural if r.model == model and cells.speedup_interval(r, runtime)]
    for pruner in sorted({r.method for r in mine}):
        rows = sorted((r for r in mine if r.method == pruner), key=lambda r: -r.macs_kept)
        v, lo, hi = zip(*(cells.speedup_interval(r, runtime) for r in rows))
        err = [[a - b for a, b in zip(v, lo)], [b - a for a, b in zip(v, hi)]]
        ax.errorbar(
            [r.macs_kept for r in rows], v, yerr=err, marker="o", ms=4, capsize=3, label=pruner
        )
    ax.axhline(1.0, color="grey", linewidth=1)
    ax.invert_xaxis()  # left to right: more pruned
    _label(ax, title, "MACs kept (fraction of dense)", "speedup vs dense (x)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)


def _speedup_figure(plt, models, structural, out: Path) -> None:
    """Eager speedup against MACs kept, one panel per model."""
    fig, axes = _panels(plt, len(models))
    for ax, model in zip(axes, models):
        _speedup_panel(ax, model, structural=structural, runtime=tracking.EAGER, title=model)
    _save(plt, fig, out)


def _runtime_figure(plt, models, structural, runtimes, out: Path) -> None:
    """Speedup against MACs kept, one row of panels per model and one panel per runtime."""
    fig, axes = plt.subplots(
        len(models), len(runtimes), figsize=(3.8 * len(runtimes), 3.3 * len(models)), squeeze=False
    )
    for row, model in zip(axes, models):
        for ax, rt in zip(row, runtimes):
            _speedup_panel(ax, model, structural=structural, runtime=rt, title=f"{model}: {rt}")
    _save(plt, fig, out)


def _recovery_figure(plt, models, done, out: Path) -> None:
    """Top-1 against fine-tuning epochs, one panel per model, a line per method and cost level."""
    fig, axes = _panels(plt, len(models))
    for ax, model in zip(axes, models):
        mine = [r for r in done if r.model == model]
        for pruner, level in sorted({(r.method, r.level) for r in mine}):
            rows = sorted(
                (r for r in mine if (r.method, r.level) == (pruner, level)), key=lambda r: r.epochs
            )
            ye = [100 * r.std.get("accuracy_top1", 0.0) for r in rows]
            y = [100 * r.metrics["accuracy_top1"] for r in rows]
            ax.errorbar(
                [r.epochs for r in rows],
                y,
                yerr=ye,
                marker="o",
                capsize=2,
                label=f"{pruner} {level}",
            )
        dense = statistics.median(r.metrics["dense_accuracy_top1"] for r in mine)
        ax.axhline(100 * dense, color="black", linestyle="--", linewidth=1, label="dense")
        _label(ax, model, "fine-tuning epochs after pruning")
    axes[0].legend(fontsize=6)
    _save(plt, fig, out)


def _curves_figure(plt, done, out: Path) -> bool:
    """Top-1 against fine-tuning steps, one panel per model and cost level, a line per method (the
    runs' `finetune_top1` history); False when no run has a curve to draw."""
    panels = sorted(
        {(r.model, r.level) for r in done if len(r.curve) > 1},
        key=lambda p: (rows_mod.model_key(p[0]), rows_mod.level_key(p[1])),
    )
    if not panels:
        return False
    cols = min(4, len(panels))
    lines = -(-len(panels) // cols)
    fig, axes = plt.subplots(lines, cols, figsize=(4.2 * cols, 3.4 * lines), squeeze=False)
    for ax, (model, level) in zip(axes.flat, panels):
        for r in sorted((r for r in done if (r.model, r.level) == (model, level)), key=_by_method):
            if len(r.curve) > 1:
                steps, top1 = zip(*r.curve)
                ax.plot(steps, [100 * v for v in top1], marker=".", label=r.method)
        _label(ax, f"{model} at {level}", "fine-tuning steps")
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    _save(plt, fig, out)
    return True


def _by_method(r) -> str:
    return r.method


def render(sweep, out: Path) -> dict[str, str]:
    """Draw the sweep's figures into `out`; returns title -> file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [
        r
        for r in sweep.rows
        if r.status == "FINISHED"
        and not r.flag(tracking.TAG_NOOP)
        and not r.diverged  # listed apart in the summary
        and "latency_ms" in r.metrics
    ]
    if not done:
        return {}
    models = [m for m in sweep.models if any(r.model == m for r in done)]
    bars = "; bars: std over seeds" if len(sweep.seeds) > 1 else ""
    made: dict[str, str] = {}
    for xkey, xlabel, fname, what in (
        ("macs", "MACs per image (millions, dense kernels)", "accuracy_vs_macs.png", "MACs"),
        ("latency_ms", "median latency per batch (ms)", "accuracy_vs_latency.png", "latency"),
    ):
        _accuracy_figure(plt, models, done=done, xkey=xkey, xlabel=xlabel, out=out / fname)
        made[f"Accuracy vs {what} (per model, Pareto front dashed{bars})"] = fname
    structural = [r for r in done if not r.masks and r.macs_kept is not None]
    if structural:
        _speedup_figure(plt, models, structural, out / "speedup_vs_macs.png")
        made["Speedup vs MACs kept (structural methods only)"] = "speedup_vs_macs.png"
    runtimes = cells.sweep_runtimes(sweep)
    if structural and len(runtimes) > 1:
        _runtime_figure(
            plt,
            models,
            structural=structural,
            runtimes=runtimes,
            out=out / "speedup_by_runtime.png",
        )
        made["Speedup vs MACs kept in each runtime (structural methods only)"] = (
            "speedup_by_runtime.png"
        )
    if len(sweep.epochs) > 1:
        _recovery_figure(plt, models, done, out / "recovery.png")
        made["Recovery: top-1 vs fine-tuning epochs (per model)"] = "recovery.png"
    if _curves_figure(plt, done, out / "recovery_curves.png"):
        made["Recovery during fine-tuning: top-1 vs steps (per model and cost)"] = (
            "recovery_curves.png"
        )
    return made
