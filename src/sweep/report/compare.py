"""Methods compared at equal cost: the report's summary (the best method per model and cost), its
matched-cost tables, and the checklist of reporting practices (Blalock et al., "What is the state of
neural network pruning?", MLSys 2020) that says what a sweep's numbers can support.

A cost level is the target a job pruned to (`target.macs=0.5`: keep half the dense MACs), or, for a
sweep pruned at fixed ratios, the fraction of the dense MACs kept in steps of 10 %: a ratio is a
fraction of something different for every method, so equal ratios are not equal costs. Masks are placed
by their non-zero MACs (as targets count them); they cannot run faster on dense kernels.
"""

from __future__ import annotations

from sweep import tracking
from sweep.report import cells, rows

RANDOM_IMPORTANCE = "RandomImportance"
MAGNITUDE_IMPORTANCE = "MagnitudeImportance"
# methods that rank weights by |w| without an importance object (torch.nn.utils.prune)
MAGNITUDE_MASKS = ("l1_unstructured", "global_unstructured", "ln_structured")
MIN_CURVE_POINTS = 5  # points per trade-off curve for a curve, not an anecdote


def cost_level(row: rows.Row) -> str:
    """The row's cost level: its target, or its MACs kept to 10 % ("?" when nothing was measured)."""
    if row.target:
        return row.target
    kept = row.macs_kept
    return "?" if kept is None else f"{rows.MACS_BUCKET}{10 * round(10 * kept):.0f} %"


def _name(row: rows.Row) -> str:
    return row.method if row.target else f"{row.method} (ratio {row.ratio:g})"


def _ranked(group: list[rows.Row]) -> list[rows.Row]:
    """Finished, real results, best top-1 first (ties: the faster)."""
    ok = [
        r
        for r in group
        if r.status == "FINISHED"
        and not r.flag(tracking.TAG_NOOP)
        and not r.diverged  # its top-1 is the learning rate's, not the method's
        and "accuracy_top1" in r.metrics
    ]
    return sorted(
        ok, key=lambda r: (-r.metrics["accuracy_top1"], -r.metrics.get("speedup", 0.0), _name(r))
    )


def by_cost(sweep: rows.Sweep, model: str) -> dict[str, list[rows.Row]]:
    """A model's grid points at the sweep's longest fine-tuning, grouped by cost level, in order."""
    epochs = max(sweep.epochs)
    groups: dict[str, list[rows.Row]] = {}
    for r in sweep.rows:
        if r.model == model and r.epochs == epochs:
            groups.setdefault(cost_level(r), []).append(r)
    groups.pop("?", None)  # failed before measuring, at a ratio: no cost to place it at
    return dict(sorted(groups.items(), key=lambda kv: rows.level_key(kv[0])))


def _short(row: rows.Row, runtimes: list[str]) -> str:
    if row.masks:
        speed = "no dense speedup (masks)"
    elif len(runtimes) == 1:
        speed = f"{row.metrics['speedup']:.2f}x"
    else:
        speed = ", ".join(_speed_in(row, rt) for rt in runtimes)
    return f"{_name(row)}: {cells.pct_of(row, 'accuracy_top1')}, {speed}"


def _speed_in(row: rows.Row, runtime: str) -> str:
    v = row.metrics.get(tracking.runtime_key(runtime, "speedup"))
    return f"{runtime} n/a" if v is None else f"{v:.2f}x {runtime}"


# an order by speedup a reader would act on: beyond both intervals and by at least this share
FLIP_MARGIN = 0.05


def ranking_changes(sweep: rows.Sweep) -> list[str]:
    """Pairs of methods at one cost whose order by speedup flips between runtimes, each order clear
    of both intervals and by FLIP_MARGIN: a method chosen by its eager speedup may not be the faster
    where it is deployed. Orders within the noise, or too close to matter, are not counted."""
    runtimes = cells.sweep_runtimes(sweep)
    out = []
    for model in sweep.models:
        for level, group in by_cost(sweep, model).items():
            timed = sorted((r for r in _ranked(group) if not r.masks), key=_name)
            for i, a in enumerate(timed):
                for b in timed[i + 1 :]:
                    ahead = [rt for rt in runtimes if cells.faster(a, b, rt, margin=FLIP_MARGIN)]
                    behind = [rt for rt in runtimes if cells.faster(b, a, rt, margin=FLIP_MARGIN)]
                    if ahead and behind:
                        out.append(
                            f"- {model}, {level}: {_name(a)} is faster than {_name(b)} in "
                            f"{', '.join(_vs(a, b, rt) for rt in ahead)}, slower in "
                            f"{', '.join(_vs(a, b, rt) for rt in behind)}"
                        )
    return out


def _vs(a: rows.Row, b: rows.Row, runtime: str) -> str:
    key = tracking.runtime_key(runtime, "speedup")
    return f"{runtime} ({a.metrics[key]:.2f}x vs {b.metrics[key]:.2f}x)"


def _what(sweep: rows.Sweep) -> str:
    tuned = max(sweep.epochs)
    acc = f"after {tuned} epoch{'s' if tuned != 1 else ''} of fine-tuning" if tuned else "one-shot"
    return f"top-1 {acc}" + (" (mean over seeds)" if len(sweep.seeds) > 1 else "")


def summary(sweep: rows.Sweep) -> list[str]:
    lines = [
        "## Summary: the best method at each cost",
        "",
        f"Per model and cost level, the two methods with the highest {_what(sweep)}, with their "
        "speedup. A cost level is the target each job pruned to or, for runs pruned at a fixed "
        "ratio, the fraction of the dense MACs kept (10 % steps): equal ratios are not equal costs. "
        "Masks are placed by their non-zero MACs and do not run faster on dense kernels.",
        "",
        "| model | cost | best | runner-up | methods with a result |",
        "|---|---|---|---|---|",
    ]
    runtimes = cells.sweep_runtimes(sweep)
    if len(runtimes) > 1:
        lines[2] += (
            f" Speedups are given in every runtime the sweep timed ({', '.join(runtimes)}); the "
            "ranking is by top-1, the same in every runtime, with ties broken by eager speedup."
        )
    for model in sweep.models:
        for level, group in by_cost(sweep, model).items():
            ranked = _ranked(group)
            shown = [_short(r, runtimes) for r in ranked[:2]] + ["—", "—"]
            if any(r.flag(tracking.TAG_AT_CHANCE) for r in ranked):
                shown = ["— (dense accuracy at chance: not ranked)", "—"]
            lines.append(
                f"| {model} | {level} | {shown[0]} | {shown[1]} | {len(ranked)} of {len(group)} |"
            )
    diverged = [rows.point_name(r.point) for r in sweep.rows if r.diverged]
    if diverged:
        lines += [
            "",
            f"Left out of the ranking, their fine-tuning or sparse training diverged (loss "
            f"non-finite, above its start and a uniform guess's, or far above a guess's: see the "
            f"run's finetune_loss_* and regularize_loss_*): "
            f"{', '.join(diverged)}.",
        ]
    if len(runtimes) > 1:
        changes = ranking_changes(sweep)
        lines += [
            "",
            "Where the order of two methods by speedup flips between runtimes (each order clear "
            f"of both methods' intervals and by at least {FLIP_MARGIN:.0%}; orders within the "
            "noise or closer than that are not counted). Each interval "
            "is its job's own; the two methods ran in different jobs, so with one seed the drift "
            "between jobs is not in it (seed=0,1,2 gives the spread over runs):"
            if changes
            else f"No two methods swap places by speedup between runtimes (by {FLIP_MARGIN:.0%}+).",
            *([""] + changes if changes else []),
        ]
    return lines + [""]


def _kept(v: float | None) -> str:
    return "?" if v is None else f"{100 * v:.1f}%"


def _matched_row(level: str, r: rows.Row, runtimes: list[str]) -> str:
    if r.status != "FINISHED" or "accuracy_top1" not in r.metrics:
        blank = " |" * len(runtimes)
        return f"| {level} | {_name(r)} | {r.kind} | | |{blank} | | | {'; '.join(cells.flags(r))} |"
    speeds = " | ".join("n/a (masks)" if r.masks else cells.speed(r, rt) for rt in runtimes)
    return (
        f"| {level} | {_name(r)}{cells.seeds_note(r)} | {r.kind} | {_kept(r.macs_kept)} | "
        f"{_kept(r.params_kept)} | {speeds} | {cells.footprints(r, runtimes)} | "
        f"{cells.oneshot_of(r)} | {cells.pct_of(r, 'accuracy_top1')} | {'; '.join(cells.flags(r))} |"
    )


def matched_cost(sweep: rows.Sweep) -> list[str]:
    """Per model: every method side by side at each cost level, best top-1 first."""
    lines = []
    runtimes = cells.sweep_runtimes(sweep)
    speed_cols = ["speedup"] if len(runtimes) == 1 else [f"speedup ({rt})" for rt in runtimes]
    for model in sweep.models:
        groups = by_cost(sweep, model)
        if not groups:
            continue
        lines += [
            f"## Matched cost: {model}",
            "",
            f"Methods at the same cost, best {_what(sweep)} first. MACs and params kept: fraction of "
            "the dense model's (masks: non-zero). Shipped: dense → pruned, MB on disk of the form "
            "each runtime ships (safetensors, ONNX, OpenVINO IR) and MiB in memory (weights plus "
            "one inference's peak).",
            "",
            f"| cost | method | kind | MACs kept | params kept | {' | '.join(speed_cols)} | "
            "shipped | top-1 one-shot | top-1 fine-tuned | flags |",
            "|---|---|---|---|---|" + "---|" * len(speed_cols) + "---|---|---|---|",
        ]
        for level, group in groups.items():
            ranked = _ranked(group)
            rest = sorted((r for r in group if r not in ranked), key=_name)
            lines += [_matched_row(level, r, runtimes) for r in ranked + rest]
        lines.append("")
    return lines


# ---- the checklist ------------------------------------------------------------------------------------
def _importance(r: rows.Row) -> str:
    return r.params.get("pruner.importance._target_", "")


def _baselines(sweep: rows.Sweep) -> tuple[bool, str]:
    pruners = {r.pruner: r for r in sweep.rows}
    random = sorted(p for p, r in pruners.items() if RANDOM_IMPORTANCE in _importance(r))
    magnitude = sorted(
        p
        for p, r in pruners.items()
        if MAGNITUDE_IMPORTANCE in _importance(r) or p in MAGNITUDE_MASKS
    )
    missing = [what for what, found in (("random", random), ("magnitude", magnitude)) if not found]
    if missing:
        return (
            False,
            f"no {' and no '.join(missing)} baseline (e.g. pruner=dg_random, dg_magnitude)",
        )
    return True, f"random: {', '.join(random)}; magnitude: {', '.join(magnitude)}"


def _matched(sweep: rows.Sweep) -> tuple[bool, str]:
    targets = [lv for lv in sweep.levels if not lv.startswith("ratio=")]
    if targets and len(targets) == len(sweep.levels):
        return True, f"every job pruned to a target ({', '.join(targets)})"
    return False, (
        "pruned at fixed ratios, a different cost for each method; the summary groups by MACs kept "
        "instead (for matched points: target.macs=...)"
    )


def _budget(sweep: rows.Sweep) -> tuple[bool, str]:
    """One budget for every method of a model (the learning rate may be each model's own)."""
    budgets = cells.budgets(sweep)
    if not budgets:
        return False, "one-shot only: no recovery fine-tuning (finetune.epochs=0)"
    differ = [m for m in sweep.models if len(cells.budgets(sweep, m)) > 1]
    if differ:
        said = cells.budget_said(cells.budgets(sweep, differ[0]))
        return False, f"methods of {differ[0]} had different budgets: {said}"
    return True, cells.budget_said(budgets)


def _repeats(sweep: rows.Sweep) -> tuple[bool, str]:
    n = len(sweep.seeds)
    if n < 2:
        return False, "one seed: no spread (e.g. seed=0,1,2)"
    return True, f"{n} seeds, mean ± std"


def _curves(sweep: rows.Sweep) -> tuple[bool, str]:
    points: dict[tuple, set] = {}
    for r in sweep.rows:
        if r.status == "FINISHED":
            points.setdefault((r.model, r.method, r.epochs), set()).add(r.level)
    if not points:
        return False, "no finished runs"
    fewest = min(len(v) for v in points.values())
    return fewest >= MIN_CURVE_POINTS, f"fewest points on a model/method curve: {fewest}"


def checklist(sweep: rows.Sweep) -> list[str]:
    checks = [
        ("methods compared at matched cost", _matched(sweep)),
        ("the same fine-tuning budget for every method", _budget(sweep)),
        ("random and magnitude baselines", _baselines(sweep)),
        ("repeated runs, mean ± std", _repeats(sweep)),
        (f"at least {MIN_CURVE_POINTS} points per trade-off curve", _curves(sweep)),
    ]
    lines = [
        "## Reporting checklist",
        "",
        "Which of the reporting practices of Blalock et al. (MLSys 2020) this sweep satisfies: what "
        "its numbers can and cannot support.",
        "",
        "| practice | | this sweep |",
        "|---|---|---|",
    ]
    lines += [f"| {what} | {'yes' if ok else 'no'} | {said} |" for what, (ok, said) in checks]
    return lines + [""]
