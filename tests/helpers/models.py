"""The tiny models of conf/model/tiny_*.yaml, built as a job would build them."""

from __future__ import annotations

import timm
import torch
import yaml

from sweep.config import config_dir


def tiny_configs() -> dict[str, dict]:
    """alias -> the yaml's keys, for every tiny model the project ships."""
    return {
        p.stem: yaml.safe_load(p.read_text())
        for p in sorted((config_dir() / "model").glob("tiny_*.yaml"))
    }


TINY = tiny_configs()


def tiny_model(alias: str, num_classes: int = 10, seed: int = 0) -> torch.nn.Module:
    cfg = TINY[alias]
    torch.manual_seed(seed)
    return timm.create_model(
        cfg["name"], num_classes=num_classes, **(cfg.get("kwargs") or {})
    ).eval()


def tiny_input(alias: str, batch: int = 1) -> torch.Tensor:
    size = TINY[alias].get("input_size", 224)
    return torch.randn(batch, 3, size, size)
