"""Deterministic tensors for generated kernels, shared bit-for-bit with the native harness.

Weights come from numpy's seeded generator (the same dense weights for every scheme of a layer,
so schemes prune the same tensor). Inputs are not shipped to the device: both sides compute them
from a counter-based hash (`dp_input_value` in harness_android/dp_harness.h), so a 720p layer's
input costs nothing to transfer.
"""
from __future__ import annotations

import numpy as np

from ..records import KernelSpec, Sparsity

_GOLDEN = np.uint32(0x9E3779B9)


def dense_seed(spec: KernelSpec) -> int:
    """Seed of the dense layer behind `spec` (sparsity removed: all schemes share weights)."""
    return int(spec.replace(sparsity=Sparsity()).id[:8], 16)


def input_seed(spec: KernelSpec) -> int:
    return (dense_seed(spec) ^ 0x5BD1E995) & 0xFFFFFFFF


def hash32(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint32, copy=True)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return x


def input_values(seed: int, count: int, start: int = 0) -> np.ndarray:
    """float32 values in [-1, 1), element i = dp_input_value(seed, i) of the C harness."""
    with np.errstate(over="ignore"):
        i = np.arange(start, start + count, dtype=np.uint64).astype(np.uint32)
        h = hash32(i * _GOLDEN + np.uint32(seed & 0xFFFFFFFF))
    return ((h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / 8388608.0) - np.float32(1.0)).astype(np.float32)


def input_tensor(spec: KernelSpec) -> np.ndarray:
    """The input the harness generates, in its layout: NCHW for convs, (n, cin) for fc."""
    seed = input_seed(spec)
    if spec.op == "fc":
        return input_values(seed, spec.n * spec.cin).reshape(spec.n, spec.cin)
    return input_values(seed, spec.input_elems).reshape(spec.n, spec.cin, spec.h, spec.w)


def dense_weights(spec: KernelSpec) -> tuple[np.ndarray, np.ndarray]:
    """(weights, bias): conv weights OHWI (I = cin/groups), fc (cout, cin); bias zeros if none."""
    rng = np.random.default_rng(dense_seed(spec))
    ws = spec.weight_shape
    fan_in = int(np.prod(ws[1:]))
    w = (rng.standard_normal(ws) / np.sqrt(fan_in)).astype(np.float32)
    b = (0.1 * rng.standard_normal(spec.cout)).astype(np.float32) if spec.bias else np.zeros(spec.cout, np.float32)
    return w, b
