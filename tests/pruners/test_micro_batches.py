"""Gradient criteria read their calibration batches in parts (bounded memory) and score channels as the
whole batches would: the same importance within float rounding, the same channels removed."""

from __future__ import annotations

import copy

import pytest
import torch
import torch_pruning as tp
from hydra.utils import instantiate

from helpers.models import tiny_input, tiny_model
from helpers.pruners import calibration_for
from sweep.pruners.base import Calibration

# float32 sums in another order: relative differences of 1e-6 to 1e-5 seen; 1e-4 leaves room
RTOL, ATOL = 1e-4, 1e-7


def _scores_and_model(pruner, alias: str, calibration: Calibration, monkeypatch):
    """Every group's importance as Torch-Pruning reads it while pruning at 0.5, and the pruned model."""
    scores: list[torch.Tensor] = []
    estimate = tp.pruner.BasePruner.estimate_importance

    def recorded(self, group):
        out = estimate(self, group)
        if out is not None:
            scores.append(out.detach().clone())
        return out

    monkeypatch.setattr(tp.pruner.BasePruner, "estimate_importance", recorded)
    pruned = pruner.prune(_live(tiny_model(alias)), 0.5, tiny_input(alias), calibration)
    monkeypatch.undo()
    return scores, pruned


def _live(model: torch.nn.Module) -> torch.nn.Module:
    """timm zero-initialises the last norm of each residual branch: at random init no gradient
    reaches the branch, and its scores are 0/0. Those norms set to 1 (seeded as the model is)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1 and not p.any():
                p.fill_(1.0)
    return model


@pytest.mark.parametrize("method", ["dg_taylor", "dg_hessian"])
@pytest.mark.parametrize(
    ("alias", "micro"), [("tiny_cnn", 1), ("tiny_cnn", 3), ("tiny_convnext", 3)]
)
def test_parts_give_the_whole_batch_importance(compose, monkeypatch, method, alias, micro):
    """A batch of 8 read whole, then in parts of `micro` (3: uneven parts): the same scores for every
    group, the same pruned model, and no forward pass of the criterion saw more than `micro` images."""
    pruner = instantiate(compose([f"pruner={method}", f"model={alias}"]).pruner)
    whole = calibration_for(pruner, alias)
    want, dense_pruned = _scores_and_model(pruner, alias, whole, monkeypatch)
    seen: list[int] = []
    calibrate = pruner.importance.calibrate

    def counting(model, calibration):
        hook = model.register_forward_pre_hook(lambda m, args: seen.append(len(args[0])))
        try:
            return calibrate(model, calibration)
        finally:
            hook.remove()

    pruner.importance.calibrate = counting
    parts = Calibration(whole.batches, micro_batch=micro)
    got, pruned = _scores_and_model(pruner, alias, parts, monkeypatch)
    assert seen and max(seen) == micro
    assert len(got) == len(want) > 0
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL)
    # the same channels removed: every tensor of the two pruned models equal
    a, b = pruned.state_dict(), dense_pruned.state_dict()
    assert a.keys() == b.keys()
    assert all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)


def test_parts_cover_each_batch_once_with_shares_that_sum_to_one():
    x, y = torch.randn(8, 3), torch.arange(8)
    cal = Calibration([(x, y), (x[:5], y[:5])], micro_batch=3)
    parts = list(cal.parts())
    assert [len(p[0]) for p in parts] == [3, 3, 2, 3, 2]
    assert sum(s for _, _, s in parts[:3]) == pytest.approx(1.0)
    assert sum(s for _, _, s in parts[3:]) == pytest.approx(1.0)
    assert torch.equal(torch.cat([p[1] for p in parts[:3]]), y)
    assert [len(p[0]) for p in Calibration([(x, y)]).parts()] == [8]  # no micro-batch: whole


def test_a_criterion_reads_gradients_in_eval_mode_and_leaves_the_mode(compose):
    """BatchNorm would normalise each part by its own statistics in train mode; calibration runs in
    eval mode, and the model comes back in the mode it was given in."""
    pruner = instantiate(compose(["pruner=dg_taylor"]).pruner)
    model = tiny_model("tiny_cnn").train()
    modes = []
    calibrate = pruner.importance.calibrate

    def spy(m, cal):
        modes.append(m.training)
        return calibrate(m, cal)

    pruner.importance.calibrate = spy
    pruner._calibrate(model, calibration_for(pruner, "tiny_cnn"))
    assert modes == [False] and model.training
    copy.deepcopy(pruner)  # the spy does not stop the method being copied
