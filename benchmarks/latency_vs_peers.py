"""The latency harness against its peers, on the same model and input in the same process.

For each model and batch size: the harness's median, torch.utils.benchmark.Timer.blocked_autorange's
median, and (where CUDA is present) Torch-Pruning's measure_latency. Prints a table; exits non-zero
only on error. Target on a CPU: harness / Timer within 0.95-1.05.

    python benchmarks/latency_vs_peers.py [--models test_resnet,resnet50] [--batch-sizes 1,32] [--device cpu]
"""

from __future__ import annotations

import argparse
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--batch-sizes", default="1,32")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--budget", type=float, default=3.0, help="seconds of timed iterations per measurement"
    )
    args = ap.parse_args()
    device = torch.device(args.device)
    threads = torch.get_num_threads()
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{threads} threads'}), "
        f"torch {torch.__version__}"
    )
    print(
        f"{'model':<22}{'batch':>6}{'harness ms':>12}{'Timer ms':>11}{'ratio':>8}{'TP ms':>9}{'ratio':>8}"
    )
    ratios = []
    for name in args.models.split(","):
        size, kwargs = MODELS.get(name, (224, {}))
        torch.manual_seed(0)
        model = timm.create_model(name, num_classes=10, **kwargs).eval().to(device)
        for bs in (int(b) for b in args.batch_sizes.split(",")):
            x = torch.randn(bs, 3, size, size, device=device)
            settings = LatencySettings(
                batch_size=bs, time_budget_s=args.budget, iters_min=5, bootstrap=0
            )
            ours = time_models([model], x, settings, device).stats[0].median_ms

            def run(model=model, x=x):
                with torch.no_grad():
                    model(x)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)

            timer = tb.Timer(stmt="run()", globals={"run": run}, num_threads=threads)
            peer = timer.blocked_autorange(min_run_time=args.budget).median * 1000
            tp_ms = float("nan")
            if device.type == "cuda":
                import torch_pruning as tp

                tp_ms = tp.utils.benchmark.measure_latency(model, x, repeat=50)[0]
            ratio = ours / peer
            ratios.append(ratio)
            print(
                f"{name:<22}{bs:>6}{ours:>12.3f}{peer:>11.3f}{ratio:>8.3f}{tp_ms:>9.3f}{ours / tp_ms:>8.3f}",
                flush=True,
            )
    inside = sum(0.95 <= r <= 1.05 for r in ratios)
    print(
        f"harness / Timer within 0.95-1.05: {inside}/{len(ratios)}; range {min(ratios):.3f}-{max(ratios):.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
