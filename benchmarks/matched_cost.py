"""Structural methods compared at one cost: the tiny models pruned to `target.macs` by every structural
method, fine-tuned with one budget, over several seeds.

Runs `python -m sweep -m model=<tiny models> pruner=<structural methods> target.macs=V seed=...
finetune.epochs=N` into a fresh store (offline, digits) and prints the report's matched-cost tables
(mean ± std over seeds) and its summary, read back from MLflow as the report reads them.

    python benchmarks/matched_cost.py [--models tiny_cnn,tiny_vit] [--macs 0.5] [--epochs 1] [--seeds 3]
                                      [extra overrides ...]

Coarse-channel families (grouped convolutions, few wide dependency groups), random weights, counts
only (no job: each structural method's search exactly as a job runs it, sweep.targets.method_search,
printing how it landed: within tolerance, refined by the method's finest steps, or at the nearest point
below with the reason). `--landings` prints the same for the jobs of a full run:

    python benchmarks/matched_cost.py --search-only --models regnetx_002,resnext26ts,mobilenetv3_large_100 \
        --macs 0.5,0.3
"""

from __future__ import annotations

import argparse
import sys

from _common import fresh_sweep
from sweep import tracking
from sweep.config import group_options
from sweep.report import compare, rows

TINY = "tiny_cnn,tiny_convnext,tiny_effnet,tiny_vit"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=TINY)
    ap.add_argument("--macs", default="0.5", help="fraction of the dense MACs to keep")
    ap.add_argument("--epochs", type=int, default=1, help="recovery fine-tuning epochs")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--landings", action="store_true", help="one line per job: how it landed")
    ap.add_argument("--search-only", action="store_true", help="counts only, no jobs (see above)")
    ap.add_argument("extra", nargs="*", help="further overrides, e.g. finetune.lr=3e-3")
    args = ap.parse_args()
    structural = [p for p in group_options("pruner") if p.startswith("dg_")]
    if args.search_only:
        from targets_seed_models import search_table

        values = [float(v) for v in args.macs.split(",")]
        return search_table(args.models.split(","), ["macs"], values, structural)
    store, seconds = fresh_sweep(
        "sweep-matched-",
        "matched-cost",
        [
            "-m",
            f"model={args.models}",
            f"pruner={','.join(structural)}",
            f"target.macs={args.macs}",
            f"seed={','.join(str(s) for s in range(args.seeds))}",
            f"finetune.epochs={args.epochs}",
            *args.extra,
        ],
    )
    sweep = rows.load_sweep(store, "pruning-sweep", "matched-cost")
    n_ok = sum(r.status == "FINISHED" for r in sweep.runs)
    print(
        f"{len(sweep.runs)} runs ({n_ok} finished) in {seconds:.0f} s: {len(structural)} structural "
        f"methods, target.macs={args.macs}, {args.seeds} seeds, finetune.epochs={args.epochs}"
    )
    if args.landings:
        _print_landings(sweep, len(structural))
    print("\n".join(compare.summary(sweep) + compare.matched_cost(sweep)))
    return 0


def _print_landings(sweep: rows.Sweep, methods: int) -> None:
    """One line per job, then per model and target how many methods landed within tolerance."""
    counts: dict[tuple[str, str], list[int]] = {}
    for r in sweep.runs:
        landing = r.tags.get(tracking.TAG_TARGET_LANDING, "")
        if r.status != "FINISHED":
            how = f"{'n/a' if r.flag(tracking.TAG_NOT_APPLICABLE) else r.status}: {r.error}"
        else:
            how = f"{landing:<8} MACs kept {r.macs_kept:.3f}"
            if landing == "nearest":
                how += f"  {r.tags.get(tracking.TAG_TARGET_NOTE, '')}"
        c = counts.setdefault((r.model, r.level), [0, 0, 0])
        c[0] += landing in ("within", "refined")
        c[1] += landing == "nearest"
        c[2] += r.status != "FINISHED"
        print(f"{r.model:<22} {r.level:<9} {r.pruner:<14} {how}")
    for (model, level), (ok, near, na) in counts.items():
        print(
            f"{model} {level}: {ok} of {methods} methods within tolerance, {near} at the nearest "
            f"point below with the reason, {na} not applicable"
        )


if __name__ == "__main__":
    sys.exit(main())
