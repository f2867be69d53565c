"""What the report does with latency provenance: contended timings and mixed harness schemes."""

from __future__ import annotations

import functools
from types import SimpleNamespace

from helpers.runs import EXPERIMENT, log_fake_run
from sweep import tracking
from sweep.measure import latency
from sweep.report import cells, compare, rows, sections


def _row(pruner: str, eager, onnx, flag: str = "none") -> rows.Row:
    m = {"accuracy_top1": 0.9}
    for rt, (v, lo, hi) in (("eager", eager), ("onnxruntime", onnx)):
        key = functools.partial(tracking.runtime_key, rt)
        m.update({key("speedup"): v, key("speedup_ci_low"): lo, key("speedup_ci_high"): hi})
    tags = {tracking.TAG_KIND: "structural", tracking.TAG_SPEEDUP_POSSIBLE: "true"}
    tags["onnxruntime/latency_flag"] = flag
    return rows.Row("tiny", "tiny", pruner, 0.5, "FINISHED", m, tags, {}, target="macs=0.5")


def test_a_contended_timing_decides_no_order_and_no_flip():
    a = _row("a", (1.5, 1.4, 1.6), (1.1, 1.05, 1.15))
    b = _row("b", (1.2, 1.1, 1.3), (1.4, 1.3, 1.5))
    sweep = rows.Sweep("s", [a, b], ["tiny"], ["macs=0.5"], [0], [0], [a, b])
    assert len(compare.ranking_changes(sweep)) == 1 and cells.faster(b, a, "onnxruntime")
    b.tags["onnxruntime/latency_flag"] = "contended"
    assert not cells.faster(b, a, "onnxruntime") and not cells.faster(a, b, "onnxruntime")
    assert cells.faster(a, b)  # eager's timing was not contended
    assert compare.ranking_changes(sweep) == []
    assert "onnxruntime latency not trusted: contended" in cells.flags(b)
    (note,) = [line for line in sections.header(sweep) if line.startswith("Latency harness")]
    assert "1 of 2 runs were timed while other processes took the cores" in note


def test_a_sweep_timed_by_two_harnesses_says_so_and_marks_the_odd_runs(store):
    for pruner, harness in (("dg_group", "block/2"), ("dg_taylor", "block/2"), ("dg_random", None)):
        extra = {tracking.PARAM_HARNESS_USED: harness} if harness else {}
        log_fake_run(store, "mix", "tiny", pruner, 0.5, extra_params=extra)
    sweep = rows.load_sweep(store, EXPERIMENT, "mix")
    (note,) = [line for line in sections.header(sweep) if line.startswith("Latency harness")]
    assert note.startswith(
        "Latency harness: `block/2` (back-to-back blocks of calls, 2 runs), `call/1` (one call of "
        "each model in turn, 1 run)."
    )
    assert "mixes harnesses whose figures do not compare" in note
    odd = {r.pruner: cells.flags(r) for r in sweep.rows}
    assert "timed by latency harness call/1, most of the sweep by block/2" in odd["dg_random"]
    assert not any("harness" in f for f in odd["dg_group"] + odd["dg_taylor"])


def test_one_harness_is_named_without_a_warning(store):
    log_fake_run(
        store, "one", "tiny", "dg_group", 0.5, extra_params={"measure.harness_used": "block/2"}
    )
    sweep = rows.load_sweep(store, EXPERIMENT, "one")
    (note,) = [line for line in sections.header(sweep) if line.startswith("Latency harness")]
    assert note == "Latency harness: `block/2` (back-to-back blocks of calls, 1 run)."


def test_a_resumed_sweep_re_times_a_job_another_harness_timed(compose):
    from sweep.job import run

    cfg = compose(["sweep_id=x"])
    done = functools.partial(SimpleNamespace, info=SimpleNamespace(run_id="r1"))
    assert run._timed_by_another_harness(cfg, done(data=SimpleNamespace(params={})))
    old = {tracking.PARAM_HARNESS_USED: "block/2"}  # one instance of each model
    assert run._timed_by_another_harness(cfg, done(data=SimpleNamespace(params=old)))
    same = {tracking.PARAM_HARNESS_USED: latency.harness_id("block")}
    assert not run._timed_by_another_harness(cfg, done(data=SimpleNamespace(params=same)))
    call = compose(["sweep_id=x", "measure.interleave=call"])
    assert run._timed_by_another_harness(call, done(data=SimpleNamespace(params=same)))
