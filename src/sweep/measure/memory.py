"""A model's memory at inference: its weights plus the peak one forward pass adds above what was
resident before it (CUDA: allocated memory; CPU: the process's peak RSS, Linux only); and what
training it needs, estimated before it trains (`training_mb`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn as nn

from sweep.limits import GRADIENT_COPIES, OPTIMIZER_COPIES

__all__ = [
    "GRADIENT_COPIES",
    "INFERENCE_SLACK",
    "OPTIMIZER_COPIES",
    "activation_mb",
    "deployed_mb",
    "inference_mb",
    "peak_mem_mb",
    "training_mb",
    "weights_mb",
]


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


PROBE_IMAGES = 2  # the batch of the one forward pass whose saved tensors are counted


def activation_mb(model: nn.Module, example: torch.Tensor) -> float:
    """MiB per image that a backward pass needs beyond the weights: the tensors autograd saves in a
    training-mode forward pass (counted once per storage), per image of a probe batch. Counted, not
    read from the process's peak memory: a peak depends on what the allocator already holds (a second
    probe in the same process read less than half the first), a count does not. Close to the peak a
    training step adds (mobilenetv4_conv_large at 384 px: 272 MiB counted, 230-247 MiB peak above
    resident at batch 16 and 4). The model's buffers (BatchNorm's statistics) are restored after it;
    NaN where the model cannot run forward on the input."""
    x = example[:1].repeat(PROBE_IMAGES, *([1] * (example.dim() - 1)))
    saved = [(b, b.clone()) for b in model.buffers()]  # the pass updates BatchNorm's statistics
    was_training = model.training
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        with contextlib.suppress(RuntimeError):  # a tensor without storage (sparse, meta)
            storage = t.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    try:
        model.train()
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x)
        del out
    # a model that cannot train on this input (a shape error, BatchNorm's "more than 1 value per
    # channel" ValueError, an assert): no count, and its batches run whole as before
    except (RuntimeError, ValueError, AssertionError, TypeError):
        return float("nan")
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)
        model.train(was_training)
    return sum(storages.values()) / PROBE_IMAGES / 2**20


# an inference pass's peak above resident, per image, over the largest input plus output of one layer
# (mobilenetv4_conv_large at 384 px, efficientnet_b4 at 320, convnext_large at 224, batch 32-64: 1.4
# to 1.5): the allocator holds more than the one layer's tensors
INFERENCE_SLACK = 2.0


def inference_mb(model: nn.Module, example: torch.Tensor) -> float:
    """MiB per image that a forward pass without gradients adds at its peak, counted, not read from
    the process: `INFERENCE_SLACK` times the largest input plus output of any one layer, from one
    image; NaN where the model cannot run on the input."""
    largest = [0]

    def hook(module, inputs, output) -> None:
        tensors = [t for t in (*inputs, output) if torch.is_tensor(t)]
        largest[0] = max(largest[0], sum(t.numel() * t.element_size() for t in tensors))

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(example[:1])
    except (RuntimeError, ValueError, AssertionError, TypeError):
        return float("nan")
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return INFERENCE_SLACK * largest[0] / 2**20


def weights_mb(model: nn.Module) -> float:
    return sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20


def training_mb(model: nn.Module, example: torch.Tensor, batch_size: int) -> float:
    """What training `model` at `batch_size` needs, MiB, before it trains: `activation_mb` per image
    times the batch, plus weights, gradients and optimizer state; NaN where it cannot be counted."""
    return batch_size * activation_mb(model, example) + OPTIMIZER_COPIES * weights_mb(model)


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
