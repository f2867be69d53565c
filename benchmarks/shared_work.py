"""What a job repeats of its model's dense work: per stage, before and after sharing it.

Runs the same grid (one model, a few methods, in sequence: Hydra's basic launcher) with this checkout
and with an earlier revision (`--before`, checked out into a temporary worktree and run with this
environment), each into its own store, and prints per job its wall time and its build, weights and
evaluate stages, and `dense_top1_source`. The shared work of a job is its build and weights stages plus
its dense evaluation (the evaluate stage holds the dense and the one-shot evaluation: the one-shot part
is what is left where the dense top-1 is shared). Goal: once the first job of the model is done, build +
weights + dense evaluation under 10 % of a job.

    python benchmarks/shared_work.py [--before REV] [--forms] [overrides ...]
    (default: model=m, dg_group,dg_random,dg_lamp at ratio 0.3, eager only, no fine-tuning)

`--forms`: the dense model's runtime files too (ONNX export, INT8 files and their top-1): the grid
timed in ONNX Runtime and OpenVINO with `quantize=int8`, and the measure and quantize stages printed
(the dense files are the part of them a later job reads instead of making).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import temp_store
from sweep import tracking

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [
    "-m",
    "model=m",
    "pruner=dg_group,dg_random,dg_lamp",
    "ratio=0.3",
    "measure.runtimes=[eager]",
    "measure.profile=false",
    "finetune.epochs=0",
    "log_models=[]",  # not dense work: left out of the job's time
]
SHARED_STAGES = ("build", "weights")
FORMS = ["measure.runtimes=[eager,onnxruntime,openvino]", "quantize=int8"]


def _run(src: Path, overrides: list[str], label: str) -> tuple[str, float]:
    work, store = temp_store(f"sweep-shared-{label}-")
    env = dict(os.environ, PYTHONPATH=str(src))
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "sweep", *overrides, f"tracking.uri={store}", f"sweep_id={label}"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:  # a job that failed is listed with its status; the others stand
        print(f"{label}: the sweep ended with exit status {done.returncode}: {done.stdout[-500:]}")
    return store, time.perf_counter() - t0


def _table(store: str, label: str) -> list[float]:
    """Per job: its stages and wall time; returns the share of shared work of each job after the
    first (build + weights, and the dense part of evaluate where the job computed it)."""
    runs = tracking.search_runs(store, tracking.DEFAULT_EXPERIMENT, label)
    stage = tracking.STAGE_METRIC.format
    print(
        f"\n{label}: {'job':<34}{'wall s':>8}{'build':>8}{'weights':>9}{'evaluate':>10}"
        f"{'measure':>9}{'quantize':>10}  dense top-1"
    )
    oneshot = [
        r.data.metrics.get(stage("evaluate"), 0.0)
        for r in runs
        if r.data.tags.get(tracking.TAG_DENSE_TOP1_SOURCE) == "shared"
    ]
    one_eval = statistics.median(oneshot) if oneshot else None
    shares = []
    for i, r in enumerate(runs):
        m = r.data.metrics
        if r.info.status != "FINISHED":
            print(
                f"{'':<{len(label) + 2}}{r.info.run_name:<34}{r.info.status}: {r.data.tags.get('error', '')}"
            )
            continue
        wall = (r.info.end_time - r.info.start_time) / 1000
        source = r.data.tags.get(tracking.TAG_DENSE_TOP1_SOURCE, "computed (before)")
        evaluate = m.get(stage("evaluate"), 0.0)
        # the dense evaluation: evaluate less a one-shot evaluation (about as long), where computed
        dense_eval = 0.0 if source == "shared" else evaluate - (one_eval or evaluate / 2)
        shared = sum(m.get(stage(s), 0.0) for s in SHARED_STAGES) + dense_eval
        print(
            f"{'':<{len(label) + 2}}{r.info.run_name:<34}{wall:>8.1f}{m.get(stage('build'), 0):>8.1f}"
            f"{m.get(stage('weights'), 0):>9.1f}{evaluate:>10.1f}{m.get(stage('measure'), 0):>9.1f}"
            f"{m.get(stage('quantize'), 0):>10.1f}  {source}"
        )
        if i:
            shares.append(shared / wall)
    if shares:
        print(
            f"{'':<{len(label) + 2}}jobs after the first: shared work {100 * min(shares):.0f}-"
            f"{100 * max(shares):.0f} % of a job (median {100 * statistics.median(shares):.0f} %)"
        )
    return shares


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default=None, help="an earlier revision to compare with")
    ap.add_argument("--forms", action="store_true", help="time in ONNX Runtime, OpenVINO, INT8")
    args, overrides = ap.parse_known_args()
    overrides = overrides or DEFAULT
    if args.forms:
        overrides = [o for o in overrides if not o.startswith("measure.runtimes=")] + FORMS
    runs = [("after", ROOT / "src")]
    if args.before:
        tree = Path(tempfile.mkdtemp(prefix="sweep-before-")) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "-q", "--detach", str(tree), args.before],
            cwd=ROOT,
            check=True,
        )
        runs.insert(0, ("before", tree / "src"))
    try:
        for label, src in runs:
            store, wall = _run(src, overrides, label)
            print(f"{label}: {wall:.1f} s for the sweep")
            _table(store, label)
    finally:
        if args.before:  # the checkout's worktree list left as it was
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
