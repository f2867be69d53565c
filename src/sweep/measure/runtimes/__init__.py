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

from sweep.config.schema import RUNTIMES
from sweep.measure.runtimes.base import (
    ATOL,
    DEPLOY_EXTRA,
    LOW_RTOL,
    RTOL,
    Context,
    Kept,
    Loaded,
    Runtime,
    RuntimeNotApplicable,
    max_abs_diff,
    outputs_agree,
)
from sweep.measure.runtimes.eager import Compiled, Eager
from sweep.measure.runtimes.export import exporter_used, onnx_file, shipped_onnx
from sweep.measure.runtimes.onnx import OnnxRuntime, TensorRT, ort_int8
from sweep.measure.runtimes.openvino import OpenVINO

__all__ = [
    "ATOL",
    "DEPLOY_EXTRA",
    "LOW_RTOL",
    "REGISTRY",
    "RTOL",
    "Compiled",
    "Context",
    "Eager",
    "Kept",
    "Loaded",
    "OnnxRuntime",
    "OpenVINO",
    "Runtime",
    "RuntimeNotApplicable",
    "TensorRT",
    "exporter_used",
    "get",
    "max_abs_diff",
    "onnx_file",
    "ort_int8",
    "outputs_agree",
    "shipped_onnx",
]

REGISTRY: dict[str, type[Runtime]] = {
    r.name: r for r in (Eager, Compiled, OnnxRuntime, OpenVINO, TensorRT)
}
assert tuple(REGISTRY) == RUNTIMES, "schema.RUNTIMES names the runtimes of this module, in order"


def get(name: str) -> Runtime:
    return REGISTRY[name]()
