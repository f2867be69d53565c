"""Reading runs back: a sweep's job runs, a finished run with a job's key, a sweep's parent run, the
newest sweep."""

from __future__ import annotations

from sweep.tracking.names import TAG_JOB_KEY, TAG_ROLE, TAG_SWEEP_ID
from sweep.tracking.store import client as _client
from sweep.tracking.store import eq as _eq

__all__ = ["all_runs", "finished_run_with_key", "newest_sweep", "parent_run_of", "search_runs"]


def _first_run(
    uri: str, experiment: str, filter_string: str = "", order_by: list[str] | None = None
):
    """The first run of an experiment that matches, or None (also when there is no such experiment)."""
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    found = client.search_runs(
        [exp.experiment_id], filter_string=filter_string, max_results=1, order_by=order_by
    )
    return found[0] if found else None


def finished_run_with_key(uri: str, experiment: str, key: str):
    """A FINISHED job run with this key, or None."""
    return _first_run(
        uri, experiment, f"{_eq(f'tags.{TAG_JOB_KEY}', key)} and attributes.status = 'FINISHED'"
    )


def search_runs(uri: str, experiment: str, sweep_id: str | None = None) -> list:
    """All job runs of an experiment (optionally one sweep), oldest first; sweep parent runs left out."""
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    query = _eq(f"tags.{TAG_SWEEP_ID}", sweep_id) if sweep_id else ""
    runs = all_runs(client, exp.experiment_id, query)
    return [r for r in runs if r.data.tags.get(TAG_ROLE) != "sweep"]


def all_runs(client, experiment_id: str, query: str) -> list:
    """Every run that matches, oldest first, page by page."""
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=query,
            max_results=1000,
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def parent_run_of(uri: str, experiment: str, sweep_id: str) -> str | None:
    run = _first_run(
        uri, experiment, f"{_eq(f'tags.{TAG_SWEEP_ID}', sweep_id)} and tags.{TAG_ROLE} = 'sweep'"
    )
    return run.info.run_id if run else None


def newest_sweep(uri: str, experiment: str) -> str | None:
    """The sweep_id of the run that started last, if any."""
    run = _first_run(uri, experiment, order_by=["attributes.start_time DESC"])
    return run.data.tags.get(TAG_SWEEP_ID) if run else None
