"""The files the runtimes read: the model exported to ONNX (once per model and job, and once across
jobs for a model the job keeps: `Context.kept`), and a digest naming what a quantizer calibrated on."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import io
import time
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from sweep.errors import first_line
from sweep.measure.runtimes.base import DEPLOY_EXTRA, Context, RuntimeNotApplicable, plain

__all__ = [
    "calibration_digest",
    "exporter_used",
    "onnx_file",
    "onnx_names",
    "quiet",
    "shipped_onnx",
    "timed_record",
]


@contextlib.contextmanager
def quiet():
    """The exporters print their progress, and the TorchScript one the whole graph when it fails,
    some of it from C++ straight to the process's stdout/stderr: silence both, at the descriptors."""
    import os
    import sys

    saved = []
    try:
        with open(os.devnull, "w") as null:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(AttributeError, OSError, ValueError):
                    stream.flush()
                    fd = stream.fileno()
                    saved.append((fd, os.dup(fd)))
                    os.dup2(null.fileno(), fd)
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                yield
    finally:
        for fd, copy_fd in saved:
            os.dup2(copy_fd, fd)
            os.close(copy_fd)


def _export(
    model: nn.Module, x: torch.Tensor, path: Path, exporter: str, any_batch: bool = False
) -> None:
    """`any_batch`: the batch dimension left free (what ships), else fixed at x's (what is timed)."""
    batch = {"input": {0: "batch"}, "output": {0: "batch"}} if any_batch else None
    if any_batch and exporter == "dynamo":
        batch = {"x": {0: torch.export.Dim("batch", min=1)}}
    with warnings.catch_warnings(), quiet():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            str(path),
            input_names=["input"],
            output_names=["output"],
            dynamo=exporter == "dynamo",
            **({"dynamic_shapes": batch} if exporter == "dynamo" and batch else {}),
            **({} if exporter == "dynamo" else {"opset_version": 17, "dynamic_axes": batch}),
        )


def shipped_onnx(model: nn.Module, x: torch.Tensor, path: Path, exporter: str = "auto") -> str:
    """The model as the ONNX file that ships: any batch size, exported from the CPU in fp32 (auto:
    TorchScript, then dynamo where it fails). Returns the exporter; RuntimeNotApplicable with each
    exporter's reason when none can."""
    order = ["torchscript", "dynamo"] if exporter == "auto" else [exporter]
    errors = []
    for one in order:
        try:
            _export(model, x.float().cpu(), path, one, any_batch=True)
            return one
        except Exception as e:
            errors.append(f"{one}: {plain(first_line(e))}")
    raise RuntimeNotApplicable(f"cannot export the model to ONNX ({'; '.join(errors)})")


def onnx_file(
    model: nn.Module, x: torch.Tensor, ctx: Context, what: str, runtime: str
) -> tuple[Path, float]:
    """The model exported to ONNX at x's shape (once per model and job; once across jobs where the
    job keeps the model), and the export's seconds (those of the export that made the file).
    auto: the TorchScript exporter (fast, mature for CNNs), then the dynamo exporter where it fails."""
    if id(model) in ctx.exports:
        path, seconds, _ = ctx.exports[id(model)]
        return path, seconds
    if id(model) in ctx.export_errors:  # tried for another runtime of this job
        raise RuntimeNotApplicable(f"{runtime}: {ctx.export_errors[id(model)]}")
    if importlib.util.find_spec("onnx") is None:
        raise RuntimeNotApplicable(f"{runtime}: onnx is not installed ({DEPLOY_EXTRA})")
    path = ctx.folder_of(model, what) / f"{what}.onnx"
    record = ctx.once(model, "export", lambda: _exported(model, x, ctx=ctx, path=path), (path,))
    if "error" in record:
        ctx.export_errors[id(model)] = f"cannot export the {what} model to ONNX ({record['error']})"
        raise RuntimeNotApplicable(f"{runtime}: {ctx.export_errors[id(model)]}")
    ctx.exports[id(model)] = (path, record["seconds"], record["exporter"])
    return path, record["seconds"]


def _exported(model: nn.Module, x: torch.Tensor, ctx: Context, path: Path) -> dict:
    """`model` written to `path` by the first exporter that can: {"exporter", "seconds"}, or
    {"error": each exporter's reason}."""
    order = ["torchscript", "dynamo"] if ctx.onnx_exporter == "auto" else [ctx.onnx_exporter]
    # exported from the CPU in fp32: the file is the same whatever device it will run on
    cpu = model if ctx.device.type == "cpu" else copy.deepcopy(model).float().cpu()
    errors = []
    for exporter in order:
        t0 = time.perf_counter()
        try:
            _export(cpu, x.float().cpu(), path, exporter)
        except Exception as e:
            errors.append(f"{exporter}: {plain(first_line(e))}")
            continue
        return {"exporter": exporter, "seconds": time.perf_counter() - t0}
    return {"error": "; ".join(errors)}


def onnx_names(model: nn.Module, x: torch.Tensor, ctx: Context, what: str, runtime: str):
    """The model's ONNX file and the module path of each of its nodes (read once per model and job,
    for every runtime that profiles it)."""
    from sweep.measure.layer_times import ModulePaths, OnnxNames

    path, _ = onnx_file(model, x, ctx=ctx, what=what, runtime=runtime)
    if id(model) not in ctx.names:
        ctx.names[id(model)] = OnnxNames(path, ModulePaths(model))
    return path, ctx.names[id(model)]


def exporter_used(ctx: Context) -> str:
    return ",".join(sorted({e for _, _, e in ctx.exports.values()}))


def timed_record(make) -> dict:
    """`make()` timed: {"seconds": s}, or {"error": its first line} where it raised. What a kept
    model's later jobs read back (a failure is not kept)."""
    t0 = time.perf_counter()
    try:
        make()
    except Exception as e:
        return {"error": plain(first_line(e))}
    return {"seconds": time.perf_counter() - t0}


def calibration_digest(calibration: list[torch.Tensor]) -> str:
    """What a quantizer calibrated on, as a short digest of the batches' shapes and values."""
    h = hashlib.sha256()
    for batch in calibration:
        a = batch.detach().float().cpu().contiguous()
        h.update(str(tuple(a.shape)).encode())
        h.update(a.numpy().tobytes())
    return h.hexdigest()[:16]
