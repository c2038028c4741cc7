"""Whole models: built-in families (ONNX, random weights), variants, the graph walk, profiling.

    from devprof.models import build, walk, profile_model
    layers = walk("net.onnx", fusion="onnxruntime")   # -> ModelLayers (.layers, .specs, .unknown)
"""
from __future__ import annotations

from .builders import FAMILIES, build, reference_config
from .profile import profile_model, profile_models, resolve_model
from .variants import variants
from .walk import FUSIONS, Layer, ModelLayers, walk

__all__ = ["FAMILIES", "FUSIONS", "Layer", "ModelLayers", "build", "profile_model", "profile_models",
           "reference_config", "resolve_model", "variants", "walk"]
