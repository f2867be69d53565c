"""Compare what two stores' sweeps logged, job by job (matched by run name): the names of params, metrics
and tags, the run statuses, and the counts (parameters, MACs) of every job. Prints every difference and
exits 1 when there is one; a refactoring of the job that changes no behaviour prints none.

    python scripts/schema_diff.py sqlite:///before.db sqlite:///after.db [--sweep-a ID] [--sweep-b ID]

Values that vary from run to run (times, latencies, accuracy after noisy timing) are not compared; the
names are. MLflow's own `mlflow.*` tags and the run-specific `job_key`, `sweep_id` and parent tags are
left out.
"""

from __future__ import annotations

import argparse
import sys

from sweep import tracking

COUNTS = [p + n for p in ("", tracking.DENSE_PREFIX) for n in tracking.COUNT_METRICS[:4]]
VARYING_TAGS = {tracking.TAG_SWEEP_ID, tracking.TAG_JOB_KEY, tracking.TAG_HEARTBEAT}


def _jobs(uri: str, sweep_id: str | None) -> dict[str, object]:
    sweep_id = sweep_id or tracking.newest_sweep(uri, tracking.DEFAULT_EXPERIMENT)
    runs = tracking.search_runs(uri, tracking.DEFAULT_EXPERIMENT, sweep_id)
    return {r.info.run_name: r for r in runs}


def _shape(run) -> dict[str, set[str]]:
    d = run.data
    tags = {t for t in d.tags if not t.startswith("mlflow.") and t not in VARYING_TAGS}
    return {"param": set(d.params), "metric": set(d.metrics), "tag": tags}


def differences(a: dict, b: dict) -> list[str]:
    out = [f"only in A: {n}" for n in sorted(a.keys() - b.keys())]
    out += [f"only in B: {n}" for n in sorted(b.keys() - a.keys())]
    for name in sorted(a.keys() & b.keys()):
        ra, rb = a[name], b[name]
        if ra.info.status != rb.info.status:
            out.append(f"{name}: status {ra.info.status} vs {rb.info.status}")
        sa, sb = _shape(ra), _shape(rb)
        for kind in sa:
            for n in sorted(sa[kind] ^ sb[kind]):
                out.append(f"{name}: {kind} {n} only in {'A' if n in sa[kind] else 'B'}")
        for m in COUNTS:
            va, vb = ra.data.metrics.get(m), rb.data.metrics.get(m)
            if va != vb:
                out.append(f"{name}: {m} {va} vs {vb}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--sweep-a", help="sweep_id in A (default: its newest)")
    ap.add_argument("--sweep-b", help="sweep_id in B (default: its newest)")
    args = ap.parse_args(argv)
    a, b = _jobs(args.a, args.sweep_a), _jobs(args.b, args.sweep_b)
    diff = differences(a, b)
    print(*diff, sep="\n") if diff else None
    print(f"{len(a)} vs {len(b)} jobs; {len(diff)} differences")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
