"""The one latency harness, used for the dense and the pruned model alike, in every runtime.

Models are timed interleaved on the same input, so that drift of a shared machine hits both alike and
cancels in their ratio. `measure.interleave=block` (the default) times as the standard tools do
(timm's benchmark.py, `torch.utils.benchmark.Timer`, OpenVINO's benchmark_app, ONNX Runtime's perf
test): in each round every model runs a few untimed calls, then a block of back-to-back timed calls,
so its caches hold its own weights; the order of models alternates from round to round. A sample is
a block's median call (CUDA: its mean); a model's figure is the median over its blocks; a speedup pairs the blocks
of one round. `measure.interleave=call` times one call of each model in turn (A B A B ...), every
call after another model's: the latency of models sharing one set of cores in a pipeline, colder than
a model serving a stream of requests sees (on sub-millisecond models the difference is 15-25 %).

On CUDA a block is bracketed by CUDA events after a synchronise; on CPU by a monotonic clock with a
fixed thread count. Warm-up runs until the last two windows of timings agree (or a cap), then the
timed rounds. While they run, the CPU other processes take from the timed cores is measured
(`sweep.measure.contention`): a contended timing is flagged and never called slower than dense.
"""

from __future__ import annotations

import contextlib
import copy
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from sweep.config.schema import INTERLEAVES, MeasureConfig
from sweep.measure.clocks import CpuClock, CudaClock
from sweep.measure.contention import Monitor
from sweep.measure.intervals import Speedup, instance_of, paired_speedup
from sweep.measure.memory import peak_mem_mb
from sweep.tracking import names

WINDOW = 3  # iterations per warm-up window
# Bumped whenever what a figure means changes (runs logged before `measure.harness_used` existed were
# timed one call per model in turn, their bootstrap over single calls: names.HARNESS_BEFORE_PARAM; 2: blocks,
# one instance of each model; 3: `measure.instances` instances, the interval over them too; 4: OpenVINO's
# calls read by its own request latency, as benchmark_app reads them, not the Python call around them,
# and untimed calls spanning 60 ms (up to 10) before each block, was 10 ms (up to 5); 5: OpenVINO called
# synchronously on the timing thread, as benchmark_app's sync API calls it, was start_async + wait; 6:
# each interval also carries the machine's run-to-run spread, `measure.run_to_run_cv`).
HARNESS_VERSION = 6
# Untimed calls before a block: enough to span this long (two to ten), so that the block's calls do not
# pay for the other model's turn. After a turn of its pruned model, resnet18's dense one (64 px, eager,
# 6 ms a call) read 12 % slow with 2 untimed calls, 10 % with 3, 7 % with 5, 1 % with 10: its state
# (the weights in the last-level cache) comes back over tens of milliseconds, not one call.
UNTIMED_MS = 60.0
UNTIMED_MIN, UNTIMED_MAX = 2, 10
BLOCK_CALLS_MAX = 1000
# A median whose 95 % interval is wider than this (relative) rests on too few iterations for the spread.
TRUST_CI = 0.05


# The harness's settings are the `measure` config itself (typed and range-checked by the schema).
LatencySettings = MeasureConfig


def harness_id(scheme: str) -> str:
    """What timed a run: the scheme and the harness's version, e.g. `block/2` (param
    `measure.harness_used`)."""
    return f"{scheme}/{HARNESS_VERSION}"


@dataclass(kw_only=True)
class LatencyStats:
    # per round: its block's median call (CUDA: the block's mean; call scheme: the one call)
    samples_ms: list[float]
    warmup_iters: int
    warmup_stable: bool
    batch_size: int
    peak_mem_mb: float = float("nan")
    block_calls: int = 1  # timed calls per block
    untimed_calls: int = 0  # untimed calls before each block

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p90_ms(self) -> float:
        s = sorted(self.samples_ms)
        return s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]

    @property
    def std_ms(self) -> float:
        return statistics.stdev(self.samples_ms) if len(self.samples_ms) > 1 else 0.0

    @property
    def median_ci_rel(self) -> float:
        """Half-width of an approximate 95 % interval of the median, relative to it: 1.96 x the
        median's standard error (1.253 sigma / sqrt(n)), sigma estimated robustly as 1.4826 x MAD."""
        n, med = len(self.samples_ms), self.median_ms
        if n < 2 or med <= 0:
            return float("inf")
        mad = statistics.median(abs(s - med) for s in self.samples_ms)
        return 1.96 * 1.253 * 1.4826 * mad / n**0.5 / med

    def flags(self, max_ci_rel: float = TRUST_CI) -> list[str]:
        """Why this figure is not to be trusted (empty: trusted)."""
        out = [] if self.warmup_stable else ["warmup_unstable"]
        if self.median_ci_rel > max_ci_rel:
            out.append("few_iterations")
        return out

    @property
    def throughput(self) -> float:
        return self.batch_size / (self.median_ms / 1000.0)

    def metrics(self, prefix: str = "") -> dict[str, float]:
        return {
            prefix + names.LATENCY_MS: self.median_ms,
            prefix + names.LATENCY_P90_MS: self.p90_ms,
            prefix + names.LATENCY_STD_MS: self.std_ms,
            prefix + names.THROUGHPUT: self.throughput,
            prefix + names.PEAK_MEM_MB: self.peak_mem_mb,
        }


@dataclass(kw_only=True)
class Timing:
    stats: list[LatencyStats]
    threads: int
    iters: int  # timed rounds
    device: str
    scheme: str = "block"
    contention: float = float("nan")  # share of the timed cores other processes took, 0..1
    contention_max: float = 1.0  # above it the timing is `contended`
    instances: int = 1  # instances of each model, one timed per round (intervals.instance_of)
    run_to_run_cv: float = 0.0  # the machine's run-to-run spread, added to each interval

    @property
    def harness(self) -> str:
        return harness_id(self.scheme)

    @property
    def contended(self) -> bool:
        return not math.isnan(self.contention) and self.contention > self.contention_max

    @property
    def reasons(self) -> set[str]:
        """Why some figure of this timing is not to be trusted: each model's, and contention."""
        found = {f for st in self.stats for f in st.flags()}
        return found | {names.CONTENDED} if self.contended else found

    @property
    def flag(self) -> str:
        """The `latency_flag` tag: none, or the reasons any timed model's figure is not trusted."""
        return ",".join(sorted(self.reasons)) or "none"

    def slower_than_dense(self, speedup: Speedup) -> bool:
        """`slower_than_dense`, as far as this timing can say: never from a contended one (another
        process's work, not the model's, may be what made the pruned model slow)."""
        return speedup.slower_than_dense and not self.contended

    def metrics(self, prefix: str = "") -> dict[str, float]:
        return (
            {} if math.isnan(self.contention) else {prefix + names.CPU_CONTENTION: self.contention}
        )

    def speedup(self, base: int, new: int, n_boot: int = 1000, seed: int = 0) -> Speedup:
        """Model `base`'s median latency over model `new`'s, with its interval over rounds and
        instances (`intervals.paired_speedup`)."""
        a, b = self.stats[base].samples_ms, self.stats[new].samples_ms
        return paired_speedup(
            a, b, n_boot, seed, instances=self.instances, run_to_run_cv=self.run_to_run_cv
        )


AUTOCAST = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def _autocast(device: torch.device, precision: str):
    if precision not in AUTOCAST:
        raise ValueError(f"measure.precision={precision!r}: choose {', '.join(AUTOCAST)}")
    dtype = AUTOCAST[precision]
    return (
        contextlib.nullcontext()
        if dtype is None
        else torch.autocast(device_type=device.type, dtype=dtype)
    )


def _stable(samples: list[float], tol: float) -> bool:
    if len(samples) < 2 * WINDOW:
        return False
    last = statistics.median(samples[-WINDOW:])
    prev = statistics.median(samples[-2 * WINDOW : -WINDOW])
    return abs(last - prev) <= tol * prev


def resolve_threads(threads: int | str) -> int:
    return torch.get_num_threads() if threads in ("auto", None) else int(threads)


Step = Callable[[], object]  # one forward pass of one model, in any runtime


def eager_step(
    model: nn.Module, x: torch.Tensor, device: torch.device, precision: str
) -> Callable[[], object]:
    """One forward pass of an eager model on `x`, at the measured precision."""

    def step():
        with torch.no_grad(), _autocast(device, precision):
            return model(x)

    return step


def _steps(
    models: Sequence[nn.Module], x: torch.Tensor, settings: LatencySettings, device: torch.device
) -> tuple[list[nn.Module], list[list[Step]]]:
    """The models as timed (channels_last, compiled), and per model `measure.instances` forward calls
    on `x`: the model's and its copies' (each copy's weights elsewhere in memory)."""
    runners, steps = [], []
    for m in models:
        m.eval()
        if settings.channels_last:
            m = m.to(memory_format=torch.channels_last)
        copies = [m] + [copy.deepcopy(m) for _ in range(settings.instances - 1)]
        if settings.compile:
            copies = [torch.compile(c) for c in copies]
        runners.append(copies[0])
        steps.append([eager_step(c, x, device, settings.precision) for c in copies])
    return runners, steps


def _warm_up(steps, clock, settings: LatencySettings) -> tuple[list[list[float]], bool]:
    """Interleaved warm-up until every model's last two windows agree (or warmup_max / the budget)."""
    warm: list[list[float]] = [[] for _ in steps]
    t0 = time.perf_counter()
    stable = False
    for i in range(settings.warmup_max):
        for s, w in zip(steps, warm):
            w.append(clock.time(s))
        if i + 1 >= settings.warmup_min:
            stable = all(_stable(w, settings.warmup_tol) for w in warm)
            if stable or time.perf_counter() - t0 > settings.time_budget_s:
                break
    return warm, stable


@dataclass(frozen=True)
class _Plan:
    """How each model is timed in a round: untimed calls, then a block of timed ones; how many rounds."""

    untimed: list[int]
    block: list[int]
    rounds: int
    alternate: bool  # reverse the order of models every other round


def _call_ms(warm: list[list[float]], instances: int) -> list[float]:
    """Per model, its call time at the end of warm-up (the median over its instances)."""
    return [
        max(
            statistics.median(statistics.median(w[-WINDOW:]) for w in warm[i : i + instances]), 1e-6
        )
        for i in range(0, len(warm), instances)
    ]


def _plan(call_ms: list[float], settings: LatencySettings) -> _Plan:
    """Block lengths from the warm-up's call times (each block spans about `measure.block_ms`), and
    enough rounds to fill `time_budget_s`: at least `iters_min`, and no more than keeps each model's
    timed calls within `iters_max` (a tenth of a millisecond model has its precision long before the
    budget is spent)."""
    if settings.interleave == "call":
        untimed, block = [0] * len(call_ms), [1] * len(call_ms)
    else:
        untimed = [min(UNTIMED_MAX, max(UNTIMED_MIN, math.ceil(UNTIMED_MS / ms))) for ms in call_ms]
        block = [min(BLOCK_CALLS_MAX, max(1, round(settings.block_ms / ms))) for ms in call_ms]
    if settings.iters != "auto":
        rounds = settings.iters
    else:
        per_round_s = sum((u + b) * ms for u, b, ms in zip(untimed, block, call_ms)) / 1000.0
        rounds = int(settings.time_budget_s / max(per_round_s, 1e-9))
        most = settings.iters_max // max(block)
        rounds = max(settings.iters_min, min(most, rounds))
    return _Plan(untimed, block, rounds, alternate=settings.interleave == "block")


def _rounds(steps: list[list[Step]], clock, plan: _Plan) -> list[list[float]]:
    """The timed rounds: per model, one sample (ms per call of its block) a round, from the instance
    whose turn the round is."""
    samples: list[list[float]] = [[] for _ in steps]
    order = list(range(len(steps)))
    for r in range(plan.rounds):
        for i in reversed(order) if plan.alternate and r % 2 else order:
            step = steps[i][instance_of(r, len(steps[i]))]
            for _ in range(plan.untimed[i]):
                step()
            samples[i].append(clock.time(step, plan.block[i]))
    return samples


def time_steps(
    steps: Sequence[Step | Sequence[Step]],
    batch_size: int,
    settings: LatencySettings,
    device: torch.device,
    cuda_events: bool = True,
) -> Timing:
    """Time zero-argument calls (one forward pass each, of any runtime) interleaved: warm-up until
    stable, then the timed rounds of `measure.interleave`'s scheme. A model given as several calls is
    several instances of it (sessions, compiled models, copies), one timed per round in turn; every
    model is timed with as many instances as the one with fewest. `cuda_events`: on a CUDA device,
    bracket each block by CUDA events on torch's stream; runtimes with their own streams (ONNX
    Runtime, TensorRT) return only once their output is ready, so they are timed by the host clock."""
    if settings.interleave not in INTERLEAVES:
        raise ValueError(
            f"measure.interleave={settings.interleave!r}: choose {', '.join(INTERLEAVES)}"
        )
    given = [list(s) if isinstance(s, (list, tuple)) else [s] for s in steps]
    k = min(len(s) for s in given)
    models = [s[:k] for s in given]
    threads = resolve_threads(settings.threads)
    with torch_threads(threads):
        clock = CudaClock(device) if device.type == "cuda" and cuda_events else CpuClock()
        warm, stable = _warm_up([s for m in models for s in m], clock, settings)
        plan = _plan(_call_ms(warm, k), settings)
        with Monitor(threads) as monitor:
            samples = _rounds(models, clock, plan)
    stats = [
        LatencyStats(
            samples_ms=out,
            warmup_iters=len(warm[i * k]),
            warmup_stable=stable,
            batch_size=batch_size,
            block_calls=b,
            untimed_calls=u,
        )
        for i, (out, b, u) in enumerate(zip(samples, plan.block, plan.untimed))
    ]
    return Timing(
        stats=stats,
        threads=threads,
        iters=plan.rounds,
        device=str(device),
        scheme=settings.interleave,
        contention=monitor.share,
        contention_max=settings.contention_max,
        instances=k,
        run_to_run_cv=settings.run_to_run_cv,
    )


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's intra-op thread count set to `n` inside, restored after."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@torch.no_grad()
def time_models(
    models: Sequence[nn.Module],
    example: torch.Tensor,
    settings: LatencySettings,
    device: torch.device,
) -> Timing:
    """Time eager `models` interleaved on one input batch; returns one LatencyStats per model."""
    old_bench = torch.backends.cudnn.benchmark
    try:
        if device.type == "cuda":
            # settle the kernel choice during warm-up, not inside the timed iterations
            torch.backends.cudnn.benchmark = True
        x = example.to(device)
        if settings.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        runners, steps = _steps(models, x, settings, device)
        timing = time_steps(steps, int(x.shape[0]), settings, device)
        with torch_threads(timing.threads):
            for st, m, s in zip(timing.stats, runners, steps):
                st.peak_mem_mb = peak_mem_mb(m, s[0], device)
        return timing
    finally:
        torch.backends.cudnn.benchmark = old_bench
