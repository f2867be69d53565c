"""OpenVINO, on the exported ONNX file."""

from __future__ import annotations

import logging
import time
import warnings

from sweep.errors import first_line
from sweep.measure.clocks import SelfTimed
from sweep.measure.runtimes.base import (
    Loaded,
    Runtime,
    RuntimeNotApplicable,
    fixed_batch,
    missing_module,
    plain,
    to_cpu,
)
from sweep.measure.runtimes.export import (
    calibration_digest,
    onnx_file,
    onnx_names,
    quiet,
    timed_record,
)


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

        path, export_s = onnx_file(model, x, ctx=ctx, what=what, runtime=self.name)
        t0 = time.perf_counter()
        try:
            ov_model = ov.Core().read_model(str(path))
        except Exception as e:
            raise self.not_applicable(what, e) from None
        return self._compiled(ov_model, x, ctx=ctx, what=what, export_s=export_s, t0=t0, path=path)

    def profile(self, model, x, ctx, what, rounds):
        """OpenVINO's performance counters (`PERF_COUNT`): each executed layer's time per inference
        of a model compiled like the timed one; a layer other ops were fused into says which
        (`fused`), from the compiled model's `originalLayersNames`."""
        import openvino as ov

        from sweep.measure.layer_times import LayerTime, median_times

        try:
            path, names = onnx_names(model, x, ctx=ctx, what=what, runtime=self.name)
            core = ov.Core()
            compiled = core.compile_model(
                core.read_model(str(path)), "CPU", {**_properties(ctx), "PERF_COUNT": True}
            )
            request = compiled.create_infer_request()
            request.set_input_tensor(ov.Tensor(x.float().cpu().numpy().copy(), shared_memory=False))
            per_round = []
            for i in range(sum(rounds)):
                request.infer()
                if i >= rounds[0]:
                    per_round.append(_counters(request.get_profiling_info(), names))
            fused = _fused(compiled.get_runtime_model(), names)
        except RuntimeNotApplicable:  # no ONNX file to profile: said as the export said it
            raise
        except Exception as e:
            raise RuntimeNotApplicable(
                f"{self.name}: its profiler failed on the {what} model ({plain(first_line(e))})"
            ) from None
        return [
            LayerTime(layer=t.layer, op=t.op, ms=t.ms, fused=fused.get((t.layer, t.op), ()))
            for t in median_times(per_round)
        ]

    def int8(self, model, x, calibration, ctx, what):
        """NNCF's post-training quantization of the OpenVINO model read from the ONNX file (its
        transformer preset where the graph has a Softmax: attention), saved as IR beside it: a kept
        model is quantized once for each set of calibration batches."""
        missing = missing_module("nncf", "nncf")
        if missing:
            raise RuntimeNotApplicable(f"{self.name}: {missing}")
        import openvino as ov

        path, _ = onnx_file(model, x, ctx=ctx, what=what, runtime=self.name)
        xml = path.with_name(f"{path.stem}.nncf-{calibration_digest(calibration)}.xml")

        def make():
            quantized = _nncf_int8(ov.Core().read_model(str(path)), calibration)
            ov.save_model(quantized, str(xml), compress_to_fp16=False)

        record = ctx.once(
            model,
            xml.stem,
            lambda: timed_record(make),
            (xml, xml.with_suffix(".bin")),
        )
        if "error" in record:
            raise RuntimeNotApplicable(
                f"{self.name}: NNCF cannot quantize the {what} model ({record['error']})"
            )
        return self._compiled(
            ov.Core().read_model(str(xml)),
            x,
            ctx=ctx,
            what=f"{what} INT8",
            export_s=record["seconds"],
            path=xml,
        )

    def _compiled(self, ov_model, x, ctx, what, export_s, t0=None, path=None) -> Loaded:
        import openvino as ov

        t0 = time.perf_counter() if t0 is None else t0
        try:
            compiled = ov.Core().compile_model(ov_model, "CPU", _properties(ctx))
            # the timed batch is set once, as the standard tools do (a numpy input handed to every
            # call is converted on every call: 20 us of a 100 us model); other batches go through
            # a request of their own, so they never replace it
            request = compiled.create_infer_request()
            request.set_input_tensor(ov.Tensor(x.float().cpu().numpy().copy(), shared_memory=False))
            request.infer()
            other = compiled.create_infer_request()
        except Exception as e:
            raise self.not_applicable(what, e) from None

        def infer():
            # on the calling thread, as benchmark_app's sync API runs it: start_async + wait hands
            # the call to the stream's own thread, 7-11 us more a call on a 0.1 ms model; outputs
            # shared, not copied (the result dict is built after OpenVINO's clock stops either way)
            request.infer(share_outputs=True)

        # timed by OpenVINO's own request latency, as benchmark_app reports it
        run = SelfTimed(infer, lambda: request.latency)

        def forward(a):
            other.infer({0: a})
            return other.get_output_tensor(0).data.copy()

        def output():
            run()
            return to_cpu(request.get_output_tensor(0).data.copy())

        predict = fixed_batch(forward, int(x.shape[0]))
        build_s = time.perf_counter() - t0
        return Loaded(
            run,
            output,
            export_s=export_s,
            build_s=build_s,
            file=path,
            host_clock=True,
            predict=predict,
            again=lambda: self._compiled(
                ov_model, x, ctx=ctx, what=what, export_s=export_s, path=path
            ),
            size=lambda: _ir_bytes(ov_model, ctx.workdir / "ir" / what.replace(" ", "_")),
        )


def _ir_bytes(ov_model, folder) -> int:
    """Bytes of the model saved as OpenVINO IR (.xml + .bin, weights as they are: no fp16)."""
    import openvino as ov

    folder.mkdir(parents=True, exist_ok=True)
    xml = folder / "model.xml"
    ov.save_model(ov_model, str(xml), compress_to_fp16=False)
    return xml.stat().st_size + xml.with_suffix(".bin").stat().st_size


def _counters(infos, names) -> dict[tuple[str, str], float]:
    """ms per (module path, layer type) of the layers one inference executed."""
    out: dict[tuple[str, str], float] = {}
    for info in infos:
        if info.status.name != "EXECUTED":
            continue
        key = (names.module_of(info.node_name), info.node_type)
        out[key] = out.get(key, 0.0) + info.real_time.total_seconds() * 1e3
    return out


def _fused(runtime_model, names) -> dict[tuple[str, str], tuple[str, ...]]:
    """Per executed (module path, layer type): the other modules whose ops were fused into it."""
    out: dict[tuple[str, str], set[str]] = {}
    for op in runtime_model.get_ops():
        rt = op.get_rt_info()
        if "originalLayersNames" not in rt or "layerType" not in rt:
            continue
        key = (names.module_of(op.get_friendly_name()), rt["layerType"].astype(str))
        for original in rt["originalLayersNames"].astype(str).split(","):
            module = names.module_of(original)
            if original and module != key[0]:
                out.setdefault(key, set()).add(module)
    return {k: tuple(sorted(v)) for k, v in out.items()}


def _properties(ctx) -> dict:
    return {
        "INFERENCE_NUM_THREADS": ctx.threads,
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        # its default on CPUs with bf16 units is bf16: the figure would not be fp32's (an INT8
        # model's quantized ops stay INT8)
        "INFERENCE_PRECISION_HINT": "f32",
    }


def _nncf_int8(ov_model, calibration):
    import nncf

    nncf.set_log_level(logging.ERROR)
    attention = any(op.get_type_name() == "Softmax" for op in ov_model.get_ops())
    with warnings.catch_warnings(), quiet():
        warnings.simplefilter("ignore")
        return nncf.quantize(
            ov_model,
            nncf.Dataset([b.float().cpu().numpy() for b in calibration]),
            subset_size=len(calibration),
            model_type=nncf.ModelType.TRANSFORMER if attention else None,
        )
