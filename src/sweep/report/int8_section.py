"""The report's answer to "does pruning still pay after INT8?" (runs with `quantize=int8`): per model,
cost, method and runtime, top-1 of the INT8 models read from the runtime, the four paired speedups, and
which methods change places under INT8. Reads only what the jobs logged (`<runtime>/int8/...`)."""

from __future__ import annotations

import functools
import itertools

from sweep import tracking
from sweep.config.schema import RUNTIMES
from sweep.errors import first_line
from sweep.report import cells, compare, rows

# the speedups of the section's table, in its column order: (metric name, column title)
COLUMNS = (
    (tracking.SPEEDUP_PRUNING[0], "pruning"),
    (tracking.SPEEDUP_QUANTIZATION[0], "INT8"),
    (tracking.SPEEDUP_BOTH[0], "both"),
    (tracking.SPEEDUP, "pruning on top of INT8"),
)


def runtimes(sweep: rows.Sweep) -> list[str]:
    """The runtimes any run of the sweep has INT8 figures (or an INT8 reason) for, in schema order."""
    found = {rt for r in sweep.runs for rt in RUNTIMES if _has(r, rt) or _na(r, rt)}
    return [rt for rt in RUNTIMES if rt in found]


def _key(runtime: str, name: str) -> str:
    return tracking.int8_key(runtime, name)


def _has(row: rows.Row, runtime: str) -> bool:
    return _key(runtime, tracking.SPEEDUP) in row.metrics


def _na(row: rows.Row, runtime: str) -> str:
    return first_line(row.tags.get(_key(runtime, tracking.TAG_RUNTIME_NA), ""))


def _interval(row: rows.Row, runtime: str, name: str) -> tuple[float, float, float] | None:
    return cells.speedup_interval(row, runtime, name, key_of=tracking.int8_key)


def verdict(row: rows.Row, runtime: str) -> str:
    """pays / slower / within the noise: pruned INT8 against dense INT8, by its interval."""
    v, lo, hi = _interval(row, runtime, tracking.SPEEDUP)
    if lo > 1:
        return "pays"
    return "slower than dense INT8" if hi < 1 else "no clear difference"


def _cell(row: rows.Row, runtime: str, name: str) -> str:
    said = cells.interval_said(row, runtime, name, key_of=tracking.int8_key)
    return said or "?"


def _line(row: rows.Row, runtime: str) -> str:
    name, key = (row.label or row.model) + cells.seeds_note(row), functools.partial(_key, runtime)
    head = f"| {name} | {compare.cost_level(row)} | {row.method} | {runtime} |"
    if not _has(row, runtime):
        return f"{head} | | | | | | | n/a: {_na(row, runtime)} |"
    dense = f"{cells.pct_of(row, tracking.DENSE_ACCURACY)} → {cells.pct_of(row, key(tracking.DENSE_ACCURACY))}"
    pruned = f"{cells.pct_of(row, tracking.ACCURACY)} → {cells.pct_of(row, key(tracking.ACCURACY))}"
    speeds = " | ".join(_cell(row, runtime, n) for n, _ in COLUMNS)
    shipped = cells.footprint(row, runtime, key_of=tracking.int8_key) or "—"
    return f"{head} {dense} | {pruned} | {speeds} | {shipped} | {verdict(row, runtime)} |"


def _shown(sweep: rows.Sweep, runtime: str) -> list[rows.Row]:
    done = [
        r for r in sweep.rows if r.status == "FINISHED" and (_has(r, runtime) or _na(r, runtime))
    ]
    return sorted(done, key=lambda r: (rows.model_key(r.model), rows.level_key(r.level), r.method))


def section(sweep: rows.Sweep) -> list[str]:
    found = runtimes(sweep)
    if not found:
        return []
    samples = sorted(
        {r.params.get(tracking.PARAM_QUANTIZE_CALIBRATION, "?") for r in sweep.runs} - {"?"}
    )
    lines = [
        "## Does pruning still pay after INT8?",
        "",
        "Post-training static INT8 (`quantize=int8`) of the dense and the fine-tuned pruned model, "
        "each with the runtime's own tool (ONNX Runtime's quantizer: QDQ, per-channel weights; NNCF "
        "for OpenVINO; PyTorch's FX quantization for eager), calibrated on "
        f"{', '.join(samples) or '?'} train images; INT8 top-1 read from the runtime itself, on "
        "the images behind the FP32 top-1. The four models were timed interleaved, each speedup a "
        "paired ratio of medians with its 95 % interval (with seeds: ± one standard deviation): "
        "*pruning* = dense FP32 / pruned FP32, *INT8* = dense FP32 / dense INT8, *both* = dense "
        "FP32 / pruned INT8, and *pruning on top of INT8* = dense INT8 / pruned INT8, what pruning "
        "still buys a model that ships INT8 (it *pays* when its interval is above 1). *INT8 shipped*: "
        "dense → pruned INT8, MB on disk and MiB in memory.",
        "",
        "| model | cost | method | runtime | top-1 dense FP32 → INT8 | top-1 pruned FP32 → INT8 | "
        + " | ".join(title for _, title in COLUMNS)
        + " | INT8 shipped | |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rt in found:
        lines += [_line(r, rt) for r in _shown(sweep, rt)]
    return lines + ["", *[said for rt in found if (said := _tally(sweep, rt))], ""]


def _tally(sweep: rows.Sweep, runtime: str) -> str:
    group = [r for r in _shown(sweep, runtime) if _has(r, runtime)]
    if not group:
        return ""
    said = [verdict(r, runtime) for r in group]
    pays = [r.metrics[_key(runtime, tracking.SPEEDUP)] for r, v in zip(group, said) if v == "pays"]
    span = f" ({min(pays):.2f}x to {max(pays):.2f}x)" if pays else ""
    return (
        f"- {runtime}: pruning pays on top of INT8 in {len(pays)} of {len(group)} runs{span}; no "
        f"clear difference in {said.count('no clear difference')}; slower than the dense INT8 "
        f"model in {said.count('slower than dense INT8')}."
    )


# ---- the summary: methods that change places under INT8 -------------------------------------------------
def summary(sweep: rows.Sweep) -> list[str]:
    found = runtimes(sweep)
    if not found:
        return []
    changes = [c for rt in found for c in _changes(sweep, rt)]
    head = "### Under INT8"
    if not changes:
        return [head, "", "No two methods swap places under INT8, by top-1 or (beyond their "
                "intervals) by what pruning buys.", ""]  # fmt: skip
    return [
        head,
        "",
        "Methods whose order changes when the models ship INT8 (top-1 read from the runtime, each "
        f"order by more than {TOP1_IMAGES} eval images; speedups only where both orders are clear "
        "of both intervals; each interval is its job's "
        "own, so with one seed the drift between jobs is not in it: seed=0,1,2 gives the spread "
        "over runs):",
        "",
        *changes,
        "",
    ]


def _changes(sweep: rows.Sweep, runtime: str) -> list[str]:
    out = []
    groups: dict[tuple, list[rows.Row]] = {}
    for r in _shown(sweep, runtime):
        if _has(r, runtime) and not r.diverged and not r.flag(tracking.TAG_NOOP):
            groups.setdefault((r.model, compare.cost_level(r)), []).append(r)
    for (model, level), group in groups.items():
        for a, b in itertools.combinations(group, 2):
            where = f"- {model}, {level}, {runtime}:"
            out += [
                f"{where} {c}" for c in (_by_top1(a, b, runtime), _by_speed(a, b, runtime)) if c
            ]
    return out


# an order by top-1 decided by this many eval images or fewer is not counted as a change
TOP1_IMAGES = 2


def _by_top1(a: rows.Row, b: rows.Row, runtime: str) -> str:
    int8 = _key(runtime, tracking.ACCURACY)
    fp32 = (a.metrics.get(tracking.ACCURACY), b.metrics.get(tracking.ACCURACY))
    q = (a.metrics.get(int8), b.metrics.get(int8))
    if None in fp32 or None in q:
        return ""
    seen = [rows.to_float(r.params.get(tracking.PARAM_EVAL_SAMPLES), 0.0) for r in (a, b)]
    gap = TOP1_IMAGES / min(seen) if min(seen) > 0 else 0.0
    ahead, behind = fp32[0] - fp32[1], q[0] - q[1]
    if ahead * behind >= 0 or min(abs(ahead), abs(behind)) <= gap + 1e-12:
        return ""
    first, second = (a, b) if fp32[0] > fp32[1] else (b, a)
    return (
        f"by top-1, {first.method} is ahead of {second.method} in FP32 "
        f"({cells.pct_of(first, tracking.ACCURACY)} vs {cells.pct_of(second, tracking.ACCURACY)}) and behind in INT8 "
        f"({cells.pct_of(first, int8)} vs {cells.pct_of(second, int8)})"
    )


def _by_speed(a: rows.Row, b: rows.Row, runtime: str) -> str:
    faster = functools.partial(cells.faster, runtime=runtime, key_of=tracking.int8_key)
    fp32, int8 = tracking.SPEEDUP_PRUNING[0], tracking.SPEEDUP
    for first, second in ((a, b), (b, a)):
        if faster(first, second, name=fp32) and faster(second, first, name=int8):
            return (
                f"by speedup, {first.method} is faster than {second.method} in FP32 "
                f"({_cell(first, runtime, fp32)} vs {_cell(second, runtime, fp32)}) and slower on "
                f"top of INT8 ({_cell(first, runtime, int8)} vs {_cell(second, runtime, int8)})"
            )
    return ""
