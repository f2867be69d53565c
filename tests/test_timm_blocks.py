"""timm families that needed a fix for structural pruning (sweep.pruners.timm_blocks), each on a small
config of the same blocks, so that a Torch-Pruning or timm upgrade that breaks one is caught."""

from __future__ import annotations

import pytest
import timm
import torch
from hydra.utils import instantiate

from sweep.measure.counting import count
from sweep.pruners import timm_blocks
from sweep.pruners.base import Calibration

def _mixer_kinds():
    from timm.layers import GatedMlp
    from timm.models import mlp_mixer as mm

    return {
        "mixer": {},
        "resmlp": {"block_layer": mm.ResBlock, "norm_layer": mm.Affine, "mlp_ratio": 4, "stem_norm": False},
        "gmlp": {"block_layer": mm.SpatialGatingBlock, "mlp_layer": GatedMlp, "mlp_ratio": 6},
    }


# (timm name, kwargs of a small config with the family's blocks, input side); the MLP families have no
# small registered variant, so theirs is timm's MlpMixer class with the family's blocks, two of them
FIXED = {
    "swin": ("swin_tiny_patch4_window7_224", {"embed_dim": 32, "depths": (1, 1, 2, 1), "num_heads": (1, 2, 4, 8)}, 224),
    "mixer": ("mixer_s16_224", "mixer", 224),
    "resmlp": ("resmlp_12_224", "resmlp", 224),
    "gmlp": ("gmlp_ti16_224", "gmlp", 224),
}

METHODS = ("dg_group", "dg_magnitude", "dg_taylor", "dg_global")


def _build(key: str):
    name, kwargs, side = FIXED[key]
    torch.manual_seed(0)
    if isinstance(kwargs, str):
        from timm.models.mlp_mixer import MlpMixer

        model = MlpMixer(num_classes=10, patch_size=16, num_blocks=2, embed_dim=64, **_mixer_kinds()[kwargs])
    else:
        model = timm.create_model(name, num_classes=10, **kwargs)
    model.eval()
    return model, torch.randn(1, 3, side, side)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("key", list(FIXED))
def test_fixed_family_prunes_and_runs(compose, key, method):
    model, x = _build(key)
    dense = count(model, x)
    tokens = {id(m): getattr(m, "in_features", None) for m in timm_blocks._token_mixers(model)}
    pruner = instantiate(compose([f"pruner={method}"]).pruner)
    pruner.check(model, FIXED[key][0])
    cal = Calibration([(torch.randn(2, *x.shape[1:]), torch.tensor([1, 2]))])
    pruned = pruner.prune(model, 0.5, x, cal).eval()
    with torch.no_grad():
        assert pruned(x).shape == (1, 10)
    c = count(pruned, x)
    assert c.params_total < 0.8 * dense.params_total, (c.params_total, dense.params_total)
    assert c.macs < 0.8 * dense.macs, (c.macs, dense.macs)
    # the classifier keeps its classes; token-mixing layers keep the token count, and their class
    for m in pruned.modules():
        if id(m) in tokens and tokens[id(m)] is not None:
            assert m.in_features == tokens[id(m)]
        assert not isinstance(m, timm_blocks.TokenMixing)
    assert pruned.get_classifier().out_features == 10


def test_swin_patch_merging_keeps_its_fields_in_step():
    model, x = _build("swin")
    pruner = instantiate(compose_pruner("dg_group"))
    pruner.prune(model, 0.5, x)
    merges = [m for m in model.modules() if timm_blocks._is_patch_merging(m)]
    assert merges
    for m in merges:
        assert m.reduction.in_features == 4 * m.dim
        assert m.reduction.out_features == m.out_dim
        assert m.norm.normalized_shape[0] in (4 * m.dim, m.out_dim)


def test_relative_position_tables_are_never_pruned():
    model, x = _build("swin")
    before = {id(p): p.shape for p in timm_blocks._shape_bound_params(model)}
    assert before
    instantiate(compose_pruner("dg_group")).prune(model, 0.5, x)
    for m in model.modules():
        p = getattr(m, "relative_position_bias_table", None)
        if p is not None:
            assert p.shape[-1] == m.num_heads


def compose_pruner(name: str):
    from omegaconf import OmegaConf

    from sweep.config import config_dir

    return OmegaConf.load(config_dir() / "pruner" / f"{name}.yaml")
