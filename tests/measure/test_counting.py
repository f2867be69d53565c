"""MAC counts agree with an independent counter, and non-zero figures follow the zeros."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
from torch.nn.utils import prune
from torch.utils.flop_counter import FlopCounterMode

from sweep.measure.counting import count, count_macs
from sweep.pruners.layers import prunable_layers

TINY = {
    "test_resnet": {},
    "test_convnext": {},
    "test_vit": {"patch_size": 8, "img_size": 32},
    "test_efficientnet": {},
}


def _flop_counter_macs(model, x) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x)
    return fc.get_total_flops() // 2


def _unfused(model):
    """Attention as explicit matmuls: FlopCounterMode has no formula for CPU's fused attention kernel,
    so the cross-check runs the same maths through ops it counts."""
    for m in model.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = False
    return model


@pytest.mark.parametrize("name", list(TINY))
def test_macs_match_torch_flop_counter(name):
    model = timm.create_model(name, num_classes=10, **TINY[name]).eval()
    x = torch.randn(1, 3, 32, 32)
    macs, macs_nz = count_macs(model, x)
    reference = _flop_counter_macs(_unfused(model), x)
    assert macs == pytest.approx(reference, rel=0.05), (macs, reference)
    assert count_macs(model, x)[0] == macs  # fused and explicit attention count the same
    assert macs_nz <= macs


def test_vit_attention_products_are_counted():
    model = timm.create_model("test_vit", num_classes=10, patch_size=8, img_size=32).eval()
    x = torch.randn(1, 3, 32, 32)
    with_attn, _ = count_macs(model, x)
    linear_only = 0
    tokens = 1 + (32 // 8) ** 2
    for m in prunable_layers(model) + [model.get_classifier()]:
        if isinstance(m, torch.nn.Linear):
            rows = 1 if m is model.get_classifier() else tokens
            linear_only += rows * m.in_features * m.out_features
    # q @ k^T and attn @ v: 2 * tokens^2 * attention width per block
    attn = sum(2 * tokens * tokens * b.attn.num_heads * b.attn.head_dim for b in model.blocks)
    conv = model.patch_embed.proj
    patch = (32 // 8) ** 2 * conv.weight.numel()
    assert with_attn == linear_only + attn + patch


def test_batch_scales_macs_linearly():
    model = timm.create_model("test_resnet", num_classes=10).eval()
    one, _ = count_macs(model, torch.randn(1, 3, 32, 32))
    four, _ = count_macs(model, torch.randn(4, 3, 32, 32))
    assert four == 4 * one


def test_nonzero_macs_follow_unstructured_zeros():
    model = timm.create_model("test_convnext", num_classes=10).eval()
    x = torch.randn(1, 3, 32, 32)
    dense = count(model, x)
    pruned = copy.deepcopy(model)
    layers = prunable_layers(pruned)
    prune.global_unstructured(
        [(m, "weight") for m in layers], pruning_method=prune.L1Unstructured, amount=0.5
    )
    for m in layers:
        prune.remove(m, "weight")
    c = count(pruned, x)
    assert c.macs == dense.macs and c.params_total == dense.params_total
    assert c.sparsity == pytest.approx(0.5, abs=0.01)
    assert c.macs_nonzero < 0.8 * dense.macs_nonzero
    assert c.params_nonzero < dense.params_nonzero
