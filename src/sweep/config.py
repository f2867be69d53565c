"""Where the Hydra configs live, and the checks that run before any model is built."""
from __future__ import annotations

import os
from pathlib import Path

from sweep.errors import SweepConfigError

GROUPS = ("model", "pruner", "dataset")


def config_dir() -> Path:
    """conf/ of this checkout (src layout, editable install), SWEEP_CONFIG_DIR, or ./conf."""
    env = os.environ.get("SWEEP_CONFIG_DIR")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2] / "conf", Path.cwd() / "conf"]
    for c in candidates:
        if (c / "sweep.yaml").is_file():
            return c.resolve()
    raise SweepConfigError(f"no Hydra config found (looked for sweep.yaml in {', '.join(map(str, candidates))}); "
                           f"set SWEEP_CONFIG_DIR")


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def _choices(group: str) -> str:
    extra = " or any timm model name (timm.list_models())" if group == "model" else ""
    return ", ".join(group_options(group)) + extra


def check_ratio(value) -> float:
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        raise SweepConfigError(f"ratio={value!r} is not a number: choose a float in [0, 1)") from None
    if not 0.0 <= ratio < 1.0:
        raise SweepConfigError(f"ratio={value} is outside [0, 1): choose a float in [0, 1), e.g. 0.3,0.5,0.7")
    return ratio


def check_choice(group: str, value: str) -> None:
    """A group choice must be a yaml in conf/<group>/; a model may also be any timm model name."""
    if value in group_options(group):
        return
    if group == "model":
        from sweep.models import is_known_model

        if is_known_model(value):
            return
    raise SweepConfigError(f"unknown {group} {value!r}: choose from {_choices(group)}")


def check_device(value: str) -> None:
    import torch

    if value in ("auto", "cpu"):
        return
    if value.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SweepConfigError(f"device={value} but CUDA is not available here: choose auto or cpu")
        return
    raise SweepConfigError(f"device={value!r}: choose auto, cpu, cuda or cuda:N")


def check_data(dataset_cfg) -> None:
    for key in ("root", "path"):
        value = dataset_cfg.get(key) if hasattr(dataset_cfg, "get") else None
        if value and not Path(str(value)).expanduser().exists():
            raise SweepConfigError(f"dataset.{key}={value} does not exist (dataset {dataset_cfg.get('name')})")


def check_job_config(cfg) -> None:
    """Every check that needs only the composed config; cheap, run by the CLI and again by each job."""
    check_ratio(cfg.ratio)
    from sweep.models import is_known_model

    if not is_known_model(cfg.model.name):
        raise SweepConfigError(f"model {cfg.model.alias!r} names unknown timm model {cfg.model.name!r}: "
                               f"see timm.list_models()")
    check_device(str(cfg.device))
    check_data(cfg.dataset)
    if cfg.model.weights not in ("pretrained", "random"):
        raise SweepConfigError(f"model.weights={cfg.model.weights!r}: choose pretrained or random")
    from omegaconf import OmegaConf

    from sweep.measure.latency import LatencySettings

    try:
        LatencySettings(**OmegaConf.to_container(cfg.measure, resolve=True))
    except (TypeError, ValueError) as e:
        raise SweepConfigError(str(e).splitlines()[0]) from None
