"""Per-kernel features for the latency regressors, vectorised over an encoded `SpecTable`.

The features are what decides a kernel's time on a CPU: work (dense and effective FLOPs after
pruning), memory traffic (input, output and non-zero weight bytes), their ratio (arithmetic
intensity), the loop shape (spatial size, channels, kernel, stride, groups) and the sparse
structure (scheme, ratio, block shape / N:M / pattern parameters), and how much of the channel
tiles of CPU micro-kernels (4-64 lanes) a layer wastes — the steps of measured latency against
channel count — and whether channels are a multiple of 4 (ONNX Runtime runs other depthwise
convs far slower); for generated sparse kernels, which vectorise along output positions, the
same waste in output pixels and the number of kept weights per output channel, and how many
output channels share each loaded input vector in those kernels (their register blocking: N:M
and unstructured run one row per load, block and BCR a block's rows). What each group of
features gained in cross-validation: docs/predictors.md, "Measured reasons". Sizes enter as
log2 so trees split on scale and the linear baseline stays well conditioned.

What a generated sparse kernel really executes differs from the nominal ratio: block pruning
keeps whole edge blocks, N:M's ragged tails keep their share, BCR merges a row block's rows over
the union of their columns; and a large layer's time follows the bytes it actually reads — only
the input channels some kept weight uses (at 0.95 a 56-channel layer may read 7) — against the
cache. `kernel_stats` gives the expected counts (FMAs, vector loads, register groups, input
channels read, output rows computed per position) from the spec alone, in closed form (no pruning
is run: a query stays vectorised); they feed the kernel cost terms below and four features (the
input bytes read, their share, the working set with the output, the rows computed).

Last, the tile over output positions the generated loop runs (`kernel_tile`), which depends on the
target's vector shape (floats per vector, registers): `features()` takes it, a bundle records it.
It is the fp32 kernels' shape; each row's data type picks its own kernel's tile: fp16 kernels have
8 halves per NEON register whatever the bundle's shape, int8 kernels tile in units of 16 positions.

The feature list is versioned with the bundle format: a published predictor names the features
it was fitted on and `features(...)` must keep producing them in that order; new features are
only ever appended, so a bundle fitted on a prefix of them still loads.
"""
from __future__ import annotations

import numpy as np

from .spectable import BYTES_PER_ELEM, DTYPE_CODE, OP_CODE, SCHEME_CODE, SpecTable, col

FEATURES = (
    "log_flops", "log_eff_flops", "log_params", "log_nnz", "log_in_bytes", "log_out_bytes",
    "log_w_bytes", "intensity", "log_out_pixels", "h", "w", "cin", "cout", "cin_per_group",
    "kh", "kw", "stride", "groups", "dilation", "n", "ratio", "density", "p1", "p2",
    "op", "scheme", "activation", "bias", "attrs_code", "out_h", "out_w",
    "cout_pad8", "cout_pad16", "cout_pad32", "cout_pad64", "cin_pad8", "cin_pad16", "cin_pad32", "cin_pad64",
    "cout_pad4", "cin_pad4",
    "opix_pad8", "opix_pad16", "opix_pad32", "opix_pad64", "log_nnz_per_cout", "rows_per_load",
    "log_read_bytes", "read_share", "log_working_set", "rows_share",
    "tile_positions", "tile_waste", "log_tiles",
    "dtype",
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
#: Raw (linear-scale) quantities a linear model may combine (its "inputs", named in the bundle):
#: effective FLOPs and bytes moved (the FLOPs-linear baseline), and the generated kernel's cost
#: terms — FMAs, vector loads and output elements over all positions, input elements, input
#: elements read, and positions x (channels read + written)^2 (streams the prefetchers juggle).
LINEAR_TERMS = ("eff_flops", "bytes", "fma_pos", "load_pos", "out_elems", "in_elems", "read_elems", "stream2_pos")
LINEAR_FEATURES = LINEAR_TERMS[:2]
#: The cost terms of devprof's generated kernels (`predictors.estimators`' kernel-cost candidate).
KERNEL_TERMS = LINEAR_TERMS[2:]
#: The vector shape devprof's code generator targets when a bundle does not say (an AVX-512 host:
#: 16 floats per vector, 32 registers; `devprof.artifacts.harness_build.vector_shape`). The tile
#: features depend on it; a predictor fitted for another target records its own
#: (predictor.json's ``kernel_geometry``).
VECTOR_FLOATS = 16
VECTOR_REGS = 32


#: (vector_floats, vector_regs) of each instruction set devprof-c generates kernels for, by the name
#: a runtime records in its ``isa`` option. The same figures as `devprof.artifacts.isa.ISAS` (a test
#: holds them equal); kept here so that fitting from records needs nothing from devprof.
ISA_GEOMETRY: dict[str, tuple[int, int]] = {"neon": (4, 32), "sse4.2": (4, 16), "avx2": (8, 16), "avx512": (16, 32)}
#: (halves per vector, vector registers) of devprof-c's fp16 kernels (`devprof.sparse.codegen_fp16`:
#: 8 halves per 128-bit NEON register, 32 registers). They exist on arm64 only, so a bundle's fp16
#: rows are tiled with this shape whatever fp32 shape it records (a test holds it to codegen_fp16).
FP16_GEOMETRY = (8, 32)
#: devprof-c's int8 kernels (`devprof.sparse.codegen_int8`) tile output positions in units of 16 (the
#: positions of one dot-product step), on every ISA: as many as there are up to 4 units, else a
#: multiple of 4 units up to 32, as long as the tile's input rows (K x positions bytes) fit 16 KiB.
INT8_UNIT = 16
INT8_TILE_UNITS = 4
INT8_TILE_UNITS_MAX = 32
INT8_TILE_BYTES = 16384


def kernel_geometry_of(d: object) -> dict[str, int]:
    """A predictor's ``kernel_geometry`` checked (ValueError if malformed); absent (None): the
    defaults above, which every bundle written before it existed was fitted with."""
    if d is None:
        return {"vector_floats": VECTOR_FLOATS, "vector_regs": VECTOR_REGS}
    ok = isinstance(d, dict) and set(d) == {"vector_floats", "vector_regs"} and all(
        isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1024 for v in d.values())
    if not ok:
        raise ValueError("kernel_geometry must hold vector_floats and vector_regs, integers in 1..1024")
    return {"vector_floats": int(d["vector_floats"]), "vector_regs": int(d["vector_regs"])}

_FI = {f: i for i, f in enumerate(FEATURES)}
#: How many of FEATURES every tree estimator sees; the generated kernels' read-bytes features after
#: them are for the kernel-cost candidate only (other runtimes' kernels do not follow devprof's codegen).
GENERIC_FEATURES = FEATURES.index("log_read_bytes")


def feature_index(name: str) -> int:
    return _FI[name]


def features(table: SpecTable | np.ndarray, vector_floats: int = VECTOR_FLOATS,
             vector_regs: int = VECTOR_REGS) -> np.ndarray:
    """The feature matrix (rows x FEATURES), float64. The vector shape is that of the target
    devprof's kernels were generated for; only the tile features depend on it."""
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
    # a matmul's second operand is an activation too (n x cin x cout), not a weight
    in_b = in_b + (c("op") == OP_CODE["matmul"]) * c("n") * c("cin") * c("cout") * bpe
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
    st = kernel_stats(d)
    read_b = st["read"] * c("n") * c("h") * c("w") * bpe
    X[:, _FI["log_read_bytes"]] = np.log2(read_b + 1.0)
    X[:, _FI["read_share"]] = st["read"] / np.maximum(c("cin"), 1.0)
    X[:, _FI["log_working_set"]] = np.log2(read_b + out_b + 1.0)
    X[:, _FI["rows_share"]] = st["rows"] / np.maximum(c("cout"), 1.0)
    t, q = kernel_tile(d, vector_floats, vector_regs)
    qpad = np.ceil(q / t) * t
    X[:, _FI["tile_positions"]] = t
    X[:, _FI["tile_waste"]] = qpad / q
    X[:, _FI["log_tiles"]] = np.log2(qpad / t)
    # the data type's code: int8 and fp32 run different kernels (the all-ops fallback pools them)
    X[:, _FI["dtype"]] = c("dtype")
    return X


def kernel_tile(table: SpecTable | np.ndarray, vector_floats: int = VECTOR_FLOATS,
                vector_regs: int = VECTOR_REGS) -> tuple[np.ndarray, np.ndarray]:
    """(positions per tile, positions per image) of devprof's generated kernel for each row, the
    kernel of the row's data type: fp32 rows on the target's vector shape (`_float_tile`), fp16 rows
    on FP16_GEOMETRY (the same generator over 8-half vectors), int8 rows in units of INT8_UNIT
    positions (`_int8_tile`; no matrix-vector or direct depthwise kernel in int8)."""
    d = table.data if isinstance(table, SpecTable) else table
    t, q = _float_tile(d, vector_floats, vector_regs)
    dt = d[:, col("dtype")]
    half = dt == DTYPE_CODE["fp16"]
    if half.any():
        t[half], q[half] = _float_tile(d[half], *FP16_GEOMETRY)
    i8 = dt == DTYPE_CODE["int8"]
    if i8.any():
        t[i8], q[i8] = _int8_tile(d[i8])
    return t, q


def _int8_tile(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`devprof.sparse.codegen_int8._tile_units` x INT8_UNIT: all the units of a layer of at most
    INT8_TILE_UNITS, else the multiple of INT8_TILE_UNITS (up to the cap the K x T input rows allow)
    that pads the fewest positions, ties to the wider tile."""
    c = lambda name: d[:, col(name)]  # noqa: E731
    q = _positions(d)
    units = np.ceil(q / INT8_UNIT)
    k = np.maximum(np.maximum(c("cin") / np.maximum(c("groups"), 1.0), 1.0) * c("kh") * c("kw"), 1.0)
    cap = np.maximum(INT8_TILE_UNITS, np.minimum(INT8_TILE_UNITS_MAX, np.floor(INT8_TILE_BYTES / (INT8_UNIT * k))))
    best_pad, best = np.full(len(d), np.inf), np.full(len(d), float(INT8_TILE_UNITS))
    for tu in range(INT8_TILE_UNITS, INT8_TILE_UNITS_MAX + 1, INT8_TILE_UNITS):
        pad = np.ceil(units / tu) * tu
        better = (tu <= cap) & (pad <= best_pad)
        best_pad, best = np.where(better, pad, best_pad), np.where(better, float(tu), best)
    return INT8_UNIT * np.where(units <= INT8_TILE_UNITS, np.maximum(units, 1.0), best), q


def _positions(d: np.ndarray) -> np.ndarray:
    """Output positions per image as the generated kernels count them: fc rows, else output rows x
    padded, stride-phase-split input columns (junk columns included)."""
    c = lambda name: d[:, col(name)]  # noqa: E731
    s = np.maximum(c("stride"), 1.0)
    wph = np.ceil((c("w") + 2.0 * c("padding")) / s)
    return np.maximum(np.where(c("op") == OP_CODE["fc"], c("n"), c("out_h") * wph), 1.0)


def _float_tile(d: np.ndarray, vector_floats: int, vector_regs: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions per tile, positions per image) of the fp32 generator's kernel (fp16's too, on its
    own vector shape), as `devprof.sparse.codegen.geometry` chooses them: the loop over output
    positions runs in tiles of NV x VL (NV vectors of VL floats, as many as the registers left by the row block allow,
    2NV/3..NV picked to waste the fewest padded positions). A layer's time steps with that
    padding and with how many tiles stream its input — which the pixel-count tiles
    (`opix_pad*`) only approximate: positions include the junk columns of strided/padded rows,
    and the tile is 80 positions for a 4-row block but 128 for one row. It is the tile of the
    scheme's own kernel: a spec whose attrs ask for another variant (``attrs.kernel``: csr, dense)
    is not told apart (attrs reach the features only as a hash). AVX-512 layers that codegen 14
    reads from column-shifted copies (`codegen.column_shifted`: rows padded to whole vectors, so
    fewer junk positions) are counted with the one-copy tile: bundles fitted on records of the
    earlier kernels must keep predicting what they did."""
    c = lambda name: d[:, col(name)]  # noqa: E731
    vl = float(vector_floats)
    fc = c("op") == OP_CODE["fc"]
    q = _positions(d)
    scheme = c("scheme")
    # one output row per register block for unstructured, N:M and 1-row blocks, else up to 4
    # (codegen._gen_groups); pattern kernels have their own register budget (_gen_pattern)
    block_rows = np.where(c("p1") >= 1.0, c("p1"), 4.0)
    single = ((scheme == SCHEME_CODE["unstructured"]) | (scheme == SCHEME_CODE["nm"])
              | ((scheme == SCHEME_CODE["block"]) & (block_rows == 1.0)))
    rmax = np.where(single, 1.0, float(DENSE_ROWS))
    cap = max(8, 64 // int(vector_floats))  # codegen.nv_cap: 64 positions' worth for narrow vectors
    nv = np.maximum(1.0, np.minimum(float(cap), np.floor((vector_regs - 4) / (rmax + 1.0))))
    nv = np.where(scheme == SCHEME_CODE["pattern"], max(1, min(cap, (vector_regs - 8) // 2)), nv)
    best_pad = np.full(len(d), np.inf)
    best_t = np.zeros(len(d))
    for k in range(1, cap + 1):  # NV' in [ceil(2NV/3), NV]; ties go to the wider tile
        ok = (k >= np.ceil(2.0 * nv / 3.0)) & (k <= nv)
        pad = np.ceil(q / (k * vl)) * (k * vl)
        better = ok & (pad <= best_pad)
        best_pad = np.where(better, pad, best_pad)
        best_t = np.where(better, k * vl, best_t)
    t = np.minimum(best_t, np.ceil(q / vl) * vl)
    gemv = fc & (c("n") <= 1.0)  # fc on one row: a matrix-vector kernel, one position
    # plain depthwise convs have their own kernel (devprof.sparse.depthwise): VL output columns
    # at a time along each output row, a scalar tail
    dw = ((c("op") == OP_CODE["dwconv2d"]) & (c("groups") == c("cin")) & (c("cout") == c("cin"))
          & (c("dilation") <= 1.0) & (scheme == SCHEME_CODE["dense"]))
    q = np.where(dw, np.maximum(c("out_w"), 1.0), q)
    t = np.where(dw, vl, t)
    return np.where(gemv, 1.0, t), q


def kernel_stats(table: SpecTable | np.ndarray) -> dict[str, np.ndarray]:
    """Expected structure of devprof's generated kernel (devprof.sparse.codegen) for each row, in
    closed form from the spec: ``fma`` and ``loads`` per output position, register ``groups``,
    input channels ``read`` (used by some kept weight) and output ``rows`` computed (the others are
    filled with the bias). FMAs and loads are exact for dense, unstructured and N:M, and for
    block where its blocks are whole (edge blocks: the largest are assumed kept first); the rest
    are expectations for a random mask (magnitude pruning of random weights) (their error
    against the generated code: docs/predictors.md, "Measured reasons")."""
    d = table.data if isinstance(table, SpecTable) else table
    c = lambda name: d[:, col(name)]  # noqa: E731
    s = c("scheme")
    r = np.clip(c("ratio"), 0.0, 1.0)
    dens = 1.0 - r
    G = np.maximum(c("groups"), 1.0)
    cout, cin = np.maximum(c("cout"), 1.0), np.maximum(c("cin"), 1.0)
    cog, cig = np.maximum(cout / G, 1.0), np.maximum(cin / G, 1.0)
    taps = np.maximum(c("kh") * c("kw"), 1.0)
    K = cig * taps  # columns of the (cout x K) weight matrix of one group
    p1, p2 = c("p1"), c("p2")
    # parameters a spec leaves out take devprof.sparse.pruning's defaults: blocks 4x1, BCR 4x16,
    # N:M 2:4 at ratio 0.5 and 1:round(1/(1-ratio)) otherwise
    unset = (p1 < 1.0) | (p2 < 1.0)
    half = np.abs(r - 0.5) < 1e-9
    nm_n = np.where(half, 2.0, 1.0)
    nm_m = np.where(half, 4.0, np.maximum(1.0, np.round(1.0 / np.maximum(dens, 1e-9))))
    p1 = np.where(unset, np.where(s == SCHEME_CODE["nm"], nm_n, 4.0), p1)
    p2 = np.where(unset, np.select([s == SCHEME_CODE["nm"], s == SCHEME_CODE["bcr"]], [nm_m, 16.0], 1.0), p2)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        fma = cout * K
        groups = G * np.ceil(cog / DENSE_ROWS)
        loads = K * groups
        read = cin.copy()
        rows = cout.copy()
        # unstructured / pattern: the kept weights fall anywhere; one output row per group
        m = (s == SCHEME_CODE["unstructured"]) | (s == SCHEME_CODE["pattern"])
        fma[m] = np.round(dens[m] * cout[m] * K[m])
        loads[m] = fma[m]
        rows[m] = groups[m] = cout[m] * (1.0 - r[m] ** K[m])
        read[m] = cin[m] * (1.0 - r[m] ** (cog[m] * taps[m]))
        # N:M: n of every m weights of a row, a ragged tail keeps its share; one row per group
        m = s == SCHEME_CODE["nm"]
        n_, m_ = p1[m], p2[m]
        full = np.floor(K[m] / m_)
        rem = K[m] - full * m_
        per_row = full * n_ + np.minimum(rem, np.ceil(n_ * rem / m_))
        fma[m] = cout[m] * per_row
        loads[m] = fma[m]
        rows[m] = groups[m] = cout[m]
        read[m] = cin[m] * (1.0 - (1.0 - np.minimum(per_row / K[m], 1.0)) ** (cog[m] * taps[m]))
        # block br x bc: the largest blocks are kept (full ones first); a row block with a kept
        # block is one group (of up to 4 rows per register block)
        m = s == SCHEME_CODE["block"]
        br, bc = p1[m], p2[m]
        nbr, nbc = np.ceil(cog[m] / br), np.ceil(K[m] / bc)
        nb = nbr * nbc * G[m]
        keep = np.round(dens[m] * nb)
        er, ec = cog[m] - (nbr - 1.0) * br, K[m] - (nbc - 1.0) * bc  # edge block sizes
        nfull = (nbr - (er < br)) * (nbc - (ec < bc)) * G[m]
        kf = np.minimum(keep, nfull)
        fma[m] = kf * br * bc + (keep - kf) * np.minimum(er * bc, br * ec)
        loads[m] = kf * bc + (keep - kf) * np.minimum(bc, ec)
        share = np.where(nb > 0, keep / nb, 0.0)
        live = nbr * G[m] * (1.0 - (1.0 - share) ** nbc)
        groups[m] = live * np.ceil(np.minimum(br, cog[m]) / DENSE_ROWS)
        rows[m] = np.minimum(cout[m], live * np.minimum(br, cog[m]))
        read[m] = cin[m] * (1.0 - (1.0 - share) ** (nbr * np.maximum(taps[m] / bc, 1.0)))
        # BCR br x bc: (row block, column) units kept with share dens^0.9 (devprof.sparse.pruning),
        # one vector load each; a row block's rows share the union of their columns
        m = s == SCHEME_CODE["bcr"]
        br = np.minimum(p1[m], cog[m])
        nbr = np.ceil(cog[m] / br)
        kc = np.minimum(1.0, dens[m] ** 0.9)
        units = kc * nbr * G[m] * K[m]
        nnz = np.round(dens[m] * cout[m] * K[m])  # the pruner hits its target count
        loads[m] = np.round(np.sqrt(units * nnz / br))
        # a merged row block computes its live rows over the union of their columns: a few
        # percent more FMAs than non-zeros, more as row pruning bites (d^-0.05: 1.04 at 0.5, 1.16 at 0.95)
        fma[m] = np.clip(np.round(nnz * np.maximum(dens[m], 1e-9) ** -0.05), loads[m],
                         loads[m] * np.minimum(br, DENSE_ROWS))
        live = nbr * G[m] * (1.0 - (1.0 - kc) ** K[m])
        groups[m] = live
        rows[m] = np.minimum(cout[m], live * br)
        q = np.clip(loads[m] / (nbr * G[m] * K[m]), 0.0, 1.0)  # share of units kept in the end
        read[m] = cin[m] * (1.0 - (1.0 - q) ** (nbr * taps[m]))
    clean = lambda a: np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)  # noqa: E731
    return {"fma": clean(fma), "loads": clean(loads), "groups": clean(groups), "read": clean(read),
            "rows": clean(rows)}


def generic_features(table: SpecTable | np.ndarray) -> np.ndarray:
    """`features` without the generated kernels' read-bytes columns."""
    return features(table)[:, :GENERIC_FEATURES]


def linear_features(table: SpecTable | np.ndarray, terms: tuple[str, ...] | list[str] = LINEAR_FEATURES) -> np.ndarray:
    """The named `LINEAR_TERMS` in linear scale (rows x len(terms)); by default (effective FLOPs,
    bytes moved), the FLOPs-linear baseline's inputs."""
    d = table.data if isinstance(table, SpecTable) else table
    if not len(d):
        return np.zeros((0, len(terms)))
    c = lambda name: d[:, col(name)]  # noqa: E731
    bpe = BYTES_PER_ELEM[c("dtype").astype(np.int64)]
    density = 1.0 - c("ratio")
    in_elems = c("n") * c("h") * c("w") * c("cin")
    pos = c("n") * c("out_h") * c("out_w")
    st = kernel_stats(d) if set(terms) & set(KERNEL_TERMS) else {}
    make = {
        "eff_flops": lambda: c("flops") * density,
        "bytes": lambda: (in_elems + pos * c("cout") + c("params") * density) * bpe,
        "fma_pos": lambda: pos * st["fma"],
        "load_pos": lambda: pos * st["loads"],
        "out_elems": lambda: pos * c("cout"),
        "in_elems": lambda: in_elems,
        "read_elems": lambda: c("n") * c("h") * c("w") * st["read"],
        "stream2_pos": lambda: pos * (st["read"] + c("cout")) ** 2,
    }
    return np.stack([make[t]() for t in terms], axis=1)
