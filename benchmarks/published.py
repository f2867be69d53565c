"""timm's published pruned architectures beside DepGraph methods at their cost: `pruner=timm_published`
and two DepGraph criteria at `target.macs=published` on efficientnet_b1 and ecaresnet50d, timed in eager
and ONNX Runtime. Prints per model and method the MACs kept, the latency dense -> pruned and the speedup
in both runtimes, and top-1 (offline the weights are timm's initialisation and nothing is trained
unless `finetune.epochs` says so: top-1 is then at chance, the latency is what this measures).

    python benchmarks/published.py [--models efficientnet_b1,ecaresnet50d]
                                   [--methods timm_published,dg_group,dg_taylor] [overrides ...]
"""

from __future__ import annotations

import argparse
import sys

from _common import fresh_sweep
from sweep import tracking
from sweep.report import cells, rows

RUNTIMES = ("eager", "onnxruntime")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="efficientnet_b1,ecaresnet50d")
    ap.add_argument("--methods", default="timm_published,dg_group,dg_taylor")
    ap.add_argument("extra", nargs="*", help="further overrides")
    args = ap.parse_args()
    grid = ["-m", f"model={args.models}", f"pruner={args.methods}", "target.macs=published"]
    grid += [
        "model.head=finetune",
        "model.train.epochs=0",
        "dataset=synthetic",
        "finetune.epochs=0",
    ]
    grid += ["eval.max_samples=64", "measure.peak=false", "measure.profile=false"]
    grid += ["measure.runtimes=[eager,onnxruntime]", *args.extra]
    store, seconds = fresh_sweep("sweep-published-", "published", grid)
    sweep = rows.load_sweep(store, tracking.DEFAULT_EXPERIMENT, "published")
    print(
        f"{len(sweep.runs)} runs in {seconds:.0f} s; latency ms dense -> pruned, speedup [95 % interval]\n"
    )
    print(
        "| model | target | method | MACs kept | "
        + " | ".join(f"{rt}" for rt in RUNTIMES)
        + " | top-1 |"
    )
    print("|---|---|---|---|" + "---|" * len(RUNTIMES) + "---|")
    for r in sorted(sweep.rows, key=lambda r: (r.model, r.pruner)):
        if r.status != "FINISHED":
            print(
                f"| {r.model} | {r.level} | {r.pruner} | {r.status}: {'; '.join(cells.flags(r))} |"
            )
            continue
        timed = []
        for rt in RUNTIMES:
            d = r.metrics.get(tracking.runtime_key(rt, "dense_latency_ms"))
            p = r.metrics.get(tracking.runtime_key(rt, "latency_ms"))
            timed.append(f"{d:.1f} -> {p:.1f}: {cells.speed(r, rt)}" if d and p else "—")
        print(
            f"| {r.model} | {r.level} | {r.pruner} | {100 * r.macs_kept:.1f}% | {' | '.join(timed)} | "
            f"{cells.pct_of(r, 'dense_accuracy_top1')} -> {cells.pct_of(r, 'accuracy_top1')} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
