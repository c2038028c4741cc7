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

__all__ = ["CHECKED", "GRAPH_RTOL", "reference_output", "compare"]


def reference_output(model, feeds: dict) -> np.ndarray:
    """The first output of `model` on `feeds` by ONNX's numpy reference evaluator."""
    from onnx.reference import ReferenceEvaluator

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
