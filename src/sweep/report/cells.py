"""A row's figures as the report and the comparison show them: counts, percentages, speedups with their
intervals, the flags a run raised, the runtimes it ran in, and the fine-tuning budgets of a sweep."""

from __future__ import annotations

import functools
import json
import math
import statistics

from sweep import tracking
from sweep.config.schema import RUNTIMES
from sweep.errors import first_line
from sweep.report.rows import Row, Sweep


def speedup_interval(
    row: Row,
    runtime: str = tracking.EAGER,
    name: str = tracking.SPEEDUP,
    key_of=tracking.runtime_key,
) -> tuple[float, float, float] | None:
    """(speedup, low, high) in a runtime: its 95 % interval, or with repeats the mean ± one
    standard deviation over seeds; None where the run has no speedup there. `name` and `key_of`
    choose another speedup (an INT8 one: `speedup_both`, T.int8_key)."""
    key = functools.partial(key_of, runtime)
    v = row.metrics.get(key(name))
    if v is None:
        return None
    if row.n > 1:
        sd = row.std.get(key(name), 0.0)
        return v, v - sd, v + sd
    low, high = key(name + tracking.CI_LOW), key(name + tracking.CI_HIGH)
    return v, row.metrics.get(low, v), row.metrics.get(high, v)


def contended(row: Row, runtime: str = tracking.EAGER, key_of=tracking.runtime_key) -> bool:
    """The run's timing in that runtime was contended: another process's work is in its figures."""
    return tracking.CONTENDED in row.tags.get(key_of(runtime, tracking.TAG_LATENCY_FLAG), "").split(
        ","
    )


def faster(
    a: Row,
    b: Row,
    runtime: str = tracking.EAGER,
    name: str = tracking.SPEEDUP,
    key_of=tracking.runtime_key,
    margin: float = 0.0,
) -> bool:
    """a's speedup is above b's beyond both their intervals, and by at least `margin` of b's (False
    where either has none, or either timing was contended: a ranking is not read from another
    process's load)."""
    if contended(a, runtime, key_of) or contended(b, runtime, key_of):
        return False
    ia, ib = speedup_interval(a, runtime, name, key_of), speedup_interval(b, runtime, name, key_of)
    if ia is None or ib is None:
        return False
    return ia[1] > ib[2] and ia[0] >= ib[0] * (1 + margin)


def interval_said(
    row: Row,
    runtime: str = tracking.EAGER,
    name: str = tracking.SPEEDUP,
    key_of=tracking.runtime_key,
) -> str | None:
    """`1.50x [1.45, 1.55]`, with repeats `1.50x ± 0.05`; None where the run has no such speedup."""
    found = speedup_interval(row, runtime, name, key_of)
    if found is None:
        return None
    v, lo, hi = found
    return f"{v:.2f}x ± {hi - v:.2f}" if row.n > 1 else f"{v:.2f}x [{lo:.2f}, {hi:.2f}]"


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
    return _figure(row, key, scale=100.0, digits=1, unit="%")


def ms_of(row: Row, key: str) -> str:
    return _figure(row, key, scale=1.0, digits=2, unit="ms")


def oneshot_of(row: Row) -> str:
    if "accuracy_top1_oneshot" in row.metrics:
        return pct_of(row, "accuracy_top1_oneshot")
    return fmt_pct(row.oneshot)


def seeds_note(row: Row) -> str:
    return f" ({row.n} seeds)" if row.n > 1 else ""


def flags(row: Row) -> list[str]:
    out = []
    if row.status != "FINISHED":
        if row.flag(tracking.TAG_NOT_APPLICABLE):
            out.append(f"n/a: {row.error}")
        else:
            out.append(f"{row.status.lower()}: {row.error}" if row.error else row.status.lower())
    if row.failed_runs:
        out.append(f"{row.failed_runs} of {row.n + row.failed_runs} runs did not finish")
    if row.status != "FINISHED":
        return out  # what it would have measured is not there
    if row.flag(tracking.TAG_NOOP):
        out.append("no-op")
    if row.tags.get(tracking.TAG_TARGET_LANDING) == "nearest":
        reached = row.metrics.get("target_value")
        at = "?" if reached is None else f"{reached:.3g}"
        why = row.tags.get(tracking.TAG_TARGET_STOPPED_BY, "")
        out.append(f"target not within tolerance: nearest point {at} ({why})")
    if row.tags.get(tracking.TAG_KEPT_DENSE):
        out.append(f"kept whole: {row.tags[tracking.TAG_KEPT_DENSE]}")
    if row.flag(tracking.TAG_AT_CHANCE):
        out.append("accuracy at chance")
    if row.flag(tracking.TAG_DIVERGED):
        out.append("fine-tuning diverged")
    if row.flag(tracking.TAG_REGULARIZE_DIVERGED):
        out.append("sparse training diverged")
    if row.flag(tracking.TAG_PRUNED_AT_CHANCE):
        out.append("at chance after fine-tuning")
    if row.masks:
        out.append("masks: no dense speedup possible")
    elif row.metrics.get("sparse_kernel_layers"):
        out.append(f"2:4 sparse kernels ({int(row.metrics['sparse_kernel_layers'])} layers)")
    if row.harness_note:
        out.append(row.harness_note)
    untrusted = row.tags.get(tracking.TAG_LATENCY_FLAG, "none")
    if untrusted not in ("none", ""):
        out.append(f"latency not trusted: {untrusted}")
    for rt in row_runtimes(row)[1:]:
        flag = row.tags.get(tracking.runtime_key(rt, tracking.TAG_RUNTIME_FLAG), "none")
        if flag not in ("none", ""):
            out.append(f"{rt} latency not trusted: {flag}")
    return out + slower_than_dense(row)


def slower_than_dense(row: Row) -> list[str]:
    """A structural run slower than its dense model beyond the interval, per runtime, with the hint
    (odd channel counts can run slower than the dense model's round ones)."""
    if row.masks or row.flag(tracking.TAG_NOOP):
        return []
    said = [
        f"{rt} {speed(row, rt)}"
        for rt in row_runtimes(row)
        if row.flag(tracking.runtime_key(rt, tracking.TAG_SLOWER_THAN_DENSE))
    ] + [  # quantize=int8: the pruned INT8 model against the dense INT8 one
        f"{rt} INT8 {interval_said(row, rt, key_of=tracking.int8_key)}"
        for rt in RUNTIMES
        if row.flag(tracking.int8_key(rt, tracking.TAG_SLOWER_THAN_DENSE))
    ]
    if not said:
        return []
    layers = [f"{rt}: {layers_said(found)}" for rt in RUNTIMES if (found := slow_layers(row, rt))]
    then = [f"most of the gap in {'; '.join(layers)}"] if layers else []
    then += [] if "round" in row.protocol else ["try prune.round_to=16 (or auto)"]
    return [f"slower than dense in {', '.join(said)}" + (": " + "; ".join(then) if then else "")]


def footprint(row: Row, runtime: str = tracking.EAGER, key_of=tracking.runtime_key) -> str:
    """What ships, dense -> pruned: MB on disk and MiB in memory (`1.51→0.39 MB, 1.43→0.36 MiB`);
    "" where the run logged neither."""
    key, m = functools.partial(key_of, runtime), row.metrics
    said = []
    for name, unit in ((tracking.FILE_MB, "MB"), (tracking.PEAK_MEM_MB, "MiB")):
        d, p = m.get(key(tracking.DENSE_PREFIX + name)), m.get(key(name))
        if d is not None and p is not None and d == d and p == p:
            said.append(f"{d:.3g}→{p:.3g} {unit}")
    return ", ".join(said)


def footprints(row: Row, runtimes: list[str]) -> str:
    """`footprint` in each runtime that has one, named where there are several."""
    found = [(rt, footprint(row, rt)) for rt in runtimes]
    found = [(rt, f) for rt, f in found if f]
    if len(runtimes) == 1:
        return found[0][1] if found else "—"
    return "; ".join(f"{rt} {f}" for rt, f in found) or "—"


def slow_layers(row: Row, runtime: str) -> list[dict]:
    """The layers behind most of a profiled run's gap in `runtime` (`slow_layers`), largest first."""
    text = row.tags.get(tracking.runtime_key(runtime, tracking.TAG_SLOW_LAYERS), "")
    try:
        found = json.loads(text) if text else []
    except ValueError:
        return []
    return [f for f in found if isinstance(f, dict) and "layer" in f]


def layer_said(f: dict) -> str:
    """`layer4.0.conv1 (Conv, 192->96 in, 96->48 out, not x16: 40 % of the gap)`."""
    what = [str(f.get("op", "")), str(f.get("channels", ""))]
    if f.get("aligned") is False:
        what.append("not x16")
    share = f.get("share")
    tail = f": {100 * share:.0f} % of the gap" if isinstance(share, (int, float)) else ""
    return f"{f['layer']} ({', '.join(w for w in what if w)}{tail})"


def layers_said(found: list[dict], most: int = 2) -> str:
    return ", ".join(layer_said(f) for f in found[:most])


def runtime_na(row: Row, runtime: str) -> str:
    """Why a runtime did not time this run ("" when it did or was not asked)."""
    if runtime == tracking.EAGER:
        return ""
    return first_line(row.tags.get(tracking.runtime_key(runtime, tracking.TAG_RUNTIME_NA), ""))


def row_runtimes(row: Row) -> list[str]:
    """The runtimes this run was timed in or asked for (eager first, then schema order)."""
    found = [tracking.EAGER]
    for rt in RUNTIMES[1:]:
        if tracking.runtime_key(rt, "speedup") in row.metrics or runtime_na(row, rt):
            found.append(rt)
    return found


def sweep_runtimes(sweep: Sweep) -> list[str]:
    """Every runtime any run of the sweep was timed in or asked for, eager first."""
    seen = {rt for r in sweep.runs for rt in row_runtimes(r)}
    return [rt for rt in RUNTIMES if rt in seen]


def speed(r: Row, runtime: str = tracking.EAGER) -> str:
    m, key = r.metrics, functools.partial(tracking.runtime_key, runtime)
    if r.flag(tracking.TAG_NOOP):
        return "n/a (no-op)"
    if r.masks:
        return "n/a (masks)"
    if key("speedup") not in m:
        return "n/a" if runtime_na(r, runtime) else "—"
    return interval_said(r, runtime)


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


def training_used(sweep: Sweep) -> list[tuple[str, float, float]]:
    """(method, sparse-training steps, fine-tuning steps), each the mean over the method's finished
    runs, for every method of a sweep in which some method trained for sparsity; [] otherwise."""
    done = [r for r in sweep.runs if r.status == "FINISHED"]
    if not any(tracking.REGULARIZE_STEPS in r.metrics for r in done):
        return []
    out = []
    for pruner in sorted({r.pruner for r in done}):
        runs = [r for r in done if r.pruner == pruner]
        reg = statistics.fmean(r.metrics.get(tracking.REGULARIZE_STEPS, 0.0) for r in runs)
        ft = statistics.fmean(r.metrics.get(tracking.FINETUNE_STEPS, 0.0) for r in runs)
        out.append((pruner, reg, ft))
    return out
