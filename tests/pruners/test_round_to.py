"""Hardware-friendly channel counts: `prune.round_to` rounds a structural method's channel counts, is a
protocol of its own in the run name and the report, and a pruned model slower than its dense one beyond
the interval is flagged per runtime, with the hint."""

from __future__ import annotations

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


def test_the_slowdown_flag_names_the_layers_behind_the_gap():
    m = {"speedup": 1.1, "onnxruntime/speedup": 0.64, "onnxruntime/speedup_ci_low": 0.6}
    m["onnxruntime/speedup_ci_high"] = 0.7
    slow = '[{"layer":"layer4.0.conv1","op":"Conv","channels":"192->96 in, 96->45 out","aligned":false,"share":0.61}]'
    tags = {"onnxruntime/slower_than_dense": "true", "onnxruntime/slow_layers": slow}
    row = rows.Row("tiny", "tiny", "dg_group", 0.5, "FINISHED", m, tags, {}, target="macs=0.5")
    assert cells.slower_than_dense(row) == [
        "slower than dense in onnxruntime 0.64x [0.60, 0.70]: most of the gap in onnxruntime: "
        "layer4.0.conv1 (Conv, 192->96 in, 96->45 out, not x16: 61 % of the gap); "
        "try prune.round_to=16 (or auto)"
    ]
    tags["onnxruntime/slow_layers"] = "not json"  # an unreadable tag: the flag without layers
    assert cells.slower_than_dense(row)[0].endswith(": try prune.round_to=16 (or auto)")
