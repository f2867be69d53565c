"""timm families that needed a fix for structural pruning (sweep.pruners.timm_blocks), each on a small
config of the same blocks, so that a Torch-Pruning or timm upgrade that breaks one is caught."""

from __future__ import annotations

import time

import pytest
import timm
import torch
from hydra.utils import instantiate

from sweep.measure.counting import count
from sweep.pruners import timm_blocks
from sweep.pruners.base import Calibration, NotApplicable


def _mixer_kinds():
    from timm.layers import GatedMlp
    from timm.models import mlp_mixer as mm

    return {
        "mixer": {},
        "resmlp": {
            "block_layer": mm.ResBlock,
            "norm_layer": mm.Affine,
            "mlp_ratio": 4,
            "stem_norm": False,
        },
        "gmlp": {"block_layer": mm.SpatialGatingBlock, "mlp_layer": GatedMlp, "mlp_ratio": 6},
    }


# (timm name, kwargs of a small config with the family's blocks, input side); the MLP families have no
# small registered variant, so theirs is timm's MlpMixer class with the family's blocks, two of them
FIXED = {
    "swin": (
        "swin_tiny_patch4_window7_224",
        {"embed_dim": 32, "depths": (1, 1, 2, 1), "num_heads": (1, 2, 4, 8)},
        224,
    ),
    "mixer": ("mixer_s16_224", "mixer", 224),
    "resmlp": ("resmlp_12_224", "resmlp", 224),
    "gmlp": ("gmlp_ti16_224", "gmlp", 224),
    # MetaFormer's Scale keeps its channel count in a field; CAFormer adds attention_dim
    "poolformer": ("poolformer_s12", "poolformer", 224),
    "caformer": ("caformer_s18", "caformer", 224),
}


def _metaformer(kind: str):
    """poolformer_s12's and caformer_s18's blocks, one per stage, narrower."""
    from timm.models import metaformer as mf

    small = {"num_classes": 10, "depths": (1, 1, 1, 1), "dims": (32, 64, 128, 160)}
    if kind == "poolformer":
        return mf.MetaFormer(
            downsample_norm=None,
            mlp_act=torch.nn.GELU,
            mlp_bias=True,
            norm_layers=mf.GroupNorm1,
            layer_scale_init_values=1e-5,
            res_scale_init_values=None,
            use_mlp_head=False,
            **small,
        )
    return mf.MetaFormer(
        token_mixers=[mf.SepConv, mf.SepConv, mf.Attention, mf.Attention],
        norm_layers=[mf.LayerNorm2dNoBias] * 2 + [mf.LayerNormNoBias] * 2,
        head_dim=32,
        **small,
    )


METHODS = ("dg_group", "dg_magnitude", "dg_taylor", "dg_global")

# MetaFormer's Attention reshapes its output to the block's input width: ranked globally, attention and
# block widths are pruned apart, and the preflight refuses
REFUSED = {
    ("caformer", "dg_global"): r"running the pruned model failed in timm block metaformer.Attention"
}


def _build(key: str):
    name, kwargs, side = FIXED[key]
    torch.manual_seed(0)
    if kwargs in ("poolformer", "caformer"):
        model = _metaformer(kwargs)
    elif isinstance(kwargs, str):
        from timm.models.mlp_mixer import MlpMixer

        model = MlpMixer(
            num_classes=10, patch_size=16, num_blocks=2, embed_dim=64, **_mixer_kinds()[kwargs]
        )
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
    if (key, method) in REFUSED:
        with pytest.raises(NotApplicable, match=REFUSED[key, method]):
            pruner.check(model, FIXED[key][0], x)
        return
    pruner.check(model, FIXED[key][0], x)
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


def test_swin_patch_merging_keeps_its_fields_in_step(compose):
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


def test_fpgm_on_grouped_convolutions(compose):
    """Torch-Pruning 1.6's FPGM raises on the input side of grouped convolutions (RegNet, ResNeXt)."""
    torch.manual_seed(0)
    model = timm.create_model("regnetx_002", num_classes=10).eval()
    x = torch.randn(1, 3, 224, 224)
    dense = count(model, x)
    pruned = instantiate(compose(["pruner=dg_fpgm"]).pruner).prune(model, 0.5, x)
    assert pruned(x).shape == (1, 10)
    assert count(pruned, x).macs < 0.5 * dense.macs


def _beit():
    torch.manual_seed(0)
    return timm.create_model(
        "beit_base_patch16_224", num_classes=10, embed_dim=64, depth=1, num_heads=2
    ).eval()


def test_a_model_the_library_cannot_prune_is_refused_naming_its_block(compose):
    """BEiT computes qkv with F.linear on the layer's weight (plus q/v biases): Torch-Pruning never sees
    the layer run, prunes its input only, and the pruned model fails. The preflight says so in one line
    before anything is pruned, naming the model and the timm block."""
    model, x = _beit(), torch.randn(1, 3, 224, 224)
    before = [p.clone() for p in model.parameters()]
    pruner = instantiate(compose(["pruner=dg_group"]).pruner)
    with pytest.raises(NotApplicable) as e:
        pruner.check(model, "beit_base_patch16_224", x)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("beit_base_patch16_224 cannot be pruned structurally")
    assert "timm block beit.Attention at 'blocks.0.attn'" in msg
    # the model itself is untouched (the preflight prunes a copy) and still in eval mode
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not model.training
    pruner.check(model, "beit_base_patch16_224")  # without an example: no preflight


def test_preflight_passes_a_model_it_can_prune(compose):
    model, x = _build("swin")
    instantiate(compose(["pruner=dg_group"]).pruner).check(model, "swin", x)


@pytest.mark.parametrize(
    "name, block",
    [
        ("coatnet_nano_rw_224", r"timm block maxxvit.TransformerBlock2d"),
        ("rexnet_100", r"timm block rexnet.LinearBottleneck \(ReXNet partial residual\)"),
    ],
)
def test_refused_blocks_are_named_before_anything_runs(compose, name, block):
    model = timm.create_model(name, num_classes=10)
    t0 = time.monotonic()
    with pytest.raises(NotApplicable, match=block):
        instantiate(compose(["pruner=dg_group"]).pruner).check(model, name)
    assert time.monotonic() - t0 < 10  # refused up front, not after trying
