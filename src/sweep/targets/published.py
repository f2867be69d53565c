"""`target.macs=published`: every method of a grid pruned to the MACs of the architecture timm publishes
for the model (`pruner=timm_published`), so a user's method sits beside the published one at its cost.
The fraction is counted once per job before anything is built for it (both architectures, timm's
initialisation, at the model's input size) and replaces `published` in the job's config: the run names
its cost (`macs=0.616`) and the tag `target_source` says where it came from (`published`)."""

from __future__ import annotations

import functools

import torch
from omegaconf import DictConfig, open_dict

from sweep.errors import SweepConfigError
from sweep.measure.counting import count_macs
from sweep.pruners.published import no_variant, published_of

PUBLISHED = "published"


def asks_published(cfg: DictConfig) -> bool:
    return cfg.target.macs == PUBLISHED


def check(cfg: DictConfig) -> None:
    """One line, before any job runs, for a model without a published variant."""
    if asks_published(cfg) and published_of(cfg.model.name) is None:
        raise SweepConfigError(f"target.macs=published: {no_variant(cfg.model.name)}")


@functools.cache  # once per model in a process, not once per job of a sweep
def macs_kept(model_name: str, input_size: int | None) -> float:
    """The published architecture's MACs over the model's, at the model's input size (4 decimals)."""
    import timm

    dense = timm.create_model(model_name, num_classes=10).eval()
    pruned = timm.create_model(published_of(model_name), num_classes=10).eval()
    side = input_size or timm.data.resolve_data_config({}, model=dense)["input_size"][-1]
    x = torch.zeros(1, 3, side, side)
    with torch.no_grad():
        return round(count_macs(pruned, x)[0] / count_macs(dense, x)[0], 4)


def resolve(cfg: DictConfig) -> DictConfig:
    """The config with `target.macs=published` replaced by its fraction (unchanged otherwise)."""
    if not asks_published(cfg):
        return cfg
    check(cfg)
    with open_dict(cfg):
        cfg.target.macs = macs_kept(cfg.model.name, cfg.model.input_size)
    return cfg
