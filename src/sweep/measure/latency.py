"""The one latency harness, used for the dense and the pruned model alike.

Models are timed interleaved (A B A B ...) on the same input, so that drift of a shared machine hits
both equally and cancels in their ratio. On CUDA each iteration is bracketed by CUDA events after a
synchronise; on CPU by a monotonic clock with a fixed thread count. Warm-up runs until the last two
windows of timings agree (or a cap), then a number of timed iterations.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from sweep.schema import MeasureConfig
from sweep.tracking import names as N

WINDOW = 3  # iterations per warm-up window
# A median whose 95 % interval is wider than this (relative) rests on too few iterations for the spread.
TRUST_CI = 0.05


# The harness's settings are the `measure` config itself (typed and range-checked by the schema).
LatencySettings = MeasureConfig


@dataclass
class LatencyStats:
    samples_ms: list[float]
    warmup_iters: int
    warmup_stable: bool
    batch_size: int
    peak_mem_mb: float = float("nan")

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
            prefix + N.LATENCY_MS: self.median_ms,
            prefix + N.LATENCY_P90_MS: self.p90_ms,
            prefix + N.LATENCY_STD_MS: self.std_ms,
            prefix + N.THROUGHPUT: self.throughput,
            prefix + N.PEAK_MEM_MB: self.peak_mem_mb,
        }


@dataclass
class Speedup:
    value: float
    ci_low: float
    ci_high: float

    def metrics(self) -> dict[str, float]:
        return {
            N.SPEEDUP: self.value,
            N.SPEEDUP_CI_LOW: self.ci_low,
            N.SPEEDUP_CI_HIGH: self.ci_high,
        }

    @property
    def slower_than_dense(self) -> bool:
        """The pruned model is slower beyond the interval: its upper bound below 1."""
        return self.ci_high < 1


@dataclass
class Timing:
    stats: list[LatencyStats]
    threads: int
    iters: int
    device: str

    @property
    def flag(self) -> str:
        """The `latency_flag` tag: none, or the reasons any timed model's figure is not trusted."""
        reasons = sorted({f for st in self.stats for f in st.flags()})
        return ",".join(reasons) or "none"


def paired_speedup(
    base_ms: Sequence[float], new_ms: Sequence[float], n_boot: int = 1000, seed: int = 0
) -> Speedup:
    """median(base) / median(new), with a 95 % bootstrap interval that resamples paired iterations."""
    value = statistics.median(base_ms) / statistics.median(new_ms)
    base = torch.tensor(base_ms, dtype=torch.float64)
    new = torch.tensor(new_ms, dtype=torch.float64)
    if n_boot <= 0 or len(base) < 2:
        return Speedup(value, value, value)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(base), (n_boot, len(base)), generator=g)
    ratios = base[idx].quantile(0.5, dim=1) / new[idx].quantile(0.5, dim=1)
    lo, hi = torch.quantile(ratios, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return Speedup(value, lo, hi)


class _CpuClock:
    def time(self, fn: Callable[[], object]) -> float:
        t0 = time.perf_counter_ns()
        fn()
        return (time.perf_counter_ns() - t0) / 1e6


class _CudaClock:
    def __init__(self, device: torch.device):
        self.device = device
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def time(self, fn: Callable[[], object]) -> float:
        torch.cuda.synchronize(self.device)
        self.start.record()
        fn()
        self.end.record()
        self.end.synchronize()
        return float(self.start.elapsed_time(self.end))


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


def _peak_mem_mb(model: nn.Module, step: Callable[[], object], device: torch.device) -> float:
    """Weights plus the inference peak above what was resident before one forward pass."""
    weights = sum(
        t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers())
    )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        extra = torch.cuda.max_memory_allocated(device) - before
    else:
        extra = _cpu_peak_above_resident(step)
        if extra is None:
            return float("nan")
    return (weights + max(extra, 0)) / 2**20


def _cpu_peak_above_resident(step: Callable[[], object]) -> int | None:
    # Linux: writing 5 to clear_refs resets the process's peak RSS (VmHWM), so the peak of one call is
    # measurable; elsewhere the figure is left out rather than guessed.
    def status(key: str) -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        raise KeyError(key)

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = status("VmRSS:")
        step()
        return status("VmHWM:") - before
    except (OSError, KeyError):
        return None


def resolve_threads(threads: int | str) -> int:
    return torch.get_num_threads() if threads in ("auto", None) else int(threads)


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
) -> tuple[list[nn.Module], list[Callable[[], object]]]:
    """The models as timed (channels_last, compiled) and one forward call of each on `x`."""
    runners = []
    for m in models:
        m.eval()
        if settings.channels_last:
            m = m.to(memory_format=torch.channels_last)
        if settings.compile:
            m = torch.compile(m)
        runners.append(m)
    return runners, [eager_step(m, x, device, settings.precision) for m in runners]


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


def _iterations(warm: list[list[float]], settings: LatencySettings) -> int:
    if settings.iters != "auto":
        return settings.iters
    per_round_s = sum(statistics.median(w[-WINDOW:]) for w in warm) / 1000.0
    iters = int(settings.time_budget_s / max(per_round_s, 1e-9))
    return max(settings.iters_min, min(settings.iters_max, iters))


def time_steps(
    steps: Sequence[Callable[[], object]],
    batch_size: int,
    settings: LatencySettings,
    device: torch.device,
    cuda_events: bool = True,
) -> Timing:
    """Time zero-argument calls (one forward pass each, of any runtime) interleaved: warm-up until
    stable, then the timed rounds. `cuda_events`: on a CUDA device, bracket each call by CUDA events on
    torch's stream; runtimes with their own streams (ONNX Runtime, TensorRT) return only once their
    output is ready, so they are timed by the host clock."""
    threads = resolve_threads(settings.threads)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        cuda = device.type == "cuda" and cuda_events
        clock = _CudaClock(device) if cuda else _CpuClock()
        warm, stable = _warm_up(steps, clock, settings)
        iters = _iterations(warm, settings)
        samples: list[list[float]] = [[] for _ in steps]
        for _ in range(iters):
            for s, out in zip(steps, samples):
                out.append(clock.time(s))
        stats = [LatencyStats(out, len(w), stable, batch_size) for out, w in zip(samples, warm)]
        return Timing(stats, threads, iters, str(device))
    finally:
        torch.set_num_threads(old_threads)


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
        old_threads = torch.get_num_threads()
        torch.set_num_threads(timing.threads)
        try:
            for st, m, s in zip(timing.stats, runners, steps):
                st.peak_mem_mb = _peak_mem_mb(m, s, device)
        finally:
            torch.set_num_threads(old_threads)
        return timing
    finally:
        torch.backends.cudnn.benchmark = old_bench
