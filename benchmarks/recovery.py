"""One-shot vs recovered accuracy: a structural method at a high ratio falls far below dense, and a
short recovery fine-tuning brings it back.

Runs `model x pruner x ratio` with finetune.epochs=0 and =N over several seeds (each seed trains its own
dense model), offline on the default dataset, and prints dense, one-shot and fine-tuned top-1 per seed
and their spread. Target (tiny_cnn, dg_group, 0.5, 3 epochs): one-shot far below dense, fine-tuned
within 3 points of dense.

    python benchmarks/recovery.py [--model tiny_cnn] [--pruner dg_group] [--ratio 0.5] [--epochs 3] [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys

from _common import run_sweep, temp_store
from sweep import tracking


def spread(values: list[float]) -> str:
    v = [100 * x for x in values]
    return f"median {statistics.median(v):5.1f} % (range {min(v):.1f}-{max(v):.1f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny_cnn")
    ap.add_argument("--pruner", default="dg_group")
    ap.add_argument("--ratio", default="0.5")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument(
        "extra", nargs="*", help="further overrides, e.g. dataset=mnist finetune.lr=3e-3"
    )
    args = ap.parse_args()
    work, store = temp_store("sweep-recovery-")
    seeds = ",".join(str(s) for s in range(args.seeds))
    wall = run_sweep(
        [
            "-m",
            f"model={args.model}",
            f"pruner={args.pruner}",
            f"ratio={args.ratio}",
            f"finetune.epochs={args.epochs}",
            f"seed={seeds}",
            "eval.max_samples=null",
            "measure.time_budget_s=0.5",
            f"tracking.uri={store}",
            "sweep_id=recovery",
            *args.extra,
        ],
        work,
    )
    runs = tracking.search_runs(store, tracking.DEFAULT_EXPERIMENT, "recovery")
    print(
        f"{args.model} / {args.pruner} / ratio {args.ratio} / {args.epochs} fine-tuning epochs, "
        f"{len(runs)} seeds, whole eval split ({runs[0].data.params['eval.samples_used']} images); {wall:.0f}s"
    )
    print(
        f"{'seed':>4}{'dense':>9}{'one-shot':>10}{'fine-tuned':>12}{'gap to dense':>14}{'ft s':>7}"
    )
    rows = []
    for r in runs:
        m = r.data.metrics
        rows.append((m["dense_accuracy_top1"], m["accuracy_top1_oneshot"], m["accuracy_top1"]))
        print(
            f"{r.data.params['seed']:>4}{100 * rows[-1][0]:>8.1f}%{100 * rows[-1][1]:>9.1f}%"
            f"{100 * rows[-1][2]:>11.1f}%{100 * (rows[-1][2] - rows[-1][0]):>+13.1f}{m['finetune_seconds']:>7.1f}"
        )
    dense, oneshot, tuned = (list(c) for c in zip(*rows))
    print(f"dense      {spread(dense)}")
    print(f"one-shot   {spread(oneshot)}")
    print(f"fine-tuned {spread(tuned)}")
    gaps = [d - t for d, t in zip(dense, tuned)]
    print(
        f"fine-tuned within 3 points of dense: {sum(g <= 0.03 for g in gaps)}/{len(gaps)} seeds "
        f"(largest gap {100 * max(gaps):.1f} points)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
