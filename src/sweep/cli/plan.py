"""The sweep's plan, checked before Hydra starts: every job of the grid composed and checked (each bad
value gets one line), the stores it writes to, its sweep id; nothing is written."""

from __future__ import annotations

import contextlib
import itertools
import math
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from sweep import config, targets, tracking
from sweep.config.schema import TARGETS
from sweep.errors import SweepConfigError, first_line, one_line


@dataclass
class Plan:
    argv: list[str]
    num_jobs: int
    sweep_id: str | None = None
    stores: set[tuple[str, str]] = field(default_factory=set)  # (tracking uri, experiment)
    runs_job: bool = True
    multirun: bool = False
    report_to: str | None = None  # report.out when report.on_sweep_end
    models: list[str] = field(default_factory=list)  # the grid's models (an ETA is per model)
    heartbeat_s: float | None = tracking.DEFAULT_HEARTBEAT_S
    stale_after_s: float = tracking.DEFAULT_STALE_AFTER_S


# Hydra has no public API to read its own command line without running the app: its parser gives the
# overrides apart from its flags (-m, --cfg, --help, ...), exactly as hydra.main will read them.
def hydra_args(argv: list[str]):
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
        if o.key_or_group in config.GROUPS and isinstance(o.value(), Glob):
            vals = o.value().filter(config.group_options(o.key_or_group, extra))
            if not vals:
                raise SweepConfigError(
                    f"{o.input_line} matches no {o.key_or_group}: choose from "
                    f"{', '.join(config.group_options(o.key_or_group, extra))}"
                )
            globs[o.input_line] = f"{o.get_key_element()}={','.join(vals)}"
        else:
            vals = list(o.sweep_string_iterator())
        out[o.input_line] = [f"{o.get_key_element()}={v}" for v in vals]
        if o.key_or_group in config.GROUPS:
            for v in vals:
                config.check_choice(o.key_or_group, v, extra)
    for o in parsed:
        if not o.is_sweep_override() and o.key_or_group in config.GROUPS and o.value() is not None:
            config.check_choice(o.key_or_group, o.get_value_element_as_str(), extra)
    return out, globs


def _register_timm_names(overrides: list[str]) -> None:
    """A plain `model=<timm name>` made composable (as a job registers it), for Hydra's --cfg/--info."""
    with contextlib.suppress(SweepConfigError):  # Hydra itself says what is wrong with the rest
        for o in _parse_plain(overrides):
            if o.key_or_group == "model" and not o.is_sweep_override() and o.value() is not None:
                config.check_choice("model", o.get_value_element_as_str())


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
    entries = _listed(_parse_plain(args.overrides), config.SEARCHPATH_KEY)
    if args.config_dir:
        entries = [f"file://{Path(args.config_dir).expanduser().resolve()}", *entries]
    return entries, config.search_dirs(entries)


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
    groups = [o.input_line for o in parsed if o.key_or_group in config.GROUPS]
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

    from sweep.config.schema import describe_type_error

    try:
        cfg = compose("sweep", overrides=job)
    except HydraException as e:
        typed = describe_type_error(f"{e}\n{e.__cause__}")
        raise SweepConfigError(
            typed or f"cannot compose {' '.join(job)}: {first_line(e)}"
        ) from None
    config.check_job_config(cfg)
    targets.published.check(cfg)
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

    path = config.option_file("pruner", str(cfg.pruner.get("name")), extra)
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


def _check_before_the_sweep(parsed: list) -> None:
    """Hydra's multirun composes the config with the plain overrides before it makes the swept group
    choices: a key of the swept methods that the default method lacks (`pruner.regularize.epochs=2`
    beside `pruner=dg_slim,dg_group_reg`) fails there, after every job was checked. Say so in one
    line, with the spelling that works."""
    from hydra import compose
    from hydra.errors import HydraException

    plain = [o.input_line for o in parsed if not o.is_sweep_override()]
    swept = {
        o.key_or_group for o in parsed if o.is_sweep_override() and o.key_or_group in config.GROUPS
    }
    try:
        compose("sweep", overrides=plain)
    except HydraException as e:
        for line in plain:
            group = line.split(".")[0]
            if group in swept and not line.startswith("+"):
                raise SweepConfigError(
                    f"{line}: the default {group} has no such key, and Hydra sets plain overrides "
                    f"before it makes the sweep's {group} choices: write ++{line} (it sets the key "
                    f"on every {group} of the sweep, so each must have it)"
                ) from None
        raise SweepConfigError(f"cannot compose {' '.join(plain)}: {first_line(e)}") from None


def plan_sweep(argv: list[str]) -> Plan:
    """Check the whole grid (each bad value gets one line) and plan the sweep; nothing is written."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    args = hydra_args(argv)
    if args.help or args.hydra_help or args.info or args.cfg or args.shell_completion:
        _register_timm_names(
            args.overrides
        )  # `model=resnet50 --cfg job` shows what a job would get
        return Plan(list(argv), 0, runs_job=False)
    entries, extra = user_search(args)
    config.import_modules(_listed(_parse_plain(args.overrides), "imports"))
    overrides = [o for o in args.overrides if not o.startswith(f"{config.SEARCHPATH_KEY}=")]
    if entries:  # compose sees the user's folders as Hydra's app will
        overrides.append(f"{config.SEARCHPATH_KEY}=[{','.join(entries)}]")
    GlobalHydra.instance().clear()
    with initialize_config_dir(
        config_dir=str(config.config_dir()), version_base="1.3", job_name="sweep"
    ):
        parsed = _parse(overrides, bool(args.multirun))
        values, globs = _values(parsed, extra)
        _check_ratio_or_target(parsed)
        if args.multirun:
            _check_before_the_sweep(parsed)
        argv = [globs.get(a, a) for a in argv]
        plan = Plan(
            list(argv), math.prod(len(v) for v in values.values()), multirun=bool(args.multirun)
        )
        plan.models = [
            v.split("=", 1)[1] for vs in values.values() for v in vs if v.startswith("model=")
        ]
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
