"""*Where the time went*: for each profiled run (`measure.profile`) slower than dense in a runtime, the
layers behind most of the gap between the speedup its MACs predict and the one measured there, and
whether a `prune.round_to` run of the same method and cost still has them; then per runtime the op
types that lose speed after pruning most often across every profiled run of the sweep, and how much
of the latency the profiles account for."""

from __future__ import annotations

import statistics
from collections import Counter

from sweep import tracking
from sweep.config.schema import RUNTIMES
from sweep.report import cells
from sweep.report.rows import Row, Sweep, point_name

SHOWN_LAYERS = 3


def section(sweep: Sweep) -> list[str]:
    profiled = [r for r in sweep.rows if r.tags.get(tracking.TAG_PROFILED)]
    found = [(r, rt) for r in profiled for rt in RUNTIMES if cells.slow_layers(r, rt)]
    if not found:
        return []
    slower = [
        (r, rt)
        for r, rt in found
        if r.flag(tracking.runtime_key(rt, tracking.TAG_SLOWER_THAN_DENSE))
    ]
    lines = [
        "## Where the time went",
        "",
        f"{len(profiled)} run{'s' if len(profiled) != 1 else ''} profiled layer by layer in each "
        "runtime's own profiler (`measure.profile`; auto: a run slower than dense, or gaining less "
        "than half of what its MACs predict). A layer's gap is its pruned time beyond its dense "
        "time scaled by its own MAC ratio; the share is of the sum of positive gaps (a few large "
        "shares: a few layers; small ones: the gap is spread over the network). `not x16`: a "
        "channel count that is not a multiple of 16; *time not x16*: the share of the pruned "
        "model's profiled time in such layers. The full tables are each run's "
        f"`{tracking.PROFILE_ARTIFACT_DIR}/` artifact. Below, each profiled run that is slower "
        f"than dense in a runtime ({len(slower)} of the {len(found)} runs and runtimes profiled).",
        "",
        "| run | runtime | speedup (MACs predict) | time not x16 | layers with the largest gap | "
        "with `prune.round_to` |",
        "|---|---|---|---|---|---|",
    ]
    for r, rt in slower:
        predicted = f"{1 / r.macs_kept:.2f}x" if r.macs_kept else "?"
        off = r.metrics.get(tracking.runtime_key(rt, tracking.PROFILE_MISALIGNED))
        lines.append(
            f"| {point_name(r.point)} | {rt} | {cells.speed(r, rt)} ({predicted}) | "
            f"{'?' if off is None else f'{off:.0%}'} | "
            f"{cells.layers_said(cells.slow_layers(r, rt), SHOWN_LAYERS)} | "
            f"{_rounded(sweep, r, rt)} |"
        )
    return lines + [""] + _op_types(found) + _coverage(profiled) + [""]


def _rounded(sweep: Sweep, row: Row, runtime: str) -> str:
    """What the same method at the same cost does with rounded channel counts: its speedup there, and
    whether the run's largest-gap layer is still behind its gap."""
    if "round" in row.protocol:
        return "(this run is rounded)"
    twin = next(
        (
            r
            for r in sweep.rows
            if "round" in r.protocol
            and (r.model, r.pruner, r.level, r.epochs)
            == (row.model, row.pruner, row.level, row.epochs)
        ),
        None,
    )
    if twin is None:
        return "no rounded run in this sweep"
    said = f"{twin.protocol}: {cells.speed(twin, runtime)}"
    top = cells.slow_layers(row, runtime)[0]["layer"]
    if not twin.tags.get(tracking.TAG_PROFILED):
        return said
    still = any(f["layer"] == top for f in cells.slow_layers(twin, runtime))
    return f"{said}; {top} {'still' if still else 'no longer'} behind the gap"


def _op_types(found: list[tuple[Row, str]]) -> list[str]:
    """Per runtime, the op types most often among the layers behind a run's gap."""
    lines = []
    for rt in dict.fromkeys(rt for _, rt in found):
        runs = [r for r, t in found if t == rt]
        ops = Counter(
            op for r in runs for op in {f.get("op", "?") for f in cells.slow_layers(r, rt)}
        )
        top = ", ".join(f"{op} ({n} of {len(runs)})" for op, n in ops.most_common(3))
        lines.append(f"- {rt}: the op types behind the gap most often: {top}")
    return ["Op types that lose speed after pruning, by the runs they appear in:", "", *lines, ""]


def _coverage(profiled: list[Row]) -> list[str]:
    """How much of each runtime's harness latency its profile's named layers account for."""
    said = []
    for rt in RUNTIMES:
        key = tracking.runtime_key(rt, tracking.PROFILE_COVERAGE)
        values = [r.metrics[key] for r in profiled if key in r.metrics]
        if values:
            said.append(
                f"{rt} {statistics.median(values):.0%} (range {min(values):.0%}-{max(values):.0%})"
            )
    if not said:
        return []
    return [
        "Profile coverage, the named layers' time over the harness's latency (pruned models, "
        f"median over runs): {', '.join(said)}."
    ]
