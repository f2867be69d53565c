"""The ship stage (`log_models=true`): the fine-tuned pruned model in the forms it ships, logged as MLflow
models of the job's run (ONNX, its INT8 form with `quantize=int8`, PyTorch through `torch.export`), each
carrying the job's headline figures; the dense model once per sweep and model. A form that cannot be
made is not applicable, with its reason; the job finishes. Where `torch.export` refuses the model, its
safetensors + structure form is kept in `model/` (it loads without running code too).
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from sweep import tracking
from sweep.errors import first_line
from sweep.job.context import Bench, Job
from sweep.job.identity import level_of, sweep_id_of
from sweep.job.quantize import calibration_batches
from sweep.job.results import Result
from sweep.job.summary import saved_model
from sweep.measure import runtimes

__all__ = ["Shipped", "ship"]

log = logging.getLogger("sweep")

EXAMPLE_BATCH = (
    2  # the input example's images (a batch: the signature's batch dimension stays free)
)
FALLBACK = f"; its safetensors + structure form is in {tracking.MODEL_ARTIFACT_DIR}/ instead"


@dataclass(frozen=True, kw_only=True)
class Shipped(Result):
    """The forms the job logged as MLflow models, and why the others could not be."""

    forms: tuple[str, ...]
    not_applicable: Mapping[str, str] = field(default_factory=dict)

    def tags(self) -> dict:
        tags = {tracking.TAG_SHIPPED: ",".join(self.forms)}
        if self.not_applicable:
            tags[tracking.TAG_SHIP_NA] = "; ".join(self.not_applicable.values())
        return tags


def ship(job: Job, bench: Bench, pruned: nn.Module, run: tracking.JobRun) -> Iterator:
    """The stage: `run` is the job's run as logged so far (the figures each model carries; whether
    the sweep has its dense model yet). The dense model goes with the first job of a model that gets
    here (its run's `dense_*` figures are every job's)."""
    x = bench.eval.first(EXAMPLE_BATCH).float().cpu()
    dense_too = not tracking.dense_model_logged(
        run.uri, run.experiment_id, sweep_id_of(job.cfg), job.cfg.model.alias
    )
    missing: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="sweep-ship-") as tmp:
        for role, model in [("pruned", pruned), *([("dense", bench.dense)] if dense_too else [])]:
            model = model.eval().cpu()
            with torch.no_grad():
                out = model(x).numpy()  # the output every form's signature and example pair with
            for form in _forms(job):
                example = tracking.ModelForm(role=role, form=form, example=x.numpy(), output=out)
                try:
                    made = _form(job, bench, example, model=model, folder=Path(tmp) / role)
                    done = yield _with_figures(job, made, role=role, logged=run.logged_metrics)
                    why = done.error
                except runtimes.RuntimeNotApplicable as e:
                    why = first_line(e)
                if why and role == "pruned":  # the dense model's forms: as far as they go
                    missing[form] = why + (FALLBACK if form == "pytorch" else "")
                    log.warning("%s: %s model not logged: %s", job.run_name, form, missing[form])
            model.to(job.device)
    if "pytorch" in missing and not job.cfg.save_model:  # the form that loads without code, kept
        yield from saved_model(job, pruned, bench.preprocess)
    forms = tuple(f for f in _forms(job) if f not in missing)
    done = Shipped(forms=forms, not_applicable=missing)
    yield done
    return done


def _forms(job: Job) -> list[str]:
    """The forms of `log_models` the job makes: onnx_int8 only where the job quantizes."""
    chosen = job.cfg.quantize.runtimes
    int8 = job.cfg.quantize.precision == "int8" and (chosen is None or "onnxruntime" in chosen)
    return [f for f in job.cfg.log_models if f != "onnx_int8" or int8]


def _form(job: Job, bench: Bench, made: tracking.ModelForm, model: nn.Module, folder: Path):
    """`made` (a form with its example and output) with what it ships: the module, or the ONNX file
    (exported once per model into `folder`, for the ONNX form and its INT8 one)."""
    if made.form == "pytorch":
        return dataclasses.replace(made, module=model)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    if not path.exists():
        try:
            x = torch.from_numpy(made.example)
            runtimes.shipped_onnx(model, x, path, exporter=job.cfg.measure.onnx_exporter)
        except runtimes.RuntimeNotApplicable as e:
            raise runtimes.RuntimeNotApplicable(f"onnx: {e}") from None
    if made.form == "onnx_int8":
        path = _int8(job, bench, path)
    return dataclasses.replace(made, onnx_file=path)


def _int8(job: Job, bench: Bench, path: Path) -> Path:
    """The shipped ONNX file through ONNX Runtime's quantizer, calibrated as the quantize stage is."""
    size = job.cfg.measure.batch_size
    try:
        return runtimes.ort_int8(path, calibration_batches(job, bench.train, size))
    except Exception as e:
        raise runtimes.RuntimeNotApplicable(
            f"onnx_int8: ONNX Runtime's quantizer cannot take the model ({first_line(e)})"
        ) from None


def _with_figures(
    job: Job, made: tracking.ModelForm, role: str, logged: Mapping[str, float]
) -> tracking.ModelForm:
    """The form with the figures it carries, and the tags `register` finds it by."""
    tags = {
        tracking.TAG_SWEEP_ID: sweep_id_of(job.cfg),
        tracking.MODEL_TAG_MODEL: job.cfg.model.alias,
    }
    params = {tracking.PARAM_MODEL_NAME: job.cfg.model.name}
    if role == "pruned":
        tags |= {tracking.MODEL_TAG_COST: level_of(job.cfg)}
        params |= {tracking.PARAM_PRUNER: job.pruner.name}
    return dataclasses.replace(
        made,
        metrics=_figures(made.form, role=role, logged=logged),
        params=params,
        tags=tags,
    )


def _figures(form: str, role: str, logged: Mapping[str, float]) -> dict[str, float]:
    """What a logged model carries, under the run's own names and values (MLflow logs a model's
    metrics on its run too: a value of another meaning under a run's name would become the run's):
    top-1 (the INT8 form's as read in ONNX Runtime), MACs kept and the speedup in each runtime; the
    dense model, its own top-1."""
    int8_top1 = tracking.int8_key("onnxruntime", tracking.ACCURACY)
    if role == "dense":
        int8 = tracking.int8_key("onnxruntime", tracking.DENSE_ACCURACY)
        key = int8 if form == "onnx_int8" else tracking.DENSE_ACCURACY
        return {key: logged[key]} if key in logged else {}
    keys = [tracking.ACCURACY, tracking.DENSE_ACCURACY, tracking.MACS_KEPT]
    keys += [int8_top1] if form == "onnx_int8" else []
    keys += [k for k in logged if k.rpartition("/")[2] == tracking.SPEEDUP]
    return {k: logged[k] for k in keys if k in logged}
