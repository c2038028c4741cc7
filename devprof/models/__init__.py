"""Whole models: built-in families (ONNX, random weights), variants, the graph walk, profiling.

    from devprof.models import build, walk, profile_model
    layers = walk("net.onnx", fusion="onnxruntime")   # -> ModelLayers (.layers, .specs, .unknown)

The profiling names load on first use, so the model sources (builders, walks, the shared layer
types of `devprof.models.layers`) import without the profilers and their runtimes.
"""
from __future__ import annotations

from typing import Any

from .builders import FAMILIES, build, reference_config
from .layers import Layer, ModelLayers
from .variants import variants
from .walk import FUSIONS, walk

__all__ = ["FAMILIES", "FUSIONS", "Layer", "ModelLayers", "build", "profile_model", "profile_models",
           "reference_config", "resolve_model", "variants", "walk"]

_PROFILING = ("profile_model", "profile_models", "resolve_model")


def __getattr__(name: str) -> Any:
    if name in _PROFILING:
        from . import profile

        return getattr(profile, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
