"""PyTorch itself: eager mode and torch.compile."""

from __future__ import annotations

import time

import torch

from sweep.measure.latency import eager_step
from sweep.measure.runtimes.base import (
    Loaded,
    Runtime,
    to_cpu,
)


class Eager(Runtime):
    name = "eager"
    summary = "PyTorch eager mode (the job's main latency figures)"

    def load(self, model, x, ctx, what):
        if ctx.channels_last and x.dim() == 4:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        step = eager_step(model, x, ctx.device, ctx.precision)
        return Loaded(step, lambda: to_cpu(step()), 0.0, 0.0)


class Compiled(Runtime):
    name = "compile"
    summary = "torch.compile (inductor); its compilation is export_seconds"

    def load(self, model, x, ctx, what):
        t0 = time.perf_counter()
        try:
            compiled = torch.compile(model, dynamic=False)
            step = eager_step(compiled, x, ctx.device, ctx.precision)
            step()  # compiles
        except Exception as e:
            raise self.not_applicable(what, e) from None
        return Loaded(step, lambda: to_cpu(step()), time.perf_counter() - t0, 0.0)
