"""Starting weights for a job: pretrained (timm's hub when reachable, a local file, or the local
cache), or random; then the head as `model.head` says: kept, fitted on frozen features, or the whole
model trained on the dataset's train split. What is trained is cached on disk and shared by every job
with the same key."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import torch
import torch.nn as nn

from sweep import training
from sweep.data import Batches, Dataset
from sweep.models import build_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightsInfo:
    source: str  # trained | pretrained | random (the backbone's weights)
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


def _pretrained(model_cfg, classes: int | None, kwargs: dict) -> tuple[nn.Module, str, str]:
    name = model_cfg.name
    if model_cfg.pretrained_file:
        return (
            build_model(
                name, classes, kwargs, pretrained=True, pretrained_file=model_cfg.pretrained_file
            ),
            "pretrained",
            "",
        )
    if hub_reachable():
        try:
            return build_model(name, classes, kwargs, pretrained=True), "pretrained", ""
        except Exception as e:  # no weights published for this name, hub error, ...
            note = (
                f"pretrained weights for {name} failed to load ({type(e).__name__}: {str(e)[:200]})"
            )
    else:
        cached = _cached_hub_file(name)
        if cached:
            return (
                build_model(name, classes, kwargs, pretrained=True, pretrained_file=cached),
                "pretrained",
                "",
            )
        note = f"pretrained weights for {name}: hub unreachable and none in the local cache"
    log.warning("%s; using random weights", note)
    return build_model(name, classes, kwargs), "random", note


def build_start(model_cfg, num_classes: int, seed: int) -> tuple[nn.Module, str, str]:
    """The model with its starting weights: (model, 'pretrained' | 'random', note on a fallback). With
    head=keep the model keeps its own classifier; otherwise it gets a new one for `num_classes`."""
    classes = None if model_cfg.head == "keep" else num_classes
    kwargs = dict(model_cfg.get("kwargs") or {})
    torch.manual_seed(seed)  # the random init (and a new head) is the same in every job
    if model_cfg.weights == "pretrained":
        return _pretrained(model_cfg, classes, kwargs)
    return build_model(model_cfg.name, classes, kwargs), "random", ""


def published_start(model_cfg, seed: int):
    """How a job builds a published pruned architecture (`pruners.published`): by the model's weights
    policy, its pretrained weights where the hub or the local cache has them, else random (said once)."""

    def start(name: str, num_classes: int) -> nn.Module:
        torch.manual_seed(seed)
        if model_cfg.weights != "pretrained":
            return build_model(name, num_classes)
        return _pretrained(SimpleNamespace(name=name, pretrained_file=None), num_classes, {})[0]

    return start


def cache_key(model_cfg, dataset: Dataset, start_source: str, preprocess: dict, seed: int) -> str:
    import timm

    spec = {
        "model": model_cfg.name,
        "kwargs": dict(model_cfg.get("kwargs") or {}),
        "head": model_cfg.head,
        "preprocess": preprocess,
        "start": start_source,
        "pretrained_file": model_cfg.pretrained_file,
        "train": dict(model_cfg.train),
        "dataset": dataset.describe(),
        "seed": seed,
        "timm": timm.__version__,
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{model_cfg.name}-{dataset.name}-{model_cfg.head}-{digest}"


def produced_once(path: Path, *, load, produce, save, valid=None, keep=None):
    """`load(path)` where the file exists (and `valid(path)` holds, where given), else `produce()`
    written there by `save(value, file)` (unless `keep(value)` says not to, where given): (value,
    whether it was read). One process of a parallel sweep produces; the others wait for the lock,
    then read. The file appears whole or not at all."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.exists() and (valid is None or valid(path)):
            return load(path), True
        value = produce()
        if keep is not None and not keep(value):
            return value, False
        tmp = path.with_suffix(".tmp")
        save(value, tmp)
        os.replace(tmp, path)
        return value, False


def cached(path: Path, module: nn.Module, produce, label: str) -> None:
    """Load `module`'s weights from `path`, or run `produce()` (which trains it in place) and save them
    there."""

    def load(file: Path) -> None:
        module.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
        log.info("weights for %s: cached %s", label, file)

    def save(_, file: Path) -> None:
        torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, file)

    produced_once(path, load=load, produce=produce, save=save)


def _training_budget(t, micro_batch: int | None = None) -> training.Budget:
    """The budget `model.train` gives the dense model (or its new head)."""
    return training.Budget(
        epochs=t.epochs,
        lr=t.lr,
        batch_size=t.batch_size,
        weight_decay=t.weight_decay,
        schedule="onecycle",
        micro_batch=micro_batch,
    )


def fit(
    model: nn.Module,
    source: str,
    note: str,
    model_cfg,
    train_split: Batches,
    preprocess: dict,
    device: torch.device,
    cache_dir: str | Path,
    seed: int,
    micro_batch: int | None = None,
) -> tuple[nn.Module, WeightsInfo]:
    """The head as model.head says, trained on the train split (through the on-disk cache); the
    whole model's training in parts of `micro_batch` images where its batch does not fit (the same
    effective batch: the cached weights are shared with whole-batch runs)."""
    t = model_cfg.train
    if model_cfg.head == "keep" or t.epochs <= 0:
        return model.to(device).eval(), WeightsInfo(source, 0, None, note)
    if model_cfg.head == "fit" and note:
        # pretrained weights were asked for and are not there: a probe of random features would cost
        # minutes on a CPU and look like a result; the head stays untrained and the run says why
        return model.to(device).eval(), WeightsInfo(source, 0, None, note + "; head not fitted")
    dataset = train_split.dataset
    key = cache_key(model_cfg, dataset, start_source=source, preprocess=preprocess, seed=seed)
    path = Path(cache_dir).expanduser().resolve() / f"{key}.pt"
    budget = _training_budget(t, micro_batch if model_cfg.head == "finetune" else None)
    label = model_cfg.alias
    if model_cfg.head == "fit":  # only the new head is trained, and cached
        cached(
            path,
            model.get_classifier(),
            lambda: training.linear_probe(
                model, train_split, budget=budget, device=device, seed=seed, label=label
            ),
            label,
        )
        return model.to(device).eval(), WeightsInfo(source, t.epochs, str(path), note)

    def produce():
        said = f"{label} ({model_cfg.name}) on {dataset.name} for {t.epochs} epochs"
        log.info("training %s; cached for later jobs at %s", said, path)
        torch.manual_seed(seed)
        training.train(model, train_split, budget, device=device, seed=seed, label=label)

    cached(path, model, produce, label)
    return model.to(device).eval(), WeightsInfo("trained", t.epochs, str(path), note)


def reinitialise(model: nn.Module, model_cfg, num_classes: int, seed: int) -> str:
    """The pruned architecture with fresh weights (the train-from-scratch control): every tensor from a
    freshly created timm model of the same name (timm's own init), cut to the pruned shape, then the
    model's own `init_weights` where it has one (it scales each layer to its pruned width). A mask
    method's zeros stay zero. Returns how it was initialised (the run's `finetune_init_method` tag)."""
    from sweep.pruners import timm_blocks

    masks = training.zero_masks(model)
    classes = None if model_cfg.head == "keep" else num_classes
    torch.manual_seed(seed)
    fresh = build_model(model_cfg.name, classes, dict(model_cfg.get("kwargs") or {}))
    own = model.state_dict()
    if set(own) != set(fresh.state_dict()):
        timm_blocks.rewrite(fresh)  # a structural method rewrote some blocks before pruning
    src, missing = fresh.state_dict(), []
    with torch.no_grad():
        for key, t in own.items():
            f = src.get(key)
            if f is None or f.dim() != t.dim() or any(a > b for a, b in zip(t.shape, f.shape)):
                missing.append(key)
                continue
            t.copy_(f[tuple(slice(0, n) for n in t.shape)].to(t.dtype))
    if missing:
        raise RuntimeError(
            f"finetune.init=scratch: {model_cfg.name} created afresh has no tensor for "
            f"{', '.join(missing[:5])} of the pruned model"
        )
    how = "timm_init_cut_to_shape"
    init = getattr(model, "init_weights", None)
    if callable(init):
        torch.manual_seed(seed)
        try:
            init()
            how += "+init_weights"
        except Exception as e:  # an init written for the full widths: the cut tensors stand
            log.info("%s.init_weights() on the pruned shapes failed (%s)", model_cfg.name, e)
    with torch.no_grad():
        for w, mask in masks:
            w.mul_(mask.to(w.device))
    return how
