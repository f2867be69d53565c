"""The seed benchmark's own command at its defaults, every method on every seed model: what finishes,
what is not applicable (and why), what fails (and with what), each stage's seconds and its peak
resident memory against the job's limit; then the projected wall time of the whole seed grid.

    nohup python benchmarks/seed_grid.py [--ratios 0.3] [--models c,e,v,m] [overrides ...] &
    python benchmarks/seed_grid.py --int8        # quantize=int8 on m and e, ONNX Runtime and OpenVINO
    python benchmarks/seed_grid.py --table       # the table of what the store holds so far

It runs `python -m sweep -m model=<models> 'pruner=glob(*)' ratio=<ratios>` at the command's defaults
but for a few budgets that only bound measurement, not what a stage holds in memory (`eval.max_samples`,
`measure.time_budget_s`, no MLflow models), into its own store (`--store`, default
multirun/seed-grid/mlflow.db) as one sweep (`--sweep-id`, default seed-grid-<ratios>): the same command
again resumes it (finished jobs are skipped, failed ones run again). 76 jobs at one ratio take hours on
2 cores; the table is printed when it ends, and at any time with `--table`.

The projection: the seed grid is 19 methods x 4 models x 3 ratios (228 jobs). Per model, the finished
jobs' stage seconds at this ratio (a method not yet run at the median of the model's jobs) times the
number of ratios, the evaluate stage at the command's own `eval.time_budget_s` (measure at this script's
`measure.time_budget_s`: a lower bound), and the stage that dominates.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from sweep import tracking

ROOT = Path(__file__).resolve().parents[1]
# budgets that bound how long a figure is measured, not what a stage holds in memory
BUDGETS = ["eval.max_samples=64", "measure.time_budget_s=1", "log_models=[]"]
# the command's own eval time budget (s) per scored model, for the projection
DEFAULT_EVAL_S = 60.0
INT8 = [
    "-m",
    "model=m,e",
    "pruner=dg_group",
    "ratio=0.3",
    "quantize=int8",
    "measure.runtimes=[eager,onnxruntime,openvino]",
]
STAGES = tracking.STAGES


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ratios", default="0.3")
    p.add_argument("--models", default="c,e,v,m")
    p.add_argument("--store", default=str(ROOT / "multirun" / "seed-grid" / "mlflow.db"))
    p.add_argument("--sweep-id", default=None)
    p.add_argument("--int8", action="store_true", help="quantize=int8 on m and e instead")
    p.add_argument("--table", action="store_true", help="print the table of the store only")
    p.add_argument("overrides", nargs="*")
    return p.parse_args()


def _sweep_id(a: argparse.Namespace) -> str:
    if a.sweep_id:
        return a.sweep_id
    return "seed-grid-int8" if a.int8 else f"seed-grid-{a.ratios.replace(',', '-')}"


def _command(a: argparse.Namespace, store: str) -> list[str]:
    grid = INT8 if a.int8 else ["-m", f"model={a.models}", "pruner=glob(*)", f"ratio={a.ratios}"]
    extra = [f"tracking.uri={store}", f"sweep_id={_sweep_id(a)}"]
    return [sys.executable, "-m", "sweep", *grid, *BUDGETS, *a.overrides, *extra]


def _outcome(run) -> str:
    tags = run.data.tags
    if run.info.status == "FINISHED":
        return "finished"
    error = tags.get(tracking.TAG_ERROR, "")
    if tags.get(tracking.TAG_NOT_APPLICABLE) == "true":
        return f"not applicable: {error.split(': ', 1)[-1]}"
    return f"{run.info.status.lower()}: {error}"


def _stages(run) -> tuple[str, str]:
    """Each stage's seconds, and its peak resident memory (GiB) where logged."""
    m = run.data.metrics
    secs = [
        f"{s} {m[tracking.STAGE_METRIC.format(s)]:.0f}"
        for s in STAGES
        if tracking.STAGE_METRIC.format(s) in m
    ]
    peaks = [
        f"{s} {m[tracking.STAGE_PEAK_METRIC.format(s)] / 1024:.1f}"
        for s in STAGES
        if tracking.STAGE_PEAK_METRIC.format(s) in m
    ]
    return ", ".join(secs), ", ".join(peaks)


def table(store: str, sweep_id: str) -> list:
    runs = [r for r in tracking.search_runs(store, tracking.DEFAULT_EXPERIMENT, sweep_id)]
    latest = {}
    for r in runs:  # oldest first: a re-run's latest counts
        latest[r.data.tags.get(tracking.TAG_JOB_KEY, r.info.run_id)] = r
    runs = sorted(latest.values(), key=lambda r: r.info.run_name)
    counts = defaultdict(int)
    print(f"sweep {sweep_id} in {store}: {len(runs)} jobs")
    print(
        "| job | outcome | stage seconds | peak RSS per stage, GiB | limit, GiB | micro-batches |"
    )
    print("|---|---|---|---|---|---|")
    for r in runs:
        outcome = _outcome(r)
        counts[outcome.split(":")[0]] += 1
        secs, peaks = _stages(r)
        p = r.data.params
        micro = ", ".join(f"{k.split('.')[0]} {v}" for k, v in p.items() if "micro_batch_used" in k)
        limit = p.get(tracking.PARAM_MEMORY_USED, "")
        print(f"| {r.info.run_name} | {outcome} | {secs} | {peaks} | {limit} | {micro} |")
    print("outcomes: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    return runs


def projection(runs: list, ratios: int = 3, methods: int = 19) -> None:
    """The full seed grid's wall time per model on this machine: each finished job's stages at the
    command's own budgets, a method not yet finished taken at the median of the model's jobs (the
    not-applicable ones end in seconds and count as such), times the number of ratios."""
    by_model: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for r in runs:
        if r.info.status == "FINISHED" or r.data.tags.get(tracking.TAG_NOT_APPLICABLE) == "true":
            m = r.data.metrics
            stages = {
                s: _at_defaults(s, m[tracking.STAGE_METRIC.format(s)])
                for s in STAGES
                if tracking.STAGE_METRIC.format(s) in m
            }
            model = r.info.run_name.split("/")[0]
            by_model[model][r.info.run_name.split("/")[1]] = stages
    total = 0.0
    print(f"\nprojected wall time of the seed grid ({methods} methods x {ratios} ratios a model):")
    for model, jobs in sorted(by_model.items()):
        times = [sum(st.values()) for st in jobs.values()]
        median = statistics.median(times)
        model_s = (sum(times) + (methods - len(jobs)) * median) * ratios
        total += model_s
        per_stage = defaultdict(float)
        for st in jobs.values():
            for stage, v in st.items():
                per_stage[stage] += v
        top = max(per_stage, key=per_stage.get)
        print(
            f"  {model}: {len(jobs)} of {methods} methods run, {median / 60:.1f} min a job "
            f"(median), {model_s / 3600:.1f} h; dominated by {top} "
            f"({per_stage[top] / sum(per_stage.values()):.0%} of the jobs run)"
        )
    print(f"  all models run so far: {total / 3600:.1f} h on this machine, one job at a time")


def _at_defaults(stage: str, seconds: float) -> float:
    """A stage's seconds at the command's own budgets, where they can be told: evaluate scores each
    model for up to eval.time_budget_s (the dense model's top-1 is shared across a model's jobs, so
    about one model a job). Measure is left as read: its budget bounds only the timed rounds, not
    the warm-up, exports, peaks and profiles around them, so it is a lower bound there."""
    if stage == "evaluate":
        return max(seconds, DEFAULT_EVAL_S)
    return seconds


def main() -> None:
    a = _args()
    store = f"sqlite:///{Path(a.store).resolve()}"
    if not a.table:
        Path(a.store).parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        done = subprocess.run(_command(a, store), cwd=ROOT)
        print(
            f"the sweep took {(time.perf_counter() - t0) / 60:.1f} min (exit status {done.returncode})"
        )
    runs = table(store, _sweep_id(a))
    if not a.int8:
        projection(runs, ratios=3)


if __name__ == "__main__":
    main()
