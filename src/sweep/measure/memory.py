"""A model's memory at inference: its weights plus the peak one forward pass adds above what was
resident before it (CUDA: allocated memory; CPU: the process's peak RSS, Linux only); and what
training it needs, estimated before it trains (`training_mb`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn


def peak_mem_mb(model: nn.Module, step: Callable[[], object], device: torch.device) -> float:
    """Weights plus the inference peak above what was resident before one forward pass."""
    weights = sum(
        t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers())
    )
    extra = _peak_above_resident(step, device)
    if extra is None:
        return float("nan")
    return (weights + max(extra, 0)) / 2**20


def deployed_mb(size_bytes: int | None, step: Callable[[], object], device: torch.device) -> float:
    """A model's memory in another runtime, as `peak_mem_mb` reads eager's: its weights (the bytes of
    the form it runs from: the runtime holds them in memory) plus the peak of one inference above
    what was resident before; NaN where either cannot be read (no file of its own, a GPU's memory)."""
    if size_bytes is None or device.type != "cpu":
        return float("nan")
    extra = _cpu_peak_above_resident(step)
    return float("nan") if extra is None else (size_bytes + max(extra, 0)) / 2**20


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


# weights, their gradients and AdamW's two moments
OPTIMIZER_COPIES = 4
PROBE_IMAGES = 4  # the batch of the one training step measured


def training_mb(model: nn.Module, example: torch.Tensor, batch_size: int) -> float:
    """What training `model` at `batch_size` needs, MiB, measured before it trains: one training step
    (forward and backward) on a few copies of `example` gives the memory per image above what was
    resident (CUDA: allocated; CPU: peak RSS, Linux), scaled to the batch, plus weights, gradients and
    optimizer state. The model's buffers (BatchNorm's running statistics) are restored after it; NaN
    where the peak cannot be read."""
    x = example[:1].repeat(PROBE_IMAGES, *([1] * (example.dim() - 1)))
    saved = [(b, b.clone()) for b in model.buffers()]  # the step updates BatchNorm's statistics
    was_training = model.training

    def step():
        model.train()
        out = model(x)  # a distilled model in training gives (head, distillation head)
        sum(t.float().sum() for t in (out if isinstance(out, (tuple, list)) else (out,))).backward()

    try:
        extra = _peak_above_resident(step, x.device)
    except RuntimeError:  # a model that cannot train on this input: no estimate, the default limit
        extra = None
    finally:
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)
        model.train(was_training)
    if extra is None:
        return float("nan")
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return (batch_size * max(extra, 0) / PROBE_IMAGES + OPTIMIZER_COPIES * params) / 2**20


def _peak_above_resident(step: Callable[[], object], device: torch.device) -> int | None:
    """Bytes `step` adds at its peak above what was resident before it (CUDA: allocated memory; CPU:
    the process's peak RSS), None where that cannot be read."""
    if device.type != "cuda":
        return _cpu_peak_above_resident(step)
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before
