"""Starting weights for a job: pretrained from timm's hub (when reachable), random, and/or trained on
the dataset's train split. Trained weights are cached on disk and shared by every job with the same key."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from sweep.data import Dataset, to_model_input
from sweep.models import build_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightsInfo:
    source: str  # trained | pretrained | random
    trained_epochs: int
    cache_path: str | None  # where trained weights were read from or written to
    note: str = ""


_HUB_REACHABLE: bool | None = None


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP probe of the weights hub per process: offline, timm's own download would retry
    for about a minute before failing."""
    global _HUB_REACHABLE
    if _HUB_REACHABLE is None:
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
            _HUB_REACHABLE = False
        else:
            url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
            port = url.port or (80 if url.scheme == "http" else 443)
            try:
                socket.create_connection((url.hostname or "", port), timeout=timeout).close()
                _HUB_REACHABLE = True
            except OSError:
                _HUB_REACHABLE = False
    return _HUB_REACHABLE


def _cached_hub_file(name: str) -> str | None:
    """A checkpoint already in the local Hugging Face cache, usable offline."""
    try:
        import timm
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    cfg = timm.models.get_pretrained_cfg(name)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not repo:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        path = try_to_load_from_cache(repo, filename)
        if isinstance(path, str):
            return path
    return None


def build_start(model_cfg, num_classes: int, seed: int) -> tuple[nn.Module, str, str]:
    """The model with its starting weights: (model, 'pretrained' | 'random', note on a fallback)."""
    name, kwargs = model_cfg.name, dict(model_cfg.get("kwargs") or {})
    torch.manual_seed(seed)  # the random init (and a new head) is the same in every job
    if model_cfg.weights == "pretrained":
        if hub_reachable():
            try:
                return build_model(name, num_classes, kwargs, pretrained=True), "pretrained", ""
            except Exception as e:  # no weights published for this name, hub error, ...
                note = f"pretrained weights for {name} failed to load ({type(e).__name__}: {str(e)[:200]})"
        else:
            cached = _cached_hub_file(name)
            if cached:
                return (
                    build_model(name, num_classes, kwargs, pretrained=True, pretrained_file=cached),
                    "pretrained",
                    "",
                )
            note = f"pretrained weights for {name}: hub unreachable and none in the local cache"
        log.warning("%s; using random weights: accuracy will be at chance", note)
        return build_model(name, num_classes, kwargs), "random", note
    return build_model(name, num_classes, kwargs), "random", ""


def cache_key(model_cfg, dataset: Dataset, start_source: str, seed: int) -> str:
    import timm

    spec = {
        "model": model_cfg.name,
        "kwargs": dict(model_cfg.get("kwargs") or {}),
        "input_size": model_cfg.input_size,
        "start": start_source,
        "train": dict(model_cfg.train),
        "dataset": dataset.describe(),
        "seed": seed,
        "timm": timm.__version__,
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{model_cfg.name}-{dataset.name}-{digest}"


def train(
    model: nn.Module,
    dataset: Dataset,
    input_size: int,
    epochs: int,
    lr: float,
    batch_size: int,
    weight_decay: float,
    device: torch.device,
    seed: int,
    label: str,
) -> None:
    split = dataset.train()
    model.to(device).train()
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = (len(split) + batch_size - 1) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * steps_per_epoch
    )
    t0 = time.perf_counter()
    for epoch in range(epochs):
        perm = torch.randperm(len(split), generator=g)
        total = 0.0
        for i in range(0, len(split), batch_size):
            idx = perm[i : i + batch_size]
            x = to_model_input(split.images[idx], input_size).to(device)
            loss = F.cross_entropy(model(x), split.labels[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        log.info(
            "training %s: epoch %d/%d, loss %.3f, %.0fs",
            label,
            epoch + 1,
            epochs,
            total / len(split),
            time.perf_counter() - t0,
        )
    model.eval()


def cached(path: Path, model: nn.Module, produce, label: str) -> None:
    """Load `model`'s weights from `path`, or run `produce()` (which trains `model` in place) and save
    them there. One process of a parallel sweep produces; the others wait for the lock, then load."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.exists():
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            log.info("weights for %s: cached %s", label, path)
            return
        produce()
        tmp = path.with_suffix(".tmp")
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
        os.replace(tmp, path)


def fit(
    model: nn.Module,
    source: str,
    note: str,
    model_cfg,
    dataset: Dataset,
    device: torch.device,
    cache_dir: str | Path,
    seed: int,
) -> tuple[nn.Module, WeightsInfo]:
    """Train on the dataset's train split when model.train.epochs > 0, through the on-disk cache."""
    t = model_cfg.train
    if t.epochs <= 0:
        return model.to(device).eval(), WeightsInfo(source, 0, None, note)
    path = (
        Path(cache_dir).expanduser().resolve() / f"{cache_key(model_cfg, dataset, source, seed)}.pt"
    )

    def produce():
        log.info(
            "training %s (%s) on %s for %d epochs; cached for later jobs at %s",
            model_cfg.alias,
            model_cfg.name,
            dataset.name,
            t.epochs,
            path,
        )
        torch.manual_seed(seed)
        train(
            model,
            dataset,
            model_cfg.input_size,
            t.epochs,
            t.lr,
            t.batch_size,
            t.weight_decay,
            device,
            seed,
            model_cfg.alias,
        )

    cached(path, model, produce, model_cfg.alias)
    return model.to(device).eval(), WeightsInfo("trained", t.epochs, str(path), note)
