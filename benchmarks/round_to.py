"""Does rounding channel counts turn pruned models that run slower than dense in ONNX Runtime into
speedups? The `make sweep` tiny models at `target.macs` 0.7, 0.5 and 0.3, `dg_group` and `dg_taylor`,
with `prune.round_to` none, 8 and 16, timed in eager and ONNX Runtime (no fine-tuning: this is about
speed). Prints each point's speedup in both runtimes per rounding, the MACs it kept, and per rounding
how many runs carry `onnxruntime/slower_than_dense` (slower than dense beyond the interval).

    python benchmarks/round_to.py [--models tiny_cnn,tiny_convnext,tiny_effnet,tiny_vit]
                                  [--methods dg_group,dg_taylor] [--macs 0.7,0.5,0.3] [--rounds null,8,16]
"""

from __future__ import annotations

import argparse
import sys

from _common import fresh_sweep
from sweep import tracking
from sweep.report import cells, rows

RUNTIME = "onnxruntime"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny_cnn,tiny_convnext,tiny_effnet,tiny_vit")
    ap.add_argument("--methods", default="dg_group,dg_taylor")
    ap.add_argument("--macs", default="0.7,0.5,0.3")
    ap.add_argument("--rounds", default="null,8,16", help="prune.round_to values (null: none)")
    ap.add_argument("extra", nargs="*", help="further overrides")
    args = ap.parse_args()
    grid = ["-m", f"model={args.models}", f"pruner={args.methods}", f"target.macs={args.macs}"]
    grid += [f"prune.round_to={args.rounds}", "finetune.epochs=0", "measure.peak=false"]
    grid += [f"measure.runtimes=[eager,{RUNTIME}]", *args.extra]
    store, seconds = fresh_sweep("sweep-round-to-", "round", grid)
    sweep = rows.load_sweep(store, tracking.DEFAULT_EXPERIMENT, "round")
    n_ok = sum(r.status == "FINISHED" for r in sweep.runs)
    print(f"{len(sweep.runs)} runs ({n_ok} finished) in {seconds:.0f} s; speedup [95 % interval]")
    rounds = ["" if v == "null" else f"round{v}" for v in args.rounds.split(",")]
    names = ["none" if not p else p.removeprefix("round") for p in rounds]
    by = {(r.model, r.pruner, r.level, r.protocol): r for r in sweep.rows}
    slower = dict.fromkeys(rounds, 0)
    print(
        f"\n| model | target | method | {' | '.join(f'{RUNTIME} {n}' for n in names)} | eager (none) |"
    )
    print("|---|---|---|" + "---|" * (len(rounds) + 1))
    for model in sweep.models:
        for level in sweep.levels:
            for method in args.methods.split(","):
                found = [by.get((model, method, level, p)) for p in rounds]
                if not any(found):
                    continue
                row = [_cell(r, RUNTIME) for r in found]
                print(f"| {model} | {level} | {method} | {' | '.join(row)} | {_cell(found[0], tracking.EAGER)} |")  # fmt: skip
                for p, r in zip(rounds, found):
                    slower[p] += bool(
                        r and r.flag(tracking.runtime_key(RUNTIME, tracking.TAG_SLOWER_THAN_DENSE))
                    )
    print()
    for p, n in zip(names, slower.values()):
        print(f"prune.round_to={p}: {n} runs slower than dense in {RUNTIME} beyond the interval")
    return 0


def _cell(row: rows.Row | None, runtime: str) -> str:
    if row is None or row.status != "FINISHED":
        return "-" if row is None else "n/a"
    kept = row.metrics.get(tracking.MACS, 0) / max(
        1.0, row.metrics.get(tracking.DENSE_PREFIX + tracking.MACS, 1.0)
    )
    return f"{cells.speed(row, runtime)} (MACs {kept:.2f})"


if __name__ == "__main__":
    sys.exit(main())
