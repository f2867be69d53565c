"""A model's memory at inference: its weights plus the peak one forward pass adds above what was
resident before it (CUDA: allocated memory; CPU: the process's peak RSS, Linux only)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn


def peak_mem_mb(model: nn.Module, step: Callable[[], object], device: torch.device) -> float:
    """Weights plus the inference peak above what was resident before one forward pass."""
    weights = sum(
        t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers())
    )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        extra = torch.cuda.max_memory_allocated(device) - before
    else:
        extra = _cpu_peak_above_resident(step)
        if extra is None:
            return float("nan")
    return (weights + max(extra, 0)) / 2**20


def _cpu_peak_above_resident(step: Callable[[], object]) -> int | None:
    # Linux: writing 5 to clear_refs resets the process's peak RSS (VmHWM), so the peak of one call is
    # measurable; elsewhere the figure is left out rather than guessed.
    def status(key: str) -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        raise KeyError(key)

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = status("VmRSS:")
        step()
        return status("VmHWM:") - before
    except (OSError, KeyError):
        return None
