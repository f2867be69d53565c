"""`python -m sweep.cli.register`: the best pruned model at each cost of a sweep, in MLflow's Model Registry.

For each model and cost level (`macs=0.5`, a ratio) of the sweep, the finished run with the highest top-1
after fine-tuning (ties: the higher speedup in `--runtime`) among those whose pruning removed work (not
masks, not a no-op, fine-tuning not diverged) is the candidate. A gate against the dense model: its top-1
drop must be within `--max-top1-drop` (the INT8 form's top-1 read in ONNX Runtime); a candidate that
fails is not registered, with one line saying why. The candidate's logged models (`log_models`) become
versions of `<timm name>-pruned` with aliases `macs50`, `macs50-int8`, `macs50-pytorch`; running it
again adds no version, it moves an alias where the best changed.

Bad input (no finished run, an unknown cost level or runtime, a store that cannot register models)
ends with one line and exit status 2, nothing registered.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass

from sweep import tracking
from sweep.errors import SweepConfigError, first_line

ALIAS_SUFFIX = {"onnx": "", "onnx_int8": "-int8", "pytorch": "-pytorch"}


@dataclass(frozen=True)
class Candidate:
    """The best run of one model at one cost level, and the figures its gate reads."""

    model: str  # timm name
    cost: str  # the run's cost label: macs=0.5, 0.3 (a ratio)
    run: object

    def metric(self, key: str, default: float = float("nan")) -> float:
        return self.run.data.metrics.get(key, default)

    @property
    def method(self) -> str:
        return self.run.data.params.get(tracking.PARAM_PRUNER, "?")

    def top1(self, form: str) -> float:
        if form == "onnx_int8":
            return self.metric(tracking.int8_key("onnxruntime", tracking.ACCURACY))
        return self.metric(tracking.ACCURACY)


def alias_of(cost: str, form: str) -> str:
    """`macs=0.5` -> `macs50`, a ratio `0.3` -> `ratio30`, `speedup=2` -> `speedup2x`; then the form's
    suffix. (MLflow's aliases take letters, digits, `_` and `-`.)"""
    kind, _, value = cost.rpartition("=")
    kind = kind or "ratio"
    number = float(value)
    level = f"{number:g}x".replace(".", "_") if kind == "speedup" else f"{round(100 * number)}"
    return f"{kind}{level}{ALIAS_SUFFIX[form]}"


def registered_name(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", model) + "-pruned"


def _cost(run) -> str:
    return run.info.run_name.split("/")[2] if run.info.run_name.count("/") >= 2 else "?"


def _eligible(run) -> bool:
    """A run whose pruned model is worth shipping: structural, pruned, fine-tuning not diverged."""
    tags = run.data.tags
    return (
        tags.get(tracking.TAG_SPEEDUP_POSSIBLE) != "false"
        and tags.get(tracking.TAG_NOOP) != "true"
        and tags.get(tracking.TAG_DIVERGED) != "true"
        and tags.get(tracking.TAG_PRUNED_AT_CHANCE) != "true"
        and tracking.ACCURACY in run.data.metrics
    )


def candidates(runs: list, runtime: str) -> list[Candidate]:
    """The best eligible run per (model, cost level), in the order the levels first appear."""
    speedup = tracking.runtime_key(runtime, tracking.SPEEDUP)

    def rank(run) -> tuple[float, float]:  # top-1, then the speedup in `runtime`
        return run.data.metrics[tracking.ACCURACY], run.data.metrics.get(speedup, 0.0)

    best: dict[tuple[str, str], object] = {}
    for run in filter(_eligible, runs):
        key = (run.data.params.get(tracking.PARAM_MODEL_NAME, "?"), _cost(run))
        if key not in best or rank(run) > rank(best[key]):
            best[key] = run
    return [Candidate(model=m, cost=c, run=r) for (m, c), r in best.items()]


def _check(args, runs: list) -> None:
    """Bad input, before anything is registered: one line naming the value and the valid choices."""
    if not runs:
        raise SweepConfigError(f"sweep {args.sweep_id}: no finished run to register from")
    costs = sorted({_cost(r) for r in runs})
    if args.cost and args.cost not in costs:
        raise SweepConfigError(
            f"--cost={args.cost} is not a cost level of sweep {args.sweep_id}: choose from "
            f"{', '.join(costs)}"
        )
    key = tracking.runtime_key(args.runtime, tracking.SPEEDUP)
    if not any(key in r.data.metrics for r in runs):
        timed = {k.split("/")[0] for r in runs for k in r.data.metrics if k.count("/") == 1}
        timed = sorted(t for t in timed if any(f"{t}/speedup" in r.data.metrics for r in runs))
        raise SweepConfigError(
            f"--runtime={args.runtime}: no run of sweep {args.sweep_id} was timed in it: choose "
            f"from {', '.join([tracking.EAGER, *timed])}"
        )
    if args.max_top1_drop < 0:
        raise SweepConfigError(f"--max-top1-drop={args.max_top1_drop:g} is not valid: use >= 0")


def _check_registry(uri: str) -> None:
    """A store that cannot hold registered models says so before anything is registered."""
    try:
        tracking.client(uri).search_registered_models(max_results=1)
    except Exception as e:
        raise SweepConfigError(
            f"{uri} cannot register models ({first_line(e)}): use a store with MLflow's Model "
            f"Registry (SQLite, PostgreSQL, or an mlflow server backed by one)"
        ) from None


def gate(c: Candidate, form: str, max_drop: float) -> str:
    """Why the candidate's `form` may not be registered ("" when it passes): its top-1 drop from the
    dense model's (FP32) beyond `max_drop`, or no top-1 to judge it by."""
    dense, top1 = c.metric(tracking.DENSE_ACCURACY), c.top1(form)
    if top1 != top1 or dense != dense:
        return f"no top-1 of the {form} form to gate it on"
    drop = dense - top1
    if drop > max_drop + 1e-12:
        return (
            f"top-1 {100 * top1:.1f} % is {100 * drop:.1f} points below dense {100 * dense:.1f} % "
            f"(--max-top1-drop={max_drop:g})"
        )
    return ""


def _version_tags(c: Candidate, form: str, sweep_id: str) -> dict[str, str]:
    speedups = {
        f"speedup/{k.partition('/')[0] if '/' in k else tracking.EAGER}": f"{v:.3f}"
        for k, v in c.run.data.metrics.items()
        if k.rpartition("/")[2] == tracking.SPEEDUP and k.count("/") <= 1
    }
    return {
        "method": c.method,
        "cost": c.cost,
        "form": form,
        tracking.ACCURACY: f"{c.top1(form):.4f}",
        tracking.MACS_KEPT: f"{1 - c.metric(tracking.MACS_REDUCTION):.4f}",
        tracking.TAG_SWEEP_ID: sweep_id,
        "run_id": c.run.info.run_id,
        **speedups,
    }


def register(uri: str, args, c: Candidate) -> list[str]:
    """The candidate's logged models registered (each form behind its own gate); lines to print."""
    exp = c.run.info.experiment_id
    forms = tracking.logged_models_of(uri, exp, f"source_run_id = '{c.run.info.run_id}'")
    forms = {m.tags.get(tracking.MODEL_TAG_FORM): m for m in forms}
    where = f"{c.model} at {c.cost}: {c.method} (run {c.run.info.run_id})"
    if not forms:
        return [f"{where}: not registered: the run logged no model (log_models=[] or an older run)"]
    lines, link = [], f"{tracking.ui_of(uri)}/#/experiments/{exp}/runs/{c.run.info.run_id}"
    for form in (f for f in ALIAS_SUFFIX if f in forms):
        alias = alias_of(c.cost, form)
        why = gate(c, form, args.max_top1_drop)
        if why:
            lines.append(f"{where}: {form} not registered as @{alias}: {why}")
            continue
        v = tracking.register_version(
            uri,
            name=registered_name(c.model),
            model=forms[form],
            alias=alias,
            tags=_version_tags(c, form, args.sweep_id),
            description=f"{c.method} at {c.cost}, the best of sweep {args.sweep_id}: [run]({link})",
        )
        state = "registered" if v.new else "already registered"
        lines.append(
            f"{where}: {state} {v.name} version {v.version} @{alias} (top-1 "
            f"{100 * c.top1(form):.1f} %, dense {100 * c.metric(tracking.DENSE_ACCURACY):.1f} %)"
        )
    return lines


def _args(argv):
    ap = argparse.ArgumentParser(
        prog="python -m sweep.cli.register", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--sweep-id", default=None, help="default: the newest sweep of the experiment")
    ap.add_argument("--tracking-uri", default=None, help=tracking.DEFAULT_URI_HELP)
    ap.add_argument("--experiment", default=tracking.DEFAULT_EXPERIMENT)
    ap.add_argument("--cost", default=None, help="one cost level only, e.g. macs=0.5")
    ap.add_argument(
        "--runtime", default=tracking.EAGER, help="ties broken by the speedup in it (%(default)s)"
    )
    ap.add_argument(
        "--max-top1-drop",
        type=float,
        default=0.05,
        help="the gate: top-1 at most this far below dense, a fraction (default %(default)g)",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _args(argv)
    try:
        uri = tracking.resolve_uri(args.tracking_uri)
        tracking.check_reachable(uri)
        args.sweep_id = args.sweep_id or tracking.newest_sweep(uri, args.experiment)
        runs = [
            r
            for r in tracking.search_runs(uri, args.experiment, args.sweep_id)
            if r.info.status == "FINISHED" and args.sweep_id
        ]
        _check(args, runs)
        _check_registry(uri)
    except SweepConfigError as e:
        print(f"sweep.cli.register: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    chosen = [c for c in candidates(runs, args.runtime) if args.cost in (None, c.cost)]
    for c in chosen:
        for line in register(uri, args, c):
            print(line)
    if not chosen:
        print(f"sweep {args.sweep_id}: no run worth registering (masks, no-ops, diverged only)")


if __name__ == "__main__":
    main()
