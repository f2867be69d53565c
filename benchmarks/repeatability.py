"""The same job N times: do the intervals hold from run to run, and how much do the figures move?

For every speedup a job logs (eager, each runtime of `measure.runtimes`, and with `quantize=int8` each
runtime's pruning-on-INT8 speedup), counts the runs whose 95 % interval contains the median of the
other runs' speedups: an interval that holds from run to run covers it in most runs; in brackets,
how many the job's own interval would cover (without `measure.run_to_run_cv`). Also prints the CV of
latency and speedup over the runs, each run's contention and flags, and the run-to-run CV of the
speedups pooled over all of them: the value of `measure.run_to_run_cv` for this machine.
Targets on a quiet 2-core CPU: coverage at least 4 of 5 runs for each speedup; CV <= 3 % for
latency_ms on a model of at least 1 GMAC, <= 2 % for speedup.

    python benchmarks/repeatability.py [--repeats 5] [--model resnet18] [--pruner dg_group]
                                       [--level target.macs=0.5] [extra overrides ...]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys

from _common import cv, run_sweep, temp_store
from sweep import tracking
from sweep.measure import intervals

# resnet18 at 64 px: a sub-millisecond model once INT8, where timing schemes differ most
DEFAULTS = [
    "model.input_size=64",
    "dataset=synthetic",
    "eval.max_samples=16",
    "measure.runtimes=[eager,onnxruntime,openvino]",
    "measure.peak=false",
    "quantize=int8",
    "quantize.runtimes=[onnxruntime,openvino]",
    "quantize.calibration_samples=16",
]


def speedup_keys(metrics: dict) -> list[str]:
    """Every speedup a run logged that has an interval beside it."""
    return sorted(
        k for k in metrics if k.rpartition("/")[2] == tracking.SPEEDUP and k + "_ci_high" in metrics
    )


def coverage(runs: list[dict], key: str, cv: float = 0.0) -> tuple[int, int]:
    """(runs whose interval holds the other runs' median speedup, runs with that speedup); `cv`: the
    run-to-run CV the intervals carry, taken out again (the job's own interval)."""
    have = [m for m in runs if key in m]
    hits = 0
    for i, m in enumerate(have):
        others = statistics.median(o[key] for j, o in enumerate(have) if j != i)
        low, high = own(m[key], m[key + "_ci_low"], cv), own(m[key], m[key + "_ci_high"], cv)
        hits += low <= others <= high
    return hits, len(have)


def own(value: float, bound: float, cv: float) -> float:
    """An interval's bound without the run-to-run CV that `intervals.widened` added to it."""
    side = math.log(bound / value)
    extra = intervals.run_to_run_half_width(cv)
    return value * math.exp(math.copysign(math.sqrt(max(0.0, side**2 - extra**2)), side))


def pooled_cv(runs: list[dict], keys: list[str]) -> float:
    """The spread of log speedups from run to run, pooled over the speedups (root mean variance)."""
    variances = [
        statistics.variance([math.log(m[k]) for m in runs if k in m])
        for k in keys
        if sum(k in m for m in runs) > 1
    ]
    return math.expm1(math.sqrt(statistics.mean(variances))) if variances else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--pruner", default="dg_group")
    ap.add_argument("--level", default="target.macs=0.5", help="ratio=0.5 or a target")
    ap.add_argument("--no-defaults", action="store_true", help="leave out the default overrides")
    ap.add_argument("extra", nargs="*", help="further overrides, e.g. measure.batch_size=8")
    args = ap.parse_args()
    work, store = temp_store("sweep-repeat-")
    grid = [f"model={args.model}", f"pruner={args.pruner}", args.level]
    grid += ([] if args.no_defaults else DEFAULTS) + args.extra
    for i in range(args.repeats):
        seconds = run_sweep([*grid, f"tracking.uri={store}", f"sweep_id=repeat-{i}"], work)
        print(f"run {i}: {seconds:.0f} s", flush=True)
    runs = tracking.search_runs(store, tracking.DEFAULT_EXPERIMENT)
    metrics = [r.data.metrics for r in runs]
    print(f"{args.model} / {args.pruner} / {args.level}; {' '.join(grid[3:])}")
    print(
        f"harness {runs[0].data.params.get(tracking.PARAM_HARNESS_USED, '?')}, "
        f"{runs[0].data.params['measure.threads_used']} threads"
    )
    keys = speedup_keys(metrics[0])
    rtr = float(runs[0].data.params.get("measure.run_to_run_cv", 0))
    for key in keys:
        said = "  ".join(
            f"{m[key]:.3f} [{m[key + '_ci_low']:.3f}, {m[key + '_ci_high']:.3f}]" for m in metrics
        )
        hits, n = coverage(metrics, key)
        alone, _ = coverage(metrics, key, rtr)
        values = [m[key] for m in metrics if key in m]
        print(f"{key:<28} {said}  covers {hits}/{n} ({alone}/{n}), CV {100 * cv(values):.2f} %")
    print(
        f"run-to-run CV of the speedups, pooled over {len(keys)}: "
        f"{100 * pooled_cv(metrics, keys):.2f} % (the intervals carry "
        f"measure.run_to_run_cv={rtr:g}; in brackets: the job's own interval)"
    )
    for r in runs:
        flags = {k: v for k, v in r.data.tags.items() if k.endswith("latency_flag") and v != "none"}
        share = {
            k: round(v, 3) for k, v in r.data.metrics.items() if k.endswith(tracking.CPU_CONTENTION)
        }
        print(f"  {r.data.tags[tracking.TAG_SWEEP_ID]}: contention {share} flags {flags or 'none'}")
    dense = [m["dense_latency_ms"] for m in metrics]
    pruned = [m["latency_ms"] for m in metrics]
    print(
        f"CV dense_latency_ms {100 * cv(dense):.2f} %, latency_ms {100 * cv(pruned):.2f} % "
        f"(target <= 3 % at >= 1 GMAC)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
