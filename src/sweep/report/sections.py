"""The report's own sections: its header (what was run, on what, with which budgets), the original seed
benchmark beside this one, and each method's section (its table, and its figures in each runtime).
The comparison sections are `sweep.report.compare`'s."""

from __future__ import annotations

import functools
import math
import statistics

from sweep import tracking
from sweep.pruners import families
from sweep.report import cells, rows

# ---- formatting ---------------------------------------------------------------------------------------


def _accuracy_note(row: rows.Row) -> str:
    """The final top-1 and how it came about: `85.3% (one-shot 10.3%, fine-tuned 3 ep)`."""
    if row.epochs == 0:
        return f"{cells.pct_of(row, 'accuracy_top1')} (one-shot)"
    return f"{cells.pct_of(row, 'accuracy_top1')} (one-shot {cells.oneshot_of(row)}, fine-tuned {row.epochs} ep)"


def seed_line(row: rows.Row, dense: bool = False) -> str:
    """The seed document's line: `c: 196,245,706 params, 17.05ms, 8.6%`, with honest notes."""
    name = row.label or row.model
    if row.flag(tracking.TAG_NOT_APPLICABLE) and row.status != "FINISHED":
        return f"{name}: n/a: {row.error}"
    if row.status != "FINISHED":
        return f"{name}: {row.status}: {row.error or 'no error recorded'}"
    if row.flag(tracking.TAG_NOOP) and not dense:
        return f"{name}: NO-OP: pruning changed nothing, not a result"
    pre = tracking.DENSE_PREFIX if dense else ""
    m = row.metrics
    line = f"{name}: {cells.fmt_count(m.get(pre + 'params_total'))} params"
    if not dense and row.kind != "structural":
        line += f" ({cells.fmt_count(m.get('params_nonzero'))} non-zero)"
    acc = cells.fmt_pct(m.get("dense_accuracy_top1")) if dense else _accuracy_note(row)
    line += f", {cells.ms_of(row, pre + 'latency_ms')}, {acc}"
    if row.flag(tracking.TAG_AT_CHANCE):
        line += " (accuracy at chance)"
    return line + ("" if dense else cells.seeds_note(row))


def dense_summary(group: list[rows.Row]) -> rows.Row:
    """One row standing for the dense model: the median of each dense_ metric over the jobs that measured it."""
    metrics = {}
    for key in {k for r in group for k in r.metrics if k.startswith(tracking.DENSE_PREFIX)}:
        metrics[key] = statistics.median(r.metrics[key] for r in group if key in r.metrics)
    first = group[0]
    tags = {
        k: v for k, v in first.tags.items() if k in (tracking.TAG_AT_CHANCE, tracking.TAG_WEIGHTS)
    }
    return rows.Row(
        first.model,
        first.model_name,
        pruner="dense",
        ratio=0.0,
        status="FINISHED",
        metrics=metrics,
        tags=tags,
        params={},
        label=first.model,
    )


def _latency_cell(r: rows.Row) -> str:
    """Median ± std over iterations; with repeats, mean of the medians ± std over the runs."""
    m = r.metrics
    spread = r.std.get("latency_ms", 0.0) if r.n > 1 else m.get("latency_std_ms", 0.0)
    return f"{m['latency_ms']:.2f} ± {spread:.2f} ms"


def _tuned_cell(r: rows.Row) -> str:
    delta = f"({100 * r.metrics.get('accuracy_delta', 0.0):+.1f} pt)"
    if not r.epochs:
        return f"not fine-tuned {delta}"
    return f"{cells.pct_of(r, 'accuracy_top1')}, {r.epochs} ep {delta}"


def table(group: list[rows.Row]) -> list[str]:
    out = [
        "| model | params (total / non-zero) | MACs (dense kernels / non-zero) | latency median ± std | "
        "speedup [95% CI] | top-1 one-shot | top-1 fine-tuned (vs dense) | flags |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in group:
        m = r.metrics
        name = (r.label or r.model) + cells.seeds_note(r)
        if r.status != "FINISHED" or not m.get("latency_ms"):
            out.append(f"| {name} | | | | | | | {'; '.join(cells.flags(r)) or 'incomplete'} |")
            continue
        out.append(
            f"| {name} | {cells.fmt_count(m.get('params_total'))} / {cells.fmt_count(m.get('params_nonzero'))} | "
            f"{cells.fmt_macs(m.get('macs'))} / {cells.fmt_macs(m.get('macs_nonzero'))} | {_latency_cell(r)} | "
            f"{cells.speed(r)} | {cells.oneshot_of(r)} | {_tuned_cell(r)} | {'; '.join(cells.flags(r))} |"
        )
    return out


def _eff(m: dict, key) -> str:
    d, p = m.get(key("dense_efficiency")), m.get(key("efficiency"))
    return "?" if d is None or p is None else f"{100 * d:.1f}% → {100 * p:.1f}%"


def runtime_table(group: list[rows.Row], runtimes: list[str]) -> list[str]:
    """Dense and pruned in every runtime timed: latency, speedup beside the MAC ratio it could reach
    at best, and efficiency (achieved MAC/s as a fraction of the runtime's measured GEMM peak), which
    says why a speedup falls short of the MAC ratio."""
    out = [
        "| model | runtime | latency dense → pruned | speedup [95% CI] | MACs dense / pruned "
        "| efficiency dense → pruned | export + build s (pruned) | |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in group:
        if r.status != "FINISHED":
            continue
        m, name = r.metrics, (r.label or r.model) + cells.seeds_note(r)
        macs_said = f"{m.get('dense_macs', 0.0) / m['macs']:.2f}x" if m.get("macs") else "?"
        for rt in runtimes:
            key = functools.partial(tracking.runtime_key, rt)
            na = cells.runtime_na(r, rt)
            if key("latency_ms") not in m:
                out.append(f"| {name} | {rt} | | {cells.speed(r, rt)} | {macs_said} | | | {na} |")
                continue
            prep = m.get(key("export_seconds"), 0.0) + m.get(key("build_seconds"), 0.0)
            flag = r.tags.get(key(tracking.TAG_RUNTIME_FLAG), "none")
            out.append(
                f"| {name} | {rt} | {m[key('dense_latency_ms')]:.3f} → {m[key('latency_ms')]:.3f} ms "
                f"| {cells.speed(r, rt)} | {macs_said} | {_eff(m, key)} | {prep:.2f} | "
                f"{'' if flag in ('none', '') else 'not trusted: ' + flag} |"
            )
    return out


def _missing(model: str, pruner: str, level: str, epochs: int = 0, label: str = "") -> rows.Row:
    ratio = rows.to_float(level.partition("=")[2]) if level.startswith("ratio=") else math.nan
    return rows.Row(
        model,
        model,
        pruner=pruner,
        ratio=ratio,
        status="MISSING",
        metrics={},
        tags={tracking.TAG_ERROR: "no run logged for this grid point"},
        params={},
        epochs=epochs,
        label=label or model,
        target="" if level.startswith("ratio=") else level,
    )


def _levels_said(sweep: rows.Sweep) -> str:
    ratios = [lv.partition("=")[2] for lv in sweep.levels if lv.startswith("ratio=")]
    goals = [lv for lv in sweep.levels if not lv.startswith("ratio=")]
    said = [f"ratios {', '.join(ratios)}"] if ratios else []
    said += [f"targets {', '.join(goals)}"] if goals else []
    if len(sweep.seeds) > 1:
        said.append(f"seeds {', '.join(map(str, sweep.seeds))}")
    return ", ".join(said)


def header(sweep: rows.Sweep) -> list[str]:
    devices = sorted({r.tags.get(tracking.TAG_DEVICE, "?") for r in sweep.runs})
    commits = sorted({r.tags.get(tracking.TAG_GIT_COMMIT, "?")[:12] for r in sweep.runs})
    n_ok = sum(r.status == "FINISHED" for r in sweep.runs)
    repeats = (
        [
            "Each grid point ran once per seed; its figures are the mean ± standard deviation over "
            "the seeds that finished (latency: of each run's median).",
            "",
        ]
        if len(sweep.seeds) > 1
        else []
    )
    return [
        "# Benchmarks Result",
        "",
        f"Sweep `{sweep.sweep_id}`: {len(sweep.runs)} runs ({n_ok} finished), models "
        f"{', '.join(sweep.models)}, {_levels_said(sweep)}. "
        f"Device: {'; '.join(devices)}. Commit: {', '.join(commits)}.",
        "",
        "Each line: `model: parameters, median latency per batch, top-1 accuracy`. Dense figures are "
        "measured in the same job as the pruned ones. Masks (unstructured, structured-mask and 2:4 "
        "methods) keep dense shapes: their latency cannot improve on dense kernels, so no speedup is "
        "claimed for them. 2:4 sparsity is the one mask that hardware runs faster: on a CUDA GPU "
        "(Ampere or newer, fp16/bf16) its runs are timed on sparse tensor-core kernels, and only those "
        "show a speedup.",
        "",
        *repeats,
        _finetune_note(sweep),
        "",
        *_training_note(sweep),
        *_runtimes_note(sweep),
        *_timing_note(sweep),
        *_eval_note(sweep),
    ]


def _eval_note(sweep: rows.Sweep) -> list[str]:
    """How many eval images each model's top-1 rests on, and whether every method had the same."""
    said = []
    for model in sweep.models:
        counts = sorted(
            {
                int(r.params[tracking.PARAM_EVAL_SAMPLES])
                for r in sweep.runs
                if r.model == model
                and r.status == "FINISHED"
                and tracking.PARAM_EVAL_SAMPLES in r.params
            }
        )
        if len(counts) == 1:
            said.append(f"{model} {counts[0]} (every run the same images)")
        elif counts:
            said.append(f"{model} {counts[0]}-{counts[-1]} (runs scored on different counts)")
    return [f"Top-1 on the eval split: {'; '.join(said)}.", ""] if said else []


_SCHEME_SAID = {"block": "back-to-back blocks of calls", "call": "one call of each model in turn"}


def _runs(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''}"


def _timing_note(sweep: rows.Sweep) -> list[str]:
    """Which latency harness timed the sweep (and whether it mixes two), and how many runs were timed
    while other processes took the cores (their speedups are flagged and left out of rankings)."""
    found = rows.harnesses(sweep.runs)
    if not found:
        return []
    said = ", ".join(
        f"`{h}` ({_SCHEME_SAID.get(h.partition('/')[0], '?')}, {_runs(n)})"
        for h, n in found.items()
    )
    lines = [f"Latency harness: {said}."]
    if len(found) > 1:
        lines[0] += (
            " This sweep mixes harnesses whose figures do not compare (`call` times one call of "
            "each model in turn, `block` back-to-back blocks): each run timed by another than most "
            "is flagged."
        )
    done = [r for r in sweep.runs if r.status == "FINISHED"]
    hit = [r for r in done if any(cells.contended(r, rt) for rt in cells.row_runtimes(r))]
    if hit:
        lines[0] += (
            f" {len(hit)} of {_runs(len(done))} were timed while other processes took the cores in "
            "some runtime (`contended`): their speedups there are shown, flagged, and left out of "
            "rankings, flips and the slower-than-dense flag."
        )
    return [*lines, ""]


def _runtimes_note(sweep: rows.Sweep) -> list[str]:
    runtimes = cells.sweep_runtimes(sweep)
    if len(runtimes) == 1:
        return []
    return [
        f"Runtimes: every job timed its dense and pruned models in {', '.join(runtimes)}, each the "
        "way eager is timed (same batch, same threads, interleaved rounds after warm-up, median and "
        "its interval), after checking that each runtime's output agrees with eager's. Export and "
        "build times are measured apart, never inside a latency. Efficiency is a model's achieved "
        "MAC/s as a fraction of that runtime's measured peak on a large matrix product: a pruned "
        "model whose speedup falls short of the MACs it saved runs less efficiently (odd channel "
        "counts, layers too small to fill the cores, per-call overhead).",
        "",
    ]


def _finetune_note(sweep: rows.Sweep) -> str:
    """What the accuracy figures are read after: one-shot alone misleads (published results are read
    after recovery fine-tuning)."""
    budgets = cells.budgets(sweep)
    if not budgets:
        return (
            "Top-1 is one-shot: the pruned models were not fine-tuned (finetune.epochs=0), so structural "
            "methods at high ratios may look far worse than they are after recovery fine-tuning."
        )
    return (
        f"Top-1 is given one-shot (right after pruning) and after recovery fine-tuning on the train split "
        f"({cells.budget_said(budgets)}), the same budget for every method."
    )


def _training_note(sweep: rows.Sweep) -> list[str]:
    """Where some methods trained the dense model for sparsity before pruning, what each method
    trained in all, so that a same fine-tuning budget is not read as the same training."""
    used = cells.training_used(sweep)
    if not used:
        return []
    said = "; ".join(f"{p} {reg:.0f} + {ft:.0f} = {reg + ft:.0f}" for p, reg, ft in used)
    return [
        "Training per method, in optimizer steps (mean over its finished runs): sparse training of "
        "the dense model before pruning (`pruner.regularize`) + fine-tuning after it = in all: "
        f"{said}.",
        "",
    ]


def original(sweep: rows.Sweep) -> list[str]:
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
            for r in sweep.runs
            if r.model == model and r.status == "FINISHED" and "dense_latency_ms" in r.metrics
        ]
        if done:
            dense_rows.append(dense_summary(done))
            lines.append(seed_line(dense_rows[-1], dense=True))
        else:
            lines.append(f"{model}: no finished run measured the dense model")
    lines += ["```", ""]
    chance = [r.model for r in dense_rows if r.flag(tracking.TAG_AT_CHANCE)]
    if chance:
        lines += [
            f"> Accuracy of {', '.join(chance)} is at chance (weights: "
            f"{', '.join(sorted({r.tags.get(tracking.TAG_WEIGHTS, '?') for r in dense_rows if r.model in chance}))}): "
            "their accuracy figures are not results.",
            "",
        ]
    return lines


def _at(group: dict, sweep: rows.Sweep, point: tuple) -> rows.Row:
    if point in group:
        return group[point]
    model, pruner, level, epochs = point
    return _missing(
        model, pruner, level=level, epochs=epochs, label=rows.row_label(model, epochs, sweep.epochs)
    )


def method_sections(sweep: rows.Sweep) -> list[str]:
    """One section per family (in the families' own order), one sub-section per method and cost level."""
    group = {r.point: r for r in sweep.rows}
    known = families()
    by_family: dict[str, list[str]] = {}
    for r in sweep.rows:
        if r.method not in by_family.setdefault(r.family, []):
            by_family[r.family].append(r.method)
    lines = []
    # a user's own family: the report process need not import its package; the run says its title
    titles = {r.family: r.tags.get(tracking.TAG_FAMILY_TITLE) for r in sweep.rows}
    for fam in sorted(by_family, key=lambda f: (known[f].rank if f in known else len(known), f)):
        lines += [f"## {known[fam].title if fam in known else titles.get(fam) or fam}", ""]
        for pruner in sorted(by_family[fam]):
            for level in sweep.levels:
                lines += _method_section(sweep, group, pruner, level)
    return lines


def _target_said(level: str) -> str:
    kind, _, value = level.partition("=")
    kind, _, runtime = kind.partition("@")
    if kind == "speedup":
        where = f" in {runtime}" if runtime else ""
        return f"Pruned until it ran {value}x as fast as the dense model{where} on the job's device"
    return f"Pruned until {100 * rows.to_float(value):g} % of the dense model's {'MACs' if kind == 'macs' else kind} remained"


def _method_section(sweep: rows.Sweep, group: dict, pruner: str, level: str) -> list[str]:
    sample = next(r for r in sweep.rows if r.method == pruner)
    means = sample.params.get("pruner.ratio_means", "")
    section = [_at(group, sweep, (m, pruner, level, e)) for m in sweep.models for e in sweep.epochs]
    lines = [f"### {pruner} ({sample.kind or 'unknown kind'}, {level})", ""]
    if not level.startswith("ratio="):
        lines += [
            f"{_target_said(level)}; the ratio was searched per job (metric `ratio_used`).",
            "",
        ]
    if means:
        lines += [f"ratio = {means}.", ""]
    runtimes = cells.sweep_runtimes(sweep)
    deployed = ["", *runtime_table(section, runtimes), ""] if len(runtimes) > 1 else [""]
    return (
        lines
        + ["```bash"]
        + [seed_line(r) for r in section]
        + ["```", ""]
        + table(section)
        + deployed
    )
