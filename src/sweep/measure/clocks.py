"""The two clocks of the latency harness: a block of back-to-back calls timed on the host, or between
two CUDA events on torch's stream."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


class CpuClock:
    def time(self, fn: Callable[[], object], calls: int = 1) -> float:
        """The median ms of `calls` back-to-back calls, each timed: a block an interrupt hit once
        still reads the model's time (its mean would carry the interrupt)."""
        times = []
        for _ in range(calls):
            t0 = time.perf_counter_ns()
            fn()
            times.append(time.perf_counter_ns() - t0)
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
