"""Memory across the jobs of one single-process sweep: does anything a job made outlive it?

Runs a grid of jobs with Hydra's basic launcher (all jobs in one process) and prints each job's
`process_rss_mb` (resident memory at the start of the job after garbage collection, as logged to
MLflow) and the growth from the
first job to the last. A leak of the pruned models (e.g. Torch-Pruning's shared default dicts holding
every pruned qkv layer) shows as a steady climb; a flat line is the target.

    python benchmarks/memory.py [--models vit_small_patch16_224] [--jobs 12] [--rounds 2]
    python benchmarks/memory.py --mixed      # 20 jobs of five timm families, each model twice over
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from _common import run_sweep
from sweep import tracking

RATIOS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


MIXED = "resnet18,vit_tiny_patch16_224,convnext_atto,efficientnet_b0,swin_tiny_patch4_window7_224"


def one_round(models: str, jobs: int, work: Path, i: int) -> list[float]:
    store = f"sqlite:///{work / 'mlflow.db'}"
    pruners = ["dg_group", "dg_random"]
    per_model = len(pruners) * len(models.split(","))
    ratios = RATIOS[: max(1, (jobs + per_model - 1) // per_model)]
    run_sweep(
        [
            "-m",
            # ratio first: Hydra varies the last override fastest, so the models alternate
            f"ratio={','.join(map(str, ratios))}",
            f"model={models}",
            f"pruner={','.join(pruners)}",
            "dataset=synthetic",
            "model.weights=random",
            "eval.max_samples=8",
            "measure.time_budget_s=0.3",
            "measure.iters_min=3",
            f"tracking.uri={store}",
            f"sweep_id=mem-{i}",
        ],
        work,
    )
    runs = tracking.search_runs(store, tracking.DEFAULT_EXPERIMENT, f"mem-{i}")
    runs.sort(key=lambda r: r.info.start_time)
    return [r.data.metrics["process_rss_mb"] for r in runs]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="vit_small_patch16_224", help="comma-separated")
    ap.add_argument("--mixed", action="store_true", help=f"--models {MIXED} --jobs 20")
    ap.add_argument("--jobs", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if args.mixed:
        args.models, args.jobs = MIXED, 20
    work = Path(tempfile.mkdtemp(prefix="sweep-memory-"))
    growth = []
    for i in range(args.rounds):
        rss = one_round(args.models, args.jobs, work, i)
        print(
            f"round {i + 1}: RSS at the start of each job (MiB): {' '.join(f'{x:.0f}' for x in rss)}"
        )
        # from the second job on: the first job loads libraries and fills caches once
        per_job = (rss[-1] - rss[1]) / max(1, len(rss) - 2)
        growth.append(per_job)
        print(
            f"round {i + 1}: job 2 -> job {len(rss)}: {rss[-1] - rss[1]:+.0f} MiB ({per_job:+.1f} MiB per job)"
        )
        # a model's first jobs raise the allocator's high-water mark once; a leak keeps climbing after
        seen = 2 * len(args.models.split(","))
        if len(rss) > seen + 1:
            again = (rss[-1] - rss[seen]) / (len(rss) - 1 - seen)
            print(
                f"round {i + 1}: once every model has run (job {seen + 1} -> job {len(rss)}): "
                f"{rss[-1] - rss[seen]:+.0f} MiB ({again:+.1f} MiB per job)"
            )
    print(
        f"{args.models}, {args.rounds} rounds: growth per job median {statistics.median(growth):+.1f} MiB "
        f"(range {min(growth):+.1f} .. {max(growth):+.1f}); target: about 0"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
