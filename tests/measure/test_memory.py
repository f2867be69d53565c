"""What a model needs in memory: training it, measured before it trains."""

from __future__ import annotations

import math

import pytest
import torch

from helpers.models import tiny_input, tiny_model
from sweep.measure import memory


def test_training_estimate_leaves_the_model_as_it_was():
    model, x = tiny_model("tiny_cnn"), tiny_input("tiny_cnn")
    model.eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    mb = memory.training_mb(model, x, 64)
    params_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    assert not math.isnan(mb) and mb >= memory.OPTIMIZER_COPIES * params_mb
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # BN stats kept


def test_training_estimate_scales_the_probe_to_the_batch(monkeypatch):
    """The peak one probe step added, per image, times the batch, plus four copies of the weights."""
    model, x = tiny_model("tiny_cnn"), tiny_input("tiny_cnn")
    per_image = 3 * 2**20
    monkeypatch.setattr(
        memory,
        "_peak_above_resident",
        lambda step, device: (step(), per_image * memory.PROBE_IMAGES)[1],
    )
    params_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    for batch in (1, 64):
        want = batch * 3 + memory.OPTIMIZER_COPIES * params_mb
        assert memory.training_mb(model, x, batch) == pytest.approx(want)


def test_a_model_that_cannot_train_on_the_input_gives_no_estimate():
    model = torch.nn.Linear(4, 2)
    assert math.isnan(memory.training_mb(model, torch.randn(1, 3), 64))
