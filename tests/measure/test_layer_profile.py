"""Per-layer time: eager's module hooks, layers matched dense to pruned, the gap each explains, and
when a job profiles."""

from __future__ import annotations

import time

import pytest
import timm
import torch
import torch.nn as nn

from sweep.job.profile import Timed, why_profile
from sweep.measure.layer_table import LayerShape, compare, layer_shapes
from sweep.measure.layer_times import LayerTime, ModulePaths, by_layer, median_times
from sweep.measure.module_hooks import module_times

CPU = torch.device("cpu")


class Sleeps(nn.Module):
    def __init__(self, ms: float):
        super().__init__()
        self.ms = ms

    def forward(self, x):
        time.sleep(self.ms / 1e3)
        return x


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(Sleeps(4), nn.Linear(8, 8))
        self.tail = Sleeps(1)

    def forward(self, x):
        time.sleep(0.002)  # the model's own forward: no layer's
        return self.tail(self.block(x))


def test_module_hooks_give_each_module_its_self_time():
    times = by_layer(module_times(Outer(), torch.randn(1, 8), CPU, "fp32", rounds=(1, 3)))
    assert set(times) == {"", "block", "block.0", "block.1", "tail"}
    assert times["block.0"] >= 4 and times["tail"] >= 1
    assert times["block"] < 1  # its children's time is theirs, not the container's
    assert 2 <= times[""] < 3.5  # the root's own ops: mapped to no layer
    # the hooks are gone afterwards: a second profile sees the same modules once each
    again = module_times(Outer(), torch.randn(1, 8), CPU, "fp32", rounds=(0, 1))
    assert sorted(t.layer for t in again) == sorted(times)


def test_median_times_take_each_layer_median_over_rounds():
    rounds = [{("a", "Conv"): 1.0}, {("a", "Conv"): 3.0, ("b", "Relu"): 1.0}, {("a", "Conv"): 2.0}]
    got = {(t.layer, t.op): t.ms for t in median_times(rounds)}
    assert got == {("a", "Conv"): 2.0, ("b", "Relu"): 0.0}  # absent in a round: 0 there


def test_exporter_scopes_name_module_paths():
    paths = ModulePaths(timm.create_model("test_resnet", num_classes=10))
    # TorchScript's exporter: a Sequential's child is named by its qualified name
    assert paths.of_scopes(["layer1", "layer1.0", "conv1"]) == "layer1.0.conv1"
    assert paths.of_scopes(["layer1", "layer1.0", "downsample", "downsample.0"]) in paths
    # the dynamo exporter's qualified scopes; an op's own scope is no module
    assert paths.of_scopes(["", "layer2", "layer2.0", "layer2.0.bn1", "relu_1"]) == "layer2.0.bn1"
    assert paths.of_scopes(["Flatten"]) == ""


def _lt(layer, ms, op="Conv"):
    return LayerTime(layer=layer, op=op, ms=ms)


def test_the_gap_is_time_beyond_what_each_layer_macs_predict():
    shapes = (
        {"a": LayerShape(kind="Conv2d", ch_in=32, ch_out=32, macs=100.0),
         "b": LayerShape(kind="Conv2d", ch_in=32, ch_out=32, macs=100.0)},
        {"a": LayerShape(kind="Conv2d", ch_in=32, ch_out=16, macs=50.0),
         "b": LayerShape(kind="Conv2d", ch_in=16, ch_out=13, macs=20.0)},
    )  # fmt: skip
    dense = [_lt("a", 2.0), _lt("b", 2.0), _lt("norm", 1.0, "Norm"), _lt("", 0.5)]
    pruned = [_lt("a", 1.0), _lt("b", 1.4), _lt("norm", 0.5, "Norm"), _lt("", 0.5)]
    t = compare("onnxruntime", (dense, pruned), shapes)
    rows = {r.layer: r for r in t.rows}
    assert rows["a"].gap_ms == pytest.approx(0.0)  # halved MACs, halved time
    assert rows["b"].gap_ms == pytest.approx(1.4 - 2.0 * 0.2)
    # a layer without MACs is held to the model's MAC ratio (70 of 200)
    assert rows["norm"].gap_ms == pytest.approx(0.5 - 1.0 * 0.35)
    assert [r.layer for r in t.behind_gap()] == ["b", "norm"]
    assert rows["b"].share == pytest.approx(1.0 / 1.15)
    assert rows["b"].aligned is False and rows["a"].aligned is True and rows["norm"].aligned is None
    assert rows["a"].multiple_of(8) is True and rows["b"].multiple_of(8) is False
    assert t.named_ms == pytest.approx((5.0, 2.9)) and t.unnamed_ms == (0.5, 0.5)
    assert t.misaligned_share() == pytest.approx(1.4 / 2.9)
    assert t.coverage((5.0, 3.625)) == pytest.approx((1.0, 0.8))
    assert rows["b"].channels() == "32->16 in, 32->13 out"


def test_layer_shapes_read_channels_and_macs():
    conv = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Flatten(), nn.LazyLinear(4)
    )
    x = torch.randn(2, 3, 4, 4)
    conv(x)
    shapes = layer_shapes(conv.eval(), x)
    assert shapes["0"].macs == 8 * 4 * 4 * 3 * 9 and (shapes["0"].ch_in, shapes["0"].ch_out) == (
        3,
        8,
    )
    assert shapes["1"].macs == 0 and shapes["3"].macs == 4 * 128


def _timed(runtime="eager", speedup=1.0, slower=False, trusted=True):
    return Timed(runtime=runtime, dense_ms=1.0, pruned_ms=1.0 / speedup, speedup=speedup,
                 slower=slower, trusted=trusted)  # fmt: skip


def test_auto_profiles_a_run_slower_than_dense_or_far_below_its_macs():
    half = 0.5  # MACs halved: 2x predicted
    assert why_profile("auto", [_timed(speedup=1.8)], half) == ""
    assert why_profile("auto", [_timed(speedup=1.4)], half).startswith("eager: 1.40x of the 2.00x")
    slow = [_timed(speedup=1.9), _timed("openvino", 0.8, slower=True)]
    assert why_profile("auto", slow, half) == "openvino: slower than dense (0.80x)"
    # a contended timing is not read; true and false are what they say
    assert why_profile("auto", [_timed(speedup=0.5, slower=True, trusted=False)], half) == ""
    assert why_profile(True, [_timed(speedup=1.9)], half) == "measure.profile=true"
    assert why_profile(False, slow, half) == ""


def test_the_table_artifact_has_a_value_for_every_column(tmp_path):
    import json

    from sweep.job.profile import COLUMNS, write_tables

    shape = LayerShape(kind="Conv2d", ch_in=32, ch_out=24, macs=100.0)
    t = compare("openvino", ([_lt("a", 2.0)], [_lt("a", 1.5)]), ({"a": shape}, {"a": shape}))
    write_tables([t], tmp_path, batch=1, peaks={"openvino": 1e9})
    table = json.loads((tmp_path / "layers.json").read_text())
    assert table["columns"] == list(COLUMNS) and all(len(r) == len(COLUMNS) for r in table["data"])
    row = dict(zip(COLUMNS, table["data"][0]))
    assert (row["aligned8"], row["aligned16"]) == (True, False)  # 32 and 24 channels
    assert row["pruned_efficiency"] == pytest.approx(100 / 1.5e-3 / 1e9, rel=1e-3)
    assert (tmp_path / "layers.png").stat().st_size > 0
    assert (tmp_path / "layers.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
