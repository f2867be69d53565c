"""Pruning to a cost: the ratio search reaches MACs and parameter targets for every structural method on
every tiny family, and says so plainly when a target is out of a method's reach."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from helpers.models import TINY, tiny_input, tiny_model
from helpers.pruners import NOT_APPLICABLE, calibration_for
from sweep import targets
from sweep.config import group_options
from sweep.measure.counting import count
from sweep.pruners.base import Calibration, NotApplicable

STRUCTURAL = [p for p in group_options("pruner") if p.startswith("dg_")]


def _target(kind: str, value: float, **kw) -> targets.Target:
    return targets.Target(kind, value, kw.get("tolerance", 0.02), kw.get("max_trials", 12), 0.95)


def _search(compose, alias: str, pruner_name: str, target: targets.Target) -> targets.Found:
    pruner = instantiate(compose([f"pruner={pruner_name}"]).pruner)
    dense, x = tiny_model(alias), tiny_input(alias)
    cal = calibration_for(pruner, alias)

    return _search_with(pruner, dense, x, cal, target)


def _search_with(pruner, dense, x, cal, target: targets.Target) -> targets.Found:
    """The search as a job runs it: the method's ratio, then its finest steps where it has them."""
    return targets.method_search(pruner, dense, count(dense, x), x, target, cal)


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
    with pytest.raises(
        targets.TargetNotReached, match=r"macs=0.5 is out of reach: the model keeps at least 0.79"
    ):
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
    assert found.landing == "within" and found.within


def _coarse(ratio):  # a method that can only keep everything, 60 % or 20 %
    return torch.nn.Identity(), 1.0 if ratio < 0.2 else 0.6 if ratio < 0.5 else 0.2


def test_coarse_steps_land_at_the_nearest_point_below_and_say_why():
    found = targets.search(_coarse, _target("macs", 0.5))
    assert not found.within and found.landing == "nearest"
    assert found.reached == 0.2  # never costlier than asked: 0.6 is nearer but above the target
    assert found.stopped_by == "granularity"
    assert "landed at 0.2, the nearest point at or below it" in found.note
    assert "goes from 0.6 to 0.2" in found.note


def test_finest_steps_close_the_gap_from_the_point_just_short_of_the_target():
    starts = []

    def refine(model):  # from 60 %: each 1 % of ratio removes one more small unit (1 % of the MACs)
        starts.append(model)

        def trial(ratio):
            return torch.nn.Identity(), 0.6 - int(ratio * 100) * 0.01

        return trial

    found = targets.search(_coarse, _target("macs", 0.5), refine=refine)
    assert found.landing == "refined" and found.within
    assert found.reached == pytest.approx(0.5, abs=0.02)
    assert found.ratio < 0.5 and found.refine_ratio > 0  # on top of the method's last short ratio
    assert len(starts) == 1
    assert {t.stage for t in found.trials} == {"ratio", "refine"}


def test_a_cost_that_turns_back_near_the_largest_ratio_gets_a_second_look():
    # like Torch-Pruning's global ranking past its cap: the model grows again at the largest ratios
    def trial(ratio):
        return torch.nn.Identity(), 0.56 if ratio > 0.9 else 1 - ratio

    found = targets.search(trial, _target("macs", 0.5))
    assert found.within and found.reached == pytest.approx(0.5, abs=0.02)


def test_unreachable_speedup_is_an_error():
    def trial(ratio):
        return torch.nn.Identity(), 1 + ratio  # at most 1.95x

    with pytest.raises(targets.TargetNotReached, match="speedup=3 is out of reach"):
        targets.search(trial, _target("speedup", 3.0))


def test_a_measured_speedup_is_read_again_and_accepted_when_the_target_is_in_its_interval():
    reads = []

    def trial(ratio):  # 2x at ratio 0.5; each reading +-4 %
        v = 1 + 2 * ratio
        return torch.nn.Identity(), targets.Reading(value=v, low=0.96 * v, high=1.04 * v)

    def confirm(model):
        reads.append(model)
        return targets.Reading(
            value=1.93, low=1.85, high=2.01
        )  # the second reading is lower; 2x still inside

    found = targets.search(trial, _target("speedup", 2.0), confirm=confirm)
    assert found.within and len(reads) == 1
    assert found.low <= 2.0 <= found.high  # the interval averaged over both readings


def test_a_speedup_that_meets_the_target_once_but_not_when_read_again_is_noise():
    def trial(ratio):  # below 0.4 clearly short; above, read at 2.03x, 2x inside its interval
        if ratio < 0.4:
            return torch.nn.Identity(), targets.Reading(value=1.8, low=1.78, high=1.82)
        return torch.nn.Identity(), targets.Reading(value=2.03, low=2.0, high=2.06)

    def confirm(model):  # ... but read again, 2.31x: the machine drifted between the readings
        return targets.Reading(value=2.31, low=2.29, high=2.33)

    found = targets.search(trial, _target("speedup", 2.0, tolerance=0.01), confirm=confirm)
    assert found.landing == "nearest" and found.stopped_by == "noise"
    assert found.reached == pytest.approx(2.17)  # at or beyond 2x: the two readings averaged
    assert "then 2.17 on average with a second reading" in found.note


def test_readings_too_wide_to_steer_by_are_not_believed_and_the_search_says_noise():
    calls = []

    def trial(ratio):  # the machine swings each reading by 0.3x, and each interval spans +-40 %
        calls.append(ratio)
        v = 1 + 2 * ratio + (0.3 if len(calls) % 2 else -0.3)
        return torch.nn.Identity(), targets.Reading(value=v, low=0.6 * v, high=1.4 * v)

    found = targets.search(trial, _target("speedup", 2.0), confirm=lambda m: trial(0.5)[1])
    assert found.landing == "nearest" and found.stopped_by == "noise"
    assert found.reached >= 2.0 * 0.98  # at or beyond the target by its median reading
    assert "intervals too wide to steer by" in found.note


def test_a_speedup_the_steps_jump_over_is_granularity():
    def trial(ratio):  # two architectures, each read tightly: 1.8x and 2.3x
        v = 1.8 if ratio < 0.4 else 2.3
        return torch.nn.Identity(), targets.Reading(value=v, low=v - 0.02, high=v + 0.02)

    found = targets.search(
        trial,
        _target("speedup", 2.0),
        confirm=lambda m: targets.Reading(value=2.3, low=2.28, high=2.32),
    )
    assert found.landing == "nearest" and found.stopped_by == "granularity"
    assert found.reached == 2.3 and "goes from 1.8 to 2.3" in found.note


@pytest.mark.parametrize("pruner_name", ["dg_group", "dg_taylor", "dg_lamp", "dg_isomorphic"])
def test_structural_methods_reach_half_the_macs_of_a_coarse_regnet(compose, pruner_name):
    """regnetx_002: grouped convolutions of width 8 in few, wide dependency groups; the local methods'
    ratio jumps from 0.57 to 0.47 of the MACs, and their finest steps close the gap."""
    import timm

    torch.manual_seed(0)
    dense = timm.create_model("regnetx_002", num_classes=10).eval()
    x = torch.randn(1, 3, 64, 64)
    pruner = instantiate(compose([f"pruner={pruner_name}"]).pruner)
    cal = _noise_calibration(x) if pruner.calibration_batches else None
    found = _search_with(pruner, dense, x, cal, _target("macs", 0.5))
    assert found.within and found.reached == pytest.approx(0.5, abs=0.02)
    assert count(found.model, x).macs / count(dense, x).macs == pytest.approx(found.reached)


def _noise_calibration(x):
    return Calibration([(torch.randn(2, *x.shape[1:]), torch.tensor([0, 1]))])


def test_bn_scale_refuses_a_model_without_batchnorm(compose):
    pruner = instantiate(compose(["pruner=dg_bn_scale"]).pruner)
    with pytest.raises(NotApplicable, match="BN-scale needs BatchNorm layers; test_vit has none"):
        pruner.check(tiny_model("tiny_vit"), "test_vit")
