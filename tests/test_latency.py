"""The latency harness: interleaved timing, warm-up, paired speedup and its interval."""

from __future__ import annotations

import statistics

import pytest
import torch
import torch.nn as nn

from sweep.measure.latency import LatencySettings, paired_speedup, time_models


class Sleepy(nn.Module):
    """A model whose forward takes a known time, plus a slow first call (a warm-up artefact)."""

    def __init__(self, ms: float, first_ms: float = 0.0):
        super().__init__()
        self.ms, self.first_ms, self.calls = ms, first_ms, 0
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        import time

        self.calls += 1
        time.sleep((self.first_ms if self.calls == 1 else self.ms) / 1000)
        return x


def test_paired_speedup_value_and_interval():
    base = [10.0, 10.5, 9.5, 10.2, 9.8] * 10
    new = [5.0, 5.25, 4.75, 5.1, 4.9] * 10
    s = paired_speedup(base, new, n_boot=500)
    assert s.value == pytest.approx(statistics.median(base) / statistics.median(new))
    assert s.ci_low <= s.value <= s.ci_high
    assert s.ci_low > 1.8 and s.ci_high < 2.2


def test_interval_is_wide_when_timings_are_noisy():
    g = torch.Generator().manual_seed(0)
    base = (10 + 5 * torch.rand(40, generator=g)).tolist()
    new = (10 + 5 * torch.rand(40, generator=g)).tolist()
    s = paired_speedup(base, new, n_boot=500)
    assert s.ci_low < 1.0 < s.ci_high


def test_warmup_absorbs_slow_first_call_and_interleaves():
    a, b = Sleepy(2.0, first_ms=60.0), Sleepy(1.0, first_ms=60.0)
    settings = LatencySettings(
        warmup_min=3, warmup_max=20, iters=12, time_budget_s=5.0, bootstrap=0
    )
    timing = time_models([a, b], torch.zeros(1, 3, 4, 4), settings, torch.device("cpu"))
    sa, sb = timing.stats
    assert len(sa.samples_ms) == len(sb.samples_ms) == 12 == timing.iters
    assert sa.warmup_iters >= 3 and sa.warmup_stable
    assert max(sa.samples_ms) < 30  # the 60 ms first call was warm-up, not a sample
    assert sa.median_ms == pytest.approx(2.0, abs=1.0) and sb.median_ms == pytest.approx(
        1.0, abs=1.0
    )
    assert sa.p90_ms >= sa.median_ms and sa.std_ms >= 0
    assert sa.throughput == pytest.approx(1000 / sa.median_ms)
    # both models ran the same number of times: warm-up + timed + one peak-memory pass
    assert a.calls == b.calls == sa.warmup_iters + 12 + 1


def test_auto_iters_respects_bounds():
    bounds = dict(warmup_min=3, warmup_max=6, iters="auto", iters_min=4, iters_max=9, bootstrap=0)
    x, cpu = torch.zeros(1, 3, 4, 4), torch.device("cpu")
    assert (
        time_models([Sleepy(0.5)], x, LatencySettings(**bounds, time_budget_s=10.0), cpu).iters == 9
    )
    assert (
        time_models([Sleepy(0.5)], x, LatencySettings(**bounds, time_budget_s=0.001), cpu).iters
        == 4
    )


def test_threads_are_fixed_while_timing_and_restored():
    before = torch.get_num_threads()
    settings = LatencySettings(threads=1, iters=3, warmup_max=3, bootstrap=0)
    timing = time_models([nn.Linear(4, 4)], torch.zeros(1, 4), settings, torch.device("cpu"))
    assert timing.threads == 1 and torch.get_num_threads() == before


@pytest.mark.parametrize("precision", ["bf16"])
def test_cpu_autocast_and_channels_last_run(precision):
    import timm

    model = timm.create_model("test_resnet", num_classes=10)
    settings = LatencySettings(
        precision=precision, channels_last=True, iters=3, warmup_max=3, bootstrap=0
    )
    timing = time_models([model], torch.randn(2, 3, 32, 32), settings, torch.device("cpu"))
    assert timing.stats[0].median_ms > 0 and timing.stats[0].batch_size == 2


def test_bad_precision_is_refused():
    settings = LatencySettings(precision="fp8", warmup_max=1, iters=1)
    with pytest.raises(ValueError, match="precision='fp8'"):
        time_models([Sleepy(0.1)], torch.zeros(1, 3, 4, 4), settings, torch.device("cpu"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(
    "precision,channels_last", [("fp32", False), ("fp16", True), ("bf16", False)]
)
def test_cuda_event_timing(precision, channels_last):
    import timm

    dev = torch.device("cuda")
    bench_before = torch.backends.cudnn.benchmark
    dense = timm.create_model("resnet18", num_classes=10).to(dev)
    small = timm.create_model("resnet10t", num_classes=10).to(dev)
    settings = LatencySettings(
        precision=precision, channels_last=channels_last, iters=20, bootstrap=200
    )
    timing = time_models([dense, small], torch.randn(8, 3, 64, 64), settings, dev)
    d, s = timing.stats
    assert timing.device.startswith("cuda")
    assert d.median_ms > 0 and s.median_ms > 0 and d.peak_mem_mb > 0
    assert torch.backends.cudnn.benchmark == bench_before
    assert timing.iters == 20 and len(d.samples_ms) == 20
