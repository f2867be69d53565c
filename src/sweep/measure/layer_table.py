"""Dense beside pruned, layer by layer, in one runtime: where the time went.

Each layer's shape (channels in and out, MACs per image) is read from one eager forward; its time from
the runtime's profiler (`LayerTime`). Its *gap* is the time it takes beyond what its MACs predict: the
pruned time less the dense time scaled by the layer's own MAC ratio (by the model's, for a layer
without MACs: a norm, an activation, attention's matmuls inside its module). A layer's share is its
gap over the sum of the positive gaps: the layers with the largest shares are those behind a speedup
smaller than the MACs predict.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from sweep.measure.layer_times import LayerTime

__all__ = ["ALIGN", "LayerRow", "LayerShape", "Table", "compare", "layer_shapes"]

ALIGN = 16  # channel counts that are not multiples of it run on padded or scalar kernel tails


@dataclass(frozen=True, kw_only=True)
class LayerShape:
    kind: str  # module class
    ch_in: int | None
    ch_out: int | None
    macs: float  # per image


def layer_shapes(model: nn.Module, x: torch.Tensor) -> dict[str, LayerShape]:
    """Channels and MACs per image of every module with a weight, from one forward on `x`."""
    shapes: dict[str, LayerShape] = {}
    handles = []

    def hook(path):
        def record(m, args, out):
            if isinstance(out, torch.Tensor):
                shapes[path] = _shape(m, out, batch=int(x.shape[0]))

        return record

    for path, m in model.named_modules():
        if isinstance(getattr(m, "weight", None), torch.Tensor) and m is not model:
            handles.append(m.register_forward_hook(hook(path)))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return shapes


def _shape(m: nn.Module, out: torch.Tensor, batch: int) -> LayerShape:
    per_image = out.numel() / max(batch, 1)
    if isinstance(m, nn.modules.conv._ConvNd):
        k = m.weight.shape[1] * int(torch.tensor(m.weight.shape[2:]).prod())
        return LayerShape(
            kind=type(m).__name__, ch_in=m.in_channels, ch_out=m.out_channels, macs=per_image * k
        )
    if isinstance(m, nn.Linear):
        return LayerShape(
            kind="Linear",
            ch_in=m.in_features,
            ch_out=m.out_features,
            macs=per_image * m.in_features,
        )
    width = int(m.weight.shape[0]) if m.weight.dim() >= 1 else None
    return LayerShape(kind=type(m).__name__, ch_in=width, ch_out=width, macs=0.0)


@dataclass(frozen=True, kw_only=True)
class LayerRow:
    layer: str
    op: str  # the runtime's op of most of its pruned time
    dense: LayerShape | None
    pruned: LayerShape | None
    dense_ms: float
    pruned_ms: float
    gap_ms: float
    share: float  # of the positive gaps, 0..1
    fused: tuple[str, ...] = ()

    @property
    def aligned(self) -> bool | None:
        """Whether the pruned layer's channel counts are multiples of ALIGN (None: no channels)."""
        return self.multiple_of(ALIGN)

    def multiple_of(self, n: int) -> bool | None:
        """Whether the pruned layer's channel counts are multiples of `n` (None: no channels)."""
        s = self.pruned
        if s is None or s.ch_in is None:
            return None
        return s.ch_in % n == 0 and s.ch_out % n == 0

    def channels(self) -> str:
        d, p = self.dense, self.pruned
        if d is None or p is None or d.ch_in is None:
            return ""
        return f"{d.ch_in}->{p.ch_in} in, {d.ch_out}->{p.ch_out} out"


@dataclass(frozen=True, kw_only=True)
class Table:
    runtime: str
    rows: list[LayerRow]  # largest gap first
    named_ms: tuple[float, float]  # dense, pruned: time of the layers named by a module
    unnamed_ms: tuple[float, float]  # what maps to no module (reorders, the model's own forward)

    def coverage(self, harness_ms: tuple[float, float]) -> tuple[float, float]:
        """Dense and pruned: the named layers' time over the harness's median latency."""
        return tuple(n / h if h > 0 else float("nan") for n, h in zip(self.named_ms, harness_ms))

    def misaligned_share(self) -> float:
        """Share of the pruned named time in layers whose channels are not multiples of ALIGN."""
        off = sum(r.pruned_ms for r in self.rows if r.aligned is False)
        return off / self.named_ms[1] if self.named_ms[1] > 0 else 0.0

    def behind_gap(self, most: int = 3, min_share: float = 0.01) -> list[LayerRow]:
        """The few layers with the largest gaps (their shares say whether the gap is in a few layers
        or spread over many, as on a deep network pruned evenly)."""
        return [r for r in self.rows[:most] if r.share >= min_share]


def compare(
    runtime: str,
    times: tuple[list[LayerTime], list[LayerTime]],
    shapes: tuple[dict[str, LayerShape], dict[str, LayerShape]],
) -> Table:
    """Dense and pruned (`times`, `shapes`) matched by module path."""
    dense_t, pruned_t = _by_path(times[0]), _by_path(times[1])
    dense_s, pruned_s = shapes
    macs = [sum(s.macs for s in side.values()) for side in shapes]
    model_ratio = macs[1] / macs[0] if macs[0] > 0 else 1.0
    named = [k for k in dict.fromkeys([*dense_t, *pruned_t]) if k]
    gaps = {}
    for k in named:
        d, p = dense_s.get(k), pruned_s.get(k)
        ratio = p.macs / d.macs if d is not None and p is not None and d.macs > 0 else model_ratio
        gaps[k] = pruned_t.get(k, (0.0,))[0] - dense_t.get(k, (0.0,))[0] * ratio
    positive = sum(g for g in gaps.values() if g > 0)
    rows = [
        LayerRow(
            layer=k,
            op=(pruned_t.get(k) or dense_t[k])[1],
            dense=dense_s.get(k),
            pruned=pruned_s.get(k),
            dense_ms=dense_t.get(k, (0.0,))[0],
            pruned_ms=pruned_t.get(k, (0.0,))[0],
            gap_ms=gaps[k],
            share=max(gaps[k], 0.0) / positive if positive > 0 else 0.0,
            fused=(pruned_t.get(k) or dense_t[k])[2],
        )
        for k in named
    ]
    rows.sort(key=lambda r: -r.gap_ms)
    return Table(
        runtime=runtime,
        rows=rows,
        named_ms=tuple(sum(v[0] for k, v in t.items() if k) for t in (dense_t, pruned_t)),
        unnamed_ms=tuple(t.get("", (0.0,))[0] for t in (dense_t, pruned_t)),
    )


def _by_path(times: list[LayerTime]) -> dict[str, tuple[float, str, tuple[str, ...]]]:
    """Per module path: its ms summed over its ops, the op of most of it, what was fused into it."""
    out: dict[str, tuple[float, str, tuple[str, ...]]] = {}
    for t in sorted(times, key=lambda t: -t.ms):
        ms, op, fused = out.get(t.layer, (0.0, t.op, ()))
        out[t.layer] = (ms + t.ms, op, tuple(dict.fromkeys([*fused, *t.fused])))
    return out
