"""Hardware-friendly channel counts: `prune.round_to` rounds a structural method's channel counts, is a
protocol of its own in the run name and the report, and a pruned model slower than its dense one beyond
the interval is flagged per runtime, with the hint."""

from __future__ import annotations

from helpers.cli import FAST
from helpers.runs import EXPERIMENT
from sweep import job, tracking
from sweep.report import cells, rows


def _channels(model) -> list[int]:
    import torch.nn as nn

    return [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]


def test_round_to_rounds_the_pruned_channel_counts(compose):
    from hydra.utils import instantiate

    from helpers.models import tiny_input, tiny_model

    cfg = compose(["pruner=dg_group"])
    pruner = instantiate(cfg.pruner)
    x = tiny_input("tiny_cnn")
    plain = pruner.prune(tiny_model("tiny_cnn"), 0.4, x)
    pruner.round_to = 8
    rounded = pruner.prune(tiny_model("tiny_cnn"), 0.4, x)
    assert any(c % 8 for c in _channels(plain))  # the check below can fail
    assert all(c % 8 == 0 for c in _channels(rounded))


def test_a_rounded_job_is_its_own_protocol_and_flags_a_slowdown(compose, store, weights_cache):
    common = ["ratio=0.5", "sweep_id=round", f"tracking.uri={store}", *FAST]
    job.run_job(compose(["pruner=dg_group", "prune.round_to=auto", *common]))
    job.run_job_isolated(compose(["pruner=l1_unstructured", "prune.round_to=8", *common]))
    runs = {r.info.run_name: r for r in tracking.search_runs(store, EXPERIMENT)}
    rounded = runs["tiny_cnn/dg_group/0.5/roundauto"]
    assert rounded.info.status == "FINISHED"
    assert rounded.data.params["prune.round_to_used"] == "16"  # auto on a CPU
    assert rounded.data.tags["slower_than_dense"] in ("true", "false")
    mask = runs["tiny_cnn/l1_unstructured/0.5/round8"]
    assert mask.data.tags["not_applicable"] == "true"
    assert "no channel counts to round" in mask.data.tags["error"]
    (row,) = [r for r in rows.load_sweep(store, EXPERIMENT, "round").rows if r.pruner == "dg_group"]
    assert row.method == "dg_group/roundauto"


def test_the_slowdown_flag_names_the_runtime_and_the_hint():
    m = {"speedup": 1.1, "onnxruntime/speedup": 0.64, "onnxruntime/speedup_ci_low": 0.6}
    m["onnxruntime/speedup_ci_high"] = 0.7
    tags = {"onnxruntime/slower_than_dense": "true", "slower_than_dense": "false"}
    row = rows.Row("tiny", "tiny", "dg_group", 0.5, "FINISHED", m, tags, {}, target="macs=0.5")
    assert cells.slower_than_dense(row) == [
        "slower than dense in onnxruntime 0.64x [0.60, 0.70]: try prune.round_to=16 (or auto)"
    ]
    tags["onnxruntime/slower_than_dense"] = "false"
    assert cells.slower_than_dense(row) == []
