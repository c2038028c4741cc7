"""The numpy check of whole ONNX graphs (search-space blocks, whole models) before they are timed.

Single kernels are checked against `reference.reference`; a graph of many nodes is checked
against ONNX's own reference evaluator (`onnx.reference`, numpy), which runs every node with the
ONNX semantics — so a runtime's fused or rewritten graph that computes a different answer is an
error outcome, never a timing. How close it must come is relative to the output's largest
magnitude: whole graphs accumulate rounding over many layers, which a per-element tolerance
would punish.
"""
from __future__ import annotations

import numpy as np

from .base import CHECKED

#: Largest |got - want| allowed, as a fraction of max |want|.
GRAPH_RTOL = 1e-3

#: The same for a quantized (QDQ) graph: the reference dequantizes, computes in float and
#: quantizes again, while the runtime's fused integer kernels round their own way; one-LSB
#: differences in an intermediate activation grow through the layers after it. Wrong weights, a
#: wrong layout, a missing layer or saturating int8 dot products (full 8-bit weights on x86
#: without VNNI) are far beyond this.
INT8_GRAPH_RTOL = 0.05

__all__ = ["CHECKED", "GRAPH_RTOL", "INT8_GRAPH_RTOL", "graph_rtol", "reference_output", "compare"]


def graph_rtol(model) -> float:
    """The tolerance of `compare` for `model`'s output: INT8_GRAPH_RTOL for a quantized graph."""
    from ..models.quantize import is_quantized

    return INT8_GRAPH_RTOL if is_quantized(model) else GRAPH_RTOL


def reference_output(model, feeds: dict) -> np.ndarray:
    """The first output of `model` on `feeds` by ONNX's numpy reference evaluator (a quantized
    graph below opset 19 is converted first: the evaluator has QuantizeLinear / DequantizeLinear
    from 19 on)."""
    from onnx.reference import ReferenceEvaluator

    from ..models.quantize import is_quantized

    if is_quantized(model) and next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 19) < 19:
        from onnx import version_converter

        model = version_converter.convert_version(model, 19)
    return np.asarray(ReferenceEvaluator(model).run(None, feeds)[0])


def compare(got, want, rtol: float = GRAPH_RTOL) -> str:
    """'' when `got` matches `want`, else a one-line reason."""
    got, want = np.asarray(got), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return f"output shape {tuple(got.shape)} != expected {tuple(want.shape)}"
    if not np.all(np.isfinite(got)):
        return "output contains NaN or Inf"
    if not want.size:
        return ""
    scale = float(np.abs(want).max()) or 1.0
    err = float(np.abs(got.astype(np.float64) - want).max()) / scale
    return "" if err <= rtol else f"output differs from the numpy reference by {err:.2e} of its range"
