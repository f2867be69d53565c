"""The one interface every runtime implements, and how a runtime's output is compared with eager's."""

from __future__ import annotations

import abc
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from sweep.errors import NotApplicable, first_line
from sweep.measure.layer_times import LayerTime
from sweep.provenance import installed_version

DEPLOY_EXTRA = "pip install 'sweep[deploy]'"
# Outputs agree when max |runtime - eager| <= ATOL + RTOL * max |eager| (fp32; fp16/bf16: LOW_RTOL).
ATOL, RTOL, LOW_RTOL = 1e-4, 1e-3, 3e-2


class RuntimeNotApplicable(NotApplicable):
    """This runtime cannot time this model (or not here); the job's other figures stand."""


@dataclass(frozen=True)
class Kept:
    """A folder a model's runtime forms (ONNX export, INT8 files) are kept in from job to job, and
    `once(name, make, files)`: the record `make()` returned (a JSON-able dict) the first time any job
    asked for `name`, made under a file lock so parallel jobs make it once, and made again where
    one of the `files` it wrote is gone. The job decides which model is kept and under which key
    (sweep.job.shared: the dense model)."""

    folder: Path
    once: Callable[[str, Callable[[], dict], tuple[Path, ...]], dict]


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
    names: dict[int, object] = field(default_factory=dict)  # by model: its ONNX nodes' module paths
    kept: dict[int, Kept] = field(default_factory=dict)  # by model: its forms kept across jobs

    @classmethod
    def of(cls, device: torch.device, settings, workdir: Path) -> Context:
        """A job's context: precision, threads, exporter and layout as its `measure.*` settings say."""
        from sweep.measure.latency import resolve_threads

        return cls(
            device=device,
            precision=settings.precision,
            threads=resolve_threads(settings.threads),
            workdir=workdir,
            onnx_exporter=settings.onnx_exporter,
            channels_last=settings.channels_last,
        )

    def folder_of(self, model: nn.Module, what: str) -> Path:
        """Where `model`'s files go: its kept folder, else this job's own."""
        kept = self.kept.get(id(model))
        folder = kept.folder if kept else self.workdir / what
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def once(
        self, model: nn.Module, name: str, make: Callable[[], dict], files: tuple[Path, ...]
    ) -> dict:
        """`make()`'s record (it writes `files`), made once across jobs where `model` is kept, else
        made now."""
        kept = self.kept.get(id(model))
        return kept.once(name, make, files) if kept else make()


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
    # a forward pass on any batch of images, its logits as a float32 CPU tensor (evaluating top-1 in
    # the runtime itself); None where the runtime does not offer it
    predict: Callable[[torch.Tensor], torch.Tensor] | None = None
    # another instance of the same model in this runtime (a new session, compiled model or copy of the
    # weights), for timing what differs between instances; None where the runtime has none to offer
    again: Callable[[], Loaded] | None = None
    # bytes on disk of the form that ships in this runtime (an ONNX file, an IR, the weights); None
    # where the runtime ships no file of its own
    size: Callable[[], int] | None = None
    # the kernel library the form was built for, where the runtime offers several (eager INT8:
    # PyTorch's quantized engine); "" where it has one
    kernels: str = ""

    def instances(self, n: int) -> list[Loaded]:
        """This one and up to n - 1 more (fewer where the runtime offers no other)."""
        more = [self.again() for _ in range(n - 1)] if self.again else []
        return [self, *more]


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

    def check_available(self, ctx: Context) -> None:
        """Raise RuntimeNotApplicable, naming this runtime, when `unavailable` gives a reason."""
        reason = self.unavailable(ctx)
        if reason:
            said = reason if reason.startswith(self.name) else f"{self.name}: {reason}"
            raise RuntimeNotApplicable(said)

    def version(self) -> str:
        found = installed_version(self.module)
        return f"{self.module}=={found}" if found else self.module

    @abc.abstractmethod
    def load(self, model: nn.Module, x: torch.Tensor, ctx: Context, what: str) -> Loaded:
        """`model` (eval mode, on ctx.device) ready to run on `x` in this runtime. `what` names the
        model in messages and file names (dense, pruned)."""

    # why `int8` cannot quantize here, for runtimes without a post-training INT8 path
    no_int8 = "no post-training INT8 path for this runtime here"

    def int8(
        self,
        model: nn.Module,
        x: torch.Tensor,
        calibration: list[torch.Tensor],
        ctx: Context,
        what: str,
    ) -> Loaded:
        """`model` quantized to INT8 with this runtime's own tool, calibrated on `calibration` (batches
        at x's shape), loaded to run on `x`, with `predict` set. A model the quantizer cannot take
        raises RuntimeNotApplicable with the reason."""
        raise RuntimeNotApplicable(f"{self.name}: {self.no_int8}")

    # why `profile` cannot time layers, for runtimes without a per-layer profiler wired here
    no_profile = "no per-layer profiler for this runtime here"

    def profile(
        self, model: nn.Module, x: torch.Tensor, ctx: Context, what: str, rounds: tuple[int, int]
    ) -> list[LayerTime]:
        """Per-layer time of `model` on `x` from this runtime's own profiler, named by module path:
        the median over `rounds` = (warm-up, profiled) runs. A runtime without one, or whose profiler
        fails, raises RuntimeNotApplicable with the reason."""
        raise RuntimeNotApplicable(f"{self.name}: {self.no_profile}")

    def not_applicable(self, what: str, e: BaseException | str) -> RuntimeNotApplicable:
        return RuntimeNotApplicable(
            f"{self.name}: cannot run the {what} model ({plain(first_line(e))})"
        )


def missing_module(module: str, what: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return f"{what} is not installed ({DEPLOY_EXTRA})"
    return None


def to_cpu(out) -> torch.Tensor:
    if isinstance(out, (tuple, list)):
        out = out[0]
    if isinstance(out, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(out)).float()
    return out.detach().float().cpu()


def plain(text: str) -> str:
    """A message without the terminal colours some exporters put in it."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def max_abs_diff(got: torch.Tensor, want: torch.Tensor) -> float:
    if got.shape != want.shape:
        return float("inf")
    return float((got - want).abs().max()) if want.numel() else 0.0


def outputs_agree(diff: float, want: torch.Tensor, precision: str) -> bool:
    rtol = RTOL if precision == "fp32" else LOW_RTOL
    scale = float(want.abs().max()) if want.numel() else 0.0
    return diff <= ATOL + rtol * scale


def fixed_batch(
    forward: Callable[[np.ndarray], object], size: int
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A runtime's forward pass on a file exported at batch `size`, as a call on any batch: run in
    chunks of `size`, the last one padded by repeating its first image (the padding's outputs dropped)."""

    def predict(images: torch.Tensor) -> torch.Tensor:
        outs = []
        for chunk in images.float().cpu().split(size):
            n = len(chunk)
            if n < size:
                chunk = torch.cat([chunk, chunk[:1].expand(size - n, *chunk.shape[1:])])
            outs.append(to_cpu(forward(chunk.contiguous().numpy()))[:n])
        return torch.cat(outs)

    return predict
