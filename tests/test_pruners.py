"""Every pruning method on every tiny model family does what it says, at the ratio asked for."""
from __future__ import annotations

import copy

import pytest
import timm
import torch
from hydra.utils import instantiate

from sweep.config import group_options
from sweep.measure.counting import count
from sweep.models import classifier_of, prunable_layers
from sweep.pipeline import is_noop
from sweep.pruners.base import PruneKind

TINY = {
    "tiny_cnn": ("test_resnet", {}),
    "tiny_convnext": ("test_convnext", {}),
    "tiny_effnet": ("test_efficientnet", {}),
    "tiny_vit": ("test_vit", {"patch_size": 8, "img_size": 32}),
}
PRUNERS = group_options("pruner")


def _model(alias):
    name, kwargs = TINY[alias]
    torch.manual_seed(0)
    return timm.create_model(name, num_classes=10, **kwargs).eval()


def test_pruner_group_has_every_seed_method_and_no_noop():
    assert set(PRUNERS) == {"l1_unstructured", "global_unstructured", "ln_structured",
                            "dg_magnitude", "dg_random", "dg_group"}


@pytest.mark.parametrize("alias", list(TINY))
@pytest.mark.parametrize("pruner_name", PRUNERS)
def test_pruner_reduces_as_its_kind_promises(compose, alias, pruner_name):
    ratio = 0.5
    pruner = instantiate(compose([f"pruner={pruner_name}"]).pruner)
    dense = _model(alias)
    x = torch.randn(1, 3, 32, 32)
    pruned = pruner.prune(copy.deepcopy(dense), ratio, x).eval()
    head_before = classifier_of(dense).weight.clone()

    with torch.no_grad():
        assert pruned(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    c_dense, c_pruned = count(dense, x), count(pruned, x)
    assert not is_noop(c_dense, c_pruned)
    # the classifier is never pruned
    assert torch.equal(classifier_of(pruned).weight, head_before) or pruner.kind is PruneKind.STRUCTURAL
    assert classifier_of(pruned).out_features == 10

    if pruner.kind is PruneKind.UNSTRUCTURED:
        assert c_pruned.params_total == c_dense.params_total and c_pruned.macs == c_dense.macs
        assert c_pruned.sparsity == pytest.approx(ratio, abs=0.01)
        assert c_pruned.macs_nonzero < c_dense.macs_nonzero
        if pruner_name == "l1_unstructured":  # every layer at the ratio, not just on average
            for m in prunable_layers(pruned):
                zeros = float((m.weight == 0).float().mean())
                assert zeros == pytest.approx(ratio, abs=1.0 / m.weight.numel() + 1e-6)
    elif pruner.kind is PruneKind.STRUCTURED_MASK:
        assert c_pruned.params_total == c_dense.params_total
        for m in prunable_layers(pruned):
            rows = m.weight.flatten(1).abs().sum(dim=1)
            assert float((rows == 0).float().mean()) == pytest.approx(ratio, abs=1.0 / len(rows) + 1e-6)
    else:
        assert pruner.kind is PruneKind.STRUCTURAL
        assert c_pruned.params_total < 0.8 * c_dense.params_total
        assert c_pruned.macs < 0.8 * c_dense.macs


def test_ratio_zero_is_a_noop_and_detected(compose):
    pruner = instantiate(compose(["pruner=l1_unstructured"]).pruner)
    dense = _model("tiny_cnn")
    x = torch.randn(1, 3, 32, 32)
    pruned = pruner.prune(copy.deepcopy(dense), 0.0, x)
    assert is_noop(count(dense, x), count(pruned, x))


def test_depgraph_keeps_vit_attention_consistent(compose):
    pruner = instantiate(compose(["pruner=dg_group"]).pruner)
    model = _model("tiny_vit")
    pruner.prune(model, 0.5, torch.randn(1, 3, 32, 32))
    for blk in model.blocks:
        a = blk.attn
        assert a.qkv.out_features == 3 * a.num_heads * a.head_dim
        assert a.proj.in_features == a.num_heads * a.head_dim
        assert a.head_dim < 32  # test_vit: 64 dims over 2 heads before pruning
    with torch.no_grad():
        assert model(torch.randn(3, 3, 32, 32)).shape == (3, 10)
