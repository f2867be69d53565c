"""A measured target: `target.speedup=2` on the CPU, searched on a noisy function.

Runs `python -m sweep -m model=<models> pruner=<methods> target.speedup=<value>` (random weights, no
training: the figure is latency, not accuracy) into a fresh store, `--runs` times, and prints one line
per job: how the search landed (within tolerance or with the target inside the measured interval; or at
the nearest point at or beyond it, with what stopped it: noise or granularity), the speedup it read
with its 95 % interval, the trials it took, and the speedup the job's measure stage then measured on
its own (a fresh reading of the same pruned model). Target: every job FINISHES at or beyond the target
within its measured interval, or at the nearest point with the reason.

    python benchmarks/speedup_targets.py [--models resnet18,vit_tiny_patch16_224]
                                         [--methods dg_group,dg_taylor,dg_lamp] [--speedup 2] [--runs 2]
                                         [--runtime eager|compile|onnxruntime|openvino]

With `--runtime`, the target is searched on the speedup measured in that runtime (`target.runtime`), and
the measure stage's reading is that runtime's.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time

from _common import run_sweep, temp_store
from sweep import tracking

NO_TRAINING = ["model.train.epochs=0", "finetune.epochs=0", "eval.max_samples=32"]


def _line(run, value: float, runtime: str) -> tuple[str, bool]:
    m, t = run.data.metrics, run.data.tags
    key = functools.partial(tracking.runtime_key, runtime)
    name = run.info.run_name
    if run.info.status != "FINISHED":
        return f"{name:<44} {run.info.status}: {t.get('error', '')}", False
    landing = t.get("target_landing", "?")
    lo, hi = m.get("target_value_ci_low"), m.get("target_value_ci_high")
    interval = f"[{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else ""
    ok = landing in ("within", "refined") or bool(t.get("target_stopped_by"))
    line = (
        f"{name:<44} {landing:<8} search {m['target_value']:.2f}x {interval:<13} "
        f"{int(m['target_trials']):>2} trials, ratio {m['ratio_used']:.3f}"
        f"{' + refine ' + format(m['target_refine_ratio'], '.3f') if m.get('target_refine_ratio') else ''}; "
        f"measure stage ({runtime}) {m[key('speedup')]:.2f}x [{m[key('speedup_ci_low')]:.2f}, "
        f"{m[key('speedup_ci_high')]:.2f}]; "
        f"search {m['prune_seconds']:.0f} s"
    )
    if landing == "nearest":
        line += f"\n{'':<44} {t.get('target_note', '')}"
    return line, ok and (m["target_value_ci_high"] >= value or landing == "nearest")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,vit_tiny_patch16_224")
    ap.add_argument("--methods", default="dg_group,dg_taylor,dg_lamp")
    ap.add_argument("--speedup", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--runtime", default="eager", help="where the speedup is measured")
    ap.add_argument("extra", nargs="*", help="further overrides, e.g. measure.batch_size=8")
    args = ap.parse_args()
    work, store = temp_store("sweep-speedup-")
    good = total = 0
    for i in range(1, args.runs + 1):
        sweep_id = f"speedup-{i}"
        t0 = time.strftime("%H:%M")
        seconds = run_sweep(
            [
                "-m",
                f"model={args.models}",
                f"pruner={args.methods}",
                f"target.speedup={args.speedup:g}",
                f"target.runtime={args.runtime}",
                *NO_TRAINING,
                f"tracking.uri={store}",
                f"sweep_id={sweep_id}",
                *args.extra,
            ],
            work,
        )
        runs = sorted(
            tracking.search_runs(store, tracking.DEFAULT_EXPERIMENT, sweep_id),
            key=lambda r: r.info.run_name,
        )
        print(
            f"run {i} (started {t0}, {seconds:.0f} s), target.speedup={args.speedup:g} in "
            f"{args.runtime}, CPU:"
        )
        for r in runs:
            line, ok = _line(r, args.speedup, args.runtime)
            good, total = good + ok, total + 1
            print(("  ok   " if ok else "  MISS ") + line)
    print(f"{good}/{total} jobs finished at or beyond the target, or at the nearest point with why")
    return 0


if __name__ == "__main__":
    sys.exit(main())
