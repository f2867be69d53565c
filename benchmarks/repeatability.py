"""The same job N times: how much do latency_ms and speedup move between runs?

Target on a 2-core CPU: CV <= 3 % for latency_ms on a model of at least 1 GMAC, <= 2 % for speedup.

    python benchmarks/repeatability.py [--repeats 5] [--model resnet50] [--pruner dg_magnitude] [--ratio 0.5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from _common import cv, run_sweep
from sweep import tracking


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--pruner", default="dg_magnitude")
    ap.add_argument("--ratio", default="0.5")
    ap.add_argument("extra", nargs="*", help="further overrides, e.g. measure.batch_size=8")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sweep-repeat-"))
    store = f"sqlite:///{work / 'mlflow.db'}"
    for i in range(args.repeats):
        run_sweep(
            [
                f"model={args.model}",
                f"pruner={args.pruner}",
                f"ratio={args.ratio}",
                "dataset=synthetic",
                "eval.max_samples=16",
                f"tracking.uri={store}",
                f"sweep_id=repeat-{i}",
                *args.extra,
            ],
            work,
        )
    runs = tracking.search_runs(store, tracking.DEFAULT_EXPERIMENT)
    rows = [
        (
            r.data.metrics["dense_latency_ms"],
            r.data.metrics["latency_ms"],
            r.data.metrics["speedup"],
            r.data.metrics["dense_macs"],
        )
        for r in runs
    ]
    print(
        f"{args.model} / {args.pruner} / {args.ratio}: {rows[0][3] / 1e9:.2f} GMACs dense, "
        f"{runs[0].data.params['measure.threads_used']} threads, {runs[0].data.params['measure.iters_used']} iters"
    )
    print(f"{'run':>4}{'dense ms':>11}{'pruned ms':>11}{'speedup':>9}")
    for i, (d, p, s, _) in enumerate(rows):
        print(f"{i:>4}{d:>11.2f}{p:>11.2f}{s:>9.3f}")
    dense, pruned, speedup = ([r[k] for r in rows] for k in range(3))
    print(
        f"CV dense_latency_ms {100 * cv(dense):.2f} %, latency_ms {100 * cv(pruned):.2f} %, "
        f"speedup {100 * cv(speedup):.2f} % (targets: latency <= 3 %, speedup <= 2 %); "
        f"median speedup {statistics.median(speedup):.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
