"""The latency harness: interleaved timing, warm-up, paired speedup and its interval."""

from __future__ import annotations

import math
import statistics
import time

import pytest
import torch
import torch.nn as nn

from sweep.measure.latency import (
    HARNESS_VERSION,
    LatencySettings,
    instance_of,
    paired_speedup,
    time_models,
    time_steps,
)


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


@pytest.mark.parametrize("interleave", ["block", "call"])
def test_warmup_absorbs_slow_first_call(interleave):
    a, b = Sleepy(2.0, first_ms=60.0), Sleepy(1.0, first_ms=60.0)
    settings = LatencySettings(
        warmup_min=3, warmup_max=20, iters=12, time_budget_s=5.0, bootstrap=0, interleave=interleave
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
    assert timing.harness == f"{interleave}/{HARNESS_VERSION}" and timing.scheme == interleave
    # each ran its warm-up, its rounds' untimed and timed calls (its copy the other half of the
    # rounds), and one peak-memory pass
    assert timing.instances == 2
    for model, st in ((a, sa), (b, sb)):
        per_round = st.untimed_calls + st.block_calls
        assert model.calls == st.warmup_iters + 6 * per_round + 1


class Logged:
    """A step that notes its name in a shared log each call."""

    def __init__(self, name: str, log: list[str], ms: float = 0.3):
        self.name, self.log, self.ms = name, log, ms

    def __call__(self):
        self.log.append(self.name)
        end = time.perf_counter() + self.ms / 1000
        while time.perf_counter() < end:
            pass


def _timed_tail(log: list[str], timing) -> list[str]:
    per_round = sum(st.untimed_calls + st.block_calls for st in timing.stats)
    return log[-timing.iters * per_round :]


def test_block_scheme_runs_blocks_back_to_back_and_alternates_the_order():
    log: list[str] = []
    steps = [Logged("a", log), Logged("b", log)]
    settings = LatencySettings(iters=6, warmup_max=6, block_ms=3.0, bootstrap=0)
    timing = time_steps(steps, 1, settings, torch.device("cpu"))
    sa, sb = timing.stats
    assert sa.block_calls > 1 and 2 <= sa.untimed_calls <= 10  # 0.3 ms calls: ~10 a 3 ms block
    n = sa.untimed_calls + sa.block_calls
    want = []
    for r in range(6):
        order = ("a", "b") if r % 2 == 0 else ("b", "a")
        want += [order[0]] * n + [order[1]] * n
    assert _timed_tail(log, timing) == want


def test_instances_take_turns_in_pairs_of_rounds():
    """Each model given as two instances: a round times one instance of each, pairs of rounds take
    turns (so each instance runs in both orders), every instance is warmed up."""
    log: list[str] = []
    steps = [
        [Logged("a0", log), Logged("a1", log)],
        [Logged("b0", log), Logged("b1", log), Logged("b2", log)],
    ]
    settings = LatencySettings(iters=8, warmup_max=6, block_ms=1.0, bootstrap=0)
    timing = time_steps(steps, 1, settings, torch.device("cpu"))
    assert timing.instances == 2 and len(timing.stats) == 2  # as many as the model with fewest
    assert "b2" not in log and {"a0", "a1", "b0", "b1"} <= set(log[: 4 * 3])
    firsts = []
    for name in _timed_tail(log, timing):
        if not firsts or firsts[-1] != name:
            firsts.append(name)
    # runs of one name: round 0 a0 b0, round 1 b0 a0, round 2 a1 b1, round 3 b1 a1, ...
    assert firsts == ["a0", "b0", "a0", "a1", "b1", "a1"] * 2


def test_interval_carries_a_difference_between_instances():
    """Two instances of the dense model differ by 20 %: the interval over instances holds both
    instances' ratios; the same rounds read as one instance give a narrow interval that holds neither."""
    g = torch.Generator().manual_seed(0)
    n = 80
    noise = (1 + 0.005 * torch.randn(n, generator=g)).tolist()
    base = [(10.0 if instance_of(r, 2) == 0 else 12.0) * noise[r] for r in range(n)]
    new = [5.0] * n
    two = paired_speedup(base, new, n_boot=2000, instances=2)
    one = paired_speedup(base, new, n_boot=2000, instances=1)
    assert two.ci_low < 2.05 and two.ci_high > 2.35
    assert one.ci_high - one.ci_low < 0.5 * (two.ci_high - two.ci_low)
    assert two.value == one.value


def test_call_scheme_times_one_call_of_each_in_turn():
    log: list[str] = []
    steps = [Logged("a", log), Logged("b", log)]
    settings = LatencySettings(iters=6, warmup_max=6, bootstrap=0, interleave="call")
    timing = time_steps(steps, 1, settings, torch.device("cpu"))
    assert all(st.block_calls == 1 and st.untimed_calls == 0 for st in timing.stats)
    assert _timed_tail(log, timing) == ["a", "b"] * 6


class ColdAfterOthers:
    """A step that is slow right after another step ran (cold caches), fast back to back."""

    last: list[str] = [""]

    def __init__(self, name: str):
        self.name = name

    def __call__(self):
        ms = 0.4 if self.last[0] == self.name else 1.2
        self.last[0] = self.name
        end = time.perf_counter() + ms / 1000
        while time.perf_counter() < end:
            pass


def test_blocks_read_the_warm_latency_one_call_in_turn_the_cold_one():
    steps = [ColdAfterOthers("a"), ColdAfterOthers("b")]
    cpu = torch.device("cpu")
    common = dict(iters=10, warmup_max=6, bootstrap=0, block_ms=8.0)
    block = time_steps(steps, 1, LatencySettings(**common), cpu).stats[0].median_ms
    call = (
        time_steps(steps, 1, LatencySettings(**common, interleave="call"), cpu).stats[0].median_ms
    )
    assert block < 0.7 < 1.0 < call


def test_bad_scheme_is_refused():
    settings = LatencySettings(interleave="bursts", warmup_max=1, iters=1)
    with pytest.raises(ValueError, match="interleave='bursts': choose block, call"):
        time_steps([lambda: None], 1, settings, torch.device("cpu"))


def test_auto_iters_respects_bounds():
    bounds = dict(warmup_min=3, warmup_max=6, iters="auto", iters_min=4, iters_max=9, bootstrap=0)
    bounds["interleave"] = "call"  # one call a round: rounds and calls are the same
    x, cpu = torch.zeros(1, 3, 4, 4), torch.device("cpu")
    assert (
        time_models([Sleepy(0.5)], x, LatencySettings(**bounds, time_budget_s=10.0), cpu).iters == 9
    )
    assert (
        time_models([Sleepy(0.5)], x, LatencySettings(**bounds, time_budget_s=0.001), cpu).iters
        == 4
    )


def test_auto_rounds_keep_each_model_within_iters_max_calls():
    """Blocks of 0.3 ms calls spanning 3 ms: about 10 timed calls a round, so 1,000 calls at most
    is about 100 rounds however long the budget; the slow model's blocks are one call."""
    log: list[str] = []
    steps = [Logged("fast", log, ms=0.3), Logged("slow", log, ms=4.0)]
    settings = LatencySettings(warmup_max=6, block_ms=3.0, iters_max=200, time_budget_s=60.0)
    timing = time_steps(steps, 1, settings, torch.device("cpu"))
    fast, slow = timing.stats
    assert slow.block_calls == 1 and fast.block_calls >= 5
    assert timing.iters == 200 // fast.block_calls and timing.iters * fast.block_calls <= 200


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


def test_drift_within_a_run_widens_the_interval():
    """Rounds are resampled in runs of consecutive rounds: a speedup that drifts over the timing gets
    a wider interval than the same rounds in random order (no drift, only spread)."""
    g = torch.Generator().manual_seed(0)
    n = 60
    base = [10.0] * n
    noise = (1 + 0.01 * torch.randn(n, generator=g)).tolist()
    new = [10 / (2.0 - 0.2 * i / n) * noise[i] for i in range(n)]  # 2.0x drifting to 1.8x
    order = torch.randperm(n, generator=g).tolist()
    drifting = paired_speedup(base, new, n_boot=2000)
    shuffled = paired_speedup(base, [new[i] for i in order], n_boot=2000)
    assert drifting.value == pytest.approx(shuffled.value)
    width = drifting.ci_high - drifting.ci_low
    assert width > 1.5 * (shuffled.ci_high - shuffled.ci_low)
    assert drifting.ci_low <= drifting.value <= drifting.ci_high


def test_run_to_run_cv_widens_each_side_in_quadrature_on_a_log_scale():
    """Timings without spread have a point interval of their own; the machine's run-to-run CV gives
    them its 95 % half-width, and an interval of its own adds to it in quadrature."""
    flat = paired_speedup([10.0] * 20, [5.0] * 20, n_boot=200, run_to_run_cv=0.02)
    z = 1.959964 * math.log(1.02)
    assert flat.value == pytest.approx(2.0)
    assert math.log(flat.ci_high / 2.0) == pytest.approx(z)
    assert math.log(2.0 / flat.ci_low) == pytest.approx(z)
    g = torch.Generator().manual_seed(0)
    base = (10 * (1 + 0.03 * torch.randn(40, generator=g))).tolist()
    own = paired_speedup(base, [5.0] * 40, n_boot=500)
    both = paired_speedup(base, [5.0] * 40, n_boot=500, run_to_run_cv=0.02)
    assert both.value == own.value
    assert math.log(both.ci_high / both.value) == pytest.approx(
        math.hypot(math.log(own.ci_high / own.value), z)
    )
    assert both.ci_low < own.ci_low < own.ci_high < both.ci_high


def test_a_slowdown_within_the_run_to_run_spread_is_not_called_slower():
    """1 % slower with no spread in the job: beyond the job's own interval, but within what moves
    from one job to the next, so no `slower_than_dense` unless that spread is set to 0."""
    base, new = [10.0] * 20, [10.1] * 20
    assert paired_speedup(base, new, n_boot=200, run_to_run_cv=0.0).slower_than_dense
    assert not paired_speedup(base, new, n_boot=200, run_to_run_cv=0.02).slower_than_dense
    assert paired_speedup([10.0] * 20, [11.0] * 20, run_to_run_cv=0.02).slower_than_dense


def test_the_timing_carries_the_configured_run_to_run_cv():
    steps = [lambda: time.sleep(0.0002), lambda: time.sleep(0.0002)]
    settings = LatencySettings(iters=8, warmup_min=2, warmup_max=3, run_to_run_cv=0.1)
    timing = time_steps(steps, 1, settings, torch.device("cpu"))
    s = timing.speedup(0, 1)
    assert timing.run_to_run_cv == 0.1
    assert s.ci_high / s.value >= 1.1**1.959964 * 0.999
