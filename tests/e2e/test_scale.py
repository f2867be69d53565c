"""Parallel sweeps, resume and dedupe, and what an interrupted or failing sweep leaves behind."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers.cli import FAST, TESTS, run_cli
from helpers.runs import EXPERIMENT
from sweep import tracking

pytestmark = pytest.mark.slow

GRID = ["-m", "model=tiny_cnn", "pruner=l1_unstructured,ln_structured,dg_group,dg_random"]


def _parent(store, sweep_id):
    from mlflow.tracking import MlflowClient

    c = MlflowClient(store)
    exp = c.get_experiment_by_name(EXPERIMENT)
    (p,) = c.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.sweep_id = '{sweep_id}' and tags.run_role = 'sweep'",
    )
    return p


def test_joblib_two_workers_fresh_store(tmp_path, weights_cache):
    store = f"sqlite:///{tmp_path / 'fresh.db'}"
    r = run_cli(
        [
            *GRID,
            "ratio=0.3,0.6",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            f"tracking.uri={store}",
            "sweep_id=par",
            *FAST,
        ],
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    runs = tracking.search_runs(store, EXPERIMENT, "par")
    assert len(runs) == 8 and {x.info.status for x in runs} == {"FINISHED"}
    assert len({x.data.tags["job_key"] for x in runs}) == 8
    parent = _parent(store, "par")
    assert parent.info.status == "FINISHED" and parent.data.metrics["jobs_finished"] == 8
    assert {x.data.tags["mlflow.parentRunId"] for x in runs} == {parent.info.run_id}


def test_interrupted_sweep_resumes_without_duplicates(tmp_path, weights_cache, empty_store):
    store = empty_store(tmp_path / "mlflow.db")
    args = [
        *GRID,
        "ratio=0.3",
        f"tracking.uri={store}",
        "sweep_id=nightly",
        *FAST,
        "measure.time_budget_s=1.5",
    ]
    tracking.init_store(
        store, EXPERIMENT
    )  # the test polls the store: create it before two processes race
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweep", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        done = [
            x
            for x in tracking.search_runs(store, EXPERIMENT, "nightly")
            if x.info.status == "FINISHED"
        ]
        if len(done) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # what SLURM sends at a time limit or on preemption
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-3000:]
    first = tracking.search_runs(store, EXPERIMENT, "nightly")
    finished_before = {
        x.data.tags["job_key"]: x.info.run_id for x in first if x.info.status == "FINISHED"
    }
    assert 2 <= len(finished_before) < 4
    assert all(x.info.status in ("FINISHED", "KILLED") for x in first)  # nothing left RUNNING
    assert _parent(store, "nightly").info.status == "KILLED"

    r = run_cli(args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = tracking.search_runs(store, EXPERIMENT, "nightly")
    finished = collections.Counter(
        x.data.tags["job_key"] for x in runs if x.info.status == "FINISHED"
    )
    assert len(finished) == 4 and set(finished.values()) == {
        1
    }  # every grid point FINISHED exactly once
    for key, run_id in finished_before.items():  # and the finished ones were not re-run
        assert [x.info.run_id for x in runs if x.data.tags["job_key"] == key] == [run_id]
    assert f"{len(finished_before)} skipped" in r.stdout
    assert _parent(store, "nightly").info.status == "FINISHED"

    # force=true runs a finished job again
    forced = run_cli(
        [
            "model=tiny_cnn",
            "pruner=dg_group",
            "ratio=0.3",
            "force=true",
            f"tracking.uri={store}",
            "sweep_id=nightly",
            *FAST,
            "measure.time_budget_s=1.5",
        ],
        cwd=tmp_path,
    )
    assert forced.returncode == 0, forced.stderr[-3000:]
    again = [
        x
        for x in tracking.search_runs(store, EXPERIMENT, "nightly")
        if x.info.status == "FINISHED" and x.info.run_name == "tiny_cnn/dg_group/0.3"
    ]
    assert len(again) == 2
