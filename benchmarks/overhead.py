"""Framework overhead: per-job wall time minus the time inside its stages build, weights, prune, measure, evaluate,
finetune.

Runs a grid with Hydra's basic launcher (one process, jobs in sequence). A job's wall time is the time
from its run's start to the next job's run start (so Hydra's own per-job work is included), and for the
last job its run's end. Target: overhead <= 5 % of job time.

    python benchmarks/overhead.py [overrides ...]   (default grid: tiny_cnn,tiny_convnext x 6 pruners x 0.5)
"""

from __future__ import annotations

import sys

from _common import run_sweep, temp_store
from sweep import tracking

# Work a job exists to do; everything else (Hydra's per-job composition, MLflow calls, the log stage)
# counts as overhead.
WORK = ("build", "weights", "prune", "measure", "evaluate", "finetune")

DEFAULT = ["-m", "model=tiny_cnn,tiny_convnext", "pruner=glob(*)", "ratio=0.5"]


def main() -> int:
    overrides = sys.argv[1:] or DEFAULT
    work, store = temp_store("sweep-overhead-")
    # a first sweep trains and caches the tiny models, so the measured one is a steady-state grid
    run_sweep([*overrides, f"tracking.uri={store}", "sweep_id=warm"], work)
    wall = run_sweep([*overrides, f"tracking.uri={store}", "sweep_id=measured"], work)
    runs = tracking.search_runs(store, tracking.DEFAULT_EXPERIMENT, "measured")
    print(
        f"{len(runs)} jobs, command wall time {wall:.1f}s (includes interpreter start and imports)"
    )
    print(f"{'job':<38}{'wall s':>8}{'stages s':>10}{'overhead s':>12}{'%':>7}")
    tot_wall = tot_over = 0.0
    for i, r in enumerate(runs):
        end = runs[i + 1].info.start_time if i + 1 < len(runs) else r.info.end_time
        job_wall = (end - r.info.start_time) / 1000
        stages = sum(r.data.metrics.get(tracking.STAGE_METRIC.format(s), 0.0) for s in WORK)
        over = job_wall - stages
        tot_wall += job_wall
        tot_over += over
        print(
            f"{r.info.run_name:<38}{job_wall:>8.2f}{stages:>10.2f}{over:>12.3f}{100 * over / job_wall:>7.1f}"
        )
    print(
        f"overhead {tot_over:.2f}s of {tot_wall:.2f}s job time = {100 * tot_over / tot_wall:.1f} % (target <= 5 %); "
        f"start-up outside jobs {wall - tot_wall:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
