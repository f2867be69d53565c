"""PyTorch itself: eager mode and torch.compile."""

from __future__ import annotations

import copy
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

# PyTorch's quantized CPU backends, best first (x86: fbgemm and onednn chosen per op)
ENGINES = ("x86", "fbgemm", "qnnpack")


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
        kernels are CPU kernels."""
        if ctx.device.type != "cpu":
            raise RuntimeNotApplicable(
                f"eager: PyTorch's INT8 kernels run on the CPU; the job's device is {ctx.device.type}"
            )
        engine = next((e for e in ENGINES if e in torch.backends.quantized.supported_engines), None)
        if engine is None:
            raise RuntimeNotApplicable("eager: this PyTorch build has no quantized CPU engine")
        t0 = time.perf_counter()
        try:
            quantized = _fx_int8(model, x, calibration, engine)
        except Exception as e:
            raise RuntimeNotApplicable(
                f"eager: PyTorch's FX quantization cannot take the {what} model "
                f"({plain(first_line(e))})"
            ) from None
        return _int8_loaded(quantized, x, ctx, time.perf_counter() - t0)


def safetensors_bytes(model: nn.Module) -> int:
    """Bytes of the model's weights saved as safetensors (tied weights once), as a run saves them."""
    import tempfile

    from safetensors.torch import save_model

    with tempfile.TemporaryDirectory(prefix="sweep-size-") as tmp:
        path = f"{tmp}/model.safetensors"
        save_model(model, path)
        return Path(path).stat().st_size


def _int8_loaded(quantized, x, ctx, export_s: float) -> Loaded:
    step = eager_step(quantized, x, ctx.device, "fp32")

    @torch.no_grad()
    def predict(images):
        return to_cpu(quantized(images))

    def again():
        return _int8_loaded(copy.deepcopy(quantized), x, ctx, export_s)

    def size() -> int:  # quantized tensors have no safetensors form: PyTorch's own file
        buffer = io.BytesIO()
        torch.save(quantized.state_dict(), buffer)
        return buffer.getbuffer().nbytes

    return Loaded(
        step, lambda: to_cpu(step()), export_s, 0.0, predict=predict, again=again, size=size
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
