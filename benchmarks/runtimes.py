"""Speedup where models are deployed: dense and `dg_group`-pruned models timed in eager PyTorch,
torch.compile, ONNX Runtime and OpenVINO, through the project's own runtimes and harness.

For each model and batch size the dense model is pruned once with conf/pruner/dg_group.yaml at
`--ratio` (random weights: offline, and the speed of a shape does not depend on its weights), both are
loaded into every runtime (outputs checked against eager), then timed in `--rounds` rounds. Each round
times every runtime's dense/pruned pair once with the harness (interleaved, warm-up until stable), the
runtimes in a rotated order, so that the machine's drift is shared. Prints per point and runtime the
median latency of dense and pruned over the rounds, the median of the rounds' paired speedups with
their min-max, the last round's bootstrap 95 % interval, and the efficiency (achieved MAC/s over the
runtime's measured GEMM peak) of dense and pruned. Exits non-zero only on error.

    python benchmarks/runtimes.py [--models resnet50,vit_small_patch16_224,mobilenetv3_large_100]
                                  [--batch-sizes 1,32] [--runtimes eager,compile,onnxruntime,openvino]
                                  [--rounds 3] [--ratio 0.5] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import timm
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from sweep.measure import peak, runtimes
from sweep.measure.counting import count
from sweep.measure.latency import LatencySettings, time_steps

ROOT = Path(__file__).resolve().parents[1]


def _settings(batch: int, threads: int) -> LatencySettings:
    # batch 32 of a 224-px model takes seconds a call on 2 cores: fewer calls a side, same rounds
    if batch >= 8:
        return LatencySettings(
            batch_size=batch,
            warmup_min=2,
            warmup_max=4,
            iters="auto",
            iters_min=3,
            time_budget_s=6.0,
            threads=threads,
            bootstrap=1000,
        )
    return LatencySettings(batch_size=batch, time_budget_s=4.0, threads=threads, bootstrap=1000)


def _pruned(model: torch.nn.Module, x: torch.Tensor, ratio: float) -> torch.nn.Module:
    pruner = instantiate(OmegaConf.load(ROOT / "conf" / "pruner" / "dg_group.yaml"))
    pruner.check(model, "benchmark", x)
    torch.manual_seed(0)
    return pruner.prune(copy.deepcopy(model), ratio, x).eval()


def point(name: str, batch: int, args, tmp: Path) -> None:
    torch.manual_seed(0)
    dense = timm.create_model(name, num_classes=10).eval()
    size = dense.pretrained_cfg.get("input_size", (3, 224, 224))
    x = torch.randn(batch, *size)
    pruned = _pruned(dense, x[:1], args.ratio)
    c_dense, c_pruned = count(dense, x[:1]), count(pruned, x[:1])
    settings = _settings(batch, args.threads)
    ctx = runtimes.Context(torch.device("cpu"), "fp32", args.threads, tmp / f"{name}-{batch}")
    loaded, peaks = {}, {}
    print(
        f"\n{name} batch {batch}: MACs kept {c_pruned.macs / c_dense.macs:.3f} "
        f"({c_dense.macs / 1e9:.2f} -> {c_pruned.macs / 1e9:.2f} GMACs), params kept "
        f"{c_pruned.params_total / c_dense.params_total:.3f}",
        flush=True,
    )
    for rt in args.runtimes:
        runtime = runtimes.get(rt)
        reason = runtime.unavailable(ctx)
        if reason:
            print(f"  {rt}: not applicable: {reason}")
            continue
        t0 = time.perf_counter()
        try:
            pair = [runtime.load(m, x, ctx, w) for m, w in ((dense, "dense"), (pruned, "pruned"))]
        except runtimes.RuntimeNotApplicable as e:
            print(f"  {rt}: not applicable: {e}")
            continue
        eager = runtimes.get("eager")
        for m, one, w in zip((dense, pruned), pair, ("dense", "pruned")):
            want = eager.load(m, x, ctx, w).output()
            diff = runtimes.max_abs_diff(one.output(), want)
            if not runtimes.outputs_agree(diff, want, "fp32"):
                print(f"  {rt}: {w} output differs from eager by {diff:.2e}: figures untrusted")
        loaded[rt] = pair
        peaks[rt] = peak.cached(runtime, ctx, settings, tmp / "peaks", "cpu: benchmark")
        print(f"  {rt}: ready in {time.perf_counter() - t0:.1f} s", flush=True)
    rounds: dict[str, list] = {rt: [] for rt in loaded}
    order = list(loaded)
    for i in range(args.rounds):
        for rt in order[i % len(order) :] + order[: i % len(order)]:
            d, p = loaded[rt]
            timing = time_steps(
                [d.run, p.run], batch, settings, torch.device("cpu"), not d.host_clock
            )
            rounds[rt].append(timing)
    print(
        f"  {'runtime':12} {'dense ms':>9} {'pruned ms':>9} {'speedup':>8} {'min-max':>12} "
        f"{'last 95% CI':>13} {'eff dense':>9} {'eff pruned':>10} flags"
    )
    for rt, timings in rounds.items():
        dense_ms = statistics.median(t.stats[0].median_ms for t in timings)
        pruned_ms = statistics.median(t.stats[1].median_ms for t in timings)
        speedups = [t.stats[0].median_ms / t.stats[1].median_ms for t in timings]
        last = timings[-1].speedup(0, 1)  # the interval a job logs: instances, run-to-run CV
        eff_d = peak.efficiency(c_dense.macs, batch, dense_ms, peaks[rt])
        eff_p = peak.efficiency(c_pruned.macs, batch, pruned_ms, peaks[rt])
        flags = sorted({f for t in timings for st in t.stats for f in st.flags()})
        print(
            f"  {rt:12} {dense_ms:9.2f} {pruned_ms:9.2f} {statistics.median(speedups):7.2f}x "
            f"{min(speedups):5.2f}-{max(speedups):<5.2f} [{last.ci_low:5.2f}, {last.ci_high:5.2f}] "
            f"{100 * eff_d:8.1f}% {100 * eff_p:9.1f}% {','.join(flags) or 'none'}",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet50,vit_small_patch16_224,mobilenetv3_large_100")
    ap.add_argument("--batch-sizes", default="1,32")
    ap.add_argument("--runtimes", default="eager,compile,onnxruntime,openvino")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=min(2, torch.get_num_threads()))
    args = ap.parse_args()
    args.runtimes = args.runtimes.split(",")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    print(
        f"dg_group ratio {args.ratio}, {args.threads} threads, {args.rounds} rounds, torch "
        f"{torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            for batch in map(int, args.batch_sizes.split(",")):
                point(name, batch, args, Path(tmp))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
