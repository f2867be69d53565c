"""Methods that train for sparsity: the regularizer reaches the model's gradients, the regularize stage
is a stage of its own with its budget and figures, it works with targets, schedules and scratch
fine-tuning, a blown-up sparse training is flagged, and the report counts what each method trained."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
from hydra.utils import instantiate
from omegaconf import OmegaConf

from helpers.models import tiny_input, tiny_model
from sweep.config import config_dir


def _method(name: str, **regularize):
    cfg = OmegaConf.load(config_dir() / "pruner" / f"{name}.yaml")
    cfg.regularize.update(regularize)
    return instantiate(cfg)


def _train_steps(model: nn.Module, x: torch.Tensor, after_backward=None, steps: int = 5):
    """Plain SGD on a fixed batch (lr 0: only the regularizer moves the weights)."""
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    y = torch.zeros(len(x), dtype=torch.long)
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y) * 0.0
        loss.backward()
        if after_backward is not None:
            after_backward(model)
        opt.step()


def _bn_l1(model: nn.Module) -> float:
    return sum(
        float(m.weight.detach().abs().sum())
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
    )


@pytest.mark.parametrize("name", ["dg_slim", "dg_group_reg", "dg_growing_reg"])
def test_the_regularizer_pushes_weights_towards_zero(name):
    model, x = tiny_model("tiny_cnn").train(), tiny_input("tiny_cnn", 4)
    plain = copy.deepcopy(model)
    method = _method(name, strength=0.05, delta=0.05, update_every=2)
    with method.regularizing(model, x) as after_backward:
        _train_steps(model, x, after_backward)
    _train_steps(plain, x)
    norm = sum(float(p.detach().abs().sum()) for p in model.parameters())
    assert norm < sum(float(p.detach().abs().sum()) for p in plain.parameters())
    if name == "dg_slim":  # L1 on the BatchNorm scales
        assert _bn_l1(model) < _bn_l1(plain) - 0.05 * 4


@pytest.mark.parametrize("name", ["dg_group_reg", "dg_growing_reg"])
def test_the_regularizers_run_on_grouped_convolutions(name):
    """Torch-Pruning 1.6's regularizers index a grouped convolution's input channels out of range
    (regnetx_002, groups of 8 channels); the method leaves those inputs out and regularizes the rest."""
    import timm

    from sweep.pruners.regularized import without_grouped_inputs

    torch.manual_seed(0)
    model = timm.create_model("regnetx_002", num_classes=10)
    x = torch.randn(2, 3, 32, 32)
    method = _method(name, strength=1e-2)
    with method._pruner(model, 0.5, example_inputs=x, calibration=None, kept_dense=(),
                        library_pruner="GroupNormPruner") as session:  # fmt: skip
        assert without_grouped_inputs(session.pruner) > 0  # the layers the library mishandles
        assert without_grouped_inputs(session.pruner) == 0  # and none left after
    before = copy.deepcopy(model)
    with method.regularizing(model, x) as after_backward:
        _train_steps(model, x, after_backward, steps=2)  # lr 1, loss 0: only the regularizer moves
    moved = [
        name
        for (name, p), q in zip(model.named_parameters(), before.parameters())
        if not torch.equal(p, q)
    ]
    assert any("conv2" in n for n in moved)  # the grouped convolutions themselves too


def test_no_grouped_inputs_on_a_model_without_groups():
    from sweep.pruners.regularized import without_grouped_inputs

    model, x = tiny_model("tiny_cnn"), tiny_input("tiny_cnn")
    method = _method("dg_group_reg")
    with method._pruner(model, 0.5, example_inputs=x, calibration=None, kept_dense=(),
                        library_pruner="GroupNormPruner") as session:  # fmt: skip
        assert without_grouped_inputs(session.pruner) == 0
