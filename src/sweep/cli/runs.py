"""`python -m sweep.cli.runs --fail-stale`: end FAILED the runs whose process or node died.

A job refreshes its run's heartbeat tag every `tracking.heartbeat_s` seconds while it runs. A run still
RUNNING whose last heartbeat is older than `--older-than` seconds lost its process (SIGKILL, out of
memory, a node gone at night): it is ended FAILED with the reason as its `error` tag and `stale=true`,
keeping everything it logged. Every sweep command and the report do the same before they start; this
command is for a scheduler (cron) or by hand.
"""

from __future__ import annotations

import argparse
import sys
import time

from sweep import tracking
from sweep.errors import SweepConfigError


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m sweep.cli.runs", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--tracking-uri", default=None, help=tracking.DEFAULT_URI_HELP)
    ap.add_argument("--experiment", default=tracking.DEFAULT_EXPERIMENT)
    ap.add_argument(
        "--fail-stale",
        action="store_true",
        help="end FAILED the RUNNING runs whose heartbeat is older than --older-than",
    )
    ap.add_argument(
        "--older-than",
        type=float,
        default=tracking.DEFAULT_STALE_AFTER_S,
        help="seconds without a heartbeat after which a RUNNING run is dead (default: %(default)g)",
    )
    args = ap.parse_args(argv)
    try:
        if args.older_than <= 0:
            raise SweepConfigError(
                f"--older-than={args.older_than:g} is not valid: use seconds > 0"
            )
        uri = tracking.resolve_uri(args.tracking_uri)
        tracking.check_reachable(uri)
    except SweepConfigError as e:
        print(f"sweep.cli.runs: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if not args.fail_stale:
        _list_running(uri, args.experiment)
        return
    stale = tracking.fail_stale(uri, args.experiment, args.older_than)
    for r in stale:
        print(
            f"FAILED {r.info.run_id} {r.info.run_name} (sweep {r.data.tags.get(tracking.TAG_SWEEP_ID)})"
        )
    print(f"{len(stale)} stale run(s) ended FAILED in {uri} (experiment {args.experiment})")


def _list_running(uri: str, experiment: str) -> None:
    """The RUNNING runs with the age of their last sign of life."""
    now = time.time()
    runs = tracking.running_runs(uri, experiment)
    for r in runs:
        age = now - tracking.last_sign_of_life(r)
        print(f"RUNNING {r.info.run_id} {r.info.run_name}: last heartbeat {age:.0f} s ago")
    print(f"{len(runs)} running run(s); --fail-stale ends those silent for over the threshold")


if __name__ == "__main__":
    main()
