"""PyTorch itself: eager mode and torch.compile."""

from __future__ import annotations

import copy
import hashlib
import io
import time
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from sweep.errors import first_line
from sweep.measure.latency import eager_step
from sweep.measure.runtimes.base import (
    Loaded,
    Runtime,
    RuntimeNotApplicable,
    plain,
    to_cpu,
)

# PyTorch's quantized CPU engines, in the order tried (x86: fbgemm and onednn chosen per op; onednn:
# oneDNN's kernels alone, which take channel counts x86's depthwise kernel runs slowly)
ENGINES = ("x86", "onednn", "fbgemm", "qnnpack")


class Eager(Runtime):
    name = "eager"
    summary = "PyTorch eager mode (the job's main latency figures)"

    def load(self, model, x, ctx, what):
        if ctx.channels_last and x.dim() == 4:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        step = eager_step(model, x, ctx.device, ctx.precision)
        return Loaded(
            step,
            lambda: to_cpu(step()),
            0.0,
            0.0,
            again=lambda: self.load(copy.deepcopy(model), x, ctx, what),  # weights elsewhere
            size=lambda: safetensors_bytes(model),
        )

    def profile(self, model, x, ctx, what, rounds):
        """Module hooks: each module's self time (its span less its children's)."""
        from sweep.measure.module_hooks import module_times

        if ctx.channels_last and x.dim() == 4:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        try:
            return module_times(model, x, ctx.device, ctx.precision, rounds=rounds)
        except Exception as e:
            raise RuntimeNotApplicable(
                f"eager: profiling failed ({plain(first_line(e))})"
            ) from None

    def int8(self, model, x, calibration, ctx, what):
        """PyTorch's own post-training static INT8 (FX graph mode, per-channel weights): its INT8
        kernels are CPU kernels. Built for the x86 engine; where that runs the model slower than its
        FP32 form, for oneDNN's too, and the faster is kept (`kernels`): x86's depthwise kernel takes
        some channel counts a pruned model has 40x slower (mobilenetv4_conv_large pruned by 0.3:
        537 channels), oneDNN's does not. The dense model's is built once per process."""
        if ctx.device.type != "cpu":
            raise RuntimeNotApplicable(
                f"eager: PyTorch's INT8 kernels run on the CPU; the job's device is {ctx.device.type}"
            )
        engines = [e for e in ENGINES if e in torch.backends.quantized.supported_engines]
        if not engines:
            raise RuntimeNotApplicable("eager: this PyTorch build has no quantized CPU engine")
        kept = ctx.kept.get(id(model)) if what == "dense" else None
        key = (str(kept.folder), _digest(calibration)) if kept is not None else None
        if key is not None and key in _DENSE_INT8:
            quantized, engine, seconds = _DENSE_INT8[key]
        else:
            t0 = time.perf_counter()
            quantized, engine = _fastest_int8(
                model, x, calibration=calibration, engines=engines[:2], what=what
            )
            seconds = time.perf_counter() - t0
            if key is not None:
                _DENSE_INT8.clear()  # the previous model's goes before this one is kept
                _DENSE_INT8[key] = (quantized, engine, seconds)
        return _int8_loaded(quantized, x, ctx=ctx, export_s=seconds, engine=engine)


# the dense model's INT8 form, (its folder of kept forms, the calibration's digest) ->
# (quantized model, engine, seconds it took): one entry, the grid's current model
_DENSE_INT8: dict[tuple[str, str], tuple[nn.Module, str, float]] = {}
# INT8 slower than its FP32 form by more than this in every engine: PyTorch's kernels have no sane
# path for the model (its figure would be the kernel's, not pruning's); tiny models run 1.6-1.8x
# slower in INT8 (quantize and dequantize around small layers)
INSANE_INT8 = 4.0


def _digest(calibration: list[torch.Tensor]) -> str:
    h = hashlib.sha256()
    for batch in calibration:
        h.update(batch.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _median_ms(model: nn.Module, x: torch.Tensor, calls: int = 5) -> float:
    with torch.no_grad():
        model(x)
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return 1e3 * sorted(times)[calls // 2]


def _fastest_int8(model, x, calibration, engines: list[str], what: str) -> tuple[nn.Module, str]:
    """The model's FX INT8 form for the first engine, or for another where the first runs it
    slower than the FP32 model and the other is faster. Engines are compared on forms calibrated on
    one batch (the kernels, not the scales, decide the speed); the one kept is calibrated on all."""
    tried: dict[str, float] = {}
    fp32_ms = None
    for engine in engines:
        try:
            probe = _fx_int8(model, x, calibration[:1], engine)
        except Exception as e:
            if tried:
                continue
            raise RuntimeNotApplicable(
                f"eager: PyTorch's FX quantization cannot take the {what} model "
                f"({plain(first_line(e))})"
            ) from None
        tried[engine] = _median_ms(probe, x)
        fp32_ms = fp32_ms if fp32_ms is not None else _median_ms(model.eval(), x)
        if tried[engine] <= fp32_ms:
            break
    engine = min(tried, key=tried.get)
    slower = tried[engine] / fp32_ms
    if slower > INSANE_INT8:
        raise RuntimeNotApplicable(
            f"eager: PyTorch's INT8 kernels run the {what} model {slower:.1f}x slower than its "
            f"FP32 form in every engine tried ({', '.join(tried)}): a kernel path for its layer "
            f"shapes, not a figure"
        )
    return _fx_int8(model, x, calibration, engine), engine


def safetensors_bytes(model: nn.Module) -> int:
    """Bytes of the model's weights saved as safetensors (tied weights once), as a run saves them."""
    import tempfile

    from safetensors.torch import save_model

    with tempfile.TemporaryDirectory(prefix="sweep-size-") as tmp:
        path = f"{tmp}/model.safetensors"
        save_model(model, path)
        return Path(path).stat().st_size


def _int8_loaded(quantized, x, ctx, export_s: float, engine: str) -> Loaded:
    step = eager_step(quantized, x, ctx.device, "fp32")

    @torch.no_grad()
    def predict(images):
        return to_cpu(quantized(images))

    def again():
        return _int8_loaded(copy.deepcopy(quantized), x, ctx=ctx, export_s=export_s, engine=engine)

    def size() -> int:  # quantized tensors have no safetensors form: PyTorch's own file
        buffer = io.BytesIO()
        torch.save(quantized.state_dict(), buffer)
        return buffer.getbuffer().nbytes

    return Loaded(
        step,
        lambda: to_cpu(step()),
        export_s,
        0.0,
        predict=predict,
        again=again,
        size=size,
        kernels=engine,
    )


def _fx_int8(model, x, calibration, engine: str):
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = engine
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.ao.quantization's notice that it moves to torchao
        observed = prepare_fx(
            copy.deepcopy(model).eval(), get_default_qconfig_mapping(engine), (x,)
        )
        for batch in calibration:
            observed(batch)
        return convert_fx(observed)


class Compiled(Runtime):
    name = "compile"
    summary = "torch.compile (inductor); its compilation is export_seconds"
    no_int8 = "PyTorch's INT8 models are timed in eager here, not compiled"
    # inductor fuses modules into kernels named after neither; its own trace is not mapped back here
    no_profile = "inductor's fused kernels carry no module path to match dense to pruned by"

    def load(self, model, x, ctx, what):
        t0 = time.perf_counter()
        try:
            compiled = torch.compile(model, dynamic=False)
            step = eager_step(compiled, x, ctx.device, ctx.precision)
            step()  # compiles
        except Exception as e:
            raise self.not_applicable(what, e) from None
        return Loaded(step, lambda: to_cpu(step()), time.perf_counter() - t0, 0.0)
