"""The config groups compose with Hydra's compose API and name what they should."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from sweep.config import group_options
from sweep.pruners.base import Pruner

SEED_COUNTS = {
    "c": ("convnext_large", 196_245_706),
    "e": ("efficientnet_b4", 17_566_546),
    "v": ("vit_large_patch16_224", 303_311_882),
    "m": ("mobilenetv4_conv_large", 31_322_674),
}


def test_defaults_compose(compose):
    cfg = compose()
    assert cfg.model.alias == "tiny_cnn" and cfg.dataset.name == "digits"
    assert 0 <= cfg.ratio < 1
    assert cfg.tracking.uri.startswith("sqlite:///")


@pytest.mark.parametrize("alias", sorted(SEED_COUNTS))
def test_seed_aliases_name_the_seed_models(compose, alias):
    cfg = compose([f"model={alias}"])
    assert cfg.model.name == SEED_COUNTS[alias][0]
    assert cfg.model.weights == "pretrained"


def test_seed_parameter_counts_with_ten_classes():
    import timm
    import torch

    for alias, (name, expected) in SEED_COUNTS.items():
        with torch.device("meta"):
            model = timm.create_model(name, num_classes=10)
        assert sum(p.numel() for p in model.parameters()) == expected, alias


@pytest.mark.parametrize("name", group_options("pruner"))
def test_every_pruner_instantiates(compose, name):
    pruner = instantiate(compose([f"pruner={name}"]).pruner)
    assert isinstance(pruner, Pruner) and pruner.name == name
    assert pruner.ratio_means


def test_environment_overrides_tracking_uri(compose, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/x.db")
    assert compose().tracking.uri == f"sqlite:///{tmp_path}/x.db"
    assert compose(["tracking.uri=http://127.0.0.1:5000"]).tracking.uri == "http://127.0.0.1:5000"


def test_numbers_arrive_typed(compose):
    cfg = compose(["ratio=0", "measure.batch_size=2", "model.train.lr=1"])
    assert type(cfg.ratio) is float and cfg.ratio == 0.0  # `ratio=0` is an int on the command line
    assert type(cfg.measure.batch_size) is int and type(cfg.model.train.lr) is float


@pytest.mark.parametrize(
    "override, value",
    [
        ("job.max_memory_gb=16", 16),
        ("job.max_memory_gb=2.5", 2.5),
        ("job.stage_timeout_s.prune=3", 3),
        ("job.stage_timeout_s.prune=auto", "auto"),
    ],
)
def test_limits_take_whole_numbers_decimals_and_auto(compose, override, value):
    from sweep.config.schema import check_ranges

    cfg = compose([override])
    key, _ = override.split("=")
    assert OmegaConf.select(cfg, key) == value
    check_ranges(cfg)


def test_model_yaml_states_only_what_differs(compose):
    """A seed model's yaml names the model; the rest is the schema's default."""
    cfg = compose(["model=c"])
    assert cfg.model.weights == "pretrained" and cfg.model.head == "fit" and cfg.model.kwargs == {}
    assert cfg.model.input_size is None  # the model's own, from timm's pretrained config


@pytest.mark.parametrize("value, ok", [("auto", True), ("true", True), ("false", True), ("maybe", False)])  # fmt: skip
def test_measure_profile_is_auto_true_or_false(compose, value, ok):
    from sweep.config.schema import check_ranges
    from sweep.errors import SweepConfigError

    cfg = compose([f"measure.profile={value}"])
    if ok:
        check_ranges(cfg)
        return
    with pytest.raises(
        SweepConfigError, match=r"^measure.profile='maybe' is not valid: choose auto, true, false$"
    ):
        check_ranges(cfg)


def test_a_number_for_an_auto_true_false_key_gets_its_choices():
    from sweep.config.schema import describe_type_error

    hydra_said = (
        "Error merging override measure.profile=3\nValue '3' of type 'int' is incompatible with "
        "type hint 'Union[bool, str]'\n    full_key: measure.profile"
    )
    assert describe_type_error(hydra_said) == (
        "measure.profile='3' is not valid: choose auto, true, false"
    )
