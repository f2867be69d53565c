"""Eager PyTorch's per-layer time: every module's span between its forward hooks, less its children's
(its self time), on the host clock on a CPU and between CUDA events on a GPU (no sync inside the
forward, which would time launches). The root module's self time (ops in the model's own forward) is
under the empty path: it maps to no layer."""

from __future__ import annotations

import time
from collections import defaultdict

import torch
import torch.nn as nn

from sweep.measure.latency import eager_step
from sweep.measure.layer_times import LayerTime, median_times

__all__ = ["module_times"]


class _Marks:
    """Enter/exit marks of module calls in the order they happened, on the device's clock."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks: list[tuple[str, bool, object]] = []

    def mark(self, path: str, enter: bool) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append((path, enter, event))
        else:
            self.marks.append((path, enter, time.perf_counter_ns()))

    def ms(self, a, b) -> float:
        return a.elapsed_time(b) if self.cuda else (b - a) / 1e6

    def self_times(self, ops: dict[str, str]) -> dict[tuple[str, str], float]:
        if self.cuda:
            torch.cuda.synchronize()
        out: dict[tuple[str, str], float] = defaultdict(float)
        stack: list[list] = []  # [path, start, children's ms]
        for path, enter, t in self.marks:
            if enter:
                stack.append([path, t, 0.0])
                continue
            p, start, children = stack.pop()
            span = self.ms(start, t)
            out[(p, ops[p])] += span - children
            if stack:
                stack[-1][2] += span
        self.marks.clear()
        return out


def module_times(
    model: nn.Module, x: torch.Tensor, device: torch.device, precision: str, rounds: tuple[int, int]
) -> list[LayerTime]:
    """Each module's median self time per forward over `rounds` = (warm-up, timed) forwards."""
    warmup, timed = rounds
    marks = _Marks(device)
    ops = {path: type(m).__name__ for path, m in model.named_modules()}
    handles = []
    for path, m in model.named_modules():
        handles.append(m.register_forward_pre_hook(lambda *_, p=path: marks.mark(p, True)))
        handles.append(m.register_forward_hook(lambda *_, p=path: marks.mark(p, False)))
    step = eager_step(model, x, device, precision)
    try:
        per_round = []
        for i in range(warmup + timed):
            step()
            times = marks.self_times(ops)
            if i >= warmup:
                per_round.append(times)
    finally:
        for h in handles:
            h.remove()
    return median_times(per_round)
