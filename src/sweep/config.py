"""Where the Hydra configs live, and the checks that run before any model is built.

Importing this module registers the typed schema (sweep.schema) and the config nodes for timm model
names in Hydra's ConfigStore: everything that composes a sweep config imports it first.
"""

from __future__ import annotations

import os
from pathlib import Path

from sweep import schema, tracking
from sweep.errors import SweepConfigError

GROUPS = ("model", "pruner", "dataset")

schema.register()


def config_dir() -> Path:
    """conf/ of this checkout (src layout, editable install), SWEEP_CONFIG_DIR, or ./conf."""
    env = os.environ.get("SWEEP_CONFIG_DIR")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2] / "conf", Path.cwd() / "conf"]
    for c in candidates:
        if (c / "sweep.yaml").is_file():
            return c.resolve()
    raise SweepConfigError(
        f"no Hydra config found (looked for sweep.yaml in {', '.join(map(str, candidates))}); "
        f"set SWEEP_CONFIG_DIR"
    )


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def _choices(group: str) -> str:
    extra = " or any timm model name (timm.list_models())" if group == "model" else ""
    return ", ".join(group_options(group)) + extra


def check_choice(group: str, value: str) -> None:
    """A group choice must be a yaml in conf/<group>/; a model may also be any timm model name."""
    if value in group_options(group):
        return
    if group == "model":
        from sweep.models import is_known_model

        if is_known_model(value):
            register_timm_model(value)
            return
    raise SweepConfigError(f"unknown {group} {value!r}: choose from {_choices(group)}")


def register_timm_model(name: str) -> None:
    """Make `model=<any timm name>` composable without a yaml: a typed node in Hydra's ConfigStore
    (passed on to launcher workers with Hydra's own state); input size and preprocessing are the
    model's own (timm's pretrained config)."""
    from hydra.core.config_store import ConfigStore

    node = schema.ModelConfig(alias=name, name=name)
    ConfigStore.instance().store(group="model", name=name, node=node)


def check_device(value: str) -> None:
    import torch

    if value.startswith("cuda") and not torch.cuda.is_available():
        raise SweepConfigError(f"device={value} but CUDA is not available here: choose auto or cpu")


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
    dataset.check()
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
    from sweep.models import is_known_model

    schema.check_ranges(cfg)
    if cfg.sweep_id is not None:
        tracking.check_name("sweep_id", cfg.sweep_id)
    if cfg.tracking.parent_run_id is not None:
        tracking.check_name("tracking.parent_run_id", cfg.tracking.parent_run_id)
    if not is_known_model(cfg.model.name):
        raise SweepConfigError(
            f"model {cfg.model.alias!r} names unknown timm model {cfg.model.name!r}: see timm.list_models()"
        )
    check_device(cfg.device)
    return check_data(cfg)
