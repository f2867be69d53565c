"""Runs logged through the project's own tracking code, with chosen figures (for report and UI tests)."""

from __future__ import annotations

import time

from sweep import tracking
from sweep.errors import NotApplicable

# the experiment every test store's jobs are in (the tool's default)
EXPERIMENT = tracking.DEFAULT_EXPERIMENT

BASE_TAGS = {
    tracking.TAG_DEVICE: "cpu: test",
    tracking.TAG_GIT_COMMIT: "0123456789abcdef",
    "torch_version": "x",
}
KINDS = {
    "l1_unstructured": ("unstructured", "torch.nn.utils.prune", "false"),
    "semi_2_4": ("semi_structured", "semi_structured", "false"),
    "dg_group": ("structural", "depgraph", "true"),
    "dg_random": ("structural", "depgraph", "true"),
    "dg_taylor": ("structural", "depgraph", "true"),
    "dg_bn_scale": ("structural", "depgraph", "true"),
}
IMPORTANCE = {
    "dg_group": "torch_pruning.importance.MagnitudeImportance",
    "dg_random": "torch_pruning.importance.RandomImportance",
    "dg_taylor": "sweep.pruners.importance.Taylor",
    "dg_bn_scale": "sweep.pruners.importance.BNScale",
}


def _params(model, pruner, ratio, epochs, seed, target) -> dict:
    params = {
        "finetune.epochs": epochs,
        "finetune.lr": 0.001,
        "seed": seed,
        tracking.PARAM_MODEL: model,
        tracking.PARAM_MODEL_NAME: f"timm_{model}",
        tracking.PARAM_PRUNER: pruner,
        tracking.PARAM_DATASET: "digits",
        "pruner.ratio_means": f"fraction pruned by {pruner}",
    }
    if pruner in IMPORTANCE:
        params["pruner.importance._target_"] = IMPORTANCE[pruner]
    if target:
        kind, value = target.split("=")
        params[f"target.{kind}"] = value
    else:
        params[tracking.PARAM_RATIO] = ratio
    return params


def _dense_metrics(params, latency, acc) -> dict:
    return {
        "dense_params_total": params[0],
        "dense_params_nonzero": params[0],
        "dense_macs": 2e6,
        "dense_macs_nonzero": 2e6,
        "dense_latency_ms": latency[0],
        "dense_latency_std_ms": 0.1,
        "dense_accuracy_top1": acc[0],
    }


def _pruned_metrics(kind, params, latency, acc, oneshot, macs) -> dict:
    structural = kind == "structural"
    speedup = latency[0] / latency[1]
    return {
        "params_total": params[1] if structural else params[0],
        "params_nonzero": params[1],
        "macs": macs if structural else 2e6,
        "macs_nonzero": macs,
        "latency_ms": latency[1],
        "latency_std_ms": 0.2,
        "speedup": speedup,
        "speedup_ci_low": speedup - 0.1,
        "speedup_ci_high": speedup + 0.1,
        "accuracy_top1": acc[1],
        "accuracy_top1_oneshot": acc[1] if oneshot is None else oneshot,
        "accuracy_delta": acc[1] - acc[0],
        "macs_reduction": 1 - macs / 2e6 if structural else 0.0,
    }


def log_fake_run(
    store,
    sweep_id,
    model,
    pruner,
    ratio,
    *,
    latency=(10.0, 5.0),
    acc=(0.95, 0.90),
    params=(1000, 500),
    noop=False,
    chance=False,
    fail=None,
    metrics=None,
    extra_params=None,
    epochs=0,
    oneshot=None,
    parent=None,
    seed=0,
    target="",
    macs=1e6,
    tags=None,
    not_applicable=None,
):
    """One job run as a job would log it. `fail`: the job raises RuntimeError(fail) after its
    dense figures (the run ends FAILED); any other error propagates. `metrics`/`extra_params` add to
    or replace the logged figures; `epochs` of fine-tuning turned one-shot top-1 `oneshot` into acc[1].
    `target` (e.g. "macs=0.5") names the cost the job pruned to instead of `ratio`; `macs` is the pruned
    model's (dense: 2e6); `tags` adds to the run's tags; `not_applicable`: the job stops at once with
    that reason, as a method that cannot apply or reach its target does."""
    kind, family, possible = KINDS[pruner]
    nesting = {tracking.TAG_PARENT: parent, tracking.TAG_ROLE: "job"} if parent else {}
    tags = {
        **BASE_TAGS,
        tracking.TAG_SWEEP_ID: sweep_id,
        tracking.TAG_KIND: kind,
        tracking.TAG_FAMILY: family,
        tracking.TAG_SPEEDUP_POSSIBLE: possible,
        **nesting,
        **({tracking.TAG_TARGET: target} if target else {}),
        **(tags or {}),
    }
    name = f"{model}/{pruner}/{target or f'{ratio:g}'}"
    try:
        with tracking.job_run(store, EXPERIMENT, name, tags) as run:
            run.log_params(
                {**_params(model, pruner, ratio, epochs, seed, target), **(extra_params or {})}
            )
            if not_applicable:
                raise NotApplicable(not_applicable)
            run.log_metrics(_dense_metrics(params, latency, acc))
            if fail:
                raise RuntimeError(fail)
            run.log_metrics(
                {**_pruned_metrics(kind, params, latency, acc, oneshot, macs), **(metrics or {})}
            )
            run.set_tags(
                {
                    tracking.TAG_NOOP: noop,
                    tracking.TAG_AT_CHANCE: chance,
                    tracking.TAG_WEIGHTS: "trained",
                }
            )
    except NotApplicable as e:
        if str(e) != not_applicable:
            raise
    except RuntimeError as e:
        if not fail or str(e) != fail:
            raise


def runs_of(store: str, experiment: str = EXPERIMENT):
    """Every run of `experiment` in `store`."""
    return tracking.search_runs(store, experiment)


def started_run(store: str, status: str = "RUNNING", heartbeat: float | None = None) -> str:
    """A run that started half an hour ago, with its last heartbeat at `heartbeat` (unix s)."""
    client = tracking.client(store)
    exp = tracking.init_store(store, EXPERIMENT)
    tags = {tracking.TAG_ROLE: "job", tracking.TAG_SWEEP_ID: "s1"}
    if heartbeat is not None:
        tags[tracking.TAG_HEARTBEAT] = f"{heartbeat:.0f}"
    started = int((time.time() - 1800) * 1000)
    run_id = client.create_run(exp, start_time=started, tags=tags).info.run_id
    client.log_metric(run_id, "dense_params_total", 1234)
    if status != "RUNNING":
        client.set_terminated(run_id, status)
    return run_id
