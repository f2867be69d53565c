"""The two clocks of the latency harness: a block of back-to-back calls timed on the host, or between
two CUDA events on torch's stream. A call the runtime times itself (`SelfTimed`) is read by its own
clock on the host."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


class SelfTimed:
    """A call whose runtime measures its latency itself: `last_ms()` after each call (OpenVINO's
    request latency, the figure its benchmark_app reports: the Python call around it, 5-15 us, is
    left out, as it is from every figure of the standard tools)."""

    def __init__(self, run: Callable[[], object], last_ms: Callable[[], float]):
        self.run, self.last_ms = run, last_ms

    def __call__(self) -> object:
        return self.run()


class CpuClock:
    def time(self, fn: Callable[[], object], calls: int = 1) -> float:
        """The median ms of `calls` back-to-back calls, each timed (by the runtime's own clock where
        it has one): a block an interrupt hit once still reads the model's time (its mean would
        carry the interrupt)."""
        own = fn.last_ms if isinstance(fn, SelfTimed) else None
        times = []
        for _ in range(calls):
            t0 = time.perf_counter_ns()
            fn()
            elapsed = time.perf_counter_ns() - t0
            times.append(own() * 1e6 if own else elapsed)
        return statistics.median(times) / 1e6


class CudaClock:
    def __init__(self, device: torch.device):
        self.device = device
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def time(self, fn: Callable[[], object], calls: int = 1) -> float:
        """ms per call over `calls` back-to-back calls between two events (a sync per call would
        time the launches, not the kernels)."""
        torch.cuda.synchronize(self.device)
        self.start.record()
        for _ in range(calls):
            fn()
        self.end.record()
        self.end.synchronize()
        return float(self.start.elapsed_time(self.end)) / calls
