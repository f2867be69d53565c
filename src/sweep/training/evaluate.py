"""Top-1 accuracy on the eval split, and whether it is distinguishable from chance."""

from __future__ import annotations

import logging
import math
import time

import torch
import torch.nn as nn

from sweep.data import Batches

log = logging.getLogger(__name__)


@torch.no_grad()
def top1(
    model: nn.Module,
    batches: Batches,
    batch_size: int,
    device: torch.device,
    class_map: list[int] | None = None,
    label: str = "",
) -> float:
    """Fraction of images whose arg-max class is their label; with `class_map` (a kept pretrained head)
    a label counts as the head's class `class_map[label]`, and the arg-max runs over the whole head."""
    model.eval()
    class_of = torch.tensor(class_map) if class_map is not None else None
    correct = seen = 0
    t0 = last = time.perf_counter()
    for x, y in batches.iterate(batch_size):
        pred = model(x.to(device)).argmax(dim=1).cpu()
        target = class_of[y] if class_of is not None else y
        correct += int((pred == target).sum())
        seen += len(y)
        if time.perf_counter() - last > 10:
            last = time.perf_counter()
            log.info("evaluating %s: %d/%d samples, %.0fs", label, seen, len(batches), last - t0)
    return correct / max(1, seen)


def at_chance(accuracy: float, n: int, num_classes: int, z: float = 3.0) -> bool:
    """True unless accuracy is above chance (1/num_classes) by more than z binomial standard errors."""
    p = 1.0 / num_classes
    return accuracy <= p + z * math.sqrt(p * (1 - p) / max(1, n))
