"""The MLflow UI shows a sweep's runs and their metrics, checked in a real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from helpers.cli import ROOT
from helpers.runs import log_fake_run
from helpers.servers import serving
from sweep import report, tracking

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(
    url: str, profile: Path, *extra: str, size: str = "1600,2400"
) -> subprocess.CompletedProcess:
    # flags that keep Debian's Chromium from reaching out or needing a sandbox/GPU here
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--window-size={size}",
            "--virtual-time-budget=25000",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )


def _text(dom: str) -> str:
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


@pytest.fixture
def ui(store, tmp_path):
    """A sweep logged into an experiment an older version of the tool created (no experiment kind),
    its report rendered, and a real tracking server over the store."""
    from mlflow.tracking import MlflowClient

    MlflowClient(store).create_experiment(
        "pruning-sweep", artifact_location=(tmp_path / "art").as_uri()
    )
    parent = tracking.open_parent_run(store, "pruning-sweep", "ui-sweep", "python -m sweep -m ...")
    for model, params in (("tiny_cnn", (373_658, 94_290)), ("tiny_vit", (264_650, 130_218))):
        for pruner in ("l1_unstructured", "dg_group"):
            log_fake_run(store, "ui-sweep", model, pruner, 0.5, params=params, parent=parent)
    tracking.close_parent_run(store, parent, "FINISHED", {"jobs": 4})
    report.write_report(store, "pruning-sweep", "ui-sweep", tmp_path / "reports")
    with serving(store, tmp_path) as url:
        yield url, parent


def test_older_experiment_becomes_a_model_training_experiment(ui, store):
    from mlflow.tracking import MlflowClient

    exp = MlflowClient(store).get_experiment_by_name("pruning-sweep")
    assert exp.tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"


def test_report_is_an_artifact_of_the_sweep_run(ui, store):
    from mlflow.tracking import MlflowClient

    _, parent = ui
    files = {f.path for f in MlflowClient(store).list_artifacts(parent, "report")}
    assert {"report/benchmark.md", "report/accuracy_vs_macs.png"} <= files


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed"
)
def test_ui_opens_on_the_sweeps_runs_and_figures(ui, store, tmp_path):
    assert CHROMIUM, "chromium is missing: `make test` installs Debian's chromium package"
    url, _ = ui
    runs = tracking.search_runs(store, "pruning-sweep", "ui-sweep")
    exp = runs[0].info.experiment_id

    # the link the tool prints at the end of a sweep and on `make ui`
    exp_id, view = tracking.share_sweep_view(store, "pruning-sweep", "ui-sweep")
    link = tracking.sweep_link(url, exp_id, view)
    text = _text(_chromium(link, tmp_path / "p1", "--dump-dom", size="2600,1400").stdout)
    assert text.startswith(" Runs - ") and "sweep ui-sweep" in text, text[:600]
    assert "No data available" not in text and "Token Usage" not in text  # not the GenAI overview
    for column in ("model", "pruner", "ratio", "speedup", "accuracy_top1", "macs_reduction"):
        assert f" {column} " in text, column
    shot = tmp_path / "runs.png"
    _chromium(link, tmp_path / "p2", f"--screenshot={shot}", size="1800,800")
    if os.environ.get("SWEEP_UPDATE_SCREENSHOT"):  # the README's picture
        shutil.copy(shot, ROOT / "docs" / "mlflow-ui-sweep.png")
    assert shot.stat().st_size > 10_000

    # the compare view: params and metric values side by side
    ids = urllib.parse.quote(json.dumps([r.info.run_id for r in runs]))
    compare = _text(
        _chromium(
            f"{url}/#/compare-runs?runs={ids}&experiments=%5B%22{exp}%22%5D",
            tmp_path / "p3",
            "--dump-dom",
            size="1600,5000",  # the metrics table renders only the rows in view
        ).stdout
    )
    assert f"Comparing {len(runs)} Runs" in compare, compare[:3000]
    for name in (
        "model",
        "pruner",
        "ratio",
        "params_total",
        "dense_params_total",
        "accuracy_top1",  # the metrics table scrolls: only the first ones by name are in the DOM
        "latency_ms",
    ):
        assert f" {name} " in compare, name
    for value in ("373658", "94290", "264650", "130218"):
        assert value in compare, value
