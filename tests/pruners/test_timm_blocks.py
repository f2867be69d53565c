"""timm families that needed a fix for structural pruning (sweep.pruners.timm_blocks), each on a small
config of the same blocks, so that a Torch-Pruning or timm upgrade that breaks one is caught."""

from __future__ import annotations

import contextlib
import copy
import time

import pytest
import timm
import torch
from hydra.utils import instantiate

from sweep.measure.counting import count
from sweep.pruners import timm_blocks, timm_checks
from sweep.pruners.base import Calibration, NotApplicable


def _mixer_kinds():
    from timm.layers import GatedMlp
    from timm.models import mlp_mixer

    return {
        "mixer": {},
        "resmlp": {
            "block_layer": mlp_mixer.ResBlock,
            "norm_layer": mlp_mixer.Affine,
            "mlp_ratio": 4,
            "stem_norm": False,
        },
        "gmlp": {
            "block_layer": mlp_mixer.SpatialGatingBlock,
            "mlp_layer": GatedMlp,
            "mlp_ratio": 6,
        },
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
    # ECA's channel attention: taken out of the channel graph (traced, minutes a pruning)
    "eca": ("ecaresnet26t", {}, 64),
}


def _metaformer(kind: str):
    """poolformer_s12's and caformer_s18's blocks, one per stage, narrower."""
    from timm.models import metaformer

    small = {"num_classes": 10, "depths": (1, 1, 1, 1), "dims": (32, 64, 128, 160)}
    if kind == "poolformer":
        return metaformer.MetaFormer(
            downsample_norm=None,
            mlp_act=torch.nn.GELU,
            mlp_bias=True,
            norm_layers=metaformer.GroupNorm1,
            layer_scale_init_values=1e-5,
            res_scale_init_values=None,
            use_mlp_head=False,
            **small,
        )
    return metaformer.MetaFormer(
        token_mixers=[
            metaformer.SepConv,
            metaformer.SepConv,
            metaformer.Attention,
            metaformer.Attention,
        ],
        norm_layers=[metaformer.LayerNorm2dNoBias] * 2 + [metaformer.LayerNormNoBias] * 2,
        head_dim=32,
        **small,
    )


METHODS = ("dg_group", "dg_magnitude", "dg_taylor", "dg_global")


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
    # CAFormer ranked globally: its Attention reshapes to the block's input width, so that group is
    # kept whole (pruner.kept_dense) and the rest pruned
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


def test_eca_channel_attention_passes_channels_through():
    model, _ = _build("eca")
    ecas = [m for m in model.modules() if type(m).__name__ == "EcaModule"]
    assert ecas and set(map(id, ecas)) <= set(map(id, timm_blocks._token_mixers(model)))


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


class _Folds(torch.nn.Module):
    """Folds its 8 channels to 4 with a fixed matrix (a buffer, which the dependency graph does not
    see): removing channels of `conv` breaks the fold, and nothing else in the model can be pruned."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.register_buffer("fold", torch.randn(4, 8, 1, 1))
        self.head = torch.nn.Linear(4, 10)

    def get_classifier(self):
        return self.head

    def forward(self, x):
        y = torch.nn.functional.conv2d(self.conv(x), self.fold)
        return self.head(y.mean((2, 3)))


def test_a_model_the_library_cannot_prune_is_refused_naming_its_block(compose):
    """Where keeping the failing layers whole leaves nothing to prune, the preflight refuses in one line,
    naming the model and the block, before anything is pruned, and leaves the model untouched."""
    torch.manual_seed(0)
    model, x = _Folds().eval(), torch.randn(1, 3, 8, 8)
    before = [p.clone() for p in model.parameters()]
    pruner = instantiate(compose(["pruner=dg_group"]).pruner)
    with pytest.raises(NotApplicable) as e:
        pruner.check(model, "folds", x)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("folds cannot be pruned structurally")
    assert "at 'head' (IndexError" in msg  # where the library failed
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not model.training
    assert pruner.kept_dense == ()
    pruner.check(model, "folds")  # without an example: no preflight


@pytest.mark.parametrize("method", ["dg_group", "dg_taylor", "dg_global"])
def test_layers_the_library_cannot_prune_are_kept_whole_and_the_rest_is_pruned(compose, method):
    """BEiT computes qkv with F.linear on the layer's weight (plus q/v biases): Torch-Pruning never sees
    the layer run, so the residual width cannot be pruned. The check finds that group, keeps it whole in
    every block, and the method prunes the rest (heads, MLP hidden width)."""
    model, x = _beit(), torch.randn(1, 3, 224, 224)
    dense = count(model, x)
    before = [p.clone() for p in model.parameters()]
    pruner = instantiate(compose([f"pruner={method}"]).pruner)
    pruner.check(model, "beit_base_patch16_224", x)
    assert pruner.kept_dense and all("*" in k for k in pruner.kept_dense)  # every repeat of a block
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    shapes = {n: p.shape for n, p in model.named_parameters()}
    cal = Calibration([(torch.randn(2, *x.shape[1:]), torch.tensor([1, 2]))])
    pruned = pruner.prune(copy.deepcopy(model), 0.5, x, cal).eval()
    with torch.no_grad():
        assert pruned(x).shape == (1, 10)
    assert count(pruned, x).macs < 0.9 * dense.macs
    kept = timm_checks.layers_matching(pruned, pruner.kept_dense)
    assert kept
    for name, p in pruned.named_parameters():  # kept layers keep their output channels
        owner = pruned.get_submodule(name.rpartition(".")[0])
        if owner in kept:
            assert p.shape[0] == shapes[name][0], name
    assert pruned.blocks[0].attn.qkv.in_features == 64  # the residual width is whole


def test_layer_patterns_match_every_repeat_of_a_block():
    assert timm_checks.layer_pattern("stages.2.blocks.11.attn.qkv") == "stages.*.blocks.*.attn.qkv"
    model = _beit()
    found = timm_checks.layers_matching(model, ("blocks.*.mlp.fc2",))
    assert found == [model.blocks[0].mlp.fc2]
    assert timm_checks.layers_matching(model, ("blocks.*.mlp",)) == [model.blocks[0].mlp]
    assert timm_checks.layers_matching(model, ()) == []


def test_glu_mlps_are_split_into_two_layers_with_the_same_output(compose):
    """EVA-02's GluMlp splits one layer's output in halves (`chunk`), which the graph cannot follow;
    rewritten as SwiGLU (two layers, the same weights) it computes the same and prunes."""
    torch.manual_seed(0)
    model = timm.create_model(
        "eva02_tiny_patch14_224", num_classes=10, img_size=56, embed_dim=32, depth=1, num_heads=2
    ).eval()
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        want = model(x)
        rewritten = copy.deepcopy(model)
        timm_blocks.rewrite(rewritten)
        assert type(rewritten.blocks[0].mlp).__name__ == "SwiGLU"
        torch.testing.assert_close(rewritten(x), want)
    dense = count(model, x[:1])
    pruner = instantiate(compose(["pruner=dg_group"]).pruner)
    pruner.check(model, "eva02_tiny_patch14_224", x[:1])
    pruned = pruner.prune(copy.deepcopy(model), 0.5, x[:1]).eval()
    assert pruned(x).shape == (2, 10)
    assert count(pruned, x[:1]).params_total < dense.params_total


def test_a_distilled_model_keeps_both_classifiers(compose):
    """DeiT-distilled (like LeViT and EfficientFormer) averages a second, distillation head into its
    output: neither head loses a class."""
    torch.manual_seed(0)
    model = timm.create_model(
        "deit_tiny_distilled_patch16_224", num_classes=10, embed_dim=32, depth=1, num_heads=2
    ).eval()
    x = torch.randn(1, 3, 224, 224)
    pruned = instantiate(compose(["pruner=dg_global"]).pruner).prune(model, 0.5, x)
    assert pruned.head.out_features == 10 and pruned.head_dist.out_features == 10
    assert pruned(x).shape == (1, 10)


def test_preflight_passes_a_model_it_can_prune(compose):
    model, x = _build("swin")
    instantiate(compose(["pruner=dg_group"]).pruner).check(model, "swin", x)


@pytest.mark.parametrize(
    "name, kwargs, block",
    [
        ("coatnet_nano_rw_224", {}, r"timm block maxxvit.TransformerBlock2d"),
        (
            "rexnet_100",
            {"drop_path_rate": 0.1},
            r"timm block rexnet.LinearBottleneck \(ReXNet partial residual with drop path\)",
        ),
    ],
)
def test_refused_blocks_are_named_before_anything_runs(compose, name, kwargs, block):
    model = timm.create_model(name, num_classes=10, **kwargs)
    t0 = time.monotonic()
    with pytest.raises(NotApplicable, match=block):
        instantiate(compose(["pruner=dg_group"]).pruner).check(model, name)
    assert time.monotonic() - t0 < 10  # refused up front, not after trying


@pytest.mark.parametrize("key", ["eva", "caformer"])
def test_head_pruning_says_it_does_not_apply_to_width_bound_attention(compose, key):
    """EVA's and MetaFormer's attention reshape their heads back to the model width, so fewer heads
    cannot fit: the method says it does not apply, in the words the coverage benchmark reads as 'n/a'."""
    if key == "eva":
        model = timm.create_model(
            "eva02_tiny_patch14_224",
            num_classes=10,
            img_size=56,
            embed_dim=32,
            depth=1,
            num_heads=2,
        ).eval()
        x = torch.randn(1, 3, 56, 56)
    else:
        model, x = _build("caformer")
    with pytest.raises(
        NotApplicable, match=r"^head pruning supports timm's Attention, whose width"
    ):
        instantiate(compose(["pruner=attn_heads"]).pruner).check(model, key, x)


def test_rexnet_partial_residual_is_split_into_two_layers_and_prunes(compose):
    """ReXNet adds its input to a slice of its output; rewritten with the last layer in two (the part the
    input is added to, and the rest) it computes the same, and the graph search ends."""
    torch.manual_seed(0)
    model = timm.create_model("rexnet_100", num_classes=10).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        want = model(x)
        rewritten = copy.deepcopy(model)
        timm_blocks.rewrite(rewritten)
        split = [m for m in rewritten.modules() if isinstance(m, timm_blocks.SplitLinearBottleneck)]
        assert split
        torch.testing.assert_close(rewritten(x), want)
    dense = count(model, x)
    pruner = instantiate(compose(["pruner=dg_group"]).pruner)
    pruner.check(model, "rexnet_100", x)
    pruned = pruner.prune(copy.deepcopy(model), 0.5, x).eval()
    assert pruned(x).shape == (1, 10)
    assert count(pruned, x).macs < 0.8 * dense.macs


def test_a_job_limit_inside_the_check_is_not_taken_for_a_refusal():
    """A time or memory limit that fires while the check prunes a copy ends the job with the limit
    named (limit_exceeded), not as 'cannot be pruned' nor as a group to keep whole."""
    from sweep.limits import LimitExceeded

    model, x = _beit(), torch.randn(1, 3, 224, 224)

    def over(*_):
        raise LimitExceeded("stage preflight ran past 1s", "preflight", "timeout")

    with pytest.raises(LimitExceeded):
        timm_checks.check_prunable(over, model, x, "beit")

    @contextlib.contextmanager
    def session(m, kept):
        over()
        yield

    with pytest.raises(LimitExceeded):
        timm_checks.find_unprunable(session, model, x)
