"""Where the time went: dense and pruned profiled layer by layer in every runtime the job timed, each by
the runtime's own profiler, when `measure.profile` says so (auto: where pruning paid less than its MACs
predict). Part of the measure stage, inside its runtimes' context (their exported files)."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from sweep import tracking
from sweep.errors import first_line
from sweep.job.context import Job
from sweep.job.results import Artifact, Result
from sweep.measure import runtimes
from sweep.measure.layer_table import Table, compare, layer_shapes

__all__ = ["Profiled", "Timed", "profile", "why_profile"]

log = logging.getLogger("sweep")

# auto profiles a runtime whose speedup gained less than this share of what its MACs predict
LAGGING = 0.5


@dataclass(frozen=True, kw_only=True)
class Timed:
    """One runtime's timing as the profile reads it: median ms dense, pruned, and the speedup."""

    runtime: str
    dense_ms: float
    pruned_ms: float
    speedup: float
    slower: bool
    trusted: bool


def why_profile(mode, timed: list[Timed], macs_kept: float) -> str:
    """Why to profile ("" not to): `measure.profile=true`, or with auto, the first runtime whose
    pruned model is slower than dense, or whose gain is below LAGGING of the gain its MACs predict."""
    if mode is True or mode == "true":
        return "measure.profile=true"
    if mode is False or mode == "false" or macs_kept <= 0:
        return ""
    predicted = 1.0 / macs_kept
    for t in timed:
        if not t.trusted:
            continue
        if t.slower:
            return f"{t.runtime}: slower than dense ({t.speedup:.2f}x)"
        if predicted > 1 and t.speedup - 1 < LAGGING * (predicted - 1):
            return f"{t.runtime}: {t.speedup:.2f}x of the {predicted:.2f}x its MACs predict"
    return ""


@dataclass(frozen=True, kw_only=True)
class Profiled(Result):
    reason: str
    tables: list[Table]
    harness: dict[str, tuple[float, float]]  # per runtime: dense, pruned median ms
    not_applicable: dict[str, str] = field(default_factory=dict)

    def metrics(self) -> dict:
        out = {}
        for t in self.tables:
            d, p = t.coverage(self.harness[t.runtime])
            out[
                tracking.runtime_key(t.runtime, tracking.DENSE_PREFIX + tracking.PROFILE_COVERAGE)
            ] = d
            out[tracking.runtime_key(t.runtime, tracking.PROFILE_COVERAGE)] = p
            out[tracking.runtime_key(t.runtime, tracking.PROFILE_MISALIGNED)] = t.misaligned_share()
        return out

    def tags(self) -> dict:
        out = {tracking.TAG_PROFILED: self.reason}
        for t in self.tables:
            out[tracking.runtime_key(t.runtime, tracking.TAG_SLOW_LAYERS)] = slow_layers_json(t)
        for name, why in self.not_applicable.items():
            out[tracking.runtime_key(name, tracking.TAG_PROFILE_NA)] = why
        return out


def slow_layers_json(table: Table) -> str:
    return json.dumps(
        [
            {
                "layer": r.layer,
                "op": r.op,
                "channels": r.channels(),
                "aligned": r.aligned,
                "dense_ms": round(r.dense_ms, 4),
                "pruned_ms": round(r.pruned_ms, 4),
                "gap_ms": round(r.gap_ms, 4),
                "share": round(r.share, 3),
            }
            for r in table.behind_gap()
        ],
        separators=(",", ":"),
    )


def profile(
    job: Job,
    models: tuple[nn.Module, nn.Module],
    x: torch.Tensor,
    ctx: runtimes.Context,
    timed: list[Timed],
    reason: str,
    peaks: dict[str, float],
) -> Iterator[Result | Artifact]:
    """Dense and pruned (`models`) profiled on `x` in eager and each runtime of `timed`; a runtime
    whose profiler is missing or fails is not applicable, with its reason."""
    settings = job.cfg.measure
    rounds = (settings.warmup_min, settings.iters_min)
    x = x.to(ctx.device)
    shapes = tuple(layer_shapes(m, x) for m in models)
    tables, harness, na = [], {}, {}
    for t in timed:
        runtime = runtimes.get(t.runtime)
        try:
            times = tuple(
                runtime.profile(m, x, ctx, what, rounds=rounds)
                for m, what in zip(models, ("dense", "pruned"))
            )
        except runtimes.RuntimeNotApplicable as e:
            na[t.runtime] = first_line(e)
            continue
        tables.append(compare(t.runtime, times, shapes))
        harness[t.runtime] = (t.dense_ms, t.pruned_ms)
    log.info("%s: layers profiled in %s (%s)", job.run_name, ", ".join(harness) or "none", reason)
    yield Profiled(reason=reason, tables=tables, harness=harness, not_applicable=na)
    if tables:
        folder = ctx.workdir / tracking.PROFILE_ARTIFACT_DIR
        write_tables(tables, folder, batch=int(x.shape[0]), peaks=peaks)
        yield Artifact(folder, tracking.PROFILE_ARTIFACT_DIR)


COLUMNS = (
    "runtime", "layer", "op", "fused", "dense_ch_in", "pruned_ch_in", "dense_ch_out", "pruned_ch_out",
    "aligned8", "aligned16", "dense_macs", "pruned_macs", "dense_ms", "pruned_ms", "dense_efficiency",
    "pruned_efficiency", "gap_ms", "gap_share",
)  # fmt: skip


def _efficiency(macs: float | None, batch: int, ms: float, peak: float | None):
    if not macs or not peak or ms <= 0:
        return None
    return float(f"{macs * batch / (ms / 1e3) / peak:.4g}")


def rows_of(tables: list[Table], batch: int, peaks: dict[str, float]) -> list[list]:
    out = []
    for t in tables:
        peak = peaks.get(t.runtime)
        for r in t.rows:
            d, p = r.dense, r.pruned
            out.append([
                t.runtime, r.layer, r.op, ",".join(r.fused),
                d and d.ch_in, p and p.ch_in, d and d.ch_out, p and p.ch_out, r.multiple_of(8),
                r.aligned,
                d and d.macs, p and p.macs, round(r.dense_ms, 5), round(r.pruned_ms, 5),
                _efficiency(d and d.macs, batch, r.dense_ms, peak),
                _efficiency(p and p.macs, batch, r.pruned_ms, peak),
                round(r.gap_ms, 5), round(r.share, 4),
            ])  # fmt: skip
    return out


def write_tables(tables: list[Table], folder: Path, batch: int, peaks: dict[str, float]) -> None:
    """layers.json (MLflow's table form: columns and data), layers.csv and layers.png."""
    from sweep.measure.layer_figure import plot

    folder.mkdir(parents=True, exist_ok=True)
    rows = rows_of(tables, batch, peaks)
    (folder / "layers.json").write_text(json.dumps({"columns": list(COLUMNS), "data": rows}))
    with open(folder / "layers.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    plot(tables, folder / "layers.png")
