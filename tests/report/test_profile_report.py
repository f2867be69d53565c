"""*Where the time went* in the report: each profiled run's layers behind its gap per runtime, whether
its rounded twin still has them, the op types that lose speed most often; and flips between runtimes
counted only where a reader would act on them."""

from __future__ import annotations

import json

from helpers.runs import EXPERIMENT, log_fake_run
from sweep import report, tracking


def _slow(layer: str, op: str = "Conv", aligned: bool = False, share: float = 0.6) -> str:
    found = {"layer": layer, "op": op, "channels": "64->40 in, 64->40 out", "aligned": aligned}
    return json.dumps([{**found, "share": share}])


def _ort(speedup: float, low: float, high: float) -> dict:
    return {
        "onnxruntime/speedup": speedup,
        "onnxruntime/speedup_ci_low": low,
        "onnxruntime/speedup_ci_high": high,
        "onnxruntime/dense_latency_ms": 1.0,
        "onnxruntime/latency_ms": 1 / speedup,
    }


def test_where_the_time_went_names_the_layers_and_the_rounded_twin(store, tmp_path):
    profiled = {"profiled": "onnxruntime: slower than dense (0.70x)"}
    log_fake_run(
        store, "p", "tiny_cnn", "dg_group", 0.5, target="macs=0.5", macs=1e6,
        metrics={**_ort(0.7, 0.65, 0.75), "onnxruntime/profile_coverage": 0.93,
                 "onnxruntime/profile_misaligned_share": 0.8},
        tags={**profiled, "onnxruntime/slower_than_dense": "true",
              "onnxruntime/slow_layers": _slow("layer4.0.conv1")},
    )  # fmt: skip
    log_fake_run(
        store, "p", "tiny_cnn", "dg_group", 0.5, target="macs=0.5", macs=1e6,
        extra_params={"prune.round_to": "16"},
        metrics={**_ort(1.6, 1.5, 1.7), "onnxruntime/profile_coverage": 0.97},
        tags={**profiled, "onnxruntime/slow_layers": _slow("layer1.0.conv2", aligned=True, share=0.2)},
    )  # fmt: skip
    log_fake_run(store, "p", "tiny_cnn", "dg_random", 0.5, target="macs=0.5", macs=1e6,
                 metrics=_ort(1.5, 1.4, 1.6))  # fmt: skip
    doc = report.write_report(store, EXPERIMENT, "p", tmp_path).read_text()
    section = doc.split("## Where the time went")[1].split("\n## ")[0]
    assert "2 runs profiled" in section and "(1 of the 2 runs and runtimes profiled)" in section
    assert "| tiny_cnn/dg_group/round16/macs=0.5 |" not in section  # not slower than dense: no row
    assert (
        "| tiny_cnn/dg_group/macs=0.5 | onnxruntime | 0.70x [0.65, 0.75] (2.00x) | 80% | layer4.0.conv1 "
        "(Conv, 64->40 in, 64->40 out, not x16: 60 % of the gap) | round16: 1.60x [1.50, 1.70]; "
        "layer4.0.conv1 no longer behind the gap |"
    ) in section
    assert "- onnxruntime: the op types behind the gap most often: Conv (2 of 2)" in section
    assert "onnxruntime 95% (range 93%-97%)" in section
    assert "dg_random" not in section  # not profiled
    flag = "most of the gap in onnxruntime: layer4.0.conv1 (Conv, 64->40 in, 64->40 out, not x16"
    assert flag in doc


def test_no_profile_no_section(store, tmp_path):
    log_fake_run(store, "q", "tiny_cnn", "dg_group", 0.5)
    doc = report.write_report(store, EXPERIMENT, "q", tmp_path).read_text()
    assert "Where the time went" not in doc


def test_a_flip_between_runtimes_counts_only_beyond_a_practical_margin(store, tmp_path):
    def run(pruner, eager, ort):
        m = {"speedup": eager[0], "speedup_ci_low": eager[1], "speedup_ci_high": eager[2]}
        log_fake_run(store, "f", "tiny_cnn", pruner, 0.5, target="macs=0.5",
                     metrics={**m, **_ort(*ort)})  # fmt: skip

    # clear of both intervals in each runtime, but only 2 % apart in eager: not acted on
    run("dg_group", (1.02, 1.015, 1.025), (0.80, 0.78, 0.82))
    run("dg_random", (1.00, 0.995, 1.005), (0.90, 0.88, 0.92))
    # 20 % apart each way: a flip
    run("dg_taylor", (1.30, 1.28, 1.32), (0.70, 0.69, 0.71))
    doc = report.write_report(store, EXPERIMENT, "f", tmp_path).read_text()
    flips = [line for line in doc.splitlines() if line.startswith("- tiny_cnn, macs=0.5:")]
    assert flips == [
        "- tiny_cnn, macs=0.5: dg_group is faster than dg_taylor in onnxruntime (0.80x vs 0.70x), "
        "slower in eager (1.02x vs 1.30x)",
        "- tiny_cnn, macs=0.5: dg_random is faster than dg_taylor in onnxruntime (0.90x vs 0.70x), "
        "slower in eager (1.00x vs 1.30x)",
    ]  # and not dg_group against dg_random: 2 % apart in eager


def test_what_ships_is_shown_dense_to_pruned_per_runtime():
    from sweep.report import cells, rows

    m = {"dense_file_mb": 1.511, "file_mb": 0.389, "dense_peak_mem_mb": 1.43, "peak_mem_mb": 0.36}
    m |= {"onnxruntime/dense_file_mb": 1.5, "onnxruntime/file_mb": 0.38}
    m |= {"onnxruntime/int8/dense_file_mb": 0.43, "onnxruntime/int8/file_mb": 0.14}
    m |= {"onnxruntime/dense_peak_mem_mb": float("nan"), "onnxruntime/peak_mem_mb": 0.4}
    row = rows.Row("tiny", "tiny", "dg_group", 0.5, "FINISHED", m, {}, {})
    assert cells.footprint(row) == "1.51→0.389 MB, 1.43→0.36 MiB"
    # a memory figure the runtime could not read (NaN) is left out, not shown as nan
    assert cells.footprints(row, ["eager", "onnxruntime"]) == (
        "eager 1.51→0.389 MB, 1.43→0.36 MiB; onnxruntime 1.5→0.38 MB"
    )
    assert cells.footprint(row, "onnxruntime", key_of=tracking.int8_key) == "0.43→0.14 MB"
    assert cells.footprints(row, ["openvino"]) == "—"
