"""Dense/pruned pairs timed by the harness and by each runtime's standard tool, on the same model files.

Peers, each back to back on one model at a time, as their users run them:
- eager: `torch.utils.benchmark.Timer.blocked_autorange` (its median of block means);
- ONNX Runtime: a plain loop of `InferenceSession.run` on the harness's own sessions (their options:
  the same threads, sequential execution, spinning off), the median of its calls after a quarter of
  the time untimed;
- OpenVINO: `benchmark_app` (shipped with the openvino package) on the same file, one stream (what
  the harness's latency hint sets), one sync request, the same threads, f32 inference precision, f32
  input (its default for an image input is u8, converted inside the model: another model): its
  reported median.
The harness times the pair as a job does (`time_steps`, both models interleaved in one timing, each in
`measure.instances` instances, in the block scheme and, for reference, the call scheme). Rounds
alternate which side goes first.
"""

from __future__ import annotations

import copy
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils import benchmark

from sweep.measure import runtimes
from sweep.measure.clocks import CpuClock
from sweep.measure.latency import LatencySettings, paired_speedup, time_steps

ROOT = Path(__file__).resolve().parents[1]
# name: (timm model, kwargs, input size); tiny_cnn is make sweep's conf/model/tiny_cnn.yaml
POINTS = {
    "tiny_cnn": ("test_resnet", {}, 32),
    "resnet18@64": ("resnet18", {}, 64),
    "resnet50": ("resnet50", {}, 224),
    "vit_small": ("vit_small_patch16_224", {}, 224),
}
INT8_POINTS = (
    "tiny_cnn",
    "resnet18@64",
)  # sub-millisecond once INT8: where the schemes differ most


@dataclass
class Pair:
    """One point in one runtime and precision: the loaded dense and pruned forms and their files."""

    label: str
    runtime: str
    runs: list  # per model (dense, pruned), its instances' zero-argument calls
    files: list[Path | None]
    x: torch.Tensor
    eager: list[torch.nn.Module] = field(default_factory=list)


def build(name: str, ratio: float) -> tuple[torch.nn.Module, torch.nn.Module, torch.Tensor]:
    model, kwargs, size = POINTS[name]
    torch.manual_seed(0)
    dense = timm.create_model(model, num_classes=10, **kwargs).eval()
    x = torch.randn(1, 3, size, size)
    pruner = instantiate(OmegaConf.load(ROOT / "conf" / "pruner" / "dg_group.yaml"))
    with torch.enable_grad():  # DepGraph traces through autograd
        pruner.check(dense, name, x)
        pruned = pruner.prune(copy.deepcopy(dense), ratio, x).eval()
    return dense, pruned, x


def pairs(
    name: str, runtime_names: list[str], ctx: runtimes.Context, ratio: float, instances: int
) -> list[Pair]:
    dense, pruned, x = build(name, ratio)
    out = []
    for rt in runtime_names:
        runtime = runtimes.get(rt)
        loaded = [runtime.load(m, x, ctx, w) for m, w in ((dense, "dense"), (pruned, "pruned"))]
        runs = [[one.run for one in m.instances(instances)] for m in loaded]
        out.append(Pair(f"{name} fp32", rt, runs, [m.file for m in loaded], x))
        if rt == "eager":
            out[-1].eager = [dense, pruned]
        if name in INT8_POINTS and rt in ("onnxruntime", "openvino"):
            out.append(_int8(name, rt, runtime, (dense, pruned), x, ctx, instances))
    return out


def _int8(name, rt, runtime, models, x, ctx, instances) -> Pair:
    """The INT8 forms, calibrated on 8 random batches (speed does not depend on the calibration)."""
    g = torch.Generator().manual_seed(1)
    calibration = [torch.randn(x.shape, generator=g) for _ in range(8)]
    if rt == "onnxruntime":
        loaded = [
            runtime.int8(m, x, calibration=calibration, ctx=ctx, what=w)
            for m, w in zip(models, ("dense", "pruned"))
        ]
        runs = [[one.run for one in m.instances(instances)] for m in loaded]
        return Pair(f"{name} int8", rt, runs, [m.file for m in loaded], x)
    import openvino as ov

    from sweep.measure.runtimes.openvino import _nncf_int8

    runs, files = [], []
    for m, w in zip(models, ("dense", "pruned")):
        onnx = runtime.load(m, x, ctx, w).file
        ir = ctx.workdir / f"{name.replace('@', '_')}-{w}-int8.xml"
        ov.save_model(_nncf_int8(ov.Core().read_model(str(onnx)), calibration), str(ir))
        compiled = runtime._compiled(ov.Core().read_model(str(ir)), x, ctx, w, 0.0)
        runs.append([one.run for one in compiled.instances(instances)])
        files.append(ir)
    return Pair(f"{name} int8", rt, runs, files, x)


def harness(
    pair: Pair, threads: int, budget: float, scheme: str, **settings
) -> tuple[list[float], float]:
    """The harness's medians (dense, pruned) and speedup, as a job times the pair (`settings`: other
    `measure.*` keys)."""
    settings = LatencySettings(
        time_budget_s=budget, threads=threads, bootstrap=0, interleave=scheme, **settings
    )
    timing = time_steps(pair.runs, 1, settings, torch.device("cpu"), cuda_events=False)
    d, p = timing.stats
    return [d.median_ms, p.median_ms], paired_speedup(d.samples_ms, p.samples_ms, 0).value


def peer(pair: Pair, i: int, threads: int, seconds: float) -> float:
    """The standard tool's median ms for model i of the pair."""
    if pair.runtime == "eager":
        timer = benchmark.Timer(
            stmt="model(x)",
            setup="torch.set_grad_enabled(False)",
            globals={"model": pair.eager[i], "x": pair.x, "torch": torch},
            num_threads=threads,
        )
        try:
            return timer.blocked_autorange(min_run_time=seconds).median * 1000
        finally:
            torch.set_grad_enabled(True)  # Timer's setup runs in this thread
    if pair.runtime == "onnxruntime":
        return own_loop(pair, i, seconds)
    return _benchmark_app(pair.files[i], threads, seconds)


def own_loop(pair: Pair, i: int, seconds: float) -> float:
    """A plain loop on the harness's own sessions (compiled models) of model i, each for an equal
    share of the time: the median over their calls (two sessions of one file differ by up to 10 % on
    a model of a tenth of a millisecond: where their memory landed)."""
    calls = pair.runs[i]
    return statistics.median(ms for run in calls for ms in _loop(run, seconds / len(calls)))


def _loop(run, seconds: float) -> list[float]:
    """Back-to-back calls, a quarter of the time untimed, then each call timed by the harness's host
    clock (which reads a runtime's own clock where it has one: OpenVINO's request latency)."""
    clock = CpuClock()
    end = time.perf_counter() + seconds / 4
    while time.perf_counter() < end:
        run()
    calls = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(calls) < 10:
        calls.append(clock.time(run))
    return calls


def _benchmark_app(path: Path, threads: int, seconds: float) -> float:
    app = Path(sys.executable).parent / "benchmark_app"
    # its UI takes streams and threads only without a hint: one stream is what the latency hint sets
    cmd = [str(app), "-m", str(path), "-d", "CPU", "-hint", "none", "-nstreams", "1"]
    cmd += ["-nireq", "1", "-api", "sync", "-nthreads", str(threads), "-infer_precision", "f32"]
    cmd += ["-ip", "f32"]  # the model's own input: without it, u8 and a Convert inside the model
    cmd += ["-t", str(max(1, round(seconds)))]  # whole seconds only
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    found = re.search(r"Median:\s+([0-9.]+) (ms|us)", out)
    count = re.search(r"Count:\s+([0-9]+) iterations", out)
    duration = re.search(r"Duration:\s+([0-9.]+) ms", out)
    if found is None or count is None or duration is None:
        raise RuntimeError(f"benchmark_app printed no median:\n{out[-2000:]}")
    # its median is each request's latency as OpenVINO measures it inside the call; its wall time
    # per iteration also holds the Python call around it, as the harness's figures do
    WALL_MS.setdefault(path, []).append(float(duration.group(1)) / int(count.group(1)))
    return float(found.group(1)) / (1000 if found.group(2) == "us" else 1)


WALL_MS: dict[Path, list[float]] = {}  # benchmark_app's wall time per iteration, by file
