"""Attention-head pruning: whole heads leave every multi-head attention block, nothing else changes.

Torch-Pruning removes heads only together with width pruning, so this method slices timm's Attention
itself: the qkv rows of a head (in q, k and v), the proj columns that read it, and the block's
bookkeeping (`num_heads`, `attn_dim`). Head importance is the L2 norm of those weights (group-level
magnitude, the head's q, k, v rows and proj columns together).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from sweep.pruners import timm_blocks, timm_checks
from sweep.pruners.base import Calibration, Family, NotApplicable, PruneKind, Pruner

HEADS = Family("attention_heads", "Attention-head pruning (whole heads of timm's Attention)", 3)


# attention blocks that reshape their heads' output to the block's input width: fewer heads cannot fit
WIDTH_BOUND = {("timm.models.eva", "EvaAttention"), ("timm.models.metaformer", "Attention")}


def _head_rows(attn: nn.Module, heads: list[int]) -> torch.Tensor:
    """qkv output rows of `heads`, laid out (3, num_heads, head_dim) as timm's reshape reads them."""
    h, d = attn.num_heads, attn.head_dim
    return torch.tensor([p * h * d + i * d + j for p in range(3) for i in heads for j in range(d)])


def _head_cols(attn: nn.Module, heads: list[int]) -> torch.Tensor:
    d = attn.head_dim
    return torch.tensor([i * d + j for i in heads for j in range(d)])


def head_importance(attn: nn.Module) -> torch.Tensor:
    h, d = attn.num_heads, attn.head_dim
    qkv = attn.qkv.weight.detach().view(3, h, d, -1).pow(2).sum(dim=(0, 2, 3))
    proj = attn.proj.weight.detach().view(attn.proj.out_features, h, d).pow(2).sum(dim=(0, 2))
    return (qkv + proj).sqrt()


def _slice_linear(layer: nn.Linear, idx: torch.Tensor, dim: int) -> None:
    layer.weight = nn.Parameter(layer.weight.detach().index_select(dim, idx).clone())
    if dim == 0:
        if layer.bias is not None:
            layer.bias = nn.Parameter(layer.bias.detach()[idx].clone())
        layer.out_features = len(idx)
    else:
        layer.in_features = len(idx)


def remove_heads(attn: nn.Module, drop: list[int]) -> None:
    keep = [i for i in range(attn.num_heads) if i not in set(drop)]
    _slice_linear(attn.qkv, _head_rows(attn, keep), 0)
    _slice_linear(attn.proj, _head_cols(attn, keep), 1)
    norm = getattr(attn, "norm", None)
    if isinstance(norm, nn.LayerNorm):  # a norm over the attention width, before proj
        cols = _head_cols(attn, keep)
        norm.weight = nn.Parameter(norm.weight.detach()[cols].clone())
        norm.bias = nn.Parameter(norm.bias.detach()[cols].clone())
        norm.normalized_shape = (len(cols),)
    timm_blocks.sync_attention(attn, len(keep))


class AttentionHeadPruner(Pruner):
    kind = PruneKind.STRUCTURAL
    family = HEADS
    ratio_means = "fraction of heads removed from each attention block (at least one head kept)"

    def check(
        self, model: nn.Module, model_name: str, example_inputs: torch.Tensor | None = None
    ) -> None:
        attns = timm_blocks.attention_blocks(model)
        if not attns:
            raise NotApplicable(f"head pruning needs multi-head attention; {model_name} has none")
        for a in attns:
            if getattr(a, "gate", None) is not None or not hasattr(a, "head_dim"):
                raise NotApplicable(
                    f"head pruning supports timm's Attention (qkv, proj, num_heads, head_dim); "
                    f"{model_name} has {type(a).__name__} with other fields"
                )
            if (type(a).__module__, type(a).__name__) in WIDTH_BOUND:
                raise NotApplicable(
                    f"head pruning supports timm's Attention, whose width may differ from the model's; "
                    f"{model_name}'s {type(a).__name__} reshapes its heads back to the model width"
                )
        if (
            example_inputs is not None
        ):  # blocks that look like timm's Attention but compute otherwise
            timm_checks.check_prunable(
                lambda m: self.prune(m, 0.5, example_inputs), model, example_inputs, model_name
            )

    def prune(
        self,
        model: nn.Module,
        ratio: float,
        example_inputs: torch.Tensor,
        calibration: Calibration | None = None,
    ) -> nn.Module:
        self.check(model, type(model).__name__)
        for attn in timm_blocks.attention_blocks(model):
            n_drop = min(attn.num_heads - 1, int(round(ratio * attn.num_heads)))
            if n_drop > 0:
                order = torch.argsort(head_importance(attn))
                remove_heads(attn, order[:n_drop].tolist())
        return model

    def refine(
        self,
        model: nn.Module,
        ratio: float,
        example_inputs: torch.Tensor,
        calibration: Calibration | None = None,
    ) -> nn.Module:
        """One ranking of every block's heads: the `ratio` of all heads with the lowest importance go,
        wherever they are (each block keeps at least one)."""
        attns = timm_blocks.attention_blocks(model)
        scores = [
            (float(s), i, h) for i, a in enumerate(attns) for h, s in enumerate(head_importance(a))
        ]
        n_drop = int(round(ratio * len(scores)))
        drop: dict[int, list[int]] = {}
        for _, i, h in sorted(scores)[:n_drop]:
            if len(drop.setdefault(i, [])) < attns[i].num_heads - 1:
                drop[i].append(h)
        for i, heads in drop.items():
            if heads:
                remove_heads(attns[i], heads)
        return model
