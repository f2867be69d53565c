"""Benchmark neural-network pruning methods on timm image models, one Hydra sweep at a time.

Importing the package registers its typed config schema with Hydra, so Hydra's compose API works
after `import sweep` alone (notebooks, tests):

    import sweep
    from hydra import compose, initialize_config_dir
    with initialize_config_dir(config_dir=str(sweep.config_dir()), version_base="1.3"):
        cfg = compose("sweep", overrides=["model=tiny_cnn", "pruner=dg_group"])
"""

__version__ = "0.1.0"

from sweep.config import config_dir  # noqa: E402  (registers the schema in Hydra's ConfigStore)

__all__ = ["config_dir", "__version__"]
