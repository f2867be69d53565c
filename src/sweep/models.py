"""Model factory: every timm model by name, with the model config's kwargs."""

from __future__ import annotations

import torch.nn as nn


def is_known_model(name: str) -> bool:
    import timm

    return timm.is_model(name)


def build_model(
    name: str,
    num_classes: int | None,
    kwargs: dict | None = None,
    pretrained: bool = False,
    pretrained_file: str | None = None,
) -> nn.Module:
    """timm.create_model; `num_classes=None` keeps the model's own head (e.g. 1000 ImageNet classes),
    `pretrained_file` loads a local checkpoint as the pretrained weights."""
    import timm

    extra = dict(kwargs or {})
    if pretrained_file:
        extra["pretrained_cfg_overlay"] = {"file": str(pretrained_file)}
    if num_classes is not None:
        extra["num_classes"] = num_classes
    return timm.create_model(name, pretrained=pretrained, **extra)


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
