"""Latency predictors and lookup tables for search code.

    import predictors
    p = predictors.load("datasets_latency/local/onnxruntime-t1")
    p.predict(specs).latency_us      # vectorised; exact LUT hits first, regressors for misses
    p.predict_model("net.onnx")      # sum of layers + fitted per-runtime overhead
    p.lut                            # the lookup table (pandas DataFrame)

Importing this package and querying a bundle needs only numpy (pandas for `p.lut`): no
scikit-learn, no torch, no device, no compiler. Fitting lives in `predictors.fit` (imports
scikit-learn). Bundle layout and versioning: `predictors.bundle`, docs/predictors.md.
"""
from __future__ import annotations

from .bundle import FORMAT_VERSION, BundleError
from .predictor import ModelPrediction, Predictions, Predictor, load
from .spectable import SpecTable, encode

__all__ = ["FORMAT_VERSION", "BundleError", "ModelPrediction", "Predictions", "Predictor", "SpecTable",
           "encode", "load"]
