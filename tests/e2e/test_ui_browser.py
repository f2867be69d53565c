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

from helpers.cli import REAL_SWEEP_ID, ROOT
from helpers.runs import EXPERIMENT
from helpers.servers import serving
from sweep import tracking

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


def _shown(value: float) -> str:
    """The start of a metric as the runs table prints it (JavaScript's shortest form of the double)."""
    return repr(value).removesuffix(".0")[:5]


def _rounded(value: float) -> str:
    """A metric in [0.001, 10) as the compare view prints it (MLflow's formatMetric: 3 decimals)."""
    return repr(round(value, 3)).removesuffix(".0")


def _text(dom: str) -> str:
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


@pytest.fixture(scope="module")
def ui(real_sweep, tmp_path_factory):
    """The shared real sweep (helpers.cli.REAL_SWEEP, logged into an experiment an older version of
    the tool created) and a real tracking server over its store."""
    assert real_sweep.returncode == 0, real_sweep.stderr[-3000:]
    store = real_sweep.store
    parent = tracking.parent_run_of(store, EXPERIMENT, REAL_SWEEP_ID)
    with serving(store, tmp_path_factory.mktemp("ui")) as url:
        yield url, parent, store


def test_older_experiment_becomes_a_model_training_experiment(ui):
    from mlflow.tracking import MlflowClient

    store = ui[2]
    exp = MlflowClient(store).get_experiment_by_name(EXPERIMENT)
    assert exp.tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"


def test_report_is_an_artifact_of_the_sweep_run(ui):
    from mlflow.tracking import MlflowClient

    _, parent, store = ui
    files = {f.path for f in MlflowClient(store).list_artifacts(parent, "report")}
    assert {"report/benchmark.md", "report/accuracy_vs_macs.png"} <= files


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed"
)
def test_ui_opens_on_the_sweeps_jobs_and_figures(ui, tmp_path):
    assert CHROMIUM, "chromium is missing: `make test` installs Debian's chromium package"
    url, parent, store = ui
    runs = tracking.search_runs(store, EXPERIMENT, REAL_SWEEP_ID)
    exp = runs[0].info.experiment_id

    # the link the tool prints at the end of a sweep and on `make ui`
    exp_id, view = tracking.share_sweep_view(store, EXPERIMENT, REAL_SWEEP_ID)
    link = tracking.sweep_link(url, exp_id, view)
    text = _text(_chromium(link, tmp_path / "p1", "--dump-dom", size="2600,1400").stdout)
    assert text.startswith(" Runs - "), text[:600]
    assert "No data available" not in text and "Token Usage" not in text  # not the GenAI overview
    for column in ("model", "pruner", "ratio", "speedup", "accuracy_top1", "macs_reduction"):
        assert f" {column} " in text, column
    # without a click: every job a row with its figures, grouped by model, best top-1 first
    assert "Group: tiny_cnn" in text and "Group: tiny_vit" in text
    assert len(runs) == 4
    for r in runs:
        assert r.info.run_name in text, r.info.run_name
        for key in ("accuracy_top1", "speedup", "macs_reduction"):
            if key in r.data.metrics:
                assert _shown(r.data.metrics[key]) in text, (r.info.run_name, key)
    for a in runs:
        for b in runs:
            same_model = a.data.params["model"] == b.data.params["model"]
            if same_model and a.data.metrics["accuracy_top1"] > b.data.metrics["accuracy_top1"]:
                assert text.index(a.info.run_name) < text.index(b.info.run_name)
    # the sweep's own run is a row too (MLflow's "Additional runs", opened): one click to the report
    assert "Additional runs" in text and f"sweep {REAL_SWEEP_ID}" in text
    shot = tmp_path / "runs.png"
    _chromium(link, tmp_path / "p2", f"--screenshot={shot}", size="1800,800")
    if os.environ.get("SWEEP_UPDATE_SCREENSHOT"):  # the docs' picture
        shutil.copy(shot, ROOT / "docs" / "mlflow-ui-sweep.png")
    assert shot.stat().st_size > 10_000
    page = _text(
        _chromium(
            f"{url}/#/experiments/{exp_id}/runs/{parent}", tmp_path / "p4", "--dump-dom"
        ).stdout
    )
    assert "The benchmark report" in page and "the best method at each cost" in page, page[:2000]

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
    # the metrics table scrolls: only the first ones by name are in the DOM
    for name in ("model", "pruner", "ratio", "accuracy_top1"):
        assert f" {name} " in compare, name
    for r in runs:
        assert _rounded(r.data.metrics["accuracy_top1"]) in compare, r.info.run_name
