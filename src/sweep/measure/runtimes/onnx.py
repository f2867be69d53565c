"""Runtimes that read the exported ONNX file (sweep.measure.runtimes.export): ONNX Runtime and
TensorRT (its execution provider); ONNX Runtime's INT8 form of the file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch

from sweep.errors import first_line
from sweep.measure.runtimes.base import (
    Context,
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


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    module = "onnxruntime"
    summary = "ONNX Runtime: CPU execution provider, CUDA on a GPU"

    def providers(self, ctx: Context) -> list[str]:
        return ["CUDAExecutionProvider"] if ctx.device.type == "cuda" else ["CPUExecutionProvider"]

    def unavailable(self, ctx):
        missing = missing_module("onnxruntime", "onnxruntime") or missing_module("onnx", "onnx")
        if missing:
            return missing
        if ctx.precision != "fp32":
            return f"measure.precision={ctx.precision}: {self.name} times fp32 exports only here"
        import onnxruntime as ort

        lacking = [p for p in self.providers(ctx) if p not in ort.get_available_providers()]
        if lacking:
            return f"onnxruntime has no {lacking[0]} here (on a GPU: onnxruntime-gpu)"
        return None

    def session(self, path: Path, ctx: Context, profile_prefix: str = ""):
        import onnxruntime as ort

        so = ort.SessionOptions()
        if profile_prefix:
            so.enable_profiling = True
            so.profile_file_prefix = profile_prefix
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
        path, export_s = onnx_file(model, x, ctx=ctx, what=what, runtime=self.name)
        return self._loaded(path, x, ctx=ctx, what=what, export_s=export_s)

    def profile(self, model, x, ctx, what, rounds):
        """ONNX Runtime's own profiler (`enable_profiling`): each node's kernel time per run of a
        session like the timed one, its node mapped back to the module it was exported from."""
        from sweep.measure.layer_times import median_times

        try:
            path, names = onnx_names(model, x, ctx=ctx, what=what, runtime=self.name)
            sess = self.session(path, ctx, profile_prefix=str(ctx.workdir / f"{what}-ort-profile"))
            feed = {sess.get_inputs()[0].name: x.float().cpu().numpy()}
            for _ in range(sum(rounds)):
                sess.run(None, feed)
            events = json.loads(Path(sess.end_profiling()).read_text())
        except RuntimeNotApplicable:  # no ONNX file to profile: said as the export said it
            raise
        except Exception as e:
            raise RuntimeNotApplicable(
                f"{self.name}: its profiler failed on the {what} model ({plain(first_line(e))})"
            ) from None
        return median_times(_ort_rounds(events, names, skip=rounds[0]))

    def int8(self, model, x, calibration, ctx, what):
        """The model's ONNX file through ONNX Runtime's static quantizer: QDQ, per-channel INT8
        weights, UINT8 activations calibrated by MinMax (its CPU kernels' U8S8 form). A kept model's
        file is quantized once for each set of calibration batches."""
        if ctx.device.type != "cpu":
            raise RuntimeNotApplicable(
                f"{self.name}: INT8 (QDQ) is timed on its CPU execution provider here; the job's "
                f"device is {ctx.device.type}"
            )
        path, _ = onnx_file(model, x, ctx=ctx, what=what, runtime=self.name)
        out = path.with_name(f"{path.stem}.int8-{calibration_digest(calibration)}.onnx")
        record = ctx.once(
            model,
            out.stem,
            lambda: timed_record(lambda: ort_int8(path, calibration, out=out)),
            (out,),
        )
        if "error" in record:
            raise RuntimeNotApplicable(
                f"{self.name}: its quantizer cannot take the {what} model ({record['error']})"
            )
        return self._loaded(out, x, ctx=ctx, what=f"{what} INT8", export_s=record["seconds"])

    def _loaded(self, path: Path, x, ctx: Context, what: str, export_s: float) -> Loaded:
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
        name = sess.get_inputs()[0].name
        predict = fixed_batch(lambda a: sess.run(None, {name: a})[0], int(x.shape[0]))
        return Loaded(
            run,
            lambda: to_cpu(self._fetch(run())),
            export_s=export_s,
            build_s=build_s,
            file=path,
            host_clock=True,
            predict=predict,
            again=lambda: self._loaded(
                path, x, ctx=ctx, what=what, export_s=export_s
            ),  # a session of its own
            size=lambda: path.stat().st_size,
        )

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


def _ort_rounds(events: list[dict], names, skip: int) -> list[dict[tuple[str, str], float]]:
    """Per run after the first `skip`: ms per (module path, op) of the nodes ONNX Runtime timed."""
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run")
    rounds: list[dict] = [{} for _ in runs]
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        i = next((i for i, (a, b) in enumerate(runs) if a <= e["ts"] <= b), None)
        if i is None:
            continue
        op = e.get("args", {}).get("op_name", "")
        key = (names.module_of(e["name"], op), op)
        rounds[i][key] = rounds[i].get(key, 0.0) + e["dur"] / 1e3
    return rounds[skip:]


@contextlib.contextmanager
def _working_in(folder: Path):
    """The working directory set to `folder` for a while (contextlib.chdir before Python 3.11)."""
    was = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(was)


def ort_int8(path: Path, calibration: list[torch.Tensor], out: Path | None = None) -> Path:
    """`path` quantized by ONNX Runtime's static quantizer into `out` (default: `<name>.int8.onnx`
    beside it)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = onnx.load(str(path), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(calibration)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {name: batch.float().cpu().numpy()}

    out = out or path.with_suffix(".int8.onnx")
    # its shape inference writes temporary files (a model's external data) into the working
    # directory: a folder of its own, beside the file (another job may quantize in the same folder),
    # which also takes the pre-processed model (not kept: only `out` is)
    with (
        warnings.catch_warnings(),
        quiet(),
        tempfile.TemporaryDirectory(dir=out.parent) as scratch,
        _working_in(Path(scratch)),
    ):
        warnings.simplefilter("ignore")
        source = Path(scratch) / "pre.onnx"
        try:  # shape inference and fusions ONNX Runtime recommends first; optional
            quant_pre_process(str(path), str(source))
        except Exception:
            source = path
        quantize_static(
            str(source),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    return out


class TensorRT(OnnxRuntime):
    name = "tensorrt"
    summary = "TensorRT through ONNX Runtime's TensorRT execution provider (CUDA GPUs only)"
    no_int8 = "TensorRT's INT8 calibration is not wired here (onnxruntime and openvino quantize)"

    no_profile = "TensorRT's per-layer profile (trtexec --dumpProfile) is not wired here"

    def int8(self, model, x, calibration, ctx, what):
        raise RuntimeNotApplicable(f"{self.name}: {self.no_int8}")

    def profile(self, model, x, ctx, what, rounds):
        raise RuntimeNotApplicable(f"{self.name}: {self.no_profile}")

    def providers(self, ctx):
        return ["TensorrtExecutionProvider", "CUDAExecutionProvider"]

    def unavailable(self, ctx):
        if ctx.device.type != "cuda":
            return f"tensorrt needs a CUDA GPU (the job's device is {ctx.device.type})"
        missing = missing_module("onnxruntime", "onnxruntime-gpu") or missing_module("onnx", "onnx")
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
