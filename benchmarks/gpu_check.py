"""Every GPU check of the project in one run: the first thing to run on a machine with CUDA.

Checks, one line each (PASS, N/A with its reason, FAIL with the error), in about 8 minutes on one GPU:
  - the latency harness with CUDA events at fp32, fp16 (channels_last) and bf16, with peak memory;
  - 2:4 sparsity on sparse tensor-core kernels (Ampere or newer, fp16);
  - each runtime on CUDA: torch.compile, ONNX Runtime's CUDA provider, TensorRT (through ONNX
    Runtime's TensorRT provider): output agrees with eager, dense and pruned timed;
  - each runtime's peak (GEMM and depthwise conv) and a model's efficiency against it;
  - the tests marked `gpu` (pytest -m gpu);
  - a small seed-model sweep on the GPU (mobilenetv4_conv_large, dg_group and semi_2_4, synthetic data,
    eager + compile + onnxruntime + tensorrt), every job FINISHED, and its report rendered.
A runtime or kernel the machine lacks is N/A, not a failure. Exits non-zero when any check FAILs;
without CUDA it says so in one line and exits 0.

    python benchmarks/gpu_check.py [--skip-sweep] [--skip-pytest] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
results: list[tuple[str, str]] = []


class NA(Exception):
    """This check does not apply on this machine (the reason is printed)."""


def check(name: str):
    def decorate(fn):
        def run(*args):
            t0 = time.perf_counter()
            try:
                said = fn(*args) or ""
                status = "PASS"
            except NA as e:
                status, said = "N/A", str(e)
            except Exception as e:
                first = (str(e).strip().splitlines() or [""])[0]
                status, said = "FAIL", f"{type(e).__name__}: {first}"
                traceback.print_exc(file=sys.stderr)
            line = (
                f"{status:4} {name} ({time.perf_counter() - t0:.1f} s){': ' + said if said else ''}"
            )
            print(line, flush=True)
            results.append((status, name))

        return run

    return decorate


def _models(dev):
    import timm

    dense = timm.create_model("resnet18", num_classes=10).eval().to(dev)
    small = timm.create_model("resnet10t", num_classes=10).eval().to(dev)
    return dense, small


@check("harness: CUDA events fp32 / fp16 channels_last / bf16, peak memory")
def harness(dev):
    from sweep.measure.latency import LatencySettings, time_models

    dense, small = _models(dev)
    said = []
    for precision, cl in (("fp32", False), ("fp16", True), ("bf16", False)):
        s = LatencySettings(precision=precision, channels_last=cl, iters=30, bootstrap=200)
        t = time_models([dense, small], torch.randn(16, 3, 224, 224), s, dev)
        d, p = t.stats
        assert d.median_ms > 0 and p.median_ms > 0 and d.peak_mem_mb > 0, (d, p)
        said.append(f"{precision} {d.median_ms:.2f}/{p.median_ms:.2f} ms ({t.flag})")
    return "; ".join(said)


@check("2:4 sparsity on sparse tensor cores (fp16)")
def sparse_24(dev):
    import timm

    from sweep.measure.latency import LatencySettings, time_models
    from sweep.pruners.semi_structured import SemiStructured24

    if torch.cuda.get_device_capability(dev) < (8, 0):
        raise NA("needs compute capability 8.0 or newer")
    model = timm.create_model("vit_small_patch16_224", num_classes=10).eval().to(dev)
    x = torch.randn(32, 3, 224, 224, device=dev)
    pruner = SemiStructured24("semi_2_4")
    pruned = pruner.prune(model, 0.5, x[:1])
    sparse, layers = pruner.accelerate(pruned, dev, "fp16")
    if not layers:
        raise AssertionError("no layer ran on sparse kernels")
    dense = timm.create_model("vit_small_patch16_224", num_classes=10).eval().to(dev).half()
    s = LatencySettings(precision="fp16", iters=30, bootstrap=0)
    d, p = time_models([dense, sparse], x, s, dev).stats
    return f"{layers} layers on sparse kernels, {d.median_ms:.2f} -> {p.median_ms:.2f} ms"


def _runtime_check(name: str):
    @check(f"runtime {name} on CUDA: agrees with eager, dense and pruned timed, peak, efficiency")
    def run(dev):
        from sweep.measure import deployed, peak, runtimes
        from sweep.measure.latency import LatencySettings

        dense, small = _models(dev)
        with tempfile.TemporaryDirectory() as tmp:
            ctx = runtimes.Context(dev, "fp32", 1, Path(tmp))
            runtime = runtimes.get(name)
            reason = runtime.unavailable(ctx)
            if reason:
                raise NA(reason)
            s = LatencySettings(iters=30, bootstrap=200)
            try:
                r = deployed.time_in(runtime, dense, small, torch.randn(16, 3, 224, 224), ctx, s)
            except runtimes.RuntimeNotApplicable as e:
                raise NA(str(e)) from None
            assert r.agree, f"outputs differ from eager: {r.max_abs_diff}"
            top = peak.measure(runtime, ctx, s)
            eff = peak.efficiency(1.82e9, 16, r.dense.median_ms, top)
        return (
            f"{r.dense.median_ms:.2f} -> {r.pruned.median_ms:.2f} ms, speedup "
            f"{r.speedup.value:.2f}x [{r.speedup.ci_low:.2f}, {r.speedup.ci_high:.2f}], "
            f"max |diff| {max(r.max_abs_diff):.1e}, GEMM peak {top.gemm / 1e12:.1f} TMAC/s, "
            f"resnet18 efficiency {100 * eff:.1f}%"
        )

    return run


@check("pytest -m gpu")
def gpu_tests(_dev):
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=_env(),
    )
    tail = (r.stdout.strip().splitlines() or ["(no output)"])[-1]
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-6000:] + r.stderr[-3000:])
        raise AssertionError(tail)
    return tail


@check("seed-model sweep on the GPU (m x dg_group, semi_2_4; 4 runtimes) and its report")
def seed_sweep(_dev, out: Path):
    from sweep import report, tracking

    store = f"sqlite:///{out / 'gpu-check.db'}"
    args = [
        "-m",
        "model=m",
        "pruner=dg_group,semi_2_4",
        "ratio=0.5",
        "dataset=synthetic",
        "model.weights=random",  # nothing can be downloaded there
        "device=cuda",
        "measure.batch_size=32",
        "measure.precision=fp16",
        "measure.runtimes=[eager,compile,onnxruntime,tensorrt]",
        "sweep_id=gpu-check",
        f"tracking.uri={store}",
    ]
    r = subprocess.run(
        [sys.executable, "-m", "sweep", *args], cwd=out, capture_output=True, text=True, env=_env()
    )
    runs = tracking.search_runs(store, "pruning-sweep", "gpu-check")
    bad = [x.info.run_name for x in runs if x.info.status != "FINISHED"]
    if r.returncode != 0 or len(runs) != 2 or bad:
        sys.stderr.write(r.stdout[-4000:] + r.stderr[-6000:])
        raise AssertionError(f"exit {r.returncode}, {len(runs)} runs, not finished: {bad}")
    doc = report.write_report(store, "pruning-sweep", "gpu-check", out / "reports")
    said = []
    for x in runs:
        m, t = x.data.metrics, x.data.tags
        assert t["device"].startswith("cuda"), t["device"]
        rts = [
            f"{rt} {m[tracking.runtime_key(rt, 'speedup')]:.2f}x"
            if tracking.runtime_key(rt, "speedup") in m
            else f"{rt} n/a"
            for rt in ("eager", "compile", "onnxruntime", "tensorrt")
        ]
        said.append(f"{x.info.run_name}: {', '.join(rts)}")
    return "; ".join(said) + f"; report {doc}"


def _env() -> dict[str, str]:
    """Subprocesses see the project from this checkout, installed or not."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    return env


def _missing_packages() -> list[str]:
    """What the checks import; the project itself from this checkout when it is not installed."""
    import importlib.util

    if importlib.util.find_spec("sweep") is None:
        sys.path.insert(0, str(ROOT / "src"))
    needed = ["sweep", "timm", "torch_pruning", "hydra", "omegaconf", "mlflow", "onnx", "pytest"]
    return [m for m in needed if importlib.util.find_spec(m) is None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-sweep", action="store_true")
    ap.add_argument("--skip-pytest", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="where the sweep's store and report go")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("SKIP gpu_check: no CUDA device here (torch.cuda.is_available() is False)")
        return
    missing = _missing_packages()
    if missing:
        print(
            f"FAIL setup: not importable here: {', '.join(missing)} (install the project, "
            f"`pip install -e .`, or bring those packages as wheels)"
        )
        raise SystemExit(1)
    dev = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(dev)}, torch {torch.__version__}", flush=True)
    harness(dev)
    sparse_24(dev)
    for name in ("compile", "onnxruntime", "tensorrt"):
        _runtime_check(name)(dev)
    if not args.skip_pytest:
        gpu_tests(dev)
    if not args.skip_sweep:
        out = args.out or Path(tempfile.mkdtemp(prefix="gpu-check-"))
        out.mkdir(parents=True, exist_ok=True)
        seed_sweep(dev, out)
    failed = [n for s, n in results if s == "FAIL"]
    print(
        f"gpu_check: {sum(s == 'PASS' for s, _ in results)} passed, {len(failed)} failed, "
        f"{sum(s == 'N/A' for s, _ in results)} not applicable"
    )
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
