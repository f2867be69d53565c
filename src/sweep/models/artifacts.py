"""Saved models that load without running code: the weights in safetensors, the pruned structure in
JSON, and nothing pickled.

A pruned model's shapes differ from its class's defaults, so the weights alone do not rebuild it. The
structure file names the timm model and the arguments it was created with, and for every module its
class and its plain attributes (channel counts, groups, heads, normalised shapes: numbers, strings,
booleans and lists of them), and for every tensor its shape. `load` creates the timm model afresh,
applies the rewrites structural pruning made (sweep.pruners.timm_blocks.rewrite), sets those attributes,
gives every tensor its saved shape and loads the weights strictly: the same outputs as the model that
was saved. A pickled module (`torch.save(model)`) is refused with one line: unpickling runs whatever
code the file carries, and an artifact on a shared tracking server can come from anyone.

    from sweep.models.artifacts import load
    model = load("path/to/artifacts/model")          # a run's `model/` artifact folder
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from sweep.errors import SweepConfigError

FORMAT = "sweep.pruned-model/1"
WEIGHTS_FILE = "model.safetensors"
STRUCTURE_FILE = "structure.json"
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")
_SKIP_ATTRS = {"training", "dump_patches", "call_super_init"}


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (tuple, list)):
        return all(_plain(v) for v in value)
    return False


def _attrs(module: nn.Module) -> dict[str, Any]:
    """A module's plain public attributes (what its forward reads its shapes from)."""
    out = {}
    for name, value in vars(module).items():
        if name.startswith("_") or name in _SKIP_ATTRS or not _plain(value):
            continue
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def _class(module: nn.Module) -> str:
    return f"{type(module).__module__}.{type(module).__qualname__}"


def structure(model: nn.Module, timm_name: str, create: dict, extra: dict | None = None) -> dict:
    return {
        "format": FORMAT,
        "timm_name": timm_name,
        "create": create,  # keyword arguments of timm.create_model (num_classes, model kwargs)
        "modules": {n: {"class": _class(m), "attrs": _attrs(m)} for n, m in model.named_modules()},
        "tensors": {n: list(t.shape) for n, t in model.state_dict().items()},
        **(extra or {}),
    }


def save(
    model: nn.Module, folder: str | Path, timm_name: str, create: dict, extra: dict | None = None
) -> Path:
    """Write `model` as WEIGHTS_FILE + STRUCTURE_FILE into `folder` (created); returns the folder."""
    from safetensors.torch import save_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = model.cpu()
    info = structure(model, timm_name, create, extra)
    (folder / STRUCTURE_FILE).write_text(json.dumps(info, indent=1, sort_keys=True))
    save_model(model, str(folder / WEIGHTS_FILE))  # tied weights are stored once
    return folder


def _refuse_pickles(path: Path) -> None:
    pickles = [path] if path.is_file() else [p for p in path.glob("*") if p.is_file()]
    pickles = [p for p in pickles if p.suffix in PICKLE_SUFFIXES]
    if pickles and not (path.is_dir() and (path / STRUCTURE_FILE).is_file()):
        raise SweepConfigError(
            f"refused to load {pickles[0]}: a pickled model runs whatever code it carries when it "
            f"is loaded; load a folder with {WEIGHTS_FILE} and {STRUCTURE_FILE} (save_model=true "
            f"writes them) with sweep.models.artifacts.load"
        )


def _set_attrs(module: nn.Module, saved: dict[str, Any]) -> None:
    for name, value in saved.items():
        current = getattr(module, name, None)
        if isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        if current != value:
            setattr(module, name, value)


def _reshape(model: nn.Module, shapes: dict[str, list[int]]) -> None:
    """Every parameter and persistent buffer replaced by an empty tensor of its saved shape."""
    for name, shape in shapes.items():
        owner_name, _, leaf = name.rpartition(".")
        owner = model.get_submodule(owner_name) if owner_name else model
        if leaf in owner._parameters and owner._parameters[leaf] is not None:
            old = owner._parameters[leaf]
            if list(old.shape) != shape:
                owner._parameters[leaf] = nn.Parameter(
                    torch.empty(shape, dtype=old.dtype), requires_grad=old.requires_grad
                )
        elif leaf in owner._buffers and owner._buffers[leaf] is not None:
            old = owner._buffers[leaf]
            if list(old.shape) != shape:
                owner._buffers[leaf] = torch.empty(shape, dtype=old.dtype)


def _mismatch(model: nn.Module, modules: dict) -> str | None:
    fresh = dict(model.named_modules())
    for name, saved in modules.items():
        if name not in fresh:
            return f"module {name or '(root)'} ({saved['class']}) is not in a fresh model"
        if _class(fresh[name]) != saved["class"]:
            return f"module {name} is {saved['class']}, a fresh model's is {_class(fresh[name])}"
    return None


def load(folder: str | Path) -> nn.Module:
    """The model saved in `folder` by `save`, in eval mode on the CPU; one line when it cannot be."""
    from safetensors.torch import load_model

    from sweep.models import build_model
    from sweep.pruners import timm_blocks

    folder = Path(folder)
    if not folder.exists():
        raise SweepConfigError(f"{folder} does not exist")
    _refuse_pickles(folder)
    path = folder / STRUCTURE_FILE
    if not path.is_file():
        raise SweepConfigError(f"{folder} has no {STRUCTURE_FILE}: not a saved sweep model")
    info = json.loads(path.read_text())
    if info.get("format") != FORMAT:
        raise SweepConfigError(
            f"{path}: format {info.get('format')!r}, this version reads {FORMAT}"
        )
    create = dict(info["create"])
    model = build_model(info["timm_name"], create.pop("num_classes", None), create)
    if _mismatch(model, info["modules"]):
        timm_blocks.rewrite(model)  # what structural pruning rewrote before it pruned
    why = _mismatch(model, info["modules"])
    if why:
        raise SweepConfigError(f"cannot rebuild {info['timm_name']} from {folder}: {why}")
    fresh = dict(model.named_modules())
    for name, saved in info["modules"].items():
        _set_attrs(fresh[name], saved["attrs"])
    _reshape(model, info["tensors"])
    load_model(model, str(folder / WEIGHTS_FILE), strict=True)
    return model.eval()
