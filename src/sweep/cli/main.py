"""`python -m sweep`: checks the whole grid before Hydra starts, then runs it and summarises.

Bad input (unknown model, pruner or dataset, a ratio outside [0, 1), a malformed override, an
unreachable tracking server) ends here with one line and exit status 2: no model built, nothing written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path

from sweep import config, tracking
from sweep.cli.plan import Plan, hydra_args, plan_sweep, user_search
from sweep.errors import SweepConfigError, first_line

# read by each job (sweep.job.run, not imported here: it loads torch): the grid's size and models
NUM_JOBS_ENV, MODELS_ENV = "SWEEP_NUM_JOBS", "SWEEP_MODELS"
STARTED_ENV = "SWEEP_STARTED_MS"


def summarize(plan: Plan, since_ms: int) -> tuple[int, dict]:
    """Print what this invocation logged; (exit status, figures for the parent run)."""
    finished, failed, na = [], [], []
    for uri, experiment in sorted(plan.stores):
        for r in tracking.search_runs(uri, experiment, plan.sweep_id):
            if r.info.start_time < since_ms:
                continue  # logged by an earlier invocation of the same sweep
            if r.info.status == "FINISHED":
                finished.append(r)
            else:
                (na if r.data.tags.get(tracking.TAG_NOT_APPLICABLE) == "true" else failed).append(r)
    skipped = max(0, plan.num_jobs - len(finished) - len(failed) - len(na))
    stores = ", ".join(f"{u} (experiment {e})" for u, e in sorted(plan.stores))
    print(
        f"sweep {plan.sweep_id}: {len(finished)} finished, {len(failed)} failed or killed, "
        f"{len(na)} not applicable, {skipped} skipped or missing (of {plan.num_jobs} jobs); "
        f"store {stores}"
    )
    for r in na + failed:
        status = "not applicable" if r in na else r.info.status
        print(f"  {status}: {r.info.run_name}: {r.data.tags.get(tracking.TAG_ERROR, '')}")
    if failed:
        print(
            f"re-run the same command with sweep_id={plan.sweep_id} to run the failed jobs again "
            f"(finished ones are skipped)"
        )
    for uri, experiment in sorted(plan.stores):
        exp_id, view = tracking.share_sweep_view(uri, experiment, plan.sweep_id)
        hint = "" if uri.startswith("http") else " (after `make ui`)"
        print(
            f"runs in the MLflow UI{hint}: {tracking.sweep_link(tracking.ui_of(uri), exp_id, view)}"
        )
    counts = (plan.num_jobs, len(finished), len(failed), len(na), skipped)
    figures = dict(zip(tracking.PARENT_METRICS, counts))
    return (1 if failed else 0), figures


def _run_hydra(plan: Plan) -> tuple[str, int]:
    """Hydra's multirun over the planned command line: (status for the parent run, exit code)."""
    # hydra.main reads its overrides from sys.argv and offers no public way to add some; launcher
    # workers (joblib, SLURM) get their job's overrides from it, so sweep_id and the parent run id go here.
    sys.argv = [sys.argv[0]] + plan.argv
    from sweep.cli.app import hydra_main

    try:
        with tracking.sigterm_raises():
            hydra_main()
        return "FINISHED", 0
    except (KeyboardInterrupt, tracking.JobKilled):
        print(
            f"sweep {plan.sweep_id}: interrupted; re-run with sweep_id={plan.sweep_id} to resume",
            file=sys.stderr,
        )
        return "KILLED", 130
    except SystemExit as e:
        return "FAILED", e.code if isinstance(e.code, int) and e.code else 1
    except Exception:
        return "FAILED", 1


def _report(plan: Plan, uri: str) -> None:
    """report.on_sweep_end: the benchmark document, also logged to the sweep's parent run."""

    from sweep import report

    experiment = next(e for u, e in sorted(plan.stores) if u == uri)
    try:
        print(
            f"report: {report.write_report(uri, experiment, plan.sweep_id, Path(plan.report_to))}"
        )
    except Exception as e:  # the sweep's own outcome stands; the report can be made again later
        print(
            f"report: not rendered ({first_line(e)}); run `make report` to try again",
            file=sys.stderr,
        )


def _help_user_options(argv: list[str]) -> None:
    """--help: the options the user's config folders add (Hydra's help lists the shipped ones)."""
    args = hydra_args(argv)
    if not args.help:
        return
    try:
        _, extra = user_search(args)
    except SweepConfigError as e:
        print(f"sweep: error: {e}", file=sys.stderr)
        return
    for group, names in config.user_options(extra).items():
        print(f"{group} (from your config folders): {', '.join(names)}")


def _fail_stale(uri: str, experiment: str, older_than_s: float) -> None:
    """Runs left RUNNING by a dead process or node, of any sweep, end FAILED before new jobs start."""
    for r in tracking.fail_stale(uri, experiment, older_than_s):
        print(
            f"sweep: run {r.info.run_name} ({r.info.run_id}) of sweep "
            f"{r.data.tags.get(tracking.TAG_SWEEP_ID)} ended FAILED: no heartbeat for over "
            f"{older_than_s:g} s (tracking.stale_after_s)",
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        plan = plan_sweep(argv)
        if plan.runs_job:
            for uri, experiment in plan.stores:
                tracking.init_store(uri, experiment)  # once, before any parallel writer
                _fail_stale(uri, experiment, plan.stale_after_s)
    except SweepConfigError as e:
        print(f"sweep: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if not plan.runs_job:  # --help, --cfg, ...
        sys.argv = [sys.argv[0]] + plan.argv
        from sweep.cli.app import hydra_main

        try:
            hydra_main()
        finally:
            _help_user_options(argv)
        return

    os.environ[NUM_JOBS_ENV] = str(plan.num_jobs)
    os.environ[MODELS_ENV] = ",".join(plan.models)
    since_ms = int(time.time() * 1000)
    os.environ[STARTED_ENV] = str(since_ms)
    # The parent run is opened and closed here rather than in Hydra's Callback.on_multirun_start/end:
    # its id must be in every job's overrides before launch, and Hydra skips on_multirun_end when the
    # sweep is interrupted (SIGTERM, Ctrl-C), which would leave the parent RUNNING.
    parent = None
    if plan.multirun:
        uri, experiment = sorted(plan.stores)[0]
        command = " ".join(["python -m sweep", *argv])
        parent = (uri, tracking.open_parent_run(uri, experiment, plan.sweep_id, command))
        plan.argv.append(f"tracking.parent_run_id={parent[1]}")
    status, code = "FAILED", 1
    try:
        with tracking.Heartbeat(*parent, plan.heartbeat_s) if parent else contextlib.nullcontext():
            status, code = _run_hydra(plan)
    finally:
        code = _wrap_up(plan, parent, status=status, code=code, since_ms=since_ms)
    raise SystemExit(code)


def _wrap_up(
    plan: Plan, parent: tuple[str, str] | None, status: str, code: int, since_ms: int
) -> int:
    """Orphans, summary, report and the parent run's end; the exit status. A store that stopped
    answering (past MLflow's own retries) ends the command with one line, not a traceback."""
    from mlflow.exceptions import MlflowException

    try:
        if parent is not None and status != "KILLED":
            tracking.fail_orphans(*parent)
        summary_code, figures = summarize(plan, since_ms)
        if status == "FINISHED" and summary_code:
            status, code = "FAILED", summary_code
        if parent is not None and plan.report_to and status != "KILLED":
            _report(plan, parent[0])
        if parent is not None:
            tracking.close_parent_run(parent[0], parent[1], status, figures)
        return code
    except MlflowException as e:
        stores = ", ".join(sorted(u for u, _ in plan.stores))
        print(
            f"sweep: error: tracking store {stores} stopped answering ({first_line(e)[:300]}); runs "
            f"it could not end are ended FAILED by a later command (tracking.stale_after_s); re-run "
            f"with sweep_id={plan.sweep_id} to finish what is missing",
            file=sys.stderr,
        )
        return 1
