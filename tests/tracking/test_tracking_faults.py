"""The tracking path under faults: dead jobs found by their stopped heartbeat, names that cannot change
what a query matches."""

from __future__ import annotations

import time

import pytest

from helpers.runs import EXPERIMENT, started_run
from sweep import tracking
from sweep.errors import SweepConfigError


def _status(store: str, run_id: str):
    run = tracking.client(store).get_run(run_id)
    return run.info.status, run.data.tags


def test_only_runs_silent_past_the_threshold_end_failed(store):
    now = time.time()
    dead = started_run(store, heartbeat=now - 1000)
    alive = started_run(store, heartbeat=now - 5)
    done = started_run(store, status="FINISHED", heartbeat=now - 1000)
    never_beat = started_run(store)  # its start, half an hour ago, is its last sign of life
    stale = tracking.fail_stale(store, EXPERIMENT, older_than_s=100)
    assert sorted(r.info.run_id for r in stale) == sorted([dead, never_beat])
    status, tags = _status(store, dead)
    assert status == "FAILED" and tags[tracking.TAG_STALE] == "true"
    assert "no heartbeat since" in tags[tracking.TAG_ERROR]
    assert tracking.client(store).get_run(dead).data.metrics["dense_params_total"] == 1234
    for run_id, want in ((alive, "RUNNING"), (done, "FINISHED")):
        assert _status(store, run_id)[0] == want
    assert tracking.fail_stale(store, EXPERIMENT, older_than_s=100) == []  # once


def test_heartbeat_refreshes_the_tag_until_the_run_ends(store):
    run_id = started_run(store, heartbeat=0)
    with tracking.Heartbeat(store, run_id, every_s=0.2):
        time.sleep(0.1)
        first = float(_status(store, run_id)[1][tracking.TAG_HEARTBEAT])
        time.sleep(1.5)
        later = float(_status(store, run_id)[1][tracking.TAG_HEARTBEAT])
    assert first > time.time() - 60 and later >= first + 1
    time.sleep(0.5)
    assert float(_status(store, run_id)[1][tracking.TAG_HEARTBEAT]) == later  # stopped with the run


def test_no_heartbeat_configured_starts_no_thread(store):
    run_id = started_run(store)
    with tracking.Heartbeat(store, run_id, every_s=None) as beat:
        assert not beat._thread.is_alive()
    assert tracking.TAG_HEARTBEAT not in _status(store, run_id)[1]


@pytest.mark.parametrize(
    "name", ["x' or tags.model != '", "a b", "", "-start", 'q"uote', "x" * 129]
)
def test_names_that_would_change_a_query_are_refused(name):
    with pytest.raises(SweepConfigError, match=r"sweep_id=.* is not valid: use letters, digits"):
        tracking.check_name("sweep_id", name)
    with pytest.raises(ValueError, match="cannot go into an MLflow query"):
        tracking.eq("tags.sweep_id", name)


@pytest.mark.parametrize("name", ["20261201-083000-ab12", "nightly.v2", "run:3+4", "A_b"])
def test_names_of_sweeps_pass(name):
    assert tracking.check_name("sweep_id", name) == name


def test_report_refuses_a_quoted_sweep_name(tmp_path, store):
    from sweep import report

    with pytest.raises(SystemExit) as e:
        report.main(["--tracking-uri", store, "--sweep", "a' or '1'='1", "--out", str(tmp_path)])
    assert e.value.code == 2


def test_system_metrics_sampled_only_when_asked(store):
    exp = tracking.init_store(store, EXPERIMENT)
    assert exp
    client = tracking.client(store)
    ids = {}
    for every in (0.2, None):
        with tracking.job_run(store, EXPERIMENT, f"sm-{every}", {}, None, every) as run:
            time.sleep(1.0)
        ids[every] = run.run_id
    history = client.get_metric_history(ids[0.2], "system/cpu_utilization_percentage")
    assert len(history) >= 2
    assert "system/system_memory_usage_megabytes" in client.get_run(ids[0.2]).data.metrics
    assert not any(k.startswith("system/") for k in client.get_run(ids[None]).data.metrics)


def test_a_sigterm_while_the_run_is_being_created_ends_it_killed(store, monkeypatch):
    """A scheduler's SIGTERM that lands inside MLflow's create_run (after the run is stored, before
    its id is handed back) is held until the run can be ended KILLED: never a run left RUNNING."""
    import os
    import signal

    from mlflow.tracking import MlflowClient

    real = MlflowClient.create_run

    def create_run(self, *args, **kwargs):
        run = real(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # bytecode boundaries for the handler to run at, were it not held
        return run

    monkeypatch.setattr(MlflowClient, "create_run", create_run)
    with (
        pytest.raises(tracking.JobKilled),
        tracking.sigterm_raises(),
        tracking.job_run(store, EXPERIMENT, "created-then-killed", {}),
    ):
        pytest.fail("the job body ran although SIGTERM had arrived")
    (run,) = tracking.search_runs(store, EXPERIMENT)
    assert run.info.status == "KILLED"
