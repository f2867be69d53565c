"""Top-1 accuracy on the eval split, and whether it is distinguishable from chance."""

from __future__ import annotations

import logging
import math
import time

import torch
import torch.nn as nn

from sweep.data import Split, to_model_input

log = logging.getLogger(__name__)


@torch.no_grad()
def top1(
    model: nn.Module,
    split: Split,
    input_size: int,
    batch_size: int,
    device: torch.device,
    label: str = "",
) -> float:
    model.eval()
    correct, t0, last = 0, time.perf_counter(), time.perf_counter()
    for i in range(0, len(split), batch_size):
        x = to_model_input(split.images[i : i + batch_size], input_size).to(device)
        pred = model(x).argmax(dim=1).cpu()
        correct += int((pred == split.labels[i : i + batch_size]).sum())
        if time.perf_counter() - last > 10:
            last = time.perf_counter()
            log.info(
                "evaluating %s: %d/%d samples, %.0fs", label, i + len(x), len(split), last - t0
            )
    return correct / max(1, len(split))


def at_chance(accuracy: float, n: int, num_classes: int, z: float = 3.0) -> bool:
    """True unless accuracy is above chance (1/num_classes) by more than z binomial standard errors."""
    p = 1.0 / num_classes
    return accuracy <= p + z * math.sqrt(p * (1 - p) / max(1, n))
