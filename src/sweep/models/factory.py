"""Model factory: every timm model by name, with the model config's kwargs."""

from __future__ import annotations

import torch.nn as nn


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
