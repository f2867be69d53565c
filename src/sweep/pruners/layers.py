"""What a model's structure tells a pruner: its classifiers (never pruned) and its prunable layers."""

from __future__ import annotations

import torch.nn as nn

__all__ = ["PRUNABLE", "classifiers_of", "prunable_layers"]


def classifiers_of(model: nn.Module) -> list[nn.Module]:
    """The final classifiers, which no pruner may touch (their outputs are the classes): one, or two
    where a distilled model (DeiT-distilled, LeViT, EfficientFormer) averages a distillation head in."""
    get = getattr(model, "get_classifier", None)
    heads = get() if callable(get) else None
    heads = heads if isinstance(heads, tuple) else (heads,)
    return [h for h in heads if isinstance(h, nn.Module) and not isinstance(h, nn.Identity)]


PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def prunable_layers(model: nn.Module) -> list[nn.Module]:
    """Conv and linear layers with a weight, the classifier excluded."""
    skip = {id(m) for head in classifiers_of(model) for m in head.modules()}
    return [
        m
        for m in model.modules()
        if isinstance(m, PRUNABLE) and id(m) not in skip and getattr(m, "weight", None) is not None
    ]
