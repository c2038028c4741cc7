"""Pruned models (`--prune SCHEME:RATIO`): placeholder until the devprof-c harness lands."""
from __future__ import annotations

from ..errors import UsageError


def profile_pruned(models, device, threads, out, resume, protocol, suite, prune, on_model=None):
    raise UsageError("--prune needs the devprof-c runtime (generated sparse kernels), not available yet")
