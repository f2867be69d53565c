"""`python -m sweep`: checks the whole grid before Hydra starts, then runs it and summarises.

Bad input (unknown model, pruner or dataset, a ratio outside [0, 1), a malformed override, an
unreachable tracking server) ends here with one line and exit status 2: no model built, nothing written.
"""
from __future__ import annotations

import logging
import os
import secrets
import sys
import time
from dataclasses import dataclass, field

from sweep import tracking
from sweep.errors import SweepConfigError

NUM_JOBS_ENV = "SWEEP_NUM_JOBS"


@dataclass
class Plan:
    argv: list[str]
    num_jobs: int
    sweep_id: str | None = None
    stores: set[tuple[str, str]] = field(default_factory=set)  # (tracking uri, experiment)
    runs_job: bool = True
    multirun: bool = False


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def register_timm_model(name: str) -> None:
    """Make `model=<any timm name>` composable without a yaml: a config node in Hydra's ConfigStore
    (passed on to launcher workers with Hydra's own state)."""
    import timm
    from hydra.core.config_store import ConfigStore

    pcfg = timm.models.get_pretrained_cfg(name)
    size = int(pcfg.input_size[-1]) if pcfg is not None and pcfg.input_size else 224
    ConfigStore.instance().store(group="model", name=name, node={
        "alias": name, "name": name, "input_size": size, "weights": "pretrained",
        "train": {"epochs": 0, "lr": 1e-3, "batch_size": 64, "weight_decay": 0.05}, "kwargs": {},
    })


def preflight(argv: list[str]) -> Plan:
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra._internal.utils import get_args_parser
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from hydra.utils import instantiate

    from sweep import config as C

    args = get_args_parser().parse_args(argv)
    if args.help or args.hydra_help or args.info or args.cfg or args.shell_completion:
        return Plan(list(argv), 0, runs_job=False)

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(C.config_dir()), version_base="1.3", job_name="sweep"):
        parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
        try:
            parsed = parser.parse_overrides(args.overrides)
        except HydraException as e:
            raise SweepConfigError(f"malformed override in {' '.join(args.overrides)!r}: {_first_line(e)}") from None
        for o in parsed:
            if o.is_sweep_override() and not args.multirun:
                raise SweepConfigError(f"{o.input_line} is a sweep: add -m (--multirun) to run a grid")

        values: dict[str, list[str]] = {}
        for o in parsed:
            key = o.key_or_group
            vals = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
            values[key] = vals
            if key in C.GROUPS:
                for v in vals:
                    C.check_choice(key, v)
                    if key == "model" and v not in C.group_options("model"):
                        register_timm_model(v)
            elif key == "ratio":
                for v in vals:
                    C.check_ratio(v)

        grid = BasicSweeper.split_arguments(parsed, None)[0] if parsed else [[]]
        # Compose one job per distinct model x dataset x pruner choice (the rest only varies numbers).
        seen, plan = set(), Plan(list(argv), len(grid), multirun=bool(args.multirun))
        for job in grid:
            key = tuple(o for o in job if o.split("=", 1)[0].lstrip("+~") in C.GROUPS)
            if key in seen:
                continue
            seen.add(key)
            try:
                cfg = compose("sweep", overrides=job)
            except HydraException as e:
                raise SweepConfigError(f"cannot compose {' '.join(job)}: {_first_line(e)}") from None
            C.check_job_config(cfg)
            try:
                instantiate(cfg.pruner)
            except Exception as e:
                raise SweepConfigError(f"pruner {cfg.pruner.get('name')!r} cannot be built: {_first_line(e)}") from None
            plan.stores.add((tracking.resolve_uri(cfg.tracking.uri), str(cfg.tracking.experiment)))
            plan.sweep_id = cfg.sweep_id
    GlobalHydra.instance().clear()

    for uri, _ in plan.stores:
        tracking.check_reachable(uri)
    if plan.sweep_id is None:
        plan.sweep_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
        plan.argv.append(f"sweep_id={plan.sweep_id}")
    return plan


def summarize(plan: Plan, since_ms: int) -> tuple[int, dict]:
    """Print what this invocation logged; (exit status, figures for the parent run)."""
    finished, failed = [], []
    for uri, experiment in sorted(plan.stores):
        for r in tracking.search_runs(uri, experiment, plan.sweep_id):
            if r.info.start_time < since_ms:
                continue  # logged by an earlier invocation of the same sweep
            (finished if r.info.status == "FINISHED" else failed).append(r)
    skipped = max(0, plan.num_jobs - len(finished) - len(failed))
    stores = ", ".join(f"{u} (experiment {e})" for u, e in sorted(plan.stores))
    print(f"sweep {plan.sweep_id}: {len(finished)} finished, {len(failed)} failed or killed, "
          f"{skipped} skipped or missing (of {plan.num_jobs} jobs); store {stores}")
    for r in failed:
        print(f"  {r.info.status}: {r.info.run_name}: {r.data.tags.get(tracking.TAG_ERROR, '')}")
    if failed:
        print(f"re-run the same command with sweep_id={plan.sweep_id} to run the failed jobs again "
              f"(finished ones are skipped)")
    figures = {"jobs": plan.num_jobs, "jobs_finished": len(finished), "jobs_failed": len(failed),
               "jobs_skipped": skipped}
    return (1 if failed else 0), figures


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        plan = preflight(argv)
        if plan.runs_job:
            for uri, experiment in plan.stores:
                tracking.init_store(uri, experiment)  # once, before any parallel writer
    except SweepConfigError as e:
        print(f"sweep: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None

    os.environ[NUM_JOBS_ENV] = str(plan.num_jobs)
    since_ms = int(time.time() * 1000)
    parent = None
    if plan.runs_job and plan.multirun:
        uri, experiment = sorted(plan.stores)[0]
        parent = (uri, tracking.open_parent_run(uri, experiment, plan.sweep_id, " ".join(["python -m sweep", *argv])))
        plan.argv.append(f"tracking.parent_run_id={parent[1]}")
    sys.argv = [sys.argv[0]] + plan.argv
    from sweep.app import hydra_main

    status, code, figures = "FAILED", 1, {}
    try:
        with tracking.sigterm_raises():
            hydra_main()
        status, code = "FINISHED", 0
    except BaseException as e:
        status = "KILLED" if isinstance(e, (KeyboardInterrupt, tracking.JobKilled)) else "FAILED"
        if status == "KILLED":
            print(f"sweep {plan.sweep_id}: interrupted; re-run with sweep_id={plan.sweep_id} to resume", file=sys.stderr)
        code = 130 if status == "KILLED" else (e.code if isinstance(e, SystemExit) and isinstance(e.code, int) else 1)
    finally:
        if plan.runs_job:
            if parent is not None and status != "KILLED":
                tracking.fail_orphans(*parent)
            summary_code, figures = summarize(plan, since_ms)
            if status == "FINISHED":
                code = summary_code
                status = "FAILED" if summary_code else "FINISHED"
            if parent is not None:
                tracking.close_parent_run(parent[0], parent[1], status, figures)
    raise SystemExit(code)
