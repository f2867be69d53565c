"""`python -m sweep`: checks the whole grid before Hydra starts, then runs it and summarises.

Bad input (unknown model, pruner or dataset, a ratio outside [0, 1), a malformed override, an
unreachable tracking server) ends here with one line and exit status 2: no model built, nothing written.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sweep import config as C
from sweep import tracking
from sweep.errors import SweepConfigError, first_line, one_line
from sweep.schema import TARGETS

NUM_JOBS_ENV = "SWEEP_NUM_JOBS"


@dataclass
class Plan:
    argv: list[str]
    num_jobs: int
    sweep_id: str | None = None
    stores: set[tuple[str, str]] = field(default_factory=set)  # (tracking uri, experiment)
    runs_job: bool = True
    multirun: bool = False
    report_to: str | None = None  # report.out when report.on_sweep_end
    heartbeat_s: float | None = tracking.DEFAULT_HEARTBEAT_S
    stale_after_s: float = tracking.DEFAULT_STALE_AFTER_S


# Hydra has no public API to read its own command line without running the app: its parser gives the
# overrides apart from its flags (-m, --cfg, --help, ...), exactly as hydra.main will read them.
def _hydra_args(argv: list[str]):
    from hydra._internal.utils import get_args_parser

    return get_args_parser().parse_args(argv)


def _parse(overrides: list[str], multirun: bool) -> list:
    """Hydra's own override parser (glob(*) and ranges expand against conf/)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    try:
        parsed = parser.parse_overrides(overrides)
    except HydraException as e:
        raise SweepConfigError(
            f"malformed override in {' '.join(overrides)!r}: {first_line(e)}"
        ) from None
    for o in parsed:
        if o.is_sweep_override() and not multirun:
            raise SweepConfigError(f"{o.input_line} is a sweep: add -m (--multirun) to run a grid")
    return parsed


def _values(parsed: list, extra: list) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Every override as `key=value` strings, one per value it sweeps over, group choices checked;
    and the globs over a group written out (`pruner=glob(*)` -> `pruner=a,b,...`) with the options
    of the user's config folders too: Hydra's own glob lists only the primary config's folders."""
    from hydra.core.override_parser.types import Glob

    out: dict[str, list[str]] = {}
    globs: dict[str, str] = {}
    for o in parsed:
        if not o.is_sweep_override():
            out[o.input_line] = [o.input_line]
            continue
        if o.key_or_group in C.GROUPS and isinstance(o.value(), Glob):
            vals = o.value().filter(C.group_options(o.key_or_group, extra))
            if not vals:
                raise SweepConfigError(
                    f"{o.input_line} matches no {o.key_or_group}: choose from "
                    f"{', '.join(C.group_options(o.key_or_group, extra))}"
                )
            globs[o.input_line] = f"{o.get_key_element()}={','.join(vals)}"
        else:
            vals = list(o.sweep_string_iterator())
        out[o.input_line] = [f"{o.get_key_element()}={v}" for v in vals]
        if o.key_or_group in C.GROUPS:
            for v in vals:
                C.check_choice(o.key_or_group, v, extra)
    for o in parsed:
        if not o.is_sweep_override() and o.key_or_group in C.GROUPS and o.value() is not None:
            C.check_choice(o.key_or_group, o.get_value_element_as_str(), extra)
    return out, globs


def _listed(parsed: list, key: str) -> list[str]:
    """The list an override such as `hydra.searchpath=[a,b]` or `imports=[m]` gives, if any."""
    for o in parsed:
        if o.get_key_element() == key and not o.is_sweep_override():
            value = o.value()
            return [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return []


def user_search(args) -> tuple[list[str], list]:
    """The user's config folders: hydra.searchpath on the command line, and --config-dir (which
    Hydra puts first); (searchpath entries as Hydra takes them, the folders, checked)."""
    entries = _listed(_parse_plain(args.overrides), C.SEARCHPATH_KEY)
    if args.config_dir:
        entries = [f"file://{Path(args.config_dir).expanduser().resolve()}", *entries]
    return entries, C.search_dirs(entries)


def _parse_plain(overrides: list[str]) -> list:
    """Overrides parsed without a config loader (globs unexpanded), for reading a few keys early."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return OverridesParser.create().parse_overrides(overrides)
    except HydraException as e:
        raise SweepConfigError(
            f"malformed override in {' '.join(overrides)!r}: {first_line(e)}"
        ) from None


def _to_check(values: dict[str, list[str]], parsed: list) -> list[list[str]]:
    """The jobs whose configs together hold every value of the grid: every combination of group choices
    (they change the config's shape), then each other swept value once. Composing all N jobs of a large
    grid would cost seconds for nothing."""
    groups = [o.input_line for o in parsed if o.key_or_group in C.GROUPS]
    base = [v[0] for v in values.values()]
    jobs = []
    for combo in itertools.product(*(values[k] for k in groups)):
        job = dict(zip(values, base))
        job.update(zip(groups, combo))
        jobs.append(list(job.values()))
    for key, vals in values.items():
        if key not in groups:
            jobs += [list({**dict(zip(values, base)), key: v}.values()) for v in vals[1:]]
    return jobs


def _compose_checked(job: list[str]):
    from hydra import compose
    from hydra.errors import HydraException

    from sweep.schema import describe_type_error

    try:
        cfg = compose("sweep", overrides=job)
    except HydraException as e:
        typed = describe_type_error(f"{e}\n{e.__cause__}")
        raise SweepConfigError(
            typed or f"cannot compose {' '.join(job)}: {first_line(e)}"
        ) from None
    C.check_job_config(cfg)
    return cfg


def _check_pruner(cfg, built: set[str], extra: list) -> None:
    """The pruner can be built and is a Pruner; a changed importance comes with its own name."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from sweep.pruners.base import Pruner

    name, target = cfg.pruner.get("name"), cfg.pruner.get("_target_")
    if name in built:
        return
    try:
        pruner = instantiate(cfg.pruner)
    except InstantiationException as e:
        root = _root_cause(e)
        if "Error locating target" in str(e):
            raise SweepConfigError(
                f"pruner {name!r}: _target_ {target} cannot be imported ({one_line(root)}); "
                f"install its package or put it on PYTHONPATH"
            ) from None
        raise SweepConfigError(f"pruner {name!r} cannot be built: {one_line(root)}") from None
    except Exception as e:
        raise SweepConfigError(f"pruner {name!r} cannot be built: {first_line(e)}") from None
    if not isinstance(pruner, Pruner):
        raise SweepConfigError(
            f"pruner {name!r}: _target_ {target} makes a {type(pruner).__name__}, not a "
            f"sweep.pruners.base.Pruner (subclass it: kind, family, ratio_means, prune)"
        )
    _check_importance_named(cfg, extra)
    built.add(name)


def _root_cause(e: BaseException) -> BaseException:
    """The innermost exception Hydra's instantiate wrapped (its own messages span lines)."""
    while e.__cause__ is not None or (e.__context__ is not None and not e.__suppress_context__):
        e = e.__cause__ or e.__context__
    return e


def _check_importance_named(cfg, extra: list) -> None:
    """A pruner whose importance was swapped for another is another method: it needs its own name,
    or the report files its results under the method it came from."""
    from omegaconf import OmegaConf

    path = C.option_file("pruner", str(cfg.pruner.get("name")), extra)
    if path is None or "importance" not in cfg.pruner:
        return
    shipped = OmegaConf.load(path).get("importance")
    want = shipped.get("_target_") if shipped is not None else None
    got = cfg.pruner.importance.get("_target_") if cfg.pruner.importance is not None else None
    if want is not None and got != want:
        short = str(got).rsplit(".", 1)[-1].lower()
        raise SweepConfigError(
            f"pruner.importance._target_={got} is not {cfg.pruner.name}'s importance ({want}): "
            f"name the method, e.g. pruner.name=dg_{short}"
        )


def _check_ratio_or_target(parsed: list) -> None:
    """A job with a target searches its ratio: sweeping `ratio` beside a target would only repeat jobs."""
    keys = {o.get_key_element(): o for o in parsed}
    target = next((k for k in keys if k.startswith("target.") and k.split(".")[1] in TARGETS), None)
    if target and "ratio" in keys and keys["ratio"].is_sweep_override():
        raise SweepConfigError(
            f"{keys['ratio'].input_line} beside {keys[target].input_line}: a target searches the "
            f"ratio itself; sweep one of them"
        )


def preflight(argv: list[str]) -> Plan:
    """Check the whole grid (each bad value gets one line) and plan the sweep; nothing is written."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    args = _hydra_args(argv)
    if args.help or args.hydra_help or args.info or args.cfg or args.shell_completion:
        return Plan(list(argv), 0, runs_job=False)
    entries, extra = user_search(args)
    C.import_modules(_listed(_parse_plain(args.overrides), "imports"))
    overrides = [o for o in args.overrides if not o.startswith(f"{C.SEARCHPATH_KEY}=")]
    if entries:  # compose sees the user's folders as Hydra's app will
        overrides.append(f"{C.SEARCHPATH_KEY}=[{','.join(entries)}]")
    GlobalHydra.instance().clear()
    with initialize_config_dir(
        config_dir=str(C.config_dir()), version_base="1.3", job_name="sweep"
    ):
        parsed = _parse(overrides, bool(args.multirun))
        values, globs = _values(parsed, extra)
        _check_ratio_or_target(parsed)
        argv = [globs.get(a, a) for a in argv]
        plan = Plan(
            list(argv), math.prod(len(v) for v in values.values()), multirun=bool(args.multirun)
        )
        pruners: set[str] = set()
        for job in _to_check(values, parsed):
            cfg = _compose_checked(job)
            _check_pruner(cfg, pruners, extra)
            plan.stores.add((tracking.resolve_uri(cfg.tracking.uri), cfg.tracking.experiment))
            plan.sweep_id = cfg.sweep_id
            plan.report_to = cfg.report.out if cfg.report.on_sweep_end else None
            plan.heartbeat_s = cfg.tracking.heartbeat_s
            plan.stale_after_s = cfg.tracking.stale_after_s
    GlobalHydra.instance().clear()
    for uri, _ in plan.stores:
        tracking.check_reachable(uri)
    if plan.sweep_id is None:
        plan.sweep_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
        plan.argv.append(f"sweep_id={plan.sweep_id}")
    return plan


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
    figures = {
        "jobs": plan.num_jobs,
        "jobs_finished": len(finished),
        "jobs_failed": len(failed),
        "jobs_not_applicable": len(na),
        "jobs_skipped": skipped,
    }
    return (1 if failed else 0), figures


def _run_hydra(plan: Plan) -> tuple[str, int]:
    """Hydra's multirun over the planned command line: (status for the parent run, exit code)."""
    # hydra.main reads its overrides from sys.argv and offers no public way to add some; launcher
    # workers (joblib, SLURM) get their job's overrides from it, so sweep_id and the parent run id go here.
    sys.argv = [sys.argv[0]] + plan.argv
    from sweep.app import hydra_main

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
    from pathlib import Path

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
    args = _hydra_args(argv)
    if not args.help:
        return
    try:
        _, extra = user_search(args)
    except SweepConfigError as e:
        print(f"sweep: error: {e}", file=sys.stderr)
        return
    for group, names in C.user_options(extra).items():
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
        plan = preflight(argv)
        if plan.runs_job:
            for uri, experiment in plan.stores:
                tracking.init_store(uri, experiment)  # once, before any parallel writer
                _fail_stale(uri, experiment, plan.stale_after_s)
    except SweepConfigError as e:
        print(f"sweep: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if not plan.runs_job:  # --help, --cfg, ...
        sys.argv = [sys.argv[0]] + plan.argv
        from sweep.app import hydra_main

        try:
            hydra_main()
        finally:
            _help_user_options(argv)
        return

    os.environ[NUM_JOBS_ENV] = str(plan.num_jobs)
    since_ms = int(time.time() * 1000)
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
        code = _wrap_up(plan, parent, status, code, since_ms)
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
