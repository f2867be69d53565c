"""Pruning to a cost: the ratio search reaches MACs and parameter targets for every structural method on
every tiny family, and says so plainly when a target is out of a method's reach."""

from __future__ import annotations

import copy

import pytest
import torch
from hydra.utils import instantiate

from helpers.models import TINY, tiny_input, tiny_model
from helpers.pruners import NOT_APPLICABLE, calibration_for
from sweep import targets
from sweep.config import group_options
from sweep.measure.counting import count
from sweep.pruners.base import NotApplicable, PruneKind

STRUCTURAL = [p for p in group_options("pruner") if p.startswith("dg_")]


def _target(kind: str, value: float, **kw) -> targets.Target:
    return targets.Target(kind, value, kw.get("tolerance", 0.02), kw.get("max_trials", 12), 0.95)


def _search(compose, alias: str, pruner_name: str, target: targets.Target) -> targets.Found:
    pruner = instantiate(compose([f"pruner={pruner_name}"]).pruner)
    dense, x = tiny_model(alias), tiny_input(alias)
    cal = calibration_for(pruner, alias)

    def prune_at(ratio: float) -> torch.nn.Module:
        torch.manual_seed(0)
        return pruner.prune(copy.deepcopy(dense), ratio, x, cal)

    by_nonzero = pruner.kind is not PruneKind.STRUCTURAL
    return targets.search(
        targets.cost_trial(prune_at, count(dense, x), x, target, by_nonzero), target
    )


@pytest.mark.parametrize("kind", ["macs", "params"])
@pytest.mark.parametrize("alias", list(TINY))
@pytest.mark.parametrize("pruner_name", STRUCTURAL)
def test_structural_methods_reach_half_the_cost(compose, kind, alias, pruner_name):
    if (pruner_name, alias) in NOT_APPLICABLE:
        pytest.skip("the method does not apply to this model (tested in test_pruners)")
    found = _search(compose, alias, pruner_name, _target(kind, 0.5))
    assert found.reached == pytest.approx(0.5, abs=0.02)
    dense, x = tiny_model(alias), tiny_input(alias)
    c_dense, c_found = count(dense, x), count(found.model, x)
    kept = (
        c_found.macs / c_dense.macs
        if kind == "macs"
        else c_found.params_total / c_dense.params_total
    )
    assert kept == pytest.approx(found.reached)  # what was reported is what the model has
    assert len(found.trials) <= 12


@pytest.mark.parametrize("pruner_name", ["l1_unstructured", "global_unstructured", "ln_structured"])
def test_masks_reach_a_target_by_nonzero_counts(compose, pruner_name):
    found = _search(compose, "tiny_cnn", pruner_name, _target("macs", 0.5))
    x = tiny_input("tiny_cnn")
    c_dense, c_found = count(tiny_model("tiny_cnn"), x), count(found.model, x)
    assert c_found.macs == c_dense.macs  # dense kernels: same work
    assert c_found.macs_nonzero / c_dense.macs_nonzero == pytest.approx(0.5, abs=0.02)


def test_head_pruning_cannot_halve_a_vit_and_says_so(compose):
    # only attention heads go; the MLPs (most of a ViT's MACs) stay whole
    with pytest.raises(targets.TargetNotReached, match=r"macs=0.5 is out of reach: at ratio 0.95"):
        _search(compose, "tiny_vit", "attn_heads", _target("macs", 0.5))


def test_search_on_a_known_curve():
    """kept = (1 - r)^2: the search lands within tolerance, and reports the trials it made."""
    seen = []

    def trial(ratio):
        seen.append(ratio)
        return torch.nn.Identity(), (1 - ratio) ** 2 + 0.03 * ratio  # not exactly the first guess

    found = targets.search(trial, _target("macs", 0.3, tolerance=0.005))
    assert found.reached == pytest.approx(0.3, abs=0.005)
    assert [t.ratio for t in found.trials] == seen and found.ratio == seen[-1]


def test_coarse_steps_end_in_a_clear_error():
    def trial(ratio):  # a method that can only keep everything, 60 % or 20 %
        return torch.nn.Identity(), 1.0 if ratio < 0.2 else 0.6 if ratio < 0.5 else 0.2

    with pytest.raises(targets.TargetNotReached, match=r"not reached within ±0.02 .* nearest 0.6"):
        targets.search(trial, _target("macs", 0.5))


def test_unreachable_speedup_is_an_error():
    def trial(ratio):
        return torch.nn.Identity(), 1 + ratio  # at most 1.95x

    with pytest.raises(targets.TargetNotReached, match="speedup=3 is out of reach"):
        targets.search(trial, _target("speedup", 3.0))


def test_bn_scale_refuses_a_model_without_batchnorm(compose):
    pruner = instantiate(compose(["pruner=dg_bn_scale"]).pruner)
    with pytest.raises(NotApplicable, match="BN-scale needs BatchNorm layers; test_vit has none"):
        pruner.check(tiny_model("tiny_vit"), "test_vit")
