"""What Torch-Pruning must be told about timm's blocks, in one place, one entry per block.

Torch-Pruning follows channels through the autograd graph and takes every op it does not know for an
element-wise one: a transpose, a reshape to 4x the channels, a linear layer applied along the token
axis. timm's blocks that do such things need one of
  * a customised pruner for the block (Torch-Pruning's `customized_pruners`): Swin's patch merging,
    whose linear layer reads 2x2 neighbouring tokens' channels side by side;
  * to be taken out of the channel graph: the token-mixing layers of MLP-Mixer, ResMLP and gMLP, whose
    width is the number of tokens (they act on every channel alike, so channels pass through them),
    and ECA's channel attention (a 1-D convolution along the channels, for any count of them);
  * parameters never pruned: tables indexed by relative position, one column per head;
  * a rewrite before pruning into blocks that compute the same from the same weights and that the graph
    can follow: GluMlp (one layer split in halves) as SwiGLU, ReXNet's partial residual with its last
    layer in two;
  * bookkeeping after pruning, for blocks that keep sizes as fields and reshape by them: attention
    (`num_heads`, `head_dim`, `attn_dim` / `attention_dim`), MetaFormer's Scale (`shape`);
  * for what none of this covers, layers kept whole: `find_unprunable` prunes a copy group by group and
    names the layers whose groups break it (in every repeat of their block), and the rest is pruned;
  * or, where nothing is left to prune or trying costs too much, a refusal before pruning that names
    the block and why (`timm_checks`).
`rewrite(model)` and `configure(model)` prepare a pruning, `after_pruning(model)` updates the blocks'
fields; `timm_checks` finds what to keep whole and refuses, in one line, a model that cannot be pruned.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from timm.models import rexnet as _rexnet


def _tp():
    import torch_pruning as tp

    return tp


def block_name(module: nn.Module) -> str:
    return f"{type(module).__module__.removeprefix('timm.models.')}.{type(module).__name__}"


# ---- Swin patch merging --------------------------------------------------------------------------------
def _is_patch_merging(m: nn.Module) -> bool:
    """timm's Swin (v1, v2) PatchMerging: 2x2 tokens' channels concatenated, then a linear reduction."""
    return (
        type(m).__name__ == "PatchMerging"
        and type(m).__module__.startswith("timm.models.swin_transformer")
        and isinstance(getattr(m, "reduction", None), nn.Linear)
        and isinstance(getattr(m, "norm", None), nn.LayerNorm)
    )


def _patch_merging_pruner():
    tp = _tp()
    fn = tp.pruner.function

    class PatchMergingPruner(tp.pruner.BasePruningFunc):
        """Input channel c of a PatchMerging is read at c, c + C, c + 2C and c + 3C of the reduction's
        input (and of the norm before it, in Swin v1); its outputs are the reduction's (and the norm's
        after it, in Swin v2)."""

        TARGET_MODULES = None

        @staticmethod
        def _norm_first(layer) -> bool:
            return layer.norm.normalized_shape[0] == layer.reduction.in_features

        def prune_in_channels(self, layer, idxs):
            dim = layer.reduction.in_features // 4
            four = [i + k * dim for k in range(4) for i in idxs]
            if self._norm_first(layer):
                fn.prune_layernorm_out_channels(layer.norm, four)
            fn.prune_linear_in_channels(layer.reduction, four)
            layer.dim = layer.reduction.in_features // 4
            return layer

        def prune_out_channels(self, layer, idxs):
            norm_after = not self._norm_first(layer)
            fn.prune_linear_out_channels(layer.reduction, idxs)
            if norm_after:
                fn.prune_layernorm_out_channels(layer.norm, idxs)
            layer.out_dim = layer.reduction.out_features
            return layer

        def get_in_channels(self, layer):
            return layer.reduction.in_features // 4

        def get_out_channels(self, layer):
            return layer.reduction.out_features

    return PatchMergingPruner()


# ---- token-mixing layers (MLP-Mixer, ResMLP, gMLP) ----------------------------------------------------
def _token_mixers(model: nn.Module) -> list[nn.Module]:
    """Layers applied along the token axis (after a transpose): their width is the token count."""
    found = []
    for m in model.modules():
        name = type(m).__name__
        if name == "MixerBlock":
            found.append(m.mlp_tokens)
        elif name == "ResBlock" and isinstance(getattr(m, "linear_tokens", None), nn.Linear):
            found.append(m.linear_tokens)
        elif name == "SpatialGatingUnit" and isinstance(getattr(m, "proj", None), nn.Linear):
            found.append(m.proj)
        elif name in ("EcaModule", "CecaModule") and type(m).__module__.startswith("timm.layers"):
            # efficient channel attention: a 1-D convolution along the channel axis gates each
            # channel from its neighbours, the same weights for any channel count; traced through,
            # its reshapes cost Torch-Pruning minutes of index lists per pruning (ecaresnet50d: 445 s)
            found.append(m)
    return found


class TokenMixing:
    """Marks a token-mixing layer for the length of one pruning (its class is swapped for a subclass of
    itself, so that Torch-Pruning's by-type customised pruner finds it, and swapped back after)."""


def _token_mixing_pruner():
    tp = _tp()

    class TokenMixingPruner(tp.pruner.BasePruningFunc):
        """Channels pass through unchanged (the layer mixes tokens, the same for every channel): pruning a
        channel removes nothing here, and in and out channels are one and the same."""

        TARGET_MODULES = None

        def prune_out_channels(self, layer, idxs):
            return layer

        prune_in_channels = prune_out_channels  # in channel c is out channel c

        def get_out_channels(self, layer):
            return None

        get_in_channels = get_out_channels

    return TokenMixingPruner()


@contextlib.contextmanager
def _marked(layers: list[nn.Module]) -> Iterator[dict[type, type]]:
    """Swap each layer's class for a TokenMixing subclass of it; {subclass: original} while inside."""
    subclasses: dict[type, type] = {}
    swapped = []
    for layer in layers:
        cls = type(layer)
        sub = next((s for s, c in subclasses.items() if c is cls), None)
        if sub is None:
            sub = type(f"TokenMixing{cls.__name__}", (cls, TokenMixing), {})
            subclasses[sub] = cls
        layer.__class__ = sub
        swapped.append((layer, cls))
    try:
        yield subclasses
    finally:
        for layer, cls in swapped:
            layer.__class__ = cls


# ---- rewritten before pruning: GLU MLPs ------------------------------------------------------------------
def _split_glu(glu: nn.Module) -> nn.Module:
    """timm's GluMlp computes fc1 once and splits it in two halves (value and gate) with `chunk`, which
    the dependency graph cannot follow; SwiGLU, the same function with the halves as two layers, it
    can. The halves' weights are copied, so the output is unchanged."""
    from timm.layers.mlp import SwiGLU

    fc1, half = glu.fc1, glu.fc1.out_features // 2
    gate_half, value_half = (slice(half, None), slice(None, half))
    if not glu.gate_last:
        gate_half, value_half = value_half, gate_half
    out = SwiGLU(
        fc1.in_features,
        half,
        glu.fc2.out_features,
        bias=(fc1.bias is not None, glu.fc2.bias is not None),
    )
    for name, rows in (("fc1_g", gate_half), ("fc1_x", value_half)):
        layer = getattr(out, name)
        layer.weight.data = fc1.weight.data[rows].clone()
        if fc1.bias is not None:
            layer.bias.data = fc1.bias.data[rows].clone()
    out.act, out.drop1, out.norm, out.fc2, out.drop2 = (
        glu.act,
        glu.drop1,
        glu.norm,
        glu.fc2,
        glu.drop2,
    )
    return out.to(fc1.weight.device, fc1.weight.dtype)


# ---- rewritten before pruning: ReXNet's partial residual -------------------------------------------------
class SplitLinearBottleneck(_rexnet.LinearBottleneck):
    """ReXNet's block adds its input to the first `in_channels` of its output only (a slice, then a
    concatenation), and Torch-Pruning's search for groups through that slice does not end. Here the last
    layer is two: `conv_pwl` makes the channels the input is added to, `conv_pwl_rest` the others, so the
    graph sees an add and a concatenation of whole layers. Same weights, same output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.conv_exp is not None:
            x = self.conv_exp(x)
        x = self.conv_dw(x)
        if self.se is not None:
            x = self.se(x)
        x = self.act_dw(x)
        return torch.cat([self.conv_pwl(x) + shortcut, self.conv_pwl_rest(x)], dim=1)


def _splittable(block: nn.Module) -> bool:
    # with drop path (training only), one draw covers both parts in timm's block: not split
    return (
        type(block) is _rexnet.LinearBottleneck and block.use_shortcut and block.drop_path is None
    )


def _split_rexnet(block: nn.Module) -> None:
    fn = _tp().pruner.function
    c, n = block.in_channels, block.conv_pwl.conv.out_channels
    rest = copy.deepcopy(block.conv_pwl)
    for layer, drop in ((rest, range(c)), (block.conv_pwl, range(c, n))):
        fn.prune_conv_out_channels(layer.conv, list(drop))
        fn.prune_batchnorm_out_channels(layer.bn, list(drop))
    block.conv_pwl_rest = rest
    block.__class__ = SplitLinearBottleneck


def rewrite(model: nn.Module) -> None:
    """Blocks replaced, in place, by ones that compute the same and that Torch-Pruning can follow."""
    for block in list(model.modules()):
        if _splittable(block):
            _split_rexnet(block)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if (
                type(child).__name__ == "GluMlp"
                and type(child).__module__ == "timm.layers.mlp"
                and isinstance(getattr(child, "fc1", None), nn.Linear)
            ):
                setattr(parent, name, _split_glu(child))


# ---- parameters never pruned -------------------------------------------------------------------------
def _shape_bound_params(model: nn.Module) -> list[nn.Parameter]:
    """Relative position tables (one column per head, one row per offset): bound to the window and the
    heads, never to channels."""
    params = []
    for m in model.modules():
        for name in ("relative_position_bias_table", "rel_pos_bias_table"):
            p = getattr(m, name, None)
            if isinstance(p, nn.Parameter):
                params.append(p)
    return params


# ---- bookkeeping after pruning ---------------------------------------------------------------------------
def attention_blocks(model: nn.Module) -> list[nn.Module]:
    """Multi-head attention blocks with a fused qkv projection (timm's Attention and look-alikes:
    ViT, DeiT, Swin's WindowAttention, MetaFormer's Attention)."""
    return [
        m
        for m in model.modules()
        if isinstance(getattr(m, "qkv", None), nn.Linear)
        and isinstance(getattr(m, "num_heads", None), int)
    ]


def sync_attention(attn: nn.Module, num_heads: int) -> None:
    """After head dims are pruned, the block's fields must follow qkv's new width, or its reshapes (to
    num_heads x head_dim, and back to the attention width) break."""
    head_dim = attn.qkv.out_features // 3 // num_heads
    attn.num_heads = num_heads
    attn.head_dim = head_dim
    for name in ("attn_dim", "attention_dim"):
        if hasattr(attn, name):
            setattr(attn, name, num_heads * head_dim)


def _sync_scales(model: nn.Module) -> None:
    """MetaFormer's Scale (PoolFormer, ConvFormer, CAFormer) multiplies by `scale.view(shape)`, with the
    channel count kept in `shape`."""
    for m in model.modules():
        shape, scale = getattr(m, "shape", None), getattr(m, "scale", None)
        if (
            type(m).__name__ == "Scale"
            and isinstance(shape, tuple)
            and isinstance(scale, nn.Parameter)
        ):
            m.shape = (scale.numel(), *shape[1:])


def after_pruning(model: nn.Module, heads: dict[nn.Module, int]) -> None:
    """Fields of timm blocks that must follow their pruned layers; `heads`: attention block -> heads."""
    for attn, num_heads in heads.items():
        sync_attention(attn, num_heads)
    _sync_scales(model)


# ---- what a model needs ------------------------------------------------------------------------------------
@dataclass
class Setup:
    """Arguments for Torch-Pruning's pruner, and what to do around its step."""

    customized_pruners: dict = field(default_factory=dict)
    ignored_params: list[nn.Parameter] = field(default_factory=list)
    token_mixers: list[nn.Module] = field(default_factory=list)

    @contextlib.contextmanager
    def around(self) -> Iterator[None]:
        """Token-mixing layers marked while the graph is built and pruned."""
        with _marked(self.token_mixers) as subclasses:
            if subclasses:
                pruner = _token_mixing_pruner()
                for sub in subclasses:
                    self.customized_pruners[sub] = pruner
            try:
                yield
            finally:
                for sub in subclasses:
                    self.customized_pruners.pop(sub, None)


def configure(model: nn.Module) -> Setup:
    setup = Setup()
    merging = {type(m) for m in model.modules() if _is_patch_merging(m)}
    if merging:
        pruner = _patch_merging_pruner()
        setup.customized_pruners.update({t: pruner for t in merging})
    setup.ignored_params = _shape_bound_params(model)
    setup.token_mixers = _token_mixers(model)
    return setup
