"""The MLflow UI: a shared view of one sweep, the link to it, and the report on the sweep's run."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sweep.tracking.names import (
    ACCURACY,
    ACCURACY_ONESHOT,
    MACS_REDUCTION,
    PARAM_MODEL,
    PARAM_PRUNER,
    PARAM_RATIO,
    REPORT_ARTIFACT_DIR,
    SHARED_VIEW_PREFIX,
    SPEEDUP,
    TAG_NOTE,
    TAG_SWEEP_ID,
)
from sweep.tracking.queries import parent_run_of
from sweep.tracking.store import client as _client
from sweep.tracking.store import eq as _eq
from sweep.tracking.store import init_store

__all__ = ["DEFAULT_UI", "UI_COLUMNS", "log_report", "share_sweep_view", "sweep_link", "ui_of"]

UI_COLUMNS = (
    ("params", PARAM_MODEL),
    ("params", PARAM_PRUNER),
    ("params", PARAM_RATIO),
    ("params", "finetune.epochs"),
    ("metrics", SPEEDUP),
    ("metrics", ACCURACY),
    ("metrics", ACCURACY_ONESHOT),
    ("metrics", MACS_REDUCTION),
)
UI_ORDER_BY = ACCURACY  # within each model's group, the best top-1 after fine-tuning first
# MLflow's description of a run (markdown, shown on the run's page): the sweep run's holds the report link
NOTE_MAX_CHARS = 7000  # a tag value holds 8,000 characters in MLflow's SQL stores
DEFAULT_UI = "http://127.0.0.1:5000"  # where `make ui` serves a local store


def share_sweep_view(uri: str, experiment: str, sweep_id: str) -> tuple[str, str]:
    """A saved view of one sweep for the MLflow UI; returns (experiment id, view key) for `sweep_link`.

    What a first look should show is the jobs, with their figures. Jobs are nested under the sweep's
    run (`mlflow.parentRunId`: the run pages, `fail_orphans` and older stores rely on it), and the UI's
    table folds nested runs under a collapsed parent row; a shared view cannot open that row (MLflow
    drops `runsExpanded` from shared views). Its grouping can: grouped rows ignore nesting, and groups
    open expanded. So the view groups the sweep's runs by model, each group's jobs sorted by top-1
    after fine-tuning, with the key params and metrics as columns. The sweep's own run has no model:
    it lands in MLflow's "Additional runs" group, opened too, so the report on its page is one click
    away."""
    client = _client(uri)
    experiment_id = init_store(uri, experiment)
    key = re.sub(r"[^A-Za-z0-9_.-]", "-", sweep_id)
    by_model = {"mode": "param", "groupByData": PARAM_MODEL}
    view = {
        "searchFilter": _eq(f"tags.{TAG_SWEEP_ID}", sweep_id),
        "orderByKey": f"metrics.`{UI_ORDER_BY}`",
        "orderByAsc": False,
        "selectedColumns": [f"{kind}.`{name}`" for kind, name in UI_COLUMNS],
        "groupBy": {"aggregateFunction": "average", "groupByKeys": [by_model]},
        # the UI's id of the group of runs without the grouping key ("Additional runs")
        "groupsExpanded": {f"{by_model['mode']}.{by_model['groupByData']}": True},
    }
    client.set_experiment_tag(experiment_id, SHARED_VIEW_PREFIX + key, json.dumps(view))
    return experiment_id, key


def sweep_link(ui: str, experiment_id: str, view_key: str) -> str:
    """The UI's runs table of one sweep, in model-training mode (MLflow 3's GenAI/training switch)."""
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={view_key}"


def ui_of(uri: str) -> str:
    """Where the UI of a store is: the tracking server itself, or `make ui`'s address for a local store."""
    return uri if uri.startswith(("http://", "https://")) else DEFAULT_UI


def log_report(
    uri: str, experiment: str, sweep_id: str, folder: Path, summary: str = ""
) -> str | None:
    """The rendered report as artifacts (`report/`) of the sweep's parent run, and the run's description
    (its page's first view) a link to it over `summary`; the run's id, or None when the sweep has no
    parent run (a single job)."""
    parent = parent_run_of(uri, experiment, sweep_id)
    if parent is None:
        return None
    client = _client(uri)
    client.log_artifacts(parent, str(folder), REPORT_ARTIFACT_DIR)
    exp_id = client.get_run(parent).info.experiment_id
    link = f"#/experiments/{exp_id}/runs/{parent}/artifacts/{REPORT_ARTIFACT_DIR}/benchmark.md"
    note = (
        f"**[The benchmark report]({link})** (artifacts: `report/benchmark.md` and its figures)\n\n"
    )
    room = NOTE_MAX_CHARS - len(note)
    if len(summary) > room:
        summary = summary[: summary.rfind("\n", 0, room)] + "\n\n(... the rest in the report)"
    client.set_tag(parent, TAG_NOTE, note + summary)
    return parent
