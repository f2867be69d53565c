"""Structural methods compared at one cost: the tiny models pruned to `target.macs` by every structural
method, fine-tuned with one budget, over several seeds.

Runs `python -m sweep -m model=<tiny models> pruner=<structural methods> target.macs=V seed=...
finetune.epochs=N` into a fresh store (offline, digits) and prints the report's matched-cost tables
(mean ± std over seeds) and its summary, read back from MLflow as the report reads them.

    python benchmarks/matched_cost.py [--models tiny_cnn,tiny_vit] [--macs 0.5] [--epochs 1] [--seeds 3]
                                      [extra overrides ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import run_sweep
from sweep import compare, rows
from sweep.config import group_options

TINY = "tiny_cnn,tiny_convnext,tiny_effnet,tiny_vit"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=TINY)
    ap.add_argument("--macs", default="0.5", help="fraction of the dense MACs to keep")
    ap.add_argument("--epochs", type=int, default=1, help="recovery fine-tuning epochs")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("extra", nargs="*", help="further overrides, e.g. finetune.lr=3e-3")
    args = ap.parse_args()
    structural = [p for p in group_options("pruner") if p.startswith("dg_")]
    work = Path(tempfile.mkdtemp(prefix="sweep-matched-"))
    store = f"sqlite:///{work / 'mlflow.db'}"
    seconds = run_sweep(
        [
            "-m",
            f"model={args.models}",
            f"pruner={','.join(structural)}",
            f"target.macs={args.macs}",
            f"seed={','.join(str(s) for s in range(args.seeds))}",
            f"finetune.epochs={args.epochs}",
            f"tracking.uri={store}",
            "sweep_id=matched-cost",
            *args.extra,
        ],
        work,
    )
    sweep = rows.load_sweep(store, "pruning-sweep", "matched-cost")
    n_ok = sum(r.status == "FINISHED" for r in sweep.runs)
    print(
        f"{len(sweep.runs)} runs ({n_ok} finished) in {seconds:.0f} s: {len(structural)} structural "
        f"methods, target.macs={args.macs}, {args.seeds} seeds, finetune.epochs={args.epochs}"
    )
    print("\n".join(compare.summary(sweep) + compare.matched_cost(sweep)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
