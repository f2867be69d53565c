"""MLflow models (MLflow 3's logged models and its Model Registry): the forms a job ships, logged as
models of its run with a signature, an input example and the job's headline metrics; the dense model
once per sweep and model; the registered versions and aliases `sweep.cli.register` makes.

Nothing here pickles: ONNX files load as ONNX, the PyTorch form is saved through `torch.export`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweep.errors import one_line
from sweep.tracking.names import (
    MODEL_TAG_FORM,
    MODEL_TAG_MODEL,
    MODEL_TAG_ROLE,
    TAG_SWEEP_ID,
)
from sweep.tracking.store import client as _client
from sweep.tracking.store import eq as _eq

__all__ = [
    "Logged",
    "ModelForm",
    "Version",
    "dense_model_logged",
    "log_model",
    "logged_models_of",
    "register_version",
]

# What a form needs installed to load; pinned to what logged it (`--env-manager local` ignores them)
_REQUIREMENTS = {
    "onnx": ("mlflow", "onnx", "onnxruntime", "numpy"),
    "onnx_int8": ("mlflow", "onnx", "onnxruntime", "numpy"),
    "pytorch": ("mlflow", "torch", "numpy"),
}


@dataclass(frozen=True, kw_only=True)
class ModelForm:
    """One form of a model to log: an ONNX file (`onnx_file`) or a PyTorch module (`module`, saved
    through torch.export), with an input example (a batch, numpy) and the output it gives."""

    role: str  # pruned | dense
    form: str  # onnx | onnx_int8 | pytorch
    example: Any
    output: Any
    onnx_file: Path | None = None
    module: Any = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.role}-{self.form}"


def _requirements(form: str) -> list[str]:
    out = []
    for dist in _REQUIREMENTS[form]:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out.append(f"{dist}=={importlib.metadata.version(dist)}")
    return out


@contextlib.contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's flavours write through the process's tracking URI: this store's, while they do."""
    import mlflow

    was = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        if was is None:
            mlflow.set_tracking_uri("")
        else:
            mlflow.set_tracking_uri(was)


@dataclass(frozen=True)
class Logged:
    """A form logged (its model id), or why it could not be (the flavour failed to save it: an
    exporter that cannot take the model)."""

    form: str
    model_id: str | None = None
    error: str = ""


def log_model(uri: str, run_id: str, experiment_id: str, form: ModelForm) -> Logged:
    """`form` as a logged model of the run, READY once its files are stored and its figures logged;
    a form its flavour cannot save is left FAILED, with the reason returned."""
    from mlflow.entities import LoggedModelOutput, Metric
    from mlflow.models import infer_signature

    client = _client(uri)
    tags = {MODEL_TAG_ROLE: form.role, MODEL_TAG_FORM: form.form, **form.tags}
    model = client.create_logged_model(
        experiment_id, name=form.name, source_run_id=run_id, tags=tags, params=dict(form.params)
    )
    signature = infer_signature(form.example, form.output)
    try:
        with _tracking_uri(uri), _quiet_mlflow():
            _save(form, model_id=model.model_id, signature=signature)
    except Exception as e:  # the export inside the flavour: this form only
        client.finalize_logged_model(model.model_id, "FAILED")
        return Logged(form.form, error=f"{form.form}: {one_line(e)}")
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    ts = int(time.time() * 1000)
    metrics = [
        Metric(k, float(v), ts, 0, run_id=run_id, model_id=model.model_id)
        for k, v in form.metrics.items()
        if v is not None and v == v
    ]
    if metrics:
        client.log_batch(run_id, metrics=metrics)
    client.finalize_logged_model(model.model_id, "READY")
    return Logged(form.form, model_id=model.model_id)


def _save(form: ModelForm, model_id: str, signature) -> None:
    """The flavour's log_model into the logged model `model_id` (its files uploaded to its artifact
    location). No serving-input check: the job compared the form's output with eager's already."""
    import mlflow

    common = {
        "name": form.name,
        "model_id": model_id,
        "signature": signature,
        "input_example": form.example,
        "pip_requirements": _requirements(form.form),
    }
    if form.form == "pytorch":
        mlflow.pytorch.log_model(form.module, serialization_format="pt2", **common)
        return
    import onnx

    mlflow.onnx.log_model(
        onnx.load(str(form.onnx_file)),
        save_as_external_data=False,
        onnx_execution_providers=_providers(),
        **common,
    )


def _providers() -> list[str]:
    """ONNX Runtime's providers the model is served with: CUDA first where this build has it."""
    import onnxruntime

    have = onnxruntime.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in have]


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """MLflow's flavours log at INFO and WARNING what a job has no use for (an env var it tracked,
    providers it falls back from)."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def logged_models_of(uri: str, experiment_id: str, query: str = "") -> list:
    """Every READY logged model of the experiment that matches `query` (MLflow's filter syntax)."""
    from mlflow.entities import LoggedModelStatus

    client = _client(uri)
    found, token = [], None
    while True:  # (the store's filter does not take the status: it is compared here)
        page = client.search_logged_models(
            [experiment_id], filter_string=query or None, max_results=100, page_token=token
        )
        found.extend(m for m in page if m.status == LoggedModelStatus.READY)
        token = page.token
        if not token:
            return found


def dense_model_logged(uri: str, experiment_id: str, sweep_id: str, model: str) -> bool:
    """Whether this sweep has logged its dense `model` already."""
    query = " AND ".join(
        [
            _eq(f"tags.{TAG_SWEEP_ID}", sweep_id),
            _eq(f"tags.{MODEL_TAG_ROLE}", "dense"),
            _eq(f"tags.{MODEL_TAG_MODEL}", model),
        ]
    )
    return bool(logged_models_of(uri, experiment_id, query))


@dataclass(frozen=True)
class Version:
    name: str
    version: str
    alias: str
    new: bool  # False: the same logged model was registered already (no duplicate version)


def register_version(
    uri: str, *, name: str, model, alias: str, tags: Mapping[str, str], description: str
) -> Version:
    """The logged `model` as a version of registered model `name` (created where missing), with
    `alias` pointing at it; a model registered before gets its alias moved, never a second version."""
    from mlflow.exceptions import MlflowException

    client = _client(uri)
    with contextlib.suppress(MlflowException):  # exists already
        client.create_registered_model(name)
    existing = [
        v
        for v in client.search_model_versions(_eq("name", name))
        if v.source == f"models:/{model.model_id}"  # (search results carry no model_id)
    ]
    if existing:
        version, new = existing[0], False
    else:  # (the registry looks the logged model up through the process's tracking URI)
        with _tracking_uri(uri):
            version = client.create_model_version(
                name,
                source=f"models:/{model.model_id}",
                run_id=model.source_run_id,
                tags=dict(tags),
                description=description,
                model_id=model.model_id,
            )
        new = True
    client.set_registered_model_alias(name, alias, version.version)
    return Version(name=name, version=str(version.version), alias=alias, new=new)
