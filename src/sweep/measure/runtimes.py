"""Where a model is timed: eager PyTorch, torch.compile, ONNX Runtime, OpenVINO, TensorRT.

A runtime is one small class behind one interface: `unavailable` says, before any work, why it cannot
run here (a package missing, the wrong device or precision); `load` turns an eager model and a fixed
input batch into a `Loaded` model: one call that runs a forward pass on that batch, and that call's
output as a CPU tensor, so that every runtime's output is compared with eager's before it is timed.
Converting the model (an ONNX export, a compilation) and building the runtime's session are timed by
`load`, never inside a latency figure. A model the runtime cannot take raises `RuntimeNotApplicable`
with the runtime's name and the reason; the job's other figures stand.

ONNX Runtime, OpenVINO and TensorRT read the same exported ONNX file of a model (exported once per
job), so they run exactly the graph that `save_model` keeps.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import importlib.util
import io
import logging
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from sweep.errors import NotApplicable, first_line
from sweep.measure.latency import eager_step
from sweep.schema import RUNTIMES

log = logging.getLogger("sweep")

DEPLOY_EXTRA = "pip install 'sweep[deploy]'"
# Outputs agree when max |runtime - eager| <= ATOL + RTOL * max |eager| (fp32; fp16/bf16: LOW_RTOL).
ATOL, RTOL, LOW_RTOL = 1e-4, 1e-3, 3e-2


class RuntimeNotApplicable(NotApplicable):
    """This runtime cannot time this model (or not here); the job's other figures stand."""


@dataclass
class Context:
    """What every runtime of a job shares: the device, precision and thread count it is timed at,
    and the folder for exported files (with the ONNX exports made so far, by model)."""

    device: torch.device
    precision: str
    threads: int
    workdir: Path
    onnx_exporter: str = "auto"  # auto | torchscript | dynamo
    channels_last: bool = False
    exports: dict[int, tuple[Path, float, str]] = field(default_factory=dict)
    export_errors: dict[int, str] = field(default_factory=dict)  # by model: why it cannot export
    references: dict[int, torch.Tensor] = field(default_factory=dict)  # by model: eager's output


@dataclass
class Loaded:
    run: Callable[[], object]  # one forward pass on the job's batch
    output: Callable[[], torch.Tensor]  # one forward pass, its output as a float32 CPU tensor
    export_s: float  # PyTorch -> the runtime's form (ONNX export, compilation), s
    build_s: float  # the runtime's session or compiled model, s
    file: Path | None = None  # the file the runtime ran (ONNX), if any
    host_clock: bool = (
        False  # timed by the host clock even on CUDA (own streams, synchronous calls)
    )


class Runtime(abc.ABC):
    name: str
    summary: str  # one line for the docs and --help
    # Masks keep dense shapes; no runtime here has a sparse kernel that runs them faster on this
    # project's devices (2:4 on CUDA tensor cores is timed by eager's sparse path).
    sparse_kernels: bool = False

    module = "torch"  # the package whose version a peak measured in this runtime depends on

    def unavailable(self, ctx: Context) -> str | None:
        """Why this runtime cannot run at all here (None: it can)."""
        return None

    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as package_version

        with contextlib.suppress(PackageNotFoundError):
            return f"{self.module}=={package_version(self.module)}"
        return self.module

    @abc.abstractmethod
    def load(self, model: nn.Module, x: torch.Tensor, ctx: Context, what: str) -> Loaded:
        """`model` (eval mode, on ctx.device) ready to run on `x` in this runtime. `what` names the
        model in messages and file names (dense, pruned)."""

    def not_applicable(self, what: str, e: BaseException | str) -> RuntimeNotApplicable:
        return RuntimeNotApplicable(
            f"{self.name}: cannot run the {what} model ({_plain(first_line(e))})"
        )


def _missing(module: str, what: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return f"{what} is not installed ({DEPLOY_EXTRA})"
    return None


def _to_cpu(out) -> torch.Tensor:
    if isinstance(out, (tuple, list)):
        out = out[0]
    if isinstance(out, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(out)).float()
    return out.detach().float().cpu()


# ---- PyTorch ------------------------------------------------------------------------------------------
class Eager(Runtime):
    name = "eager"
    summary = "PyTorch eager mode (the job's main latency figures)"

    def load(self, model, x, ctx, what):
        if ctx.channels_last and x.dim() == 4:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        step = eager_step(model, x, ctx.device, ctx.precision)
        return Loaded(step, lambda: _to_cpu(step()), 0.0, 0.0)


class Compiled(Runtime):
    name = "compile"
    summary = "torch.compile (inductor); its compilation is export_seconds"

    def load(self, model, x, ctx, what):
        t0 = time.perf_counter()
        try:
            compiled = torch.compile(model, dynamic=False)
            step = eager_step(compiled, x, ctx.device, ctx.precision)
            step()  # compiles
        except Exception as e:
            raise self.not_applicable(what, e) from None
        return Loaded(step, lambda: _to_cpu(step()), time.perf_counter() - t0, 0.0)


# ---- ONNX ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet():
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


def _export(model: nn.Module, x: torch.Tensor, path: Path, exporter: str) -> None:
    with warnings.catch_warnings(), _quiet():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            str(path),
            input_names=["input"],
            output_names=["output"],
            dynamo=exporter == "dynamo",
            **({} if exporter == "dynamo" else {"opset_version": 17}),
        )


def _plain(text: str) -> str:
    """A message without the terminal colours some exporters put in it."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def onnx_file(
    model: nn.Module, x: torch.Tensor, ctx: Context, what: str, runtime: str
) -> tuple[Path, float]:
    """The model exported to ONNX at x's shape (once per model and job), and the export's seconds.
    auto: the TorchScript exporter (fast, mature for CNNs), then the dynamo exporter where it fails."""
    if id(model) in ctx.exports:
        path, seconds, _ = ctx.exports[id(model)]
        return path, seconds
    if id(model) in ctx.export_errors:  # tried for another runtime of this job
        raise RuntimeNotApplicable(f"{runtime}: {ctx.export_errors[id(model)]}")
    if importlib.util.find_spec("onnx") is None:
        raise RuntimeNotApplicable(f"{runtime}: onnx is not installed ({DEPLOY_EXTRA})")
    order = ["torchscript", "dynamo"] if ctx.onnx_exporter == "auto" else [ctx.onnx_exporter]
    folder = ctx.workdir / what
    folder.mkdir(parents=True, exist_ok=True)
    path, errors = folder / f"{what}.onnx", []
    # exported from the CPU in fp32: the file is the same whatever device it will run on
    cpu = model if ctx.device.type == "cpu" else copy.deepcopy(model).float().cpu()
    for exporter in order:
        t0 = time.perf_counter()
        try:
            _export(cpu, x.float().cpu(), path, exporter)
        except Exception as e:
            errors.append(f"{exporter}: {_plain(first_line(e))}")
            continue
        ctx.exports[id(model)] = (path, time.perf_counter() - t0, exporter)
        return path, ctx.exports[id(model)][1]
    ctx.export_errors[id(model)] = f"cannot export the {what} model to ONNX ({'; '.join(errors)})"
    raise RuntimeNotApplicable(f"{runtime}: {ctx.export_errors[id(model)]}")


def exporter_used(ctx: Context) -> str:
    return ",".join(sorted({e for _, _, e in ctx.exports.values()}))


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    module = "onnxruntime"
    summary = "ONNX Runtime: CPU execution provider, CUDA on a GPU"

    def providers(self, ctx: Context) -> list[str]:
        return ["CUDAExecutionProvider"] if ctx.device.type == "cuda" else ["CPUExecutionProvider"]

    def unavailable(self, ctx):
        missing = _missing("onnxruntime", "onnxruntime") or _missing("onnx", "onnx")
        if missing:
            return missing
        if ctx.precision != "fp32":
            return f"measure.precision={ctx.precision}: {self.name} times fp32 exports only here"
        import onnxruntime as ort

        lacking = [p for p in self.providers(ctx) if p not in ort.get_available_providers()]
        if lacking:
            return f"onnxruntime has no {lacking[0]} here (on a GPU: onnxruntime-gpu)"
        return None

    def session(self, path: Path, ctx: Context):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = ctx.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Dense and pruned sessions are timed in turns: a pool left spinning after one call would
        # take the cores from the other's next call.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        return ort.InferenceSession(str(path), so, providers=self.providers(ctx))

    def load(self, model, x, ctx, what):
        path, export_s = onnx_file(model, x, ctx, what, self.name)
        t0 = time.perf_counter()
        try:
            sess = self.session(path, ctx)
            feed = {sess.get_inputs()[0].name: x.float().cpu().numpy()}
            if ctx.device.type == "cuda":
                run = self._bound_run(sess, feed, ctx)
            else:

                def run():
                    return sess.run(None, feed)

            out = run()
        except RuntimeNotApplicable:
            raise
        except Exception as e:
            raise self.not_applicable(what, e) from None
        build_s = time.perf_counter() - t0
        del out
        return Loaded(run, lambda: _to_cpu(self._fetch(run())), export_s, build_s, path, True)

    @staticmethod
    def _fetch(out):
        if isinstance(out, list):
            return out[0]
        return out

    def _bound_run(self, sess, feed: dict, ctx: Context):
        """On CUDA: input and output stay on the device (an IO binding), so the figure is the
        model's, not the host-device copies'."""
        import onnxruntime as ort

        name, value = next(iter(feed.items()))
        index = ctx.device.index or 0
        on_device = ort.OrtValue.ortvalue_from_numpy(value, "cuda", index)
        binding = sess.io_binding()
        binding.bind_ortvalue_input(name, on_device)
        binding.bind_output(sess.get_outputs()[0].name, "cuda", index)

        def run():
            sess.run_with_iobinding(binding)
            return binding.get_outputs()[0].numpy()

        return run


class TensorRT(OnnxRuntime):
    name = "tensorrt"
    summary = "TensorRT through ONNX Runtime's TensorRT execution provider (CUDA GPUs only)"

    def providers(self, ctx):
        return ["TensorrtExecutionProvider", "CUDAExecutionProvider"]

    def unavailable(self, ctx):
        if ctx.device.type != "cuda":
            return f"tensorrt needs a CUDA GPU (the job's device is {ctx.device.type})"
        missing = _missing("onnxruntime", "onnxruntime-gpu") or _missing("onnx", "onnx")
        if missing:
            return missing
        import onnxruntime as ort

        if "TensorrtExecutionProvider" not in ort.get_available_providers():
            return (
                "onnxruntime has no TensorrtExecutionProvider here (onnxruntime-gpu and TensorRT)"
            )
        if ctx.precision == "bf16":
            return "measure.precision=bf16: tensorrt is timed at fp32 or fp16 here"
        return None

    def session(self, path, ctx):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        trt = {"trt_fp16_enable": ctx.precision == "fp16", "device_id": ctx.device.index or 0}
        return ort.InferenceSession(
            str(path),
            so,
            providers=[("TensorrtExecutionProvider", trt), "CUDAExecutionProvider"],
        )


class OpenVINO(Runtime):
    name = "openvino"
    module = "openvino"
    summary = "OpenVINO on the CPU (latency hint, one stream, fp32 inference precision)"

    def unavailable(self, ctx):
        missing = _missing("openvino", "openvino") or _missing("onnx", "onnx")
        if missing:
            return missing
        if ctx.device.type != "cpu":
            return f"openvino times on the CPU; the job's device is {ctx.device.type}"
        if ctx.precision != "fp32":
            return f"measure.precision={ctx.precision}: openvino is timed at fp32 here"
        return None

    def load(self, model, x, ctx, what):
        import openvino as ov

        path, export_s = onnx_file(model, x, ctx, what, self.name)
        t0 = time.perf_counter()
        try:
            core = ov.Core()
            compiled = core.compile_model(
                core.read_model(str(path)),
                "CPU",
                {
                    "INFERENCE_NUM_THREADS": ctx.threads,
                    "PERFORMANCE_HINT": "LATENCY",
                    "NUM_STREAMS": 1,
                    # its default on CPUs with bf16 units is bf16: the figure would not be fp32's
                    "INFERENCE_PRECISION_HINT": "f32",
                },
            )
            request = compiled.create_infer_request()
            feed = {0: x.float().cpu().numpy()}
            request.infer(feed)
        except Exception as e:
            raise self.not_applicable(what, e) from None

        def run():
            return request.infer(feed)

        def output():
            request.infer(feed)
            return _to_cpu(request.get_output_tensor(0).data.copy())

        return Loaded(run, output, export_s, time.perf_counter() - t0, path, True)


REGISTRY: dict[str, type[Runtime]] = {
    r.name: r for r in (Eager, Compiled, OnnxRuntime, OpenVINO, TensorRT)
}
assert tuple(REGISTRY) == RUNTIMES, "schema.RUNTIMES names the runtimes of this module, in order"


def get(name: str) -> Runtime:
    return REGISTRY[name]()


def max_abs_diff(got: torch.Tensor, want: torch.Tensor) -> float:
    if got.shape != want.shape:
        return float("inf")
    return float((got - want).abs().max()) if want.numel() else 0.0


def outputs_agree(diff: float, want: torch.Tensor, precision: str) -> bool:
    rtol = RTOL if precision == "fp32" else LOW_RTOL
    scale = float(want.abs().max()) if want.numel() else 0.0
    return diff <= ATOL + rtol * scale
