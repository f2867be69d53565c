"""Torch-Pruning (DepGraph): channels are removed from every layer coupled to them, so the model really
shrinks. The importance criterion is a separate object (conf/pruner/dg_*.yaml `importance:`)."""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn

from sweep.models import classifier_of
from sweep.pruners import timm_blocks
from sweep.pruners.base import Calibration, Family, NotApplicable, PruneKind, Pruner

DEPGRAPH = Family("depgraph", "DepGraph: towards any structural pruning (Torch-Pruning)", 1)


def _attention_modules(model: nn.Module) -> list[nn.Module]:
    """Multi-head attention blocks with a fused qkv projection (timm's Attention and look-alikes)."""
    return [
        m
        for m in model.modules()
        if isinstance(getattr(m, "qkv", None), nn.Linear)
        and isinstance(getattr(m, "num_heads", None), int)
    ]


def _sync_attention(attn: nn.Module, num_heads: int) -> None:
    """After head dims are pruned, the block's bookkeeping must follow qkv's new width, or its reshapes
    (to num_heads x head_dim, and back to the attention width) break."""
    head_dim = attn.qkv.out_features // 3 // num_heads
    attn.num_heads = num_heads
    attn.head_dim = head_dim
    if hasattr(attn, "attn_dim"):
        attn.attn_dim = num_heads * head_dim


class DepGraphPruner(Pruner):
    kind = PruneKind.STRUCTURAL
    family = DEPGRAPH
    ratio_means = (
        "fraction of channels removed from each dependency group (coupled layers pruned together)"
    )

    def __init__(
        self,
        name: str,
        importance,
        global_pruning: bool = False,
        max_pruning_ratio: float = 1.0,
        isomorphic: bool = False,
        round_to: int | None = None,
        calibration_batches: int = 0,
    ):
        super().__init__(name)
        if isomorphic and not global_pruning:
            raise ValueError("isomorphic pruning ranks groups globally: set global_pruning: true")
        if not 0 < max_pruning_ratio <= 1:
            raise ValueError(f"max_pruning_ratio={max_pruning_ratio}: choose a number in (0, 1]")
        self.importance = importance
        self.global_pruning = global_pruning
        self.max_pruning_ratio = max_pruning_ratio
        self.isomorphic = isomorphic
        self.round_to = round_to
        self.calibration_batches = calibration_batches

    def check(self, model: nn.Module, model_name: str) -> None:
        why = timm_blocks.refusal(model)
        if why is not None:
            raise NotApplicable(f"{model_name} cannot be pruned structurally: {why}")
        check = getattr(self.importance, "check", None)
        if check is not None:
            check(model, model_name)

    def prune(
        self,
        model: nn.Module,
        ratio: float,
        example_inputs: torch.Tensor,
        calibration: Calibration | None = None,
    ) -> nn.Module:
        import torch_pruning as tp

        head = classifier_of(model)
        attns = _attention_modules(model)
        setup = timm_blocks.configure(model)
        with setup.around(), warnings.catch_warnings():
            # Layer scales, class tokens and position embeddings are found by Torch-Pruning itself and
            # pruned along their last non-singleton dim, which is their channel dim in timm's models.
            warnings.filterwarnings("ignore", message="Unwrapped parameters detected")
            pruner = tp.pruner.BasePruner(
                model,
                example_inputs,
                importance=self.importance,
                pruning_ratio=ratio,
                global_pruning=self.global_pruning,
                max_pruning_ratio=self.max_pruning_ratio,
                isomorphic=self.isomorphic,
                ignored_layers=([head] if head is not None else []) + setup.ignored_params,
                customized_pruners=setup.customized_pruners,
                round_to=self.round_to,
                num_heads={a.qkv: a.num_heads for a in attns},
                # Torch-Pruning's defaults for these are dicts shared by every call, which it writes
                # into: each pruned model's layers would stay referenced (and alive) for the process.
                in_channel_groups={},
                out_channel_groups={},
                channel_groups={},
            )
            calibrate = getattr(self.importance, "calibrate", None)
            if calibrate is not None:
                if calibration is None or not calibration.batches:
                    raise RuntimeError(f"{self.name} needs calibration batches from the train split")
                with torch.enable_grad():
                    calibrate(model, calibration)
            with torch.no_grad():
                pruner.step()
        model.zero_grad(set_to_none=True)
        for a in attns:
            _sync_attention(a, pruner.num_heads.get(a.qkv, a.num_heads))
        return model
