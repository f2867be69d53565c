"""Hardware-friendly channel counts: `prune.round_to` rounds a structural method's channel counts, is a
protocol of its own in the run name and the report, and a pruned model slower than its dense one beyond
the interval is flagged per runtime, with the hint."""

from __future__ import annotations

from helpers.cli import FAST
from helpers.runs import EXPERIMENT
from sweep import job, tracking
from sweep.report import rows


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
