"""The tracking store: its URI, its reachability and credentials, the client, the experiment, and the
values that may go into MLflow filter strings."""

from __future__ import annotations

import functools
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from sweep.errors import SweepConfigError
from sweep.tracking.names import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG

__all__ = [
    "DEFAULT_URI",
    "DEFAULT_URI_HELP",
    "NAME_HELP",
    "NAME_RE",
    "TRACKING_URI_ENV",
    "check_credentials",
    "check_name",
    "check_reachable",
    "client",
    "eq",
    "init_store",
    "resolve_uri",
]

# The one default store: SQLite in the directory the command runs from, unless the environment names one.
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
DEFAULT_URI = "sqlite:///mlflow.db"
DEFAULT_URI_HELP = f"default: ${TRACKING_URI_ENV} or {DEFAULT_URI}"

# Values that go into MLflow filter strings (sweep_id, run ids): nothing that could end a quoted string.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}")
NAME_HELP = "letters, digits and _ . : + -, starting with a letter or digit, at most 128"


def check_name(key: str, value: str) -> str:
    """`value`, or one line saying why it cannot name a sweep (it is matched inside MLflow queries)."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise SweepConfigError(f"{key}={value!r} is not valid: use {NAME_HELP}")
    return value


def eq(key: str, value: str) -> str:
    """`key = 'value'` for a filter string; a value with a quote is refused, never escaped."""
    if not NAME_RE.fullmatch(value):
        raise ValueError(f"{value!r} cannot go into an MLflow query ({NAME_HELP})")
    return f"{key} = '{value}'"


def resolve_uri(uri: str | None) -> str:
    """Absolute form of a tracking URI: a relative SQLite path is taken from the current directory, so
    every job of a sweep (whatever its working directory) writes to the same file."""
    uri = uri or os.environ.get(TRACKING_URI_ENV) or DEFAULT_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri[len("sqlite:///") :]).resolve())
    elif "://" not in uri:
        raise SweepConfigError(
            f"tracking.uri={uri!r} is not supported: use sqlite:///PATH (embedded) or http(s)://HOST:PORT (mlflow server)"
        )
    return uri


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, with one line, when the store cannot be used."""
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as r:
                r.read()
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise SweepConfigError(
                f"tracking server {uri} is unreachable ({reason}); start it with `make server` "
                f"or set tracking.uri / MLFLOW_TRACKING_URI"
            ) from None
        check_credentials(uri)
    elif uri.startswith("sqlite:///"):
        parent = Path(uri[len("sqlite:///") :]).parent
        if not parent.is_dir():
            raise SweepConfigError(f"tracking.uri={uri}: folder {parent} does not exist")


def check_credentials(uri: str) -> None:
    """A server with authentication on refuses a client without (valid) credentials: say so in one line
    before anything is written. Credentials come from MLflow's own environment variables or its
    credentials file, never from the command line."""
    from mlflow.exceptions import MlflowException

    try:
        client(uri).search_experiments(max_results=1)
    except MlflowException as e:
        if e.get_http_status_code() not in (401, 403):
            raise
        raise SweepConfigError(
            f"tracking server {uri} refused this client ({e.error_code}): set "
            f"MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or ~/.mlflow/credentials) to an "
            f"account with write access"
        ) from None


@functools.cache
def client(uri: str):
    """The one MLflow client of a store (cached per URI)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def init_store(uri: str, experiment: str) -> str:
    """Create the store's tables and the experiment once, before parallel writers start (a fresh SQLite
    store raced by several processes loses runs), as a model-training experiment (also one created
    before the tool set that). Returns the experiment id."""
    mlflow = client(uri)
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is not None:
        if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            mlflow.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return exp.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:///"):
        artifact_location = (
            Path(uri[len("sqlite:///") :]).parent / "mlartifacts" / experiment
        ).as_uri()
    try:
        return mlflow.create_experiment(
            experiment,
            artifact_location=artifact_location,
            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
        )
    except Exception:  # another process created it first
        exp = mlflow.get_experiment_by_name(experiment)
        if exp is None:
            raise
        return exp.experiment_id
