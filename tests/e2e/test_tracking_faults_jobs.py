"""The tracking path under faults: dead jobs found by their stopped heartbeat, names that cannot change
what a query matches."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from helpers.cli import FAST, job_env, run_cli
from helpers.runs import EXPERIMENT, started_run
from sweep import tracking


def test_a_quote_in_sweep_id_stops_the_command_before_any_run(tmp_path, store):
    r = run_cli(["model=tiny_cnn", 'sweep_id="x\' or 1=1"', f"tracking.uri={store}"], cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('sweep: error: sweep_id="x\' or 1=1" is not valid')
    assert tracking.search_runs(store, EXPERIMENT) == []


def test_fail_stale_command(tmp_path, store, capsys):
    """`python -m sweep.cli.runs` lists the running runs; --fail-stale ends the silent ones. The command
    runs once as a process (its entry point), then in-process (each process spends seconds importing)."""
    from sweep.cli import runs

    dead = started_run(store, heartbeat=time.time() - 1000)
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
