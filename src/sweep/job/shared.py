"""What every job of a model repeats with the same inputs, computed once and shared:

- the dense model as timm builds it (its random init or pretrained weights), per process: the last
  model built is kept and each job gets a copy (a sweep runs its grid model by model);
- how many eval images a model is scored on (`eval.max_samples=auto`), once per sweep and model, so
  every method of a model is scored on the same images;
- the dense model's top-1 on those images, once per set of inputs;
- the dense model's runtime forms: its ONNX export and its INT8 files (ONNX Runtime's and NNCF's, per
  set of calibration batches), and its INT8 top-1 read from each runtime.

The figures are JSON files beside the trained weights (`weights.cache_dir`), so parallel and SLURM jobs
share them too. A key holds everything a figure depends on (model, its weights file, seed, dataset and
split, preprocessing, eval settings, device, library versions): a changed input is a new entry, never a
stale figure. Dense latency is not shared: paired timing needs the dense model timed beside the pruned.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn
from omegaconf import OmegaConf

from sweep.job.identity import sweep_id_of
from sweep.measure import runtimes
from sweep.models import weights
from sweep.provenance import installed_version

__all__ = ["dense_start", "dense_top1", "eval_count", "figure_key", "runtime_context"]

log = logging.getLogger("sweep")

_LAST_BUILT: dict[str, tuple[nn.Module, str, str]] = {}  # one model: the grid's current one


def dense_start(cfg, num_classes: int, build: Callable[[], tuple[nn.Module, str, str]]):
    """`build()` (timm's model with its starting weights: model, source, note), or a copy of the one
    this process built last for the same model config, classes and seed."""
    key = figure_key(model=_plain(cfg.model), classes=num_classes, seed=cfg.seed)
    if key not in _LAST_BUILT:
        _LAST_BUILT.clear()  # the previous model's memory goes back before this one is built
        _LAST_BUILT[key] = build()
    model, source, note = _LAST_BUILT[key]
    return copy.deepcopy(model), source, note


def figure_key(**parts) -> str:
    """A stable digest of everything a shared figure depends on."""
    import timm
    import torch

    spec = {**parts, "torch": torch.__version__, "timm": timm.__version__}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _plain(node) -> object:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _shared_file(cfg, kind: str, key: str) -> Path:
    folder = Path(cfg.weights.cache_dir).expanduser().resolve() / "shared"
    return folder / f"{kind}-{cfg.model.alias}-{key}.json"


def _once(path: Path, compute: Callable[[], float]) -> tuple[float, bool]:
    """The figure in `path`, or `compute()` stored there; (value, whether it was read)."""
    return weights.produced_once(
        path,
        load=lambda file: json.loads(file.read_text())["value"],
        produce=compute,
        save=lambda value, file: file.write_text(json.dumps({"value": value})),
    )


def eval_count(job, split_size: int, decide: Callable[[], int]) -> tuple[int, bool]:
    """How many eval images the model is scored on: `decide()` for the first job of the sweep and
    model that gets here (eval.max_samples=auto reads its latency), the same for every later one."""
    cfg = job.cfg
    key = figure_key(
        sweep=sweep_id_of(cfg),
        model=_plain(cfg.model),
        dataset=_plain(cfg.dataset),
        eval=_plain(cfg.eval),
        device=job.device.type,
        split=split_size,
    )
    n, shared = _once(_shared_file(cfg, "eval-count", key), decide)
    return int(n), shared


def dense_top1(
    job,
    *,
    weights_id: str,
    preprocess: dict,
    n: int,
    compute: Callable[[], float],
    form: str = "",
):
    """The dense model's top-1 on the first `n` eval images, computed once per set of inputs:
    (top-1, whether an earlier job computed it). `form`: another form of it than the eager model
    (a runtime's INT8 file), named so that another file is another figure."""
    cfg = job.cfg
    key = figure_key(
        form=form,
        model=_plain(cfg.model),
        weights=weights_id,
        seed=cfg.seed,
        dataset=_plain(cfg.dataset),
        preprocess=preprocess,
        samples=n,
        eval_batch=cfg.eval.batch_size,
        class_map=job.class_map,
        device=job.device.type,
    )
    return _once(_shared_file(cfg, "dense-top1", key), compute)


def runtime_context(job, bench, settings, workdir: Path, x: torch.Tensor) -> runtimes.Context:
    """The runtimes' context for a job, its dense model kept: exported and quantized once across
    the jobs with the same model, weights, input shape, exporter and library versions (in
    `weights.cache_dir/shared/forms-...`); the pruned model's files stay the job's own."""
    ctx = runtimes.Context.of(job.device, settings, workdir)
    cfg = job.cfg
    key = figure_key(
        model=_plain(cfg.model),
        classes=job.dataset.num_classes,
        weights=bench.weights_id,
        seed=cfg.seed,
        shape=list(x.shape),
        exporter=settings.onnx_exporter,
        versions={
            d: installed_version(d)
            for d in ("onnx", "onnxruntime", "openvino", "nncf", "onnxscript")
        },
    )
    folder = Path(cfg.weights.cache_dir).expanduser().resolve() / "shared"
    folder = folder / f"forms-{cfg.model.alias}-{key}"

    def once(name: str, make: Callable[[], dict], files: tuple[Path, ...]) -> dict:
        record, read = _record_once(folder / name, make, files)
        if read:
            log.info(
                "%s: the dense model's %s read from %s (made earlier)", job.run_name, name, folder
            )
        return record

    ctx.kept[id(bench.dense)] = runtimes.Kept(folder=folder, once=once)
    return ctx


def _record_once(path: Path, make: Callable[[], dict], files: tuple[Path, ...]):
    """`make()`'s record kept in `<path>.json`, made again where a file it wrote is gone: (record,
    whether it was read). A failure is not kept: it may be this tool's own, or memory's, and
    neither is in the key."""
    return weights.produced_once(
        path.with_name(path.name + ".json"),
        load=lambda file: json.loads(file.read_text()),
        produce=make,
        save=lambda value, file: file.write_text(json.dumps(value)),
        valid=lambda _: all(f.exists() for f in files),
        keep=lambda record: "error" not in record,
    )
