"""How close a model gets to what the device can do: each runtime's measured peak.

The peak of a runtime on a device, at a precision and thread count, is the MAC/s it reaches on two
microbenchmarks run through that runtime's own `load` and the latency harness: a large matrix product
(the device's practical ceiling) and a depthwise convolution (the memory-bound kind of layer that
mobile CNNs are made of). A model's `efficiency` is its achieved MAC/s over the GEMM peak; a pruned
model whose speedup falls short of its MAC reduction shows it as a lower efficiency (odd channel
counts, layers too small to fill the device). It can exceed 1 where a runtime computes convolutions
with fewer multiplications than the MACs counted (Winograd, FFT). Peaks are measured once per machine
and cached as JSON.
"""

from __future__ import annotations

import json
import logging
import platform
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import filelock
import torch
import torch.nn as nn

from sweep.measure.latency import LatencySettings, time_steps
from sweep.measure.runtimes import Context, Runtime
from sweep.tracking import names

log = logging.getLogger("sweep")

CACHE_FILE = "peaks.json"
# GEMM (batch x features) and depthwise conv (batch, channels, side): large enough to fill a CPU's
# cores and a GPU's, small enough to take about a second
GEMM = {"cpu": (256, 1024), "cuda": (4096, 4096)}
DWCONV = {"cpu": (8, 128, 56), "cuda": (64, 256, 56)}


@dataclass(frozen=True)
class Peak:
    gemm: float  # MAC/s
    dwconv: float  # MAC/s

    def metrics(self, prefix: str = "") -> dict[str, float]:
        return {
            prefix + names.PEAK_GEMM: self.gemm / 1e9,
            prefix + names.PEAK_DWCONV: self.dwconv / 1e9,
        }


def _probes(device: torch.device) -> list[tuple[nn.Module, torch.Tensor, float]]:
    kind = "cuda" if device.type == "cuda" else "cpu"
    n, f = GEMM[kind]
    b, c, s = DWCONV[kind]
    gemm = nn.Sequential(nn.Linear(f, f, bias=False))
    dw = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False))
    return [
        (gemm, torch.randn(n, f), float(n * f * f)),
        (dw, torch.randn(b, c, s, s), float(b * c * s * s * 9)),
    ]


def measure(runtime: Runtime, ctx: Context, settings: LatencySettings) -> Peak:
    """The runtime's MAC/s on the two microbenchmarks (about a second each)."""
    quick = replace(settings, time_budget_s=1.0, iters="auto", iters_min=5, warmup_max=10)
    rates = []
    with tempfile.TemporaryDirectory() as tmp:
        probe_ctx = replace(ctx, workdir=Path(tmp), exports={}, export_errors={}, references={})
        for i, (module, x, macs) in enumerate(_probes(ctx.device)):
            module = module.eval().to(ctx.device)
            x = x.to(ctx.device)
            loaded = runtime.load(module, x, probe_ctx, f"peak{i}")
            timing = time_steps(
                [loaded.run],
                1,
                settings=quick,
                device=ctx.device,
                cuda_events=not loaded.host_clock,
            )
            # a peak is the best the device did: the fastest call (a median would carry a shared
            # machine's load into every efficiency computed against it, for as long as it is cached)
            rates.append(macs / (min(timing.stats[0].samples_ms) / 1e3))
    return Peak(*rates)


def _key(runtime: Runtime, ctx: Context, device_description: str) -> str:
    """What a peak depends on: the runtime and its version, the machine, precision and threads (a
    cache folder shared by a cluster's nodes keeps one entry per node)."""
    return (
        f"{runtime.name} {runtime.version()}|{platform.node()}|{device_description}|"
        f"{ctx.precision}|threads={ctx.threads}"
    )


def cached(
    runtime: Runtime,
    ctx: Context,
    settings: LatencySettings,
    cache_dir: str | Path,
    device_description: str,
) -> Peak:
    """The runtime's peak on this machine: from the cache, or measured now and cached."""
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CACHE_FILE
    key = _key(runtime, ctx, device_description)
    with filelock.FileLock(str(path) + ".lock"):
        known = json.loads(path.read_text()) if path.is_file() else {}
        if key in known:
            return Peak(**known[key])
        log.info(
            "measuring the peak of %s on %s (once per machine)", runtime.name, device_description
        )
        peak = measure(runtime, ctx, settings)
        known[key] = {"gemm": peak.gemm, "dwconv": peak.dwconv}
        path.write_text(json.dumps(known, indent=1, sort_keys=True))
        return peak


def efficiency(macs_per_image: float, batch_size: int, latency_ms: float, peak: Peak) -> float:
    """Achieved MAC/s (dense-kernel MACs) as a fraction of the runtime's GEMM peak."""
    if latency_ms <= 0 or peak.gemm <= 0:
        return float("nan")
    return macs_per_image * batch_size / (latency_ms / 1e3) / peak.gemm
