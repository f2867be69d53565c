"""Per-layer time as each runtime's own profiler reads it, named by the module it came from.

A profiler names what it timed in its own words: eager by module (hooks), ONNX Runtime by the node of
its optimised graph (`/layer1/layer1.0/act1/Relu_output_0_nchwc`: a Conv fused with the Relu after it,
named after the Relu's output), OpenVINO by the executed layer (`/layer1/layer1.0/conv1/Conv/WithoutBiases`,
the layers fused into it not run). `OnnxNames` maps either back to a node of the exported ONNX file and
that node to the module path it was exported from, so dense and pruned match layer by layer and every
runtime's row of a layer sits beside eager's.
"""

from __future__ import annotations

import ast
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch.nn as nn

__all__ = ["LayerTime", "ModulePaths", "OnnxNames", "median_times"]

# what ONNX Runtime appends to the node or tensor name it times (layout transforms, fusions)
_ORT_SUFFIX = re.compile(r"(_kernel_time|_nchwc|_token_\d+|_fence_(before|after))+$")


@dataclass(frozen=True, kw_only=True)
class LayerTime:
    layer: (
        str  # module path; "" where the node maps to no module (a layout reorder, the graph input)
    )
    op: str  # the op as the runtime names it (Conv, FusedConv, Convolution, Conv2d)
    ms: float  # median per call over the profiled rounds
    fused: tuple[str, ...] = ()  # other modules' ops fused into it (OpenVINO), by module path


def median_times(rounds: list[dict[tuple[str, str], float]]) -> list[LayerTime]:
    """Per (layer, op), the median over rounds of its ms in a round (0 in a round it did not run)."""
    keys = dict.fromkeys(k for r in rounds for k in r)
    return [
        LayerTime(layer=layer, op=op, ms=statistics.median(r.get((layer, op), 0.0) for r in rounds))
        for layer, op in keys
    ]


class ModulePaths:
    """The module paths of a model, and the path an exporter's scope names."""

    def __init__(self, model: nn.Module):
        self.paths = {name for name, _ in model.named_modules()}

    def __contains__(self, path: str) -> bool:
        return path in self.paths

    def of_scopes(self, scopes: Iterable[str]) -> str:
        """The deepest module a chain of scopes names. TorchScript's exporter names a node
        `/layer1/layer1.0/conv1/Conv` (each scope its module's name, qualified or not, then the op);
        the dynamo exporter's `name_scopes` are qualified paths. "" where none is a module."""
        current = ""
        for scope in scopes:
            parent = current.rpartition(".")[0]
            for candidate in (
                f"{current}.{scope}" if current else scope,
                scope,
                f"{parent}.{scope}",
            ):
                if candidate and candidate in self.paths:
                    current = candidate
                    break
        return current


class OnnxNames:
    """The module path of each node of an exported ONNX file, and of what a runtime calls a node."""

    def __init__(self, path: Path, modules: ModulePaths):
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
        self.modules = modules
        self.node_module: dict[str, str] = {}
        self.node_op: dict[str, str] = {}
        self.producer: dict[str, str] = {}  # tensor -> the node that makes it
        self.inputs: dict[str, list[str]] = {}
        for node in graph.node:
            self.node_module[node.name] = self._module(node)
            self.node_op[node.name] = node.op_type
            self.inputs[node.name] = list(node.input)
            for out in node.output:
                self.producer[out] = node.name

    def _module(self, node) -> str:
        meta = {p.key: p.value for p in node.metadata_props}
        if "pkg.torch.onnx.name_scopes" in meta:  # the dynamo exporter's
            try:
                return self.modules.of_scopes(ast.literal_eval(meta["pkg.torch.onnx.name_scopes"]))
            except (ValueError, SyntaxError):
                return ""
        return self.modules.of_scopes(node.name.strip("/").split("/")[:-1])

    def node_of(self, name: str, op: str = "") -> str | None:
        """The ONNX node a runtime's `name` is: the node itself, the node that makes the tensor it is
        named after, or for a fused node named after its last op's output, the node of type `op`
        upstream of it; also a name with a runtime's suffix (`/conv1/Conv/WithoutBiases`) or prefix
        (`input_f32_abcd_..._/conv1/Conv`, a reorder) around a node's name."""
        name = _ORT_SUFFIX.sub("", name)
        for candidate in _candidates(name):
            node = candidate if candidate in self.node_op else self.producer.get(candidate)
            if node is not None:
                return self._upstream(node, op) if op else node
        return None

    def _upstream(self, node: str, op: str, depth: int = 3) -> str:
        """`node`, or the nearest node of type `op` above it (ONNX Runtime names a Conv+Relu after
        the Relu's output); `node` itself where none is near."""
        frontier = [node]
        for _ in range(depth + 1):
            for n in frontier:
                if self.node_op.get(n) == op:
                    return n
            frontier = [
                self.producer[i]
                for n in frontier
                for i in self.inputs.get(n, [])
                if i in self.producer
            ]
        return node

    def module_of(self, name: str, op: str = "") -> str:
        node = self.node_of(name, op)
        return "" if node is None else self.node_module[node]


def _candidates(name: str) -> list[str]:
    """`name`, then it cut at each `/` from the right, each also without a prefix before `_/`."""
    cuts = [name]
    parts = name.split("/")
    cuts += ["/".join(parts[:i]) for i in range(len(parts) - 1, 1, -1)]
    out = []
    for cut in cuts:
        out.append(cut)
        if "_/" in cut:
            out.append("/" + cut.split("_/", 1)[1])
    return out


def by_layer(times: Iterable[LayerTime]) -> dict[str, float]:
    """ms per module path, summed over its ops."""
    out: dict[str, float] = defaultdict(float)
    for t in times:
        out[t.layer] += t.ms
    return dict(out)
