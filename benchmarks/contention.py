"""Does the harness see another process take its cores? The same job quiet, then beside CPU burners.

Runs one job (make sweep's tiny_cnn, `dg_group` at `target.macs=0.5`, timed in eager, ONNX Runtime and
OpenVINO) `--rounds` times alone and `--rounds` times beside `--burners` processes spinning on the
CPU (default: one more than the cores this process may use), and prints each run's `cpu_contention`
per runtime, its latency flags and its slower-than-dense tags. Expected: no `contended` flag alone,
`contended` in every runtime beside the burners, and no slower-than-dense tag from a contended run.

    python benchmarks/contention.py [--rounds 2] [--burners N] [extra overrides ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from _common import run_sweep, temp_store
from sweep import tracking

JOB = ["model=tiny_cnn", "pruner=dg_group", "target.macs=0.5", "finetune.epochs=0"]
JOB += ["measure.runtimes=[eager,onnxruntime,openvino]", "eval.max_samples=64"]
BURN = "while True:\n    pass\n"


def _runs(store: str, sweep_id: str) -> list:
    return tracking.search_runs(store, tracking.DEFAULT_EXPERIMENT, sweep_id)


def _print(label: str, run) -> None:
    m, t = run.data.metrics, run.data.tags
    shares = {k.rpartition("/")[0] or "eager": m[k] for k in m if k.endswith("cpu_contention")}
    flags = {k.rpartition("/")[0] or "eager": t[k] for k in t if k.endswith("latency_flag")}
    slower = sorted(
        k.rpartition("/")[0] or "eager"
        for k in t
        if k.endswith("slower_than_dense") and t[k] == "true"
    )
    said = ", ".join(f"{rt} {shares[rt]:.2f} ({flags.get(rt, '?')})" for rt in sorted(shares))
    print(
        f"{label:<8} contention: {said}; slower than dense in: {', '.join(slower) or 'none'}",
        flush=True,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--burners", type=int, default=len(os.sched_getaffinity(0)) + 1)
    ap.add_argument("extra", nargs="*")
    args = ap.parse_args()
    work, store = temp_store("sweep-contention-")
    for r in range(args.rounds):
        for loaded in (False, True):
            burners = [
                subprocess.Popen([sys.executable, "-c", BURN])
                for _ in range(args.burners if loaded else 0)
            ]
            sweep_id = f"{'loaded' if loaded else 'quiet'}-{r}"
            try:
                run_sweep(
                    [*JOB, *args.extra, f"tracking.uri={store}", f"sweep_id={sweep_id}"], work
                )
            finally:
                for p in burners:
                    p.kill()
                    p.wait()
            for run in _runs(store, sweep_id):
                _print(sweep_id, run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
