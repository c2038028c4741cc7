"""Latency predictors and lookup tables for search code.

    import predictors
    p = predictors.load("datasets_latency/local/onnxruntime-t1")
    p.predict(specs).latency_us      # vectorised; exact LUT hits first, regressors for misses
    p.predict_model("net.onnx")      # sum of layers + fitted per-runtime overhead
    p.lut                            # the lookup table (pandas DataFrame)

Importing this package and querying a bundle needs only numpy (pandas for `p.lut`): no
scikit-learn, no torch, no device, no compiler. Fitting lives in `predictors.fit` (imports
scikit-learn). Bundle layout and versioning: `predictors.bundle`, docs/predictors.md. Specs: `predictors.spec`
(devprof builds on this package; this package imports nothing from devprof).
"""
from __future__ import annotations

import importlib
from typing import Any

_HOME = {"FORMAT_VERSION": "bundle", "BundleError": "bundle", "ModelPrediction": "predictor",
         "Predictions": "predictor", "Predictor": "predictor", "load": "predictor", "SpecTable": "spectable",
         "encode": "spectable", "KernelSpec": "spec", "Sparsity": "spec"}


def __getattr__(name: str) -> Any:
    """The public names, imported on first use: devprof imports `predictors.spec` for the spec
    types on every command, and that must not pull in the query machinery."""
    if name in _HOME:
        value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["FORMAT_VERSION", "BundleError", "ModelPrediction", "Predictions", "Predictor", "SpecTable",
           "encode", "load", "KernelSpec", "Sparsity"]
