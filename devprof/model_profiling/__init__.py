"""Profiling whole models on the measurement session: local runtimes (`profile`), phones' own
runtimes (`phone`), pruned models layer by layer and as one generated program (`prune`,
`program`), with their results in `runs`.

Kept apart from the model sources (`devprof.models`: builders, walks, export), which never import
this package, so a walk or a build does not pull in the runtimes.

    from devprof.model_profiling import profile_model
    runs = profile_model("mobilenetv2@160", out="ds")
"""
from __future__ import annotations

from .profile import profile_model, profile_models, resolve_model

__all__ = ["profile_model", "profile_models", "resolve_model"]
