"""What Torch-Pruning must be told about timm's blocks, in one place, one entry per block.

Torch-Pruning follows channels through the autograd graph and takes every op it does not know for an
element-wise one: a transpose, a reshape to 4x the channels, a linear layer applied along the token
axis. timm's blocks that do such things need one of
  * a customised pruner for the block (Torch-Pruning's `customized_pruners`): Swin's patch merging,
    whose linear layer reads 2x2 neighbouring tokens' channels side by side;
  * to be taken out of the channel graph: the token-mixing layers of MLP-Mixer, ResMLP and gMLP, whose
    width is the number of tokens (they act on every channel alike, so channels pass through them);
  * parameters never pruned: tables indexed by relative position, one column per head;
  * or, where none of this is enough yet, a refusal before pruning that names the block and why.
`configure(model)` gathers what the model's blocks need; `refusal(model)` says why it cannot be pruned.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch.nn as nn


def _tp():
    import torch_pruning as tp

    return tp


def _block(module: nn.Module) -> str:
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


# ---- refusals ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Refusal:
    """A timm block structural pruning cannot handle yet, found by `match`, and why."""

    block: str
    why: str
    match: Callable[[nn.Module], bool]


REFUSALS: list[Refusal] = []


def refusal(model: nn.Module) -> str | None:
    """One line naming the first block of `model` that structural pruning cannot handle, and why."""
    for m in model.modules():
        for r in REFUSALS:
            if r.match(m):
                return f"timm block {_block(m)} ({r.block}): {r.why}"
    return None


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
