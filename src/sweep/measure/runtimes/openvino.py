"""OpenVINO, on the exported ONNX file."""

from __future__ import annotations

import time

from sweep.measure.runtimes.base import (
    Loaded,
    Runtime,
    missing_module,
    to_cpu,
)
from sweep.measure.runtimes.onnx import onnx_file


class OpenVINO(Runtime):
    name = "openvino"
    module = "openvino"
    summary = "OpenVINO on the CPU (latency hint, one stream, fp32 inference precision)"

    def unavailable(self, ctx):
        missing = missing_module("openvino", "openvino") or missing_module("onnx", "onnx")
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
            return to_cpu(request.get_output_tensor(0).data.copy())

        return Loaded(run, output, export_s, time.perf_counter() - t0, path, True)
