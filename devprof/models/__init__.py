"""Whole models as sources: built-in families (ONNX, random weights), variants, the graph walks
and the shared layer types. Profiling them is `devprof.model_profiling`'s job; nothing here
imports it, so a walk or a build loads no runtime.

    from devprof.models import build, walk
    layers = walk("net.onnx", fusion="onnxruntime")   # -> ModelLayers (.layers, .specs, .unknown)
"""
from __future__ import annotations

from .builders import FAMILIES, build, reference_config
from .layers import Layer, ModelLayers
from .variants import variants
from .walk import FUSIONS, walk

__all__ = ["FAMILIES", "FUSIONS", "Layer", "ModelLayers", "build", "reference_config", "variants", "walk"]
