"""The protocol a reviewer asks for: iterative schedules (`prune.steps`), the train-from-scratch control
(`finetune.init=scratch`), and targets that land on the nearest point when they cannot land within
tolerance, each as a job logs it and as the report shows it."""

from __future__ import annotations

import copy

import pytest
import torch
from hydra.utils import instantiate

from helpers.models import tiny_input, tiny_model
from helpers.runs import EXPERIMENT, log_fake_run
from sweep import report
from sweep.config.schema import check_ranges
from sweep.errors import SweepConfigError
from sweep.models import weights
from sweep.report import rows


# ---- the schedule ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("steps", [1, 2, 5])
def test_structural_steps_remove_what_is_left_and_compose_to_the_final_ratio(compose, steps):
    pruner = instantiate(compose(["pruner=dg_group"]).pruner)
    ratios = pruner.schedule(0.6, steps)
    assert len(ratios) == steps
    kept = 1.0
    for k, r in enumerate(ratios, 1):
        kept *= 1 - r
        assert kept == pytest.approx(1 - 0.6 * k / steps)  # equal steps of the final ratio
    assert ratios == sorted(ratios)  # later steps take a larger share of what is left


def test_mask_steps_are_cumulative_and_keep_earlier_zeros(compose):
    pruner = instantiate(compose(["pruner=l1_unstructured"]).pruner)
    assert pruner.schedule(0.6, 3) == pytest.approx([0.2, 0.4, 0.6])
    model, x = tiny_model("tiny_cnn"), tiny_input("tiny_cnn")
    zeros_before = None
    for r in pruner.schedule(0.6, 3):
        model = pruner.prune(model, r, x)
        w = torch.cat([p.detach().flatten() for n, p in model.named_parameters() if "conv" in n])
        zeros = w == 0
        if zeros_before is not None:
            assert bool(zeros[zeros_before].all())  # magnitude pruning keeps its zeros
        zeros_before = zeros
    one_shot = pruner.prune(tiny_model("tiny_cnn"), 0.6, x)
    w1 = torch.cat([p.detach().flatten() for n, p in one_shot.named_parameters() if "conv" in n])
    assert float(zeros_before.float().mean()) == pytest.approx(float((w1 == 0).float().mean()))


def test_scratch_reinitialises_every_tensor_and_keeps_shapes_and_zeros(compose):
    cfg = compose(["model=tiny_vit"])
    model = tiny_model("tiny_vit")
    pruner = instantiate(compose(["pruner=dg_group"]).pruner)
    pruned = pruner.prune(model, 0.5, tiny_input("tiny_vit"))
    torch.nn.init.zeros_(pruned.blocks[0].mlp.fc1.weight[:3])  # a few zeros, as a mask leaves
    before = copy.deepcopy(pruned.state_dict())
    how = weights.reinitialise(pruned, cfg.model, 10, seed=1)
    assert how.startswith("timm_init_cut_to_shape")
    after = pruned.state_dict()
    for key, t in before.items():
        assert after[key].shape == t.shape, key
        if t.is_floating_point() and t.numel() > 1 and t.std() > 0 and "norm" not in key:
            assert not torch.equal(after[key], t), f"{key} kept its inherited values"
    assert bool((pruned.blocks[0].mlp.fc1.weight[:3] == 0).all())  # a mask's zeros stay zero
    with torch.no_grad():
        assert pruned(tiny_input("tiny_vit")).shape == (1, 10)


def test_scratch_without_a_budget_is_one_line_before_anything_runs(compose):
    with pytest.raises(SweepConfigError, match=r"finetune.init=scratch needs training"):
        check_ranges(compose(["finetune.init=scratch"]))
    with pytest.raises(SweepConfigError, match=r"prune.steps=0 is not valid: choose a number in"):
        check_ranges(compose(["prune.steps=0"]))


# ---- the report -------------------------------------------------------------------------------------------
def test_protocols_are_methods_of_their_own_side_by_side_at_each_cost(store):
    for seed in (0, 1):
        for steps, init, acc in (
            (1, "inherited", 0.9),
            (5, "inherited", 0.92),
            (1, "scratch", 0.8),
        ):
            log_fake_run(
                store,
                "protocol",
                "tiny_cnn",
                "dg_group",
                0.5,
                target="macs=0.5",
                epochs=1,
                seed=seed,
                acc=(0.95, acc + 0.01 * seed),
                extra_params={"prune.steps": steps, "finetune.init": init},
            )
    sweep = rows.load_sweep(store, EXPERIMENT, "protocol")
    assert sorted(r.method for r in sweep.rows) == [
        "dg_group",
        "dg_group/scratch",
        "dg_group/steps5",
    ]
    assert all(r.n == 2 for r in sweep.rows)  # seeds combine within a protocol, not across
    table = report.render(sweep, {}).split("## Matched cost: tiny_cnn")[1]
    lines = [ln for ln in table.splitlines() if ln.startswith("| macs=0.5 |")]
    assert [ln.split(" | ")[1].split(" (")[0] for ln in lines] == [
        "dg_group/steps5",
        "dg_group",
        "dg_group/scratch",
    ]
