"""The latency harness against its peers, on the same model and input in the same process.

For each model and batch size, `--rounds` rounds; each round times the model once with the harness and
once with torch.utils.benchmark.Timer (blocked_autorange), in alternating order (AB, BA, AB, ...), so
that neither side always runs first on a warmer or colder process (allocator, caches, clock). Both sides
time the same thing: the same module and input tensor, no_grad, the same thread count, one forward per
iteration, a median over iterations. Prints per point the median ratio harness / Timer over rounds with
its min-max spread, and (where CUDA is present) Torch-Pruning's measure_latency. Exits non-zero only on
error. Target: median ratio within 0.95-1.05.

    python benchmarks/latency_vs_peers.py [--models test_resnet,resnet50] [--batch-sizes 1,32] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys

import timm
import torch
import torch.utils.benchmark as tb

from sweep.measure.latency import LatencySettings, time_models

# (timm name, input size, kwargs)
MODELS = {
    "test_resnet": (32, {}),
    "test_vit": (32, {"patch_size": 8, "img_size": 32}),
    "resnet50": (224, {}),
    "convnext_tiny": (224, {}),
    "vit_base_patch16_224": (224, {}),
}


def _harness(model, x, device, budget: float, threads: int) -> float:
    settings = LatencySettings(
        batch_size=x.shape[0], time_budget_s=budget, iters_min=5, bootstrap=0, threads=threads
    )
    return time_models([model], x, settings, device).stats[0].median_ms


def _timer(model, x, device, budget: float, threads: int) -> float:
    def run():
        with torch.no_grad():
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    timer = tb.Timer(stmt="run()", globals={"run": run}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=budget).median * 1000


def compare(model, x, device, args, threads: int) -> tuple[list[float], float, float]:
    """Per-round ratios harness / Timer, and the median ms of each side over the rounds."""
    ours, peer = [], []
    for r in range(args.rounds):
        sides = [(_harness, ours), (_timer, peer)]
        for fn, out in sides if r % 2 == 0 else sides[::-1]:
            out.append(fn(model, x, device, args.budget, threads))
    ratios = [a / b for a, b in zip(ours, peer)]
    return ratios, statistics.median(ours), statistics.median(peer)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--batch-sizes", default="1,32")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--budget", type=float, default=3.0, help="seconds of timed iterations per measurement"
    )
    args = ap.parse_args()
    device = torch.device(args.device)
    threads = torch.get_num_threads()
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{threads} threads'}), "
        f"torch {torch.__version__}, {args.rounds} rounds per point (order alternating)"
    )
    print(
        f"{'model':<22}{'batch':>6}{'harness ms':>12}{'Timer ms':>11}{'ratio':>8}"
        f"{'min':>7}{'max':>7}{'TP ms':>9}"
    )
    medians = []
    for name in args.models.split(","):
        size, kwargs = MODELS.get(name, (224, {}))
        torch.manual_seed(0)
        model = timm.create_model(name, num_classes=10, **kwargs).eval().to(device)
        for bs in (int(b) for b in args.batch_sizes.split(",")):
            x = torch.randn(bs, 3, size, size, device=device)
            ratios, ours, peer = compare(model, x, device, args, threads)
            tp_ms = float("nan")
            if device.type == "cuda":
                import torch_pruning as tp

                tp_ms = tp.utils.benchmark.measure_latency(model, x, repeat=50)[0]
            med = statistics.median(ratios)
            medians.append(med)
            print(
                f"{name:<22}{bs:>6}{ours:>12.3f}{peer:>11.3f}{med:>8.3f}{min(ratios):>7.3f}"
                f"{max(ratios):>7.3f}{tp_ms:>9.3f}",
                flush=True,
            )
    inside = sum(0.95 <= r <= 1.05 for r in medians)
    print(
        f"median harness / Timer within 0.95-1.05: {inside}/{len(medians)}; "
        f"range of medians {min(medians):.3f}-{max(medians):.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
