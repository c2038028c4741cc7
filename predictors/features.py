"""Per-kernel features for the latency regressors, vectorised over an encoded `SpecTable`.

The features are what decides a kernel's time on a CPU: work (dense and effective FLOPs after
pruning), memory traffic (input, output and non-zero weight bytes), their ratio (arithmetic
intensity), the loop shape (spatial size, channels, kernel, stride, groups) and the sparse
structure (scheme, ratio, block shape / N:M / pattern parameters), and how much of the channel
tiles of CPU micro-kernels (4-64 lanes) a layer wastes — the steps of measured latency against
channel count (adding them took LiteRT conv2d from 92% to 99% of kernels within ±10% in
cross-validation), and whether channels are a multiple of 4 (ONNX Runtime runs other depthwise
convs ~10x slower); for generated sparse kernels, which vectorise along output positions, the
same waste in output pixels and the number of kept weights per output channel (both took
devprof-c pwconv from 93.0% to 95.9% within ±10% in 5-fold cross-validation), and how many
output channels share each loaded input vector in those kernels (their register blocking: N:M
and unstructured run one row per load, block and BCR a block's rows; took devprof-c conv2d from
92.2% to 95.3% within ±10% in 5-fold cross-validation). Sizes enter as log2 so trees split on
scale and the linear baseline stays well conditioned.

The feature list is versioned with the bundle format: a published predictor names the features
it was fitted on and `features(...)` must keep producing them in that order; new features are
only ever appended, so a bundle fitted on a prefix of them still loads.
"""
from __future__ import annotations

import numpy as np

from .spectable import BYTES_PER_ELEM, SCHEME_CODE, SpecTable, col

FEATURES = (
    "log_flops", "log_eff_flops", "log_params", "log_nnz", "log_in_bytes", "log_out_bytes",
    "log_w_bytes", "intensity", "log_out_pixels", "h", "w", "cin", "cout", "cin_per_group",
    "kh", "kw", "stride", "groups", "dilation", "n", "ratio", "density", "p1", "p2",
    "op", "scheme", "activation", "bias", "attrs_code", "out_h", "out_w",
    "cout_pad8", "cout_pad16", "cout_pad32", "cout_pad64", "cin_pad8", "cin_pad16", "cin_pad32", "cin_pad64",
    "cout_pad4", "cin_pad4",
    "opix_pad8", "opix_pad16", "opix_pad32", "opix_pad64", "log_nnz_per_cout", "rows_per_load",
)
#: Channel tiles of CPU micro-kernels: a kernel's work is padded up to them (cout_pad16 = ceil(cout/16)*16/cout).
#: 4 also tells whether channels are a multiple of 4: ONNX Runtime's fast depthwise path needs it.
TILES = (4, 8, 16, 32, 64)
#: Vector widths along output positions: devprof's generated kernels vectorise the spatial loop,
#: so a layer's work is padded up to them (opix_pad16 = ceil(out_pixels/16)*16/out_pixels).
PIXEL_TILES = (8, 16, 32, 64)
#: Output channels per register block of devprof's generated kernels (devprof.sparse.codegen):
#: dense blocks 4 rows, block / BCR a block's rows (default 4), every other scheme one row.
DENSE_ROWS = 4
#: Raw (linear-scale) quantities the FLOPs-linear baseline uses.
LINEAR_FEATURES = ("eff_flops", "bytes")
_FI = {f: i for i, f in enumerate(FEATURES)}


def feature_index(name: str) -> int:
    return _FI[name]


def features(table: SpecTable | np.ndarray) -> np.ndarray:
    """The feature matrix (rows x FEATURES), float64."""
    d = table.data if isinstance(table, SpecTable) else table
    c = lambda name: d[:, col(name)]  # noqa: E731
    n = len(d)
    bpe = BYTES_PER_ELEM[c("dtype").astype(np.int64)] if n else np.zeros(0)
    ratio = c("ratio")
    density = 1.0 - ratio
    flops = c("flops")
    eff = flops * density
    params = c("params")
    nnz = params * density
    in_b = c("n") * c("h") * c("w") * c("cin") * bpe
    out_pix = c("n") * c("out_h") * c("out_w")
    out_b = out_pix * c("cout") * bpe
    w_b = nnz * bpe
    X = np.empty((n, len(FEATURES)), dtype=np.float64)
    X[:, _FI["log_flops"]] = np.log2(flops + 1.0)
    X[:, _FI["log_eff_flops"]] = np.log2(eff + 1.0)
    X[:, _FI["log_params"]] = np.log2(params + 1.0)
    X[:, _FI["log_nnz"]] = np.log2(nnz + 1.0)
    X[:, _FI["log_in_bytes"]] = np.log2(in_b + 1.0)
    X[:, _FI["log_out_bytes"]] = np.log2(out_b + 1.0)
    X[:, _FI["log_w_bytes"]] = np.log2(w_b + 1.0)
    X[:, _FI["intensity"]] = eff / (in_b + out_b + w_b + 1.0)
    X[:, _FI["log_out_pixels"]] = np.log2(out_pix + 1.0)
    for name in ("h", "w", "cin", "cout", "kh", "kw", "stride", "groups", "dilation", "n", "p1", "p2",
                 "op", "scheme", "activation", "bias"):
        X[:, _FI[name]] = c(name)
    X[:, _FI["cin_per_group"]] = c("cin") / np.maximum(c("groups"), 1.0)
    # which variant of an op (activation kind, the ONNX op behind "other"...): its attrs' content
    # hash folded into [0, 1), exact in float32 as tree thresholds are
    X[:, _FI["attrs_code"]] = np.mod(c("attrs"), 1048576.0) / 1048576.0
    X[:, _FI["out_h"]] = c("out_h")
    X[:, _FI["out_w"]] = c("out_w")
    for ch in ("cout", "cin"):
        v = np.maximum(c(ch), 1.0)
        for t in TILES:
            X[:, _FI[f"{ch}_pad{t}"]] = np.ceil(v / t) * t / v
    opix = np.maximum(c("out_h") * c("out_w"), 1.0)
    for t in PIXEL_TILES:
        X[:, _FI[f"opix_pad{t}"]] = np.ceil(opix / t) * t / opix
    # the trip count of the inner loop over one output channel's kept weights
    X[:, _FI["log_nnz_per_cout"]] = np.log2(nnz / np.maximum(c("cout"), 1.0) + 1.0)
    # rows of a register block: each loaded input vector feeds that many FMAs
    s = c("scheme")
    blocked = (s == SCHEME_CODE["block"]) | (s == SCHEME_CODE["bcr"])
    block_rows = np.where(c("p1") >= 1.0, np.minimum(c("p1"), DENSE_ROWS), DENSE_ROWS)
    X[:, _FI["rows_per_load"]] = np.where(s == SCHEME_CODE["dense"], DENSE_ROWS, np.where(blocked, block_rows, 1.0))
    X[:, _FI["ratio"]] = ratio
    X[:, _FI["density"]] = density
    return X


def linear_features(table: SpecTable | np.ndarray) -> np.ndarray:
    """(effective FLOPs, bytes moved) in linear scale: the FLOPs-linear baseline's inputs."""
    d = table.data if isinstance(table, SpecTable) else table
    c = lambda name: d[:, col(name)]  # noqa: E731
    bpe = BYTES_PER_ELEM[c("dtype").astype(np.int64)] if len(d) else np.zeros(0)
    density = 1.0 - c("ratio")
    bytes_ = (c("n") * c("h") * c("w") * c("cin") + c("n") * c("out_h") * c("out_w") * c("cout")
              + c("params") * density) * bpe
    return np.stack([c("flops") * density, bytes_], axis=1) if len(d) else np.zeros((0, 2))
