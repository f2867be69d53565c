"""Dense and pruned timed side by side in one runtime, the way the eager harness times them.

Both models are loaded into the runtime (export and build timed apart), each one's output is compared
with eager's on the same batch, then the two are timed interleaved by the latency harness, and the
speedup is the paired ratio of their medians with its bootstrap interval. An output that disagrees
with eager makes that runtime's figures untrusted (`output_mismatch`), never silently reported.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from sweep.measure import memory, runtimes
from sweep.measure.latency import (
    LatencySettings,
    LatencyStats,
    Speedup,
    Timing,
    time_steps,
)
from sweep.tracking import names


@dataclass(kw_only=True)
class RuntimeResult:
    runtime: str
    dense: LatencyStats
    pruned: LatencyStats
    speedup: Speedup
    timing: Timing
    export_s: tuple[float, float]  # dense, pruned
    build_s: tuple[float, float]
    max_abs_diff: tuple[float, float]
    agree: bool
    file: Path | None  # the pruned model's file as the runtime ran it
    file_mb: tuple[float, float] = (float("nan"), float("nan"))  # dense, pruned: what ships

    def metrics(self) -> dict[str, float]:
        """Its figures under the runtime's names (`<runtime>/latency_ms`, ...)."""
        key = functools.partial(names.runtime_key, self.runtime)
        dense = key(names.DENSE_PREFIX)
        return {
            **self.dense.metrics(dense),
            **self.pruned.metrics(key("")),
            **{key(k): v for k, v in self.speedup.metrics().items()},
            **self.timing.metrics(key("")),
            dense + names.EXPORT_SECONDS: self.export_s[0],
            key(names.EXPORT_SECONDS): self.export_s[1],
            dense + names.BUILD_SECONDS: self.build_s[0],
            key(names.BUILD_SECONDS): self.build_s[1],
            dense + names.MAX_ABS_DIFF: self.max_abs_diff[0],
            key(names.MAX_ABS_DIFF): self.max_abs_diff[1],
            **file_metrics(self.file_mb, dense=dense + names.FILE_MB, pruned=key(names.FILE_MB)),
        }

    @property
    def flag(self) -> str:
        reasons = set(self.timing.reasons)
        if not self.agree:
            reasons.add("output_mismatch")
        return ",".join(sorted(reasons)) or "none"

    @property
    def slower_than_dense(self) -> bool:
        return self.timing.slower_than_dense(self.speedup)


def time_in(
    runtime: runtimes.Runtime,
    dense: nn.Module,
    pruned: nn.Module,
    x: torch.Tensor,
    ctx: runtimes.Context,
    settings: LatencySettings,
    seed: int = 0,
) -> RuntimeResult:
    """Dense and pruned in `runtime` on batch `x` (raises RuntimeNotApplicable when it cannot)."""
    runtime.check_available(ctx)
    x = x.to(ctx.device)
    loaded, diffs, agree = [], [], True
    for model, what in ((dense, "dense"), (pruned, "pruned")):
        model.eval()
        if id(model) not in ctx.references:  # once per model and job, for every runtime
            with torch.no_grad():
                ctx.references[id(model)] = runtimes.get("eager").load(model, x, ctx, what).output()
        want = ctx.references[id(model)]
        one = runtime.load(model, x, ctx, what)
        got = one.output()
        diffs.append(runtimes.max_abs_diff(got, want))
        agree = agree and runtimes.outputs_agree(diffs[-1], want, ctx.precision)
        loaded.append(one)
    timing = time_steps(
        [[one.run for one in m.instances(settings.instances)] for m in loaded],
        int(x.shape[0]),
        settings,
        ctx.device,
        cuda_events=not loaded[0].host_clock,
    )
    d, p = timing.stats
    return RuntimeResult(
        runtime=runtime.name,
        dense=d,
        pruned=p,
        speedup=timing.speedup(0, 1, settings.bootstrap, seed),
        timing=timing,
        export_s=(loaded[0].export_s, loaded[1].export_s),
        build_s=(loaded[0].build_s, loaded[1].build_s),
        max_abs_diff=(diffs[0], diffs[1]),
        agree=agree,
        file=loaded[1].file,
        file_mb=shipped(loaded, timing.stats, ctx.device),
    )


def shipped(loaded: list[runtimes.Loaded], stats: list[LatencyStats], device) -> tuple[float, ...]:
    """What ships of each loaded model: its MB on disk (NaN where it has no file of its own), and
    its memory set on its timed `stats` (`peak_mem_mb`, read as eager's)."""
    sizes = [None if one.size is None else one.size() for one in loaded]
    for st, one, size in zip(stats, loaded, sizes):
        st.peak_mem_mb = memory.deployed_mb(size, one.run, device)
    return tuple(float("nan") if size is None else size / 1e6 for size in sizes)


def file_metrics(file_mb: tuple[float, float], dense: str, pruned: str) -> dict[str, float]:
    """The two sizes under their names, where known."""
    out = {dense: file_mb[0], pruned: file_mb[1]}
    return {k: v for k, v in out.items() if v == v}
