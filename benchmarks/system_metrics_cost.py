"""Does sampling MLflow's system metrics perturb a CPU latency measurement?

The same job runs with `tracking.system_metrics_s` off and on, in alternating order over several rounds
(the machine drifts between runs more than most effects), and the script prints, per round, the on/off
ratio of the median dense and pruned latency, then the median ratio over the rounds with its range.

    python benchmarks/system_metrics_cost.py [--rounds 5] [--every 1] [--model tiny_vit]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _common import run_sweep
from sweep import tracking


def one_job(work: Path, model: str, every: float | None, tag: str) -> dict[str, float]:
    store = f"sqlite:///{work / 'mlflow.db'}"
    run_sweep(
        [
            f"model={model}",
            "pruner=dg_magnitude",
            "ratio=0.3",
            f"sweep_id={tag}",
            f"tracking.uri={store}",
            f"tracking.system_metrics_s={every if every else 'null'}",
        ],
        work,
    )
    (run,) = tracking.search_runs(store, "pruning-sweep", tag)
    return run.data.metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--every", type=float, default=1.0, help="sampling interval, s (MLflow's default: 10)"
    )
    ap.add_argument("--model", default="tiny_vit")
    args = ap.parse_args()
    ratios: dict[str, list[float]] = {"dense_latency_ms": [], "latency_ms": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for i in range(args.rounds):
            order = [None, args.every] if i % 2 == 0 else [args.every, None]
            got = {e: one_job(work, args.model, e, f"r{i}-{e}") for e in order}
            line = []
            for k in ratios:
                ratios[k].append(got[args.every][k] / got[None][k])
                line.append(
                    f"{k} on/off {ratios[k][-1]:.3f} ({got[None][k]:.2f} -> {got[args.every][k]:.2f} ms)"
                )
            print(f"round {i + 1}: " + "; ".join(line), flush=True)
    for k, r in ratios.items():
        print(
            f"{k}: median on/off {statistics.median(r):.3f} over {len(r)} rounds (range {min(r):.3f}-{max(r):.3f})"
        )


if __name__ == "__main__":
    main()
