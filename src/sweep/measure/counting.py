"""Parameter, MAC and sparsity counts.

MACs are counted at the level of torch functions as the model runs (a TorchFunctionMode): every
convolution, linear layer, matrix product and scaled-dot-product attention it executes, one
multiply-accumulate per output element per reduction step. Normalisation, activations, pooling and
element-wise ops are not counted. `macs_nonzero` counts a convolution or linear layer's MACs only for
its non-zero weights: the theoretical figure if zero weights were skipped (ShrinkBench's convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional
from torch.overrides import TorchFunctionMode

from sweep.pruners.layers import prunable_layers
from sweep.tracking import names

_CONV = {functional.conv1d, functional.conv2d, functional.conv3d}
_MATMUL = {
    torch.matmul,
    torch.Tensor.matmul,
    torch.Tensor.__matmul__,
    torch.bmm,
    torch.Tensor.bmm,
    torch.mm,
    torch.Tensor.mm,
    torch.addmm,
    torch.baddbmm,
}


def _arg(args, kwargs, i, name):
    return args[i] if len(args) > i else kwargs.get(name)


class MacCounter(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.macs = 0
        self.macs_nonzero = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in _CONV or func is functional.linear:
            weight = _arg(args, kwargs, 1, "weight")
            out_ch = weight.shape[0]
            per_out_channel = out.numel() // out_ch  # output positions (x batch) per output channel
            self.macs += per_out_channel * weight.numel()
            self.macs_nonzero += per_out_channel * int(torch.count_nonzero(weight))
        elif func in _MATMUL:
            a = args[1] if func in (torch.addmm, torch.baddbmm) else args[0]
            n = out.numel() * a.shape[-1]
            self.macs += n
            self.macs_nonzero += n
        elif func is functional.scaled_dot_product_attention:
            q, k, v = args[0], args[1], args[2]
            # q @ k^T: (.., L, E) x (.., E, S); attn @ v: (.., L, S) x (.., S, Ev)
            n = q.numel() // q.shape[-1] * k.shape[-2] * (q.shape[-1] + v.shape[-1])
            self.macs += n
            self.macs_nonzero += n
        return out


@torch.no_grad()
def count_macs(model: nn.Module, example_inputs: torch.Tensor) -> tuple[int, int]:
    """(macs, macs_nonzero) for one forward pass on `example_inputs` (per batch given)."""
    was_training = model.training
    model.eval()
    counter = MacCounter()
    with counter:
        model(example_inputs)
    model.train(was_training)
    return counter.macs, counter.macs_nonzero


@dataclass(frozen=True, kw_only=True)
class Counts:
    params_total: int
    params_nonzero: int
    macs: int
    macs_nonzero: int
    sparsity: float  # fraction of zero weights in prunable layers

    def metrics(self, prefix: str = "") -> dict[str, float]:
        values = (
            self.params_total,
            self.params_nonzero,
            self.macs,
            self.macs_nonzero,
            self.sparsity,
        )
        return {prefix + name: v for name, v in zip(names.COUNT_METRICS, values)}


def count(model: nn.Module, example_inputs: torch.Tensor) -> Counts:
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    nonzero = sum(int(torch.count_nonzero(p)) for p in params)
    weights = [m.weight for m in prunable_layers(model)]
    w_total = sum(w.numel() for w in weights)
    w_zero = sum(w.numel() - int(torch.count_nonzero(w)) for w in weights)
    macs, macs_nz = count_macs(model, example_inputs[:1])
    return Counts(
        params_total=total,
        params_nonzero=nonzero,
        macs=macs,
        macs_nonzero=macs_nz,
        sparsity=(w_zero / w_total) if w_total else 0.0,
    )
