"""Post-training static INT8 in one runtime, beside FP32: does pruning still pay after quantization?

The dense and the pruned model are quantized with the runtime's own tool (`Runtime.int8`), both on
the same calibration batches; each INT8 model's top-1 is read from the runtime itself; then the four
models (dense and pruned, FP32 and INT8) are timed interleaved by the latency harness, so every
speedup between two of them is a paired ratio from the same rounds: pruning alone, quantization alone,
both, and what pruning adds on top of INT8 (pruned INT8 against dense INT8).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from sweep.measure import runtimes
from sweep.measure.deployed import file_metrics, shipped
from sweep.measure.latency import (
    LatencySettings,
    Speedup,
    Timing,
    time_steps,
)
from sweep.tracking import names

# the four models, in the order they are timed
DENSE_FP32, PRUNED_FP32, DENSE_INT8, PRUNED_INT8 = range(4)
# a top-1 reader: an INT8 model (its `predict`: a batch of images -> logits) and which one it is
# ("dense" or "pruned") -> fraction correct on the eval images
TopOne = Callable[[runtimes.Loaded, str], float]


@dataclass(frozen=True, kw_only=True)
class Int8Result:
    runtime: str
    timing: Timing  # stats in the order DENSE_FP32, PRUNED_FP32, DENSE_INT8, PRUNED_INT8
    speedups: dict[str, Speedup]  # by metric name: speedup (on INT8), speedup_pruning, ...
    accuracy: tuple[float, float]  # dense INT8, pruned INT8: top-1 read from the runtime
    quantize_s: tuple[float, float]  # dense, pruned
    file_mb: tuple[float, float] = (float("nan"), float("nan"))  # dense INT8, pruned INT8 on disk
    kernels: tuple[str, str] = ("", "")  # dense INT8, pruned INT8: the engine each was built for

    @property
    def on_int8(self) -> Speedup:
        """What pruning adds on top of INT8: dense INT8 / pruned INT8."""
        return self.speedups[names.SPEEDUP]

    @property
    def flag(self) -> str:
        return self.timing.flag

    @property
    def slower_than_dense(self) -> bool:
        """The pruned INT8 model slower than the dense INT8 one (never from a contended timing)."""
        return self.timing.slower_than_dense(self.on_int8)

    def metrics(self) -> dict[str, float]:
        """Its figures under `<runtime>/int8/<name>`."""
        key = functools.partial(names.int8_key, self.runtime)
        st = self.timing.stats
        out = {
            **st[DENSE_INT8].metrics(key(names.DENSE_PREFIX)),
            **st[PRUNED_INT8].metrics(key("")),
            key(names.DENSE_PREFIX + names.INT8_FP32_LATENCY): st[DENSE_FP32].median_ms,
            key(names.INT8_FP32_LATENCY): st[PRUNED_FP32].median_ms,
            **self.timing.metrics(key("")),
            key(names.DENSE_PREFIX + names.ACCURACY): self.accuracy[0],
            key(names.ACCURACY): self.accuracy[1],
            key(names.DENSE_PREFIX + names.QUANTIZE_SECONDS): self.quantize_s[0],
            key(names.QUANTIZE_SECONDS): self.quantize_s[1],
            **file_metrics(
                self.file_mb,
                dense=key(names.DENSE_PREFIX + names.FILE_MB),
                pruned=key(names.FILE_MB),
            ),
        }
        for name, s in self.speedups.items():
            out |= {key(k): v for k, v in s.metrics(name).items()}
        return out


# which two of the four models each speedup compares (base, new): base / new median latency
PAIRS = {
    names.SPEEDUP: (DENSE_INT8, PRUNED_INT8),
    names.SPEEDUP_PRUNING[0]: (DENSE_FP32, PRUNED_FP32),
    names.SPEEDUP_QUANTIZATION[0]: (DENSE_FP32, DENSE_INT8),
    names.SPEEDUP_BOTH[0]: (DENSE_FP32, PRUNED_INT8),
}


def quantize_in(
    runtime: runtimes.Runtime,
    *,
    models: tuple[nn.Module, nn.Module],
    x: torch.Tensor,
    calibration: list[torch.Tensor],
    top1: TopOne,
    ctx: runtimes.Context,
    settings: LatencySettings,
    seed: int = 0,
) -> Int8Result:
    """Dense and pruned (`models`) as INT8 in `runtime`, beside their FP32 forms (raises
    RuntimeNotApplicable when the runtime cannot run or quantize them)."""
    runtime.check_available(ctx)
    x = x.to(ctx.device)
    for model in models:
        model.eval()
    fp32 = [runtime.load(m, x, ctx, what) for m, what in zip(models, ("dense", "pruned"))]
    int8 = [
        runtime.int8(m, x, calibration=calibration, ctx=ctx, what=what)
        for m, what in zip(models, ("dense", "pruned"))
    ]
    accuracy = tuple(top1(q, what) for q, what in zip(int8, ("dense", "pruned")))
    loaded = [*fp32, *int8]
    timing = time_steps(
        [[one.run for one in m.instances(settings.instances)] for m in loaded],
        int(x.shape[0]),
        settings,
        ctx.device,
        cuda_events=not any(m.host_clock for m in loaded),
    )
    speedups = {
        name: timing.speedup(a, b, settings.bootstrap, seed) for name, (a, b) in PAIRS.items()
    }
    return Int8Result(
        runtime=runtime.name,
        timing=timing,
        speedups=speedups,
        accuracy=accuracy,
        quantize_s=(int8[0].export_s, int8[1].export_s),
        file_mb=shipped(int8, timing.stats[DENSE_INT8:], ctx.device),
        kernels=(int8[0].kernels, int8[1].kernels),
    )
