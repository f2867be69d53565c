"""A running sweep's progress: jobs done and left, and the time left per model, from finished jobs."""

from __future__ import annotations

from helpers.runs import EXPERIMENT
from sweep import tracking


def _job(client, exp, model, key, status, seconds=None, start=1_000_000):
    run = client.create_run(
        exp,
        start_time=start,
        tags={"sweep_id": "s", "job_key": key, "run_role": "job"},
    )
    client.log_param(run.info.run_id, "model", model)
    if status != "RUNNING":
        end = start + int(1000 * (seconds or 1))
        client.set_terminated(run.info.run_id, status, end_time=end)


def test_progress_estimates_from_each_models_finished_jobs(store):
    exp = tracking.init_store(store, EXPERIMENT)
    client = tracking.client(store)
    _job(client, exp, "c", "k1", "FINISHED", 100)
    _job(client, exp, "c", "k2", "FINISHED", 120)
    _job(client, exp, "c", "k3", "FAILED", 5)
    p = tracking.progress_of(store, EXPERIMENT, "s", total=8, models=["c", "e"])
    assert (p.done, p.left, p.left_s) == (3, 5, None)
    assert p.line() == "3 done, 5 left; time left unknown until a job of e ends (c 110 s a job)"
    assert p.metrics() == {"jobs_done": 3, "jobs_left": 5}
    _job(client, exp, "e", "k5", "FINISHED", 60)
    _job(
        client, exp, "c", "k2", "FINISHED", 300, start=2_000_000
    )  # a re-run counts once: its latest
    _job(client, exp, "e", "k6", "RUNNING")
    p = tracking.progress_of(store, EXPERIMENT, "s", total=8, models=["c", "e"])
    # c: 3 of 4 ended, finished in 100 and 300 s (the re-run's); e: 1 of 4 ended, in 60 s; two at a time
    assert (p.done, p.left, p.running) == (4, 4, 2)
    assert p.left_s == (1 * 200 + 3 * 60) / 2
    assert p.line() == "4 done, 4 left; about 3 min left (c 200 s a job, e 60 s a job, 2 at a time)"


def test_a_command_on_a_sweep_counts_its_own_jobs(store):
    """A second command on the same sweep id (a resumed grid, a grid run in pieces): the 5 jobs an
    earlier command ended are not this command's 3, which are all still to run; jobs the launcher
    moved past (skipped) are done."""
    exp = tracking.init_store(store, EXPERIMENT)
    client = tracking.client(store)
    for i in range(5):
        _job(client, exp, "c", f"old{i}", "FINISHED", 100, start=1_000_000)
    since = 2_000_000
    p = tracking.progress_of(store, EXPERIMENT, "s", total=3, models=["c"], since_ms=since)
    assert (p.done, p.left) == (0, 3)
    assert p.per_model_s == {"c": 100}  # earlier jobs still give the time a job takes
    assert p.line().startswith("0 done, 3 left; about 5 min left")
    _job(client, exp, "c", "new0", "FINISHED", 100, start=since + 1)
    p = tracking.progress_of(store, EXPERIMENT, "s", total=3, models=["c"], since_ms=since)
    assert (p.done, p.left) == (1, 2)
    # a launcher running jobs in turn: job 3's two predecessors are done, one of them skipped
    p = tracking.progress_of(
        store, EXPERIMENT, "s", total=3, models=["c"], since_ms=since, processed=2
    )
    assert (p.done, p.left) == (2, 1) and p.left_s == 100
