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


def test_training_estimate_scales_the_count_to_the_batch(monkeypatch):
    """What a backward pass keeps per image, times the batch, plus four copies of the weights."""
    model, x = tiny_model("tiny_cnn"), tiny_input("tiny_cnn")
    monkeypatch.setattr(memory, "activation_mb", lambda model, example: 3.0)
    params_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    for batch in (1, 64):
        want = batch * 3 + memory.OPTIMIZER_COPIES * params_mb
        assert memory.training_mb(model, x, batch) == pytest.approx(want)


def test_the_count_is_what_autograd_keeps_and_does_not_depend_on_history():
    """A linear layer keeps its input for the weight's gradient: 4 x 1000 floats an image (the
    output feeds nothing that saves it). Counted again, the same: no allocator state in it."""
    model = torch.nn.Sequential(torch.nn.Linear(1000, 10))
    first = memory.activation_mb(model, torch.randn(1, 1000))
    assert first == pytest.approx(4000 / 2**20)
    assert memory.activation_mb(model, torch.randn(1, 1000)) == first


def test_inference_count_is_the_largest_layer_with_slack():
    model = torch.nn.Sequential(
        torch.nn.Linear(1000, 3000), torch.nn.ReLU(), torch.nn.Linear(3000, 2)
    )
    mb = memory.inference_mb(model, torch.randn(4, 1000))  # per image: the batch is not counted
    assert mb == pytest.approx(memory.INFERENCE_SLACK * 4 * (3000 + 3000) / 2**20)
    assert model.training  # left in the mode it was in


def test_a_model_that_cannot_train_on_the_input_gives_no_estimate():
    model = torch.nn.Linear(4, 2)
    assert math.isnan(memory.training_mb(model, torch.randn(1, 3), 64))
    assert math.isnan(memory.inference_mb(model, torch.randn(1, 3)))


def test_a_model_that_refuses_the_probe_batch_gives_no_count():
    """timm's size checks assert, BatchNorm on one value per channel raises ValueError: no count
    (NaN), so the job runs its batches whole, as before, rather than failing at the build."""

    class Refuses(torch.nn.Module):
        def __init__(self, error: Exception):
            super().__init__()
            self.error = error

        def forward(self, x):
            raise self.error

    for error in (AssertionError("Input height (32) doesn't match model (224)."), ValueError("x")):
        model, x = Refuses(error), torch.randn(1, 3, 8, 8)
        assert math.isnan(memory.activation_mb(model, x))
        assert math.isnan(memory.inference_mb(model, x))
