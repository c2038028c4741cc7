"""Whole models: built-in families (ONNX, random weights), variants, the graph walk, profiling."""
from __future__ import annotations

from .builders import FAMILIES, build, reference_config

__all__ = ["FAMILIES", "build", "reference_config"]
