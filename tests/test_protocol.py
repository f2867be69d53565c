"""The protocol a reviewer asks for: iterative schedules (`prune.steps`), the train-from-scratch control
(`finetune.init=scratch`), and targets that land on the nearest point when they cannot land within
tolerance, each as a job logs it and as the report shows it."""

from __future__ import annotations

import copy

import pytest
import torch
from hydra.utils import instantiate

from helpers.cli import FAST
from helpers.models import tiny_input, tiny_model
from helpers.runs import EXPERIMENT, log_fake_run
from sweep import job, report, tracking
from sweep.config.schema import check_ranges
from sweep.errors import SweepConfigError
from sweep.models import weights
from sweep.report import rows


def _run(store):
    (run,) = tracking.search_runs(store, EXPERIMENT)
    assert run.info.status == "FINISHED", run.data.tags.get("error")
    return run


def _history(store, run, key):
    client = tracking.client(store)
    return [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]


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


def test_iterative_job_reaches_the_target_in_steps_with_one_shots_budget(
    compose, store, weights_cache
):
    common = ["pruner=dg_group", "target.macs=0.5", "finetune.epochs=1", *FAST]
    job.run_job(compose([*common, "prune.steps=3", f"tracking.uri={store}"]))
    run = _run(store)
    m = run.data.metrics
    assert run.info.run_name == "tiny_cnn/dg_group/macs=0.5/steps3"
    assert run.data.params["prune.steps"] == "3"
    kept = _history(store, run, "step_macs_kept")
    assert [s for s, _ in kept] == [1, 2, 3]
    assert kept[0][1] > kept[1][1] > kept[2][1]  # each step moves towards the target...
    assert kept[0][1] == pytest.approx(1 - 0.5 / 3, abs=0.02)  # in equal shares of the cost
    assert m["target_value"] == pytest.approx(0.5, abs=0.02) == kept[2][1]  # the last lands on it
    assert m["macs"] / m["dense_macs"] == pytest.approx(kept[2][1])
    acc = _history(store, run, "step_accuracy_top1")
    assert [s for s, _ in acc] == [1, 2, 3] and acc[-1][1] == m["accuracy_top1"]
    assert m["finetune_steps"] == 23  # one epoch of the 1437 train images, split over the steps
    assert run.data.tags["finetune_diverged"] == "false"


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


def test_scratch_job_trains_the_pruned_architecture_with_the_whole_budget(
    compose, store, weights_cache
):
    overrides = ["pruner=dg_group", "ratio=0.5", "finetune.epochs=1", "finetune.init=scratch"]
    job.run_job(compose([*overrides, f"tracking.uri={store}", *FAST]))
    run = _run(store)
    assert run.info.run_name == "tiny_cnn/dg_group/0.5/scratch"
    assert run.data.tags["finetune_init"] == "scratch"
    assert run.data.tags["finetune_init_method"].startswith("timm_init_cut_to_shape")
    m = run.data.metrics
    assert m["finetune_steps"] == 23  # the whole budget, as inherited fine-tuning gets
    assert (
        m["finetune_loss_start"] > 1.5
    )  # a random network starts near ln(10), not at its weights'


def test_scratch_without_a_budget_is_one_line_before_anything_runs(compose):
    with pytest.raises(SweepConfigError, match=r"finetune.init=scratch needs training"):
        check_ranges(compose(["finetune.init=scratch"]))
    with pytest.raises(SweepConfigError, match=r"prune.steps=0 is not valid: choose a number in"):
        check_ranges(compose(["prune.steps=0"]))


# ---- landings --------------------------------------------------------------------------------------------
def test_a_target_the_steps_jump_over_finishes_at_the_nearest_point_and_says_why(
    compose, store, weights_cache
):
    # a tolerance finer than any step of the tiny model: nothing can land within it
    overrides = ["pruner=dg_group", "target.macs=0.5", "target.tolerance=0.0001"]
    job.run_job(compose([*overrides, "target.max_trials=4", f"tracking.uri={store}", *FAST]))
    run = _run(store)
    m, tags = run.data.metrics, run.data.tags
    assert tags["target_landing"] == "nearest" and m["target_reached"] == 0.0
    assert m["target_value"] <= 0.5  # never costlier than asked
    assert m["macs"] / m["dense_macs"] == pytest.approx(m["target_value"])
    assert tags["target_stopped_by"] == "granularity"
    assert tags["target_note"].startswith("target macs=0.5 not reached within ±0.0001: landed at")
    doc = report.render(rows.load_sweep(store, EXPERIMENT, None), {})
    assert "target not within tolerance: nearest point" in doc.split("## Matched cost")[1]


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
