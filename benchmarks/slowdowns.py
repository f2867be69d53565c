"""How many structural runs of a sweep are slower than dense, per runtime, and how many were contended.

Reads a store (make sweep's `./mlflow.db` by default) through the report's own rows: per runtime, the
structural runs with a speedup there, those flagged `slower_than_dense` (upper bound of the interval
below 1), those whose speedup is below 1 at all, and those whose timing was `contended`; the harness
that timed them. Compare two stores (before and after a change) by running it on each.

    python benchmarks/slowdowns.py [--store sqlite:///mlflow.db] [--sweep SWEEP_ID]
"""

from __future__ import annotations

import argparse
import statistics
import sys

from sweep import tracking
from sweep.report import cells, rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="sqlite:///mlflow.db")
    ap.add_argument("--sweep", default=None, help="sweep id (default: the newest)")
    args = ap.parse_args()
    sweep = rows.load_sweep(args.store, tracking.DEFAULT_EXPERIMENT, args.sweep)
    done = [
        r
        for r in sweep.runs
        if r.status == "FINISHED" and not r.masks and not r.flag(tracking.TAG_NOOP)
    ]
    print(
        f"sweep {sweep.sweep_id}: {len(done)} finished structural runs; harness {rows.harnesses(done)}"
    )
    print(
        f"{'runtime':<13}{'timed':>6}{'slower':>8}{'below 1':>9}{'contended':>10}{'median speedup':>16}"
    )
    for rt in cells.sweep_runtimes(sweep):
        key = tracking.runtime_key(rt, tracking.SPEEDUP)
        timed = [r for r in done if key in r.metrics]
        if not timed:
            continue
        slower = sum(
            r.flag(tracking.runtime_key(rt, tracking.TAG_SLOWER_THAN_DENSE)) for r in timed
        )
        below = sum(r.metrics[key] < 1 for r in timed)
        contended = sum(cells.contended(r, rt) for r in timed)
        med = statistics.median(r.metrics[key] for r in timed)
        print(f"{rt:<13}{len(timed):>6}{slower:>8}{below:>9}{contended:>10}{med:>15.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
