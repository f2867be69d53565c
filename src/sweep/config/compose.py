"""Where the Hydra configs live, and the checks that run before any model is built.

Importing this module registers the typed schema (sweep.config.schema) and the config nodes for timm model
names in Hydra's ConfigStore: everything that composes a sweep config imports it first.
"""

from __future__ import annotations

import os
from pathlib import Path

from sweep import tracking
from sweep.config import schema
from sweep.errors import SweepConfigError, first_line

GROUPS = ("model", "pruner", "dataset", "quantize")

schema.register()


def config_dir() -> Path:
    """The configs: SWEEP_CONFIG_DIR, those the package ships (sweep/conf in an installed wheel), conf/
    of this checkout (src layout, editable install), or ./conf. A user's own config folders come on
    top of it through Hydra's searchpath (see search_path)."""
    env = os.environ.get("SWEEP_CONFIG_DIR")
    here = Path(__file__).resolve().parents[1]  # the package: sweep/
    candidates = [Path(env)] if env else []
    candidates += [here / "conf", here.parents[1] / "conf", Path.cwd() / "conf"]
    for c in candidates:
        if (c / "sweep.yaml").is_file():
            return c.resolve()
    raise SweepConfigError(
        f"no Hydra config found (looked for sweep.yaml in {', '.join(map(str, candidates))}); "
        f"set SWEEP_CONFIG_DIR"
    )


SEARCHPATH_KEY = "hydra.searchpath"


def _entry_dir(entry: str) -> Path:
    """The folder a Hydra searchpath entry names (file://PATH or pkg://package.module)."""
    if entry.startswith("pkg://"):
        import importlib.util

        module = entry[len("pkg://") :].strip("/").replace("/", ".")
        try:
            spec = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            spec = None
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations:
            raise SweepConfigError(
                f"{SEARCHPATH_KEY}: {entry} names no importable package (is it installed?)"
            )
        return Path(locations[0])
    return Path(entry[len("file://") :] if entry.startswith("file://") else entry).expanduser()


def search_dirs(entries: list[str]) -> list[Path]:
    """The user's config folders, each checked: a folder that does not exist is one line."""
    dirs = []
    for entry in entries:
        folder = _entry_dir(entry)
        if not folder.is_dir():
            raise SweepConfigError(
                f"{SEARCHPATH_KEY}: {entry} is not a folder (a config folder holds group folders "
                f"such as pruner/ with one yaml per option)"
            )
        dirs.append(folder.resolve())
    return dirs


def group_options(group: str, extra: tuple[Path, ...] | list[Path] = ()) -> list[str]:
    """The options of a config group: the shipped configs' and those of the user's config folders."""
    folders = [config_dir(), *extra]
    return sorted({p.stem for d in folders for p in (d / group).glob("*.yaml")})


def user_options(extra: list[Path]) -> dict[str, list[str]]:
    """The options the user's config folders add, per group (for --help)."""
    shipped = {g: set(group_options(g)) for g in GROUPS}
    return {
        g: added for g in GROUPS if (added := sorted(set(group_options(g, extra)) - shipped[g]))
    }


def option_file(group: str, name: str, extra: list[Path] = ()) -> Path | None:
    """The yaml of a group option (a user's folder wins over the shipped configs, as in Hydra)."""
    for d in reversed([config_dir(), *extra]):
        if (d / group / f"{name}.yaml").is_file():
            return d / group / f"{name}.yaml"
    return None


def _choices(group: str, extra=()) -> str:
    more = " or any timm model name (timm.list_models())" if group == "model" else ""
    return ", ".join(group_options(group, extra)) + more


def check_choice(group: str, value: str, extra: tuple[Path, ...] | list[Path] = ()) -> None:
    """A group choice must be a yaml in conf/<group>/ or in a user's config folder (hydra.searchpath,
    --config-dir); a model may also be any timm model name (registered by `imports`, too)."""
    if value in group_options(group, extra):
        return
    if group == "model" and _is_timm_model(value):
        register_timm_model(value)
        return
    raise SweepConfigError(f"unknown {group} {value!r}: choose from {_choices(group, extra)}")


def import_modules(modules: list[str]) -> None:
    """`imports`: the user's modules, imported before anything is checked or built, so that the
    timm models, datasets and pruners they define or register are known."""
    import importlib

    for name in modules or ():
        try:
            importlib.import_module(name)
        except Exception as e:
            raise SweepConfigError(
                f"imports: cannot import {name!r} ({type(e).__name__}: {first_line(e)}); install "
                f"its package or put it on PYTHONPATH"
            ) from None


def register_timm_model(name: str) -> None:
    """Make `model=<any timm name>` composable without a yaml: a typed node in Hydra's ConfigStore
    (passed on to launcher workers with Hydra's own state); input size and preprocessing are the
    model's own (timm's pretrained config)."""
    from hydra.core.config_store import ConfigStore

    node = schema.ModelConfig(alias=name, name=name)
    ConfigStore.instance().store(group="model", name=name, node=node)


def _is_timm_model(name: str) -> bool:
    import timm

    return timm.is_model(name)


def check_device(value: str) -> None:
    import torch

    if value.startswith("cuda") and not torch.cuda.is_available():
        raise SweepConfigError(f"device={value} but CUDA is not available here: choose auto or cpu")


def splits_used(cfg) -> tuple[str, ...]:
    """The dataset splits a job reads: eval always; train when it trains or calibrates on it."""
    trains = (
        cfg.finetune.epochs > 0
        or (cfg.model.head != "keep" and cfg.model.train.epochs > 0)
        or (cfg.pruner.get("calibration_batches") or 0) > 0
    )
    return ("eval", "train") if trains else ("eval",)


def check_data(cfg):
    """The dataset the config names is there, and fits the model's head; returns it."""
    from hydra.utils import instantiate

    from sweep.data import Dataset

    for key in ("root", "path"):
        value = cfg.dataset.get(key)
        if value and not Path(str(value)).expanduser().exists():
            raise SweepConfigError(
                f"dataset.{key}={value} does not exist (dataset {cfg.dataset.get('name')})"
            )
    dataset: Dataset = instantiate(cfg.dataset)
    dataset.check(splits_used(cfg))
    if cfg.model.head == "keep" and dataset.class_map is None:
        raise SweepConfigError(
            f"model.head=keep needs a dataset whose classes map into the pretrained head (imagenet, imagenette, "
            f"or dataset.class_map=imagenet on an image tree named by synsets); {dataset.name!r} has none: "
            f"use model.head=fit"
        )
    if cfg.model.head == "keep" and cfg.model.weights == "random":
        raise SweepConfigError(
            "model.head=keep with model.weights=random keeps an untrained head: use head=fit or finetune"
        )
    if cfg.model.pretrained_file and not Path(cfg.model.pretrained_file).expanduser().is_file():
        raise SweepConfigError(f"model.pretrained_file={cfg.model.pretrained_file} does not exist")
    return dataset


def check_job_config(cfg):
    """Every check that needs only the composed config; cheap, run by the CLI and again by each job.
    Returns the checked dataset (a job uses it rather than building another)."""
    import_modules(list(cfg.get("imports") or []))
    schema.check_ranges(cfg)
    if cfg.sweep_id is not None:
        tracking.check_name("sweep_id", cfg.sweep_id)
    if cfg.tracking.parent_run_id is not None:
        tracking.check_name("tracking.parent_run_id", cfg.tracking.parent_run_id)
    if not _is_timm_model(cfg.model.name):
        raise SweepConfigError(
            f"model {cfg.model.alias!r} names unknown timm model {cfg.model.name!r}: see timm.list_models()"
        )
    check_device(cfg.device)
    return check_data(cfg)
