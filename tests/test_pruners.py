"""Every pruning method on every tiny model family does what it says, at the ratio asked for."""

from __future__ import annotations

import copy
import gc
import inspect
import weakref

import pytest
import torch
from hydra.utils import instantiate

from helpers.models import TINY, tiny_input, tiny_model
from sweep.config import group_options
from sweep.measure.counting import count
from sweep.models import classifier_of, prunable_layers
from sweep.pipeline import is_noop
from sweep.pruners.base import PruneKind

PRUNERS = group_options("pruner")


def test_tiny_models_come_from_conf():
    assert {"tiny_cnn", "tiny_convnext", "tiny_effnet", "tiny_vit"} <= set(TINY)


def test_pruner_group_has_every_seed_method_and_no_noop():
    assert set(PRUNERS) == {
        "l1_unstructured",
        "global_unstructured",
        "ln_structured",
        "dg_magnitude",
        "dg_random",
        "dg_group",
    }


def assert_classifier_untouched(dense_head: torch.nn.Linear, pruned_head: torch.nn.Linear) -> None:
    """The classifier keeps its classes and its weights. A structural method may drop input columns
    (the features it reads were removed upstream): every column left must be one of the dense
    classifier's columns, in order, and the bias must be the same."""
    assert pruned_head.out_features == dense_head.out_features
    assert torch.equal(pruned_head.bias, dense_head.bias)
    dense_cols, pruned_cols = dense_head.weight.T, pruned_head.weight.T
    j = 0
    for col in pruned_cols:
        while j < len(dense_cols) and not torch.equal(dense_cols[j], col):
            j += 1
        assert j < len(dense_cols), "a classifier column was changed, not only removed"
        j += 1


@pytest.mark.parametrize("alias", list(TINY))
@pytest.mark.parametrize("pruner_name", PRUNERS)
def test_pruner_reduces_as_its_kind_promises(compose, alias, pruner_name):
    ratio = 0.5
    pruner = instantiate(compose([f"pruner={pruner_name}"]).pruner)
    dense = tiny_model(alias)
    x = tiny_input(alias)
    pruned = pruner.prune(copy.deepcopy(dense), ratio, x).eval()

    with torch.no_grad():
        assert pruned(tiny_input(alias, 2)).shape == (2, 10)
    c_dense, c_pruned = count(dense, x), count(pruned, x)
    assert not is_noop(c_dense, c_pruned)
    assert_classifier_untouched(classifier_of(dense), classifier_of(pruned))
    if pruner.kind is not PruneKind.STRUCTURAL:
        assert torch.equal(classifier_of(pruned).weight, classifier_of(dense).weight)

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
            assert float((rows == 0).float().mean()) == pytest.approx(
                ratio, abs=1.0 / len(rows) + 1e-6
            )
    else:
        assert pruner.kind is PruneKind.STRUCTURAL
        assert c_pruned.params_total < 0.8 * c_dense.params_total
        assert c_pruned.macs < 0.8 * c_dense.macs


def test_classifier_check_catches_a_changed_head():
    dense = torch.nn.Linear(8, 3)
    changed = copy.deepcopy(dense)
    with torch.no_grad():
        changed.weight[1, 2] += 1.0
    with pytest.raises(AssertionError):
        assert_classifier_untouched(dense, changed)
    narrowed = torch.nn.Linear(4, 3)
    with torch.no_grad():
        narrowed.weight.copy_(dense.weight[:, [0, 2, 5, 7]])
        narrowed.bias.copy_(dense.bias)
    assert_classifier_untouched(dense, narrowed)  # columns removed, none changed


def test_ratio_zero_is_a_noop_and_detected(compose):
    pruner = instantiate(compose(["pruner=l1_unstructured"]).pruner)
    dense = tiny_model("tiny_cnn")
    x = tiny_input("tiny_cnn")
    pruned = pruner.prune(copy.deepcopy(dense), 0.0, x)
    assert is_noop(count(dense, x), count(pruned, x))


def test_depgraph_keeps_vit_attention_consistent(compose):
    pruner = instantiate(compose(["pruner=dg_group"]).pruner)
    model = tiny_model("tiny_vit")
    pruner.prune(model, 0.5, tiny_input("tiny_vit"))
    for blk in model.blocks:
        a = blk.attn
        assert a.qkv.out_features == 3 * a.num_heads * a.head_dim
        assert a.proj.in_features == a.num_heads * a.head_dim
        assert a.head_dim < 32  # test_vit: 64 dims over 2 heads before pruning
    with torch.no_grad():
        assert model(tiny_input("tiny_vit", 3)).shape == (3, 10)


def _library_dict_defaults() -> dict[str, dict]:
    import torch_pruning as tp

    sig = inspect.signature(tp.pruner.BasePruner.__init__)
    return {n: p.default for n, p in sig.parameters.items() if isinstance(p.default, dict)}


@pytest.mark.parametrize("pruner_name", ["dg_group", "dg_random"])
def test_depgraph_leaves_nothing_behind(compose, pruner_name):
    """Torch-Pruning's BasePruner writes into its mutable default arguments: a pruned model must neither
    land there nor stay alive after the job drops it (a sweep would hold every model it pruned)."""
    defaults = _library_dict_defaults()
    assert defaults, "Torch-Pruning's BasePruner has no dict defaults any more: revisit this test"
    pruner = instantiate(compose([f"pruner={pruner_name}"]).pruner)
    refs = []
    for _ in range(2):
        model = tiny_model("tiny_vit")
        pruner.prune(model, 0.5, tiny_input("tiny_vit"))
        refs += [weakref.ref(model), weakref.ref(model.blocks[0].attn.qkv)]
        del model
    assert {k: len(v) for k, v in defaults.items()} == {k: 0 for k in defaults}
    gc.collect()
    assert [r for r in refs if r() is not None] == []
