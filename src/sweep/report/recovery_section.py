"""*Recovery*: does the one-shot ranking of methods predict the fine-tuned one? Per model and cost level,
Kendall's tau between the methods' top-1 right after pruning and after recovery fine-tuning; the curves
behind it (top-1 against fine-tuning steps, `finetune_top1`'s history) are the report's recovery figure
and the MLflow UI's charts."""

from __future__ import annotations

import math

from sweep import tracking
from sweep.report.rows import Row, Sweep

MIN_METHODS = 3  # fewer: a rank correlation says nothing


def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b of two paired lists (ties in either counted as neither agreeing nor not)."""
    agree = disagree = tied_x = tied_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = _sign(x[i] - x[j]), _sign(y[i] - y[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tied_x += 1
            elif dy == 0:
                tied_y += 1
            elif dx == dy:
                agree += 1
            else:
                disagree += 1
    pairs = math.sqrt((agree + disagree + tied_x) * (agree + disagree + tied_y))
    return (agree - disagree) / pairs if pairs else math.nan


def _sign(v: float) -> int:
    return (v > 0) - (v < 0)


def _recovered(sweep: Sweep) -> list[Row]:
    """Finished runs that fine-tuned, with both top-1s (diverged ones listed apart elsewhere)."""
    return [
        r
        for r in sweep.rows
        if r.status == "FINISHED"
        and r.epochs > 0
        and not r.diverged
        and tracking.ACCURACY_ONESHOT in r.metrics
        and tracking.ACCURACY in r.metrics
    ]


def taus(sweep: Sweep) -> list[tuple[str, str, float, int]]:
    """(model, cost level, tau, methods) for each model and level with enough methods."""
    done = _recovered(sweep)
    out = []
    for model in sweep.models:
        for level in sweep.levels:
            group = [r for r in done if r.model == model and r.level == level]
            if len(group) >= MIN_METHODS:
                oneshot = [r.metrics[tracking.ACCURACY_ONESHOT] for r in group]
                tuned = [r.metrics[tracking.ACCURACY] for r in group]
                out.append((model, level, kendall_tau(oneshot, tuned), len(group)))
    return out


def _reading(tau: float) -> str:
    if math.isnan(tau):
        return "no ranking (every one-shot or fine-tuned top-1 tied)"
    if tau >= 0.6:
        return "the one-shot ranking holds"
    if tau > 0.2:
        return "it holds in part"
    return "it does not predict the recovered one"


def section(sweep: Sweep) -> list[str]:
    found = taus(sweep)
    if not found:
        return []
    lines = [
        "## Recovery: does the one-shot ranking predict the fine-tuned one?",
        "",
        "Kendall's tau between the methods' top-1 right after pruning and after fine-tuning, per "
        "model and cost (1: the same order; 0: unrelated; -1: reversed). Each run's recovery is "
        f"`{tracking.FINETUNE_CURVE_TOP1}` and `{tracking.FINETUNE_CURVE_LOSS}` in MLflow "
        "(step = optimizer steps): the UI's charts compare them across runs.",
        "",
    ]
    for model, level, tau, n in found:
        said = "n/a" if math.isnan(tau) else f"{tau:+.2f}"
        lines.append(f"- {model} at {level}: tau = {said} over {n} methods: {_reading(tau)}")
    return [*lines, ""]
