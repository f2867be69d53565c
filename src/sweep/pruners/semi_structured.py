"""2:4 semi-structured sparsity: in every group of 4 consecutive weights along a layer's input dim,
the 2 smallest |w| are zeroed. Shapes stay dense, so dense kernels run as fast as before; NVIDIA's
sparse tensor cores (Ampere or newer, fp16/bf16) skip the zeros, which makes it the one mask real
hardware accelerates. `accelerate` gives the timed model those kernels where they exist.
"""

from __future__ import annotations

import logging

import torch
import torch.nn as nn

from sweep.pruners.base import Calibration, Family, PruneKind, Pruner
from sweep.pruners.layers import prunable_layers

log = logging.getLogger("sweep")

SEMI = Family("semi_structured", "2:4 semi-structured sparsity (sparse tensor cores)", 2)
N, M = 2, 4  # keep N of every M


def _grouped(w: torch.Tensor) -> torch.Tensor:
    """A view of `w` as (..., M) groups along the input dim (conv: input channels at each tap)."""
    if w.dim() == 2:
        return w.reshape(w.shape[0], -1, M)
    return w.permute(0, *range(2, w.dim()), 1).reshape(-1, w.shape[1] // M, M)


def eligible(layer: nn.Module) -> bool:
    return layer.weight.shape[1] % M == 0  # depthwise convs (1 input channel) cannot be grouped


def mask_2_4(w: torch.Tensor) -> torch.Tensor:
    """1 where a weight is kept: the N largest |w| of each group of M along the input dim."""
    groups = _grouped(w.detach().abs())
    keep = torch.zeros_like(groups)
    keep.scatter_(-1, groups.topk(N, dim=-1).indices, 1.0)
    if w.dim() == 2:
        return keep.reshape(w.shape)
    shape = (w.shape[0], *w.shape[2:], w.shape[1])
    return keep.reshape(shape).permute(0, w.dim() - 1, *range(1, w.dim() - 1)).contiguous()


class SemiStructured24(Pruner):
    kind = PruneKind.SEMI_STRUCTURED
    family = SEMI
    ratio_means = (
        "fraction of prunable weights zeroed, reached by making whole layers 2:4 sparse, largest "
        "first (each such layer loses half its weights, so 0.5 and above: every eligible layer)"
    )

    def prune(
        self,
        model: nn.Module,
        ratio: float,
        example_inputs: torch.Tensor,
        calibration: Calibration | None = None,
    ) -> nn.Module:
        layers = prunable_layers(model)
        total = sum(m.weight.numel() for m in layers)
        zeroed = 0
        with torch.no_grad():
            for m in sorted(filter(eligible, layers), key=lambda m: -m.weight.numel()):
                if zeroed >= ratio * total:
                    break
                m.weight.mul_(mask_2_4(m.weight))
                zeroed += m.weight.numel() // 2
        return model

    def accelerate(
        self, model: nn.Module, device: torch.device, precision: str
    ) -> tuple[nn.Module, int]:
        """Linear layers swapped to torch's semi-structured sparse tensors, where the device has the
        kernels (CUDA, compute capability >= 8.0, fp16/bf16); returns the model and how many layers."""
        if device.type != "cuda" or precision not in ("fp16", "bf16"):
            return model, 0
        if torch.cuda.get_device_capability(device) < (8, 0):
            return model, 0
        from torch.sparse import to_sparse_semi_structured

        dtype = torch.float16 if precision == "fp16" else torch.bfloat16
        model = model.to(dtype)
        done = 0
        for m in prunable_layers(model):
            if not isinstance(m, nn.Linear) or not eligible(m):
                continue
            try:
                m.weight = nn.Parameter(to_sparse_semi_structured(m.weight.detach()))
                done += 1
            except (RuntimeError, ValueError) as e:  # shapes the kernels do not take stay dense
                log.debug("2:4 kernels: %s stays dense: %s", tuple(m.weight.shape), e)
        return model, done
