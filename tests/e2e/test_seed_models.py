"""DepGraph really prunes the four seed models (the seed document's DepGraph left m unchanged)."""

from __future__ import annotations

import pytest
import timm
import torch
from hydra.utils import instantiate

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("alias", ["c", "e", "v", "m"])
def test_depgraph_prunes_seed_model(compose, alias):
    cfg = compose([f"model={alias}", "pruner=dg_group"])
    torch.manual_seed(0)
    model = timm.create_model(cfg.model.name, num_classes=10).eval()
    dense_params = sum(p.numel() for p in model.parameters())
    # CNNs trace at any size; the ViT needs its own (position embeddings)
    size = 224 if alias == "v" else 64
    x = torch.randn(1, 3, size, size)
    instantiate(cfg.pruner).prune(model, 0.3, x)
    params = sum(p.numel() for p in model.parameters())
    assert params < 0.75 * dense_params, (alias, dense_params, params)
    with torch.no_grad():
        assert model(x).shape == (1, 10)
    assert model.get_classifier().out_features == 10
    if alias == "v":
        for blk in model.blocks:
            assert blk.attn.qkv.out_features == 3 * blk.attn.num_heads * blk.attn.head_dim
