"""What the runtime tests share: a mark for the deploy extra, a quantizer that refuses."""

from __future__ import annotations

import importlib.util

import pytest

needs_deploy = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("onnxruntime", "openvino", "nncf")),
    reason="the deploy extra is not installed",
)


def failing_quantizer(monkeypatch):
    import onnxruntime.quantization as ortq

    def refuses(*args, **kwargs):
        raise RuntimeError("Unsupported operator FancyOp\nwith a long trace")

    monkeypatch.setattr(ortq, "quantize_static", refuses)
