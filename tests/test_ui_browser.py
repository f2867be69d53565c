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

from helpers.runs import log_fake_run
from helpers.servers import serving
from sweep import tracking

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
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
            "--window-size=1600,2400",
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
    for model, params in (("tiny_cnn", (373_658, 94_290)), ("tiny_vit", (264_650, 130_218))):
        for pruner in ("l1_unstructured", "dg_group"):
            log_fake_run(store, "ui-sweep", model, pruner, 0.5, params=params)
    with serving(store, tmp_path) as url:
        yield url


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed"
)
def test_ui_shows_runs_and_metrics(ui, store, tmp_path):
    assert CHROMIUM, "chromium is missing: `make test` installs Debian's chromium package"
    runs = tracking.search_runs(store, "pruning-sweep", "ui-sweep")
    exp = runs[0].info.experiment_id

    # the experiment's runs page: every run of the sweep, by its readable name
    page = _chromium(f"{ui}/#/experiments/{exp}/runs", tmp_path / "p1", "--dump-dom")
    text = _text(page.stdout)
    for r in runs:
        assert r.info.run_name in text, r.info.run_name
    shot = tmp_path / "runs.png"
    _chromium(f"{ui}/#/experiments/{exp}/runs", tmp_path / "p2", f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000

    # the compare view: params and metric values side by side
    ids = urllib.parse.quote(json.dumps([r.info.run_id for r in runs]))
    compare = _text(
        _chromium(
            f"{ui}/#/compare-runs?runs={ids}&experiments=%5B%22{exp}%22%5D",
            tmp_path / "p3",
            "--dump-dom",
        ).stdout
    )
    assert f"Comparing {len(runs)} Runs" in compare
    for name in (
        "model",
        "pruner",
        "ratio",
        "params_total",
        "dense_params_total",
        "speedup",
        "latency_ms",
    ):
        assert f" {name} " in compare, name
    for value in ("373658", "94290", "264650", "130218"):
        assert value in compare, value
