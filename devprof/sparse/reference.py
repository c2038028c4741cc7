"""Numpy reference for generated kernels, in the harness layout (NCHW activations, (n, cin) fc).

`full_output` computes the whole output (tests, small shapes); `reference_samples` only the output
elements the harness checks (all of them for small outputs, a seeded sample plus the corners for
large ones), so a 720p layer's reference costs milliseconds, not a full convolution.
"""
from __future__ import annotations

import numpy as np

from ..runtimes.reference import activation as _act
from ..records import KernelSpec

FULL_CHECK_MAX = 1 << 16
SAMPLES = 8192


def _padded(spec: KernelSpec, x: np.ndarray) -> np.ndarray:
    p = spec.padding
    return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))


def full_output(spec: KernelSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float64 output: (n, cout, oh, ow) for convs, (n, cout) for fc. `w` is the pruned weight."""
    w64, x64 = np.asarray(w, np.float64), np.asarray(x, np.float64)
    if spec.op == "fc":
        return _act(x64 @ w64.T + b, spec.activation)
    xp = _padded(spec, x64)
    s, g = spec.stride, spec.groups
    cig, cog = spec.cin // g, spec.cout // g
    oh, ow = spec.out_h, spec.out_w
    out = np.zeros((spec.n, spec.cout, oh, ow))
    for gi in range(g):
        wg = w64[gi * cog:(gi + 1) * cog]  # (cog, kh, kw, cig)
        xg = xp[:, gi * cig:(gi + 1) * cig]
        for i in range(spec.kh):
            for j in range(spec.kw):
                patch = xg[:, :, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s]  # n, cig, oh, ow
                out[:, gi * cog:(gi + 1) * cog] += np.einsum("ncij,oc->noij", patch, wg[:, i, j, :])
    return _act(out + b[None, :, None, None], spec.activation)


def sample_indices(spec: KernelSpec) -> np.ndarray:
    total = spec.output_elems
    if total <= FULL_CHECK_MAX:
        return np.arange(total, dtype=np.int64)
    rng = np.random.default_rng(int(spec.id[:8], 16))
    edge = np.concatenate([np.arange(256), total - 256 + np.arange(256)])
    return np.unique(np.concatenate([edge, rng.integers(0, total, SAMPLES)])).astype(np.int64)


def reference_samples(spec: KernelSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray,
                      idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(flat output indices as int32, expected float32 values) for the harness's check."""
    if idx is None:
        idx = sample_indices(spec)
    if spec.op == "fc" or spec.output_elems <= FULL_CHECK_MAX:
        full = full_output(spec, x, w, b).ravel()
        return idx.astype(np.int32), full[idx].astype(np.float32)
    oh, ow, cout = spec.out_h, spec.out_w, spec.cout
    n_i, rem = np.divmod(idx, cout * oh * ow)
    co, rem = np.divmod(rem, oh * ow)
    r, c = np.divmod(rem, ow)
    xp = _padded(spec, x)
    g = spec.groups
    cig, cog = spec.cin // g, cout // g
    out = np.empty(len(idx))
    ki, kj, kc = np.meshgrid(np.arange(spec.kh), np.arange(spec.kw), np.arange(cig), indexing="ij")
    for lo in range(0, len(idx), 512):
        sl = slice(lo, lo + 512)
        gi = co[sl] // cog
        rows = r[sl, None, None, None] * spec.stride + ki[None]
        cols = c[sl, None, None, None] * spec.stride + kj[None]
        chans = gi[:, None, None, None] * cig + kc[None]
        patch = xp[n_i[sl, None, None, None], chans, rows, cols].astype(np.float64)  # S, kh, kw, cig
        out[sl] = np.einsum("shwc,shwc->s", patch, np.asarray(w, np.float64)[co[sl]])
    out = _act(out + b[co], spec.activation)
    return idx.astype(np.int32), out.astype(np.float32)
