"""The tracking path under faults: dead jobs found by their stopped heartbeat, names that cannot change
what a query matches."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from helpers.cli import FAST, job_env, run_cli
from helpers.runs import EXPERIMENT
from sweep import tracking
from sweep.errors import SweepConfigError

EXPERIMENT = EXPERIMENT


def _run(store: str, status: str = "RUNNING", heartbeat: float | None = None) -> str:
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


def _status(store: str, run_id: str):
    run = tracking.client(store).get_run(run_id)
    return run.info.status, run.data.tags


def test_only_runs_silent_past_the_threshold_end_failed(store):
    now = time.time()
    dead = _run(store, heartbeat=now - 1000)
    alive = _run(store, heartbeat=now - 5)
    done = _run(store, status="FINISHED", heartbeat=now - 1000)
    never_beat = _run(store)  # its start, half an hour ago, is its last sign of life
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
    run_id = _run(store, heartbeat=0)
    with tracking.Heartbeat(store, run_id, every_s=0.2):
        time.sleep(0.1)
        first = float(_status(store, run_id)[1][tracking.TAG_HEARTBEAT])
        time.sleep(1.5)
        later = float(_status(store, run_id)[1][tracking.TAG_HEARTBEAT])
    assert first > time.time() - 60 and later >= first + 1
    time.sleep(0.5)
    assert float(_status(store, run_id)[1][tracking.TAG_HEARTBEAT]) == later  # stopped with the run


def test_no_heartbeat_configured_starts_no_thread(store):
    run_id = _run(store)
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


def test_a_quote_in_sweep_id_stops_the_command_before_any_run(tmp_path, store):
    r = run_cli(["model=tiny_cnn", 'sweep_id="x\' or 1=1"', f"tracking.uri={store}"], cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('sweep: error: sweep_id="x\' or 1=1" is not valid')
    assert tracking.search_runs(store, EXPERIMENT) == []


def test_report_refuses_a_quoted_sweep_name(tmp_path, store):
    from sweep import report

    with pytest.raises(SystemExit) as e:
        report.main(["--tracking-uri", store, "--sweep", "a' or '1'='1", "--out", str(tmp_path)])
    assert e.value.code == 2


def test_fail_stale_command(tmp_path, store, capsys):
    """`python -m sweep.cli.runs` lists the running runs; --fail-stale ends the silent ones. The command
    runs once as a process (its entry point), then in-process (each process spends seconds importing)."""
    from sweep.cli import runs

    dead = _run(store, heartbeat=time.time() - 1000)
    cmd = [sys.executable, "-m", "sweep.cli.runs", "--tracking-uri", store]
    listed = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert f"RUNNING {dead}" in listed and "1 running run(s)" in listed
    runs.main(["--tracking-uri", store, "--fail-stale", "--older-than", "100"])
    out = capsys.readouterr().out
    assert f"FAILED {dead}" in out and "1 stale run(s) ended FAILED" in out
    with pytest.raises(SystemExit) as bad:
        runs.main(["--tracking-uri", store, "--fail-stale", "--older-than", "0"])
    assert bad.value.code == 2 and "--older-than=0 is not valid" in capsys.readouterr().err


@pytest.mark.slow
def test_a_job_killed_mid_measure_ends_failed_with_its_counts(tmp_path, weights_cache, empty_store):
    """SIGKILL leaves no chance to end the run: its stopped heartbeat tells a later command it died."""
    store = empty_store(tmp_path / "mlflow.db")
    args = [
        "model=tiny_cnn",
        "pruner=semi_2_4",
        "pruner._target_=helpers.pruners.HangsWhileTiming",
        "sweep_id=killed",
        "tracking.heartbeat_s=1",
        f"tracking.uri={store}",
        *FAST,
    ]
    tracking.init_store(store, EXPERIMENT)  # made here, so that polling it never races its creation
    job = subprocess.Popen(
        [sys.executable, "-m", "sweep", *args],
        cwd=tmp_path,
        env=job_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        run = _wait_for_metric(store, "dense_params_total", job, timeout=600)
        assert run.info.status == "RUNNING" and tracking.TAG_HEARTBEAT in run.data.tags
    finally:
        job.kill()
        job.wait()
    time.sleep(3)
    # any later sweep command ends it (here: a single job of another sweep, stale after 2 s)
    r = run_cli(
        [
            "model=tiny_cnn",
            "pruner=l1_unstructured",
            "tracking.stale_after_s=2",
            f"tracking.uri={store}",
            *FAST,
        ],
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"run {run.info.run_name} ({run.info.run_id}) of sweep killed ended FAILED" in r.stderr
    killed = tracking.client(store).get_run(run.info.run_id)
    assert killed.info.status == "FAILED" and killed.data.tags[tracking.TAG_STALE] == "true"
    assert killed.data.metrics["dense_params_total"] == run.data.metrics["dense_params_total"]
    assert "dense_macs" in killed.data.metrics


def _wait_for_metric(store: str, metric: str, proc: subprocess.Popen, timeout: float):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, f"the job exited with {proc.returncode}"
        runs = tracking.search_runs(store, EXPERIMENT, "killed")
        if runs and metric in runs[0].data.metrics:
            return runs[0]
        time.sleep(0.5)
    raise AssertionError(f"no run logged {metric} within {timeout:.0f} s")


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
