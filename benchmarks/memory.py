"""Memory across the jobs of one single-process sweep: does anything a job made outlive it?

Runs a grid of ViT jobs with Hydra's basic launcher (all jobs in one process) and prints each job's
`process_rss_mb` (resident memory at the start of the job after garbage collection, as logged to
MLflow) and the growth from the
first job to the last. A leak of the pruned models (e.g. Torch-Pruning's shared default dicts holding
every pruned qkv layer) shows as a steady climb; a flat line is the target.

    python benchmarks/memory.py [--model vit_small_patch16_224] [--jobs 12] [--rounds 2]
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


def one_round(model: str, jobs: int, work: Path, i: int) -> list[float]:
    store = f"sqlite:///{work / 'mlflow.db'}"
    pruners = ["dg_group", "dg_random"]
    ratios = RATIOS[: max(1, (jobs + len(pruners) - 1) // len(pruners))]
    run_sweep(
        [
            "-m",
            f"model={model}",
            f"pruner={','.join(pruners)}",
            f"ratio={','.join(map(str, ratios))}",
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
    return [r.data.metrics["process_rss_mb"] for r in runs]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vit_small_patch16_224")
    ap.add_argument("--jobs", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sweep-memory-"))
    growth = []
    for i in range(args.rounds):
        rss = one_round(args.model, args.jobs, work, i)
        print(
            f"round {i + 1}: RSS at the start of each job (MiB): {' '.join(f'{x:.0f}' for x in rss)}"
        )
        # from the second job on: the first job loads libraries and fills caches once
        per_job = (rss[-1] - rss[1]) / max(1, len(rss) - 2)
        growth.append(per_job)
        print(
            f"round {i + 1}: job 2 -> job {len(rss)}: {rss[-1] - rss[1]:+.0f} MiB ({per_job:+.1f} MiB per job)"
        )
    print(
        f"{args.model}, {args.rounds} rounds: growth per job median {statistics.median(growth):+.1f} MiB "
        f"(range {min(growth):+.1f} .. {max(growth):+.1f}); target: about 0"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
