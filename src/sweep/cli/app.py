"""The Hydra task function: one job of a sweep."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from sweep.config import config_dir


@hydra.main(config_path=str(config_dir()), config_name="sweep", version_base="1.3")
def hydra_main(cfg: DictConfig) -> dict:
    from sweep.job import run_job_isolated

    return run_job_isolated(cfg)
