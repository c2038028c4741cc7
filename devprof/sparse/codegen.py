"""C code generation: one kernel specialised to a layer's actual sparse structure.

Every conv is computed as an implicit GEMM  Y[co, q] = sum_k W[co, k] * X[k, q]  where q runs over
output positions and X is never materialised: the input is copied once per call into a padded,
stride-phase-split, channel-major buffer (`xc`), in which the input element a weight column k
meets at output position q sits at ``xc[off[k] + q]``. So a sparse weight column is just an
offset, every kind of conv (3x3 s1/s2, 1x1, grouped, depthwise) is the same loop, and the inner
loop is a contiguous vector load along q (vectorised along the spatial dimension).
An fc layer with many rows (a transformer's token x hidden GEMM) packs each tile of T rows into
a (cin x T) panel just before the tile's kernels run, so its columns are contiguous and in cache.

Kernels are built from *groups*: R output channels sharing one list of columns (a dense R x nc
block of values). Register blocking keeps R x NV vector accumulators (NV vectors of q) and reuses
each loaded input vector R times. Schemes differ only in how rows are grouped:
  dense          every conv group's rows in blocks of up to 4, all columns
  bcr            the rows of a block row-block with equal column structure (GRIM); a row-block
                 whose rows differ a little is merged with zero padding when the waste is small
  block r x c    the r rows of a block row-block share their kept columns (r > 1), or one row
  nm / unstructured / csr   one row per group, its own columns (R = 1, wider NV)
  pattern        PatDNN: rows reordered by pattern histogram; per row, kernels run grouped by
                 pattern with the 4 taps' offsets compiled in as constants (unrolled)
On AVX-512 the one-row groups of a conv whose input panel outgrows L1 run channel block by channel
block (`channel_block`), every row of the tile over one block before the next.
Loops run over data arrays (offsets, values), so sources stay small and compile in well under a
second; only fixed small structures (register blocks, pattern taps) are unrolled. The exception:
on AVX-512 the one-row schemes of stride-1 convs with whole-vector output rows compile their kept
weights into the code (`unrolled`).

For several threads every kernel also exports a prep (the shared input copies) and a range entry
over (tile, group) chunks, with a per-group cost the harness splits by: see `Chunking`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..records import KernelSpec
from . import depthwise, unrolled
from .pruning import PruneResult, block_param, prune
from .reference import reference_samples
from .weights import dense_weights, input_seed, input_tensor

VARIANTS = ("sparse", "csr", "dense")
BCR_MERGE_WASTE = 0.35
ACT_CODES = {"none": 0, "relu": 1, "relu6": 2, "hswish": 3}


def unsupported(spec: KernelSpec, dtypes: tuple[str, ...] = ("fp32",)) -> str | None:
    """None when a generated kernel exists for `spec`, else why not. `dtypes`: the element types
    the caller generates (fp16 kernels are this generator's C over half vectors: `codegen_fp16`)."""
    if spec.op not in ("conv2d", "dwconv2d", "pwconv", "fc"):
        return f"devprof-c generates conv and fc kernels only, not {spec.op}"
    if spec.dtype not in dtypes:
        return "devprof-c kernels are fp32"
    if spec.dilation != 1:
        return "dilated convolutions are not generated"
    if spec.activation not in ACT_CODES:
        return f"activation {spec.activation} is not generated"
    if spec.sparsity.scheme == "pattern" and (spec.op == "fc" or (spec.kh, spec.kw) != (3, 3)):
        return "pattern sparsity needs a 3x3 convolution"
    if spec.op == "fc" and (spec.n * spec.cin >= 2**31 or spec.n * spec.cout >= 2**31):
        return "too large"
    if spec.input_elems >= 2**31 or spec.output_elems >= 2**31:
        return "too large"
    return None


@dataclass(frozen=True)
class Geometry:
    """How the implicit GEMM walks one layer (all numbers become C constants)."""

    mode: str  # "conv" | "fc" | "gemv" | "depthwise" (its own kernel: sparse/depthwise.py)
    t: int  # output positions per tile (NV * VL, or 1 for gemv)
    nv: int
    q: int  # positions per image (conv: oh * wph, junk columns included; fc: n)
    qpad: int
    hph: int = 1
    wph: int = 1
    plane: int = 1
    cs: int = 1  # channel stride in xc
    xc_size: int = 0
    shifts: int = 0  # column-shifted copies of each channel (`column_shifted`), 0 for none

    def offset(self, spec: KernelSpec, ci: int, i: int, j: int) -> int:
        if self.mode == "gemv":
            return ci
        if self.mode == "fc":
            return ci * self.t
        if self.shifts:  # copy j holds the padded input shifted left by j columns
            return ci * self.cs + j * self.plane + i * self.wph
        s = spec.stride
        return ci * self.cs + ((i % s) * s + j % s) * self.plane + (i // s) * self.wph + j // s


def _pick_tile(q: int, vl: int, nv: int) -> int:
    """Positions per tile: NV' x VL with NV' in [2NV/3, NV] wasting the fewest padded positions
    (e.g. 28x28 = 784 = 7 x 112: no waste instead of 12% with 128), ties to the wider tile."""
    best = None
    for n in range(max(1, -(-2 * nv // 3)), nv + 1):
        t = n * vl
        key = (-(-q // t) * t, -n)
        if best is None or key < best[0]:
            best = (key, t)
    return min(best[1], -(-q // vl) * vl)


# Output channels per input channel from which the column-shifted copies pay (`column_shifted`)
SHIFT_MIN_ROWS_PER_CHANNEL = 2


def column_shifted(spec: KernelSpec, vl: int) -> bool:
    """Whether a stride-1 convolution with kernel columns reads its input from one copy per
    kernel column (copy j shifted left by j), rows padded to whole vectors, instead of one padded
    copy. In the one copy, a tile's tap (i, j) starts i rows and j columns from the tile, so
    almost every vector load is unaligned; with 64-byte vectors (AVX-512) every unaligned load
    splits two cache lines, which halves the loads the core issues per cycle, and one-row sparse
    kernels do one load per FMA. In the copies every load is aligned, and when the output width
    is a whole number of vectors the tiles store straight into the output. The copies cost kw
    times the copying and memory traffic (in proportion to the input channels) while the loads
    they align are in proportion to the output rows, so they are used only where the layer has at
    least SHIFT_MIN_ROWS_PER_CHANNEL output channels per input channel. Measured on the SR 3x3
    layers (Zen 4, 1 thread): 32->128 1.1-1.4x faster, 3->32 1.6x; 128->32 0.5-0.7x without
    the rule. Narrower vectors keep one copy: a 16- or 32-byte unaligned load splits a line at
    most every other time."""
    return (vl >= 16 and spec.op == "conv2d" and spec.stride == 1 and spec.kw > 1
            and spec.dilation == 1 and spec.cout >= SHIFT_MIN_ROWS_PER_CHANNEL * spec.cin)


# Kept weights per input channel (loads of each copied input float) from which a one-row 1x1
# kernel's padded copy pays (`channels_padded`)
PAD_MIN_READS = 8


def channels_padded(spec: KernelSpec, vl: int, one_row: bool, nnz: int) -> bool:
    """Whether a 1x1 stride-1 unpadded conv copies its input to channels of whole vectors rather
    than reading the NCHW input in place: for one-row kernels with 64-byte vectors (AVX-512)
    where a channel is not a whole number of vectors (14x14, 7x7). In place, channel c starts c x
    H x W floats in, so 3 channels in 4 are unaligned and every load from them splits two cache
    lines, and a one-row kernel does one load per FMA; the copy is one pass over the input, paid
    back where each copied float is loaded at least PAD_MIN_READS times (`nnz` / input channels).
    Measured side by side (1 thread): one-row kernels 1.12-1.43x faster at 0.75 on every 7x7 and
    14x14 MobileNetV2 pointwise layer, at 0.9 up to 1.4x where a float is read 10+ times and
    0.85-0.95x where 6 (14x14 192->64); kernels of 4-row blocks load once per 4 FMAs and lost to
    the copy (14x14: 0.85-0.91x), so they keep reading in place."""
    return (vl >= 16 and one_row and spec.op in ("pwconv", "conv2d") and (spec.kh, spec.kw) == (1, 1)
            and spec.stride == 1 and spec.padding == 0 and (spec.h * spec.w) % vl != 0
            and nnz >= PAD_MIN_READS * spec.cin)


def staged_input(spec: KernelSpec, geo: Geometry, units: int) -> bool:
    """Whether a channel-blocked one-row kernel (`channel_block`) whose input is copied to channels
    of whole vectors (`channels_padded`) stages that copy block by block instead: before a tile's
    rows run over a channel block, the block's slice of the input (its channels x the tile's
    positions) is copied into a small buffer that stays in L1, rather than the whole input being
    copied once per call into a buffer of its size. Used where every thread would make its own
    whole copy (one tile per call, or unit-major: threads split the rows, and each reads all of the
    input): that copy is the part of the call that more threads do not shorten, and cross-core
    reads of one shared copy cost more than it. Staged, each copied line is written to L1 and read
    from there, not written back to L2 and read again, so the copy costs less on every thread
    count. Each range call stages what it reads, so the harness runs a thread's share as one call
    (`Chunking.parts`)."""
    tiles = spec.n * (geo.qpad // geo.t)
    return (geo.mode == "conv" and not geo.shifts and spec.groups == 1 and geo.cs != geo.plane
            and (spec.kh, spec.kw, spec.stride, spec.padding) == (1, 1, 1, 0)
            and (tiles == 1 or is_unit_major(geo, tiles, units + 1)))  # + 1: a unit of empty rows, if any


def geometry(spec: KernelSpec, vl: int, nv: int, aligned: bool = False, one_row: bool = False,
             nnz: int = 0) -> Geometry:
    """`aligned`: the fp32 generator's aligned layouts, column-shifted input copies where
    `column_shifted` says so and channels of whole vectors where `channels_padded` does (for
    `one_row` kernels of `nnz` kept weights); the int8 generator lays out its own copy."""
    if spec.op == "fc":
        if spec.n == 1:
            return Geometry("gemv", 1, 1, 1, 1)
        t = _pick_tile(spec.n, vl, nv)
        qpad = -(-spec.n // t) * t
        return Geometry("fc", t, t // vl, spec.n, qpad, xc_size=spec.cin * t)
    s, p = spec.stride, spec.padding
    if aligned and column_shifted(spec, vl):
        hph, wph = spec.h + 2 * p, -(-spec.out_w // vl) * vl
        plane = hph * wph
        q = spec.out_h * wph
        t = _pick_tile(q, vl, nv)
        qpad = -(-q // t) * t
        cs = spec.kw * plane
        return Geometry("conv", t, t // vl, q, qpad, hph, wph, plane, cs, spec.cin * cs + qpad, spec.kw)
    hph, wph = -(-(spec.h + 2 * p) // s), -(-(spec.w + 2 * p) // s)
    plane = hph * wph
    q = spec.out_h * wph
    t = _pick_tile(q, vl, nv)
    qpad = -(-q // t) * t
    cs = s * s * plane
    if aligned and channels_padded(spec, vl, one_row, nnz):
        cs = -(-plane // vl) * vl
    return Geometry("conv", t, t // vl, q, qpad, hph, wph, plane, cs, spec.cin * cs + qpad)


@dataclass
class Group:
    rows: list[int]
    cols: list[int]  # column indices k of the (cout x K) weight matrix


@dataclass
class GeneratedKernel:
    """One generated kernel: its C source, its data arrays and the facts the harness needs."""

    name: str
    spec: KernelSpec
    variant: str
    source: str
    arrays: list[np.ndarray]  # reference idx, reference values, then the kernel's own arrays
    in_elems: int
    out_elems: int
    ws_floats: int
    seed: int
    stats: dict = field(default_factory=dict)
    chunking: "Chunking | None" = None  # None: one thread only

    @property
    def symbol(self) -> str:
        return f"dpk_{self.name}"


# ---- grouping --------------------------------------------------------------------------------
def _row_cols(mask2: np.ndarray) -> list[tuple[int, ...]]:
    return [tuple(np.flatnonzero(r).tolist()) for r in mask2]


def _chunk(groups: list[Group], rmax: int) -> list[Group]:
    out = []
    for g in groups:
        for i in range(0, len(g.rows), rmax):
            out.append(Group(g.rows[i:i + rmax], g.cols))
    return out


def make_groups(spec: KernelSpec, mask2: np.ndarray, variant: str, rmax: int) -> list[Group]:
    """Rows sharing a column list, per the scheme's structure (see module doc)."""
    cout = spec.cout
    cog = cout // spec.groups
    scheme = spec.sparsity.scheme
    if variant == "dense":
        allc = list(range(mask2.shape[1]))
        return _chunk([Group(list(range(g * cog, (g + 1) * cog)), allc) for g in range(spec.groups)], rmax)
    cols = _row_cols(mask2)
    if variant == "csr" or scheme in ("unstructured", "nm", "dense"):
        rb = 1 if (variant == "csr" or scheme != "dense") else rmax
    elif scheme == "block":
        rb = block_param(spec.sparsity, (4, 1))[0]
    elif scheme == "bcr":
        rb = block_param(spec.sparsity, (4, 16))[0]
    else:
        rb = 1
    groups: list[Group] = []
    for g in range(spec.groups):
        for r0 in range(g * cog, (g + 1) * cog, rb):
            rows = [r for r in range(r0, min(r0 + rb, (g + 1) * cog)) if cols[r]]
            if not rows:
                continue
            sets: dict[tuple[int, ...], list[int]] = {}
            for r in rows:
                sets.setdefault(cols[r], []).append(r)
            if len(sets) > 1 and scheme == "bcr" and variant == "sparse":
                union = sorted(set().union(*[set(cols[r]) for r in rows]))
                useful = sum(len(cols[r]) for r in rows)
                if 1.0 - useful / (len(union) * len(rows)) <= BCR_MERGE_WASTE:
                    groups.append(Group(rows, union))
                    continue
            groups.extend(Group(rs, list(c)) for c, rs in sets.items())
    return _chunk(groups, rmax)


# ---- C emission ------------------------------------------------------------------------------
def _act_expr(kind: str, v: str) -> str:
    if kind == "relu":
        return f"({v} > 0.f ? {v} : 0.f)"
    if kind == "relu6":
        return f"({v} < 0.f ? 0.f : ({v} > 6.f ? 6.f : {v}))"
    if kind == "hswish":
        return f"dp_act({v}, 3)"
    return v


def _accumulate(r: int, nv: int, vl: int, step: int = 1) -> list[str]:
    """The micro-kernels' shared inner loop: for each kept column, R weights x NV input vectors.
    When a column's R weights are exactly one vector (R == VL: 4-row blocks on NEON/SSE) they are
    loaded as one and used lane by lane (NEON's by-element fmla: one load instead of R broadcasts).
    `step` > 1 (one row, `column_step`): the loop takes `step` columns at a time, their weights
    as one vector used lane by lane, so the offset/weight/counter work is paid once per `step`
    columns; the last nc % step columns run one at a time (no padding, no wasted FMAs)."""
    L = []
    if step > 1:
        L += ["    int j = 0;", f"    for (; j + {step} <= nc; j += {step}) {{",
              "        const dp_vw wv = dp_ldw(val + j);"]
        L += [f"        const float *b{c} = xq + off[j + {c}]; dp_pin(b{c});" for c in range(step)]
        for c in range(step):
            L += ["        dp_col_fence();"] if c else []
            L += [f"        a0_{v} = dp_fma_lane(a0_{v}, dp_ld(b{c} + {v} * DP_VL), wv, {c});" for v in range(nv)]
        L += ["    }", "    for (; j < nc; j++) {"]
    else:
        L += ["    for (int j = 0; j < nc; j++) {"]
    L += ["        const float *b = xq + off[j];"]
    L += [f"        const dp_v b{v} = dp_ld(b + {v} * DP_VL);" for v in range(nv)]
    if r == vl and r > 1:
        L += [f"        const dp_vw wv = dp_ldw(val + (size_t)j * {r});"]
        L += [f"        a{i}_{v} = dp_fma_lane(a{i}_{v}, b{v}, wv, {i});" for i in range(r) for v in range(nv)]
    else:
        L += [f"        const float w{i} = val[(size_t)j * {r} + {i}];" for i in range(r)]
        L += [f"        a{i}_{v} = dp_fma(a{i}_{v}, w{i}, b{v});" for i in range(r) for v in range(nv)]
    return L + ["    }"]


def column_step(r: int, vl: int, regs: int) -> int:
    """Kept columns per inner-loop step: 4 for one-row blocks on NEON, else 1. A one-row step
    does only NV FMAs, so its fixed work (offset load, address, weight broadcast, loop counter)
    is a large share of the loop; four columns share one weight load (a q register, used lane by
    lane) and one counter, and their inputs stream through the registers the accumulators leave
    free. x86 keeps one column: no by-element FMA, and its loads fold into the FMAs."""
    return 4 if r == 1 and vl == 4 and regs >= 32 else 1


def nv_cap(vl: int) -> int:
    """Most vectors of positions per register block: 8, or 64 positions' worth for narrow vectors
    (NEON/SSE4.2: 16), so a one-row block on NEON's 32 registers is wide enough that the column's
    offset and weight loads are paid once per 14 FMAs rather than once per 7."""
    return max(8, 64 // vl)


def _mk_spatial(r: int, nv: int, t: int, vl: int, step: int = 1) -> str:
    """Register-blocked micro-kernel: R rows x NV vectors of positions, one shared column list."""
    L = [f"static inline void mk_{r}(const float *restrict xq, const int32_t *restrict off, const float *restrict val,",
         "                          int nc, const int32_t *restrict rows, float *restrict ct) {"]
    L += [f"    dp_v a{i}_{v} = dp_zero();" for i in range(r) for v in range(nv)]
    L += _accumulate(r, nv, vl, step)
    L += [f"    dp_st(ct + (size_t)rows[{i}] * {t} + {v} * DP_VL, a{i}_{v});" for i in range(r) for v in range(nv)]
    L += ["}"]
    return "\n".join(L)


_VACT = {"none": "{}", "relu": "dp_relu({})", "relu6": "dp_relu6({})", "hswish": "dp_hswish({})"}


def _mk_direct(r: int, nv: int, ystride: int, act: str, vl: int, step: int = 1) -> str:
    """Like `_mk_spatial` but for a tile of whole output rows: accumulators start at the bias and
    are stored straight into the NCHW output with the activation applied (no tile buffer pass)."""
    L = [f"static inline void mkd_{r}(const float *restrict xq, const int32_t *restrict off, const float *restrict val,",
         "                           int nc, const int32_t *restrict rows, float *restrict yq, const float *restrict bias) {"]
    L += [f"    dp_v a{i}_{v} = dp_splat(bias[rows[{i}]]);" for i in range(r) for v in range(nv)]
    L += _accumulate(r, nv, vl, step)
    L += [f"    dp_st(yq + (size_t)rows[{i}] * {ystride} + {v} * DP_VL, {_VACT[act].format(f'a{i}_{v}')});"
          for i in range(r) for v in range(nv)]
    L += ["}"]
    return "\n".join(L)


# Bytes of input one channel block of a one-row tile may span: about half of a 32 KB L1, so the
# block's panel stays in L1 while every row of the tile passes over it (with the rows' output
# vectors and their offsets and weights streaming past)
KBLOCK_BYTES = 24576
# The same for column-shifted copies (`column_shifted`), whose kw windows per channel are disjoint:
# measured on 32->128 3x3 at 0.9 (1 thread, one-row kernels), 24 KB (5 blocks) 2.07 ms, 40 KB
# (3 blocks) 1.81-1.84 ms, 64 KB (2 blocks) 2.0 ms: a block's windows are not all read by every
# row, and fewer blocks mean fewer reloads of the accumulators
KBLOCK_SHIFTED_BYTES = 40960
# Fewest expected nonzeros per (row, channel block): below it the accumulators' reload and store
# per block cost more than the L2 reads the blocking saves; fewer where at least KBLOCK_MANY_ROWS
# rows share each block's fill of L1 (14x14x576->96 at 0.9: 5 per block, 61 -> 50 us; with 24
# rows, 56x56x144->24, it was 4% slower)
KBLOCK_MIN_NNZ = 8
KBLOCK_MIN_NNZ_MANY = 4
KBLOCK_MANY_ROWS = 64


def channel_block(spec: KernelSpec, geo: Geometry, vl: int, single: bool, density: float) -> int:
    """Input channels per block of the blocked one-row kernel (`_mk_blocked`), 0 for none.

    A one-row group reuses no input vector across rows, so each of its FMAs loads one vector of
    the tile's input panel (K columns x T positions); when the panel outgrows L1 (14x14 with
    576 channels: 250 KB) every output row sweeps it from L2 again, and the kernel is bound by
    L2 bandwidth rather than the FMA pipes. Splitting the channels into blocks whose slice of
    the panel fits KBLOCK_BYTES, and running every row of the tile over one block before the
    next, keeps the loads in L1 at the price of one reload and store of the row's accumulators
    per block. Chosen for AVX-512 (16 floats: one cache line per load, and 32 registers) only;
    NEON and AVX2 builds keep the one-pass kernel."""
    if not single or vl < 16 or geo.mode != "conv":
        return 0
    cig = spec.cin // spec.groups
    taps = sorted({geo.offset(spec, 0, i, j) for i in range(spec.kh) for j in range(spec.kw)})
    span, end = 0, None  # floats of one channel a tile touches: the union of [tap, tap + T)
    for o in taps:
        span += geo.t if end is None or o >= end else o + geo.t - end
        end = o + geo.t
    cb = max(1, (KBLOCK_SHIFTED_BYTES if geo.shifts else KBLOCK_BYTES) // (4 * span))
    nb = -(-cig // cb)
    if nb <= 1:
        return 0
    cb = -(-cig // nb)  # balanced blocks
    many = spec.cout // spec.groups >= KBLOCK_MANY_ROWS
    if density * cb * spec.kh * spec.kw < (KBLOCK_MIN_NNZ_MANY if many else KBLOCK_MIN_NNZ):
        return 0
    return cb


def _mk_blocked(nv: int, vl: int, ystride: int, act: str, name: str) -> str:
    """One row's columns of one channel block (`channel_block`) over a tile: `f` is the block's
    column count << 2 | 1 on the row's first block (accumulators start at `bias`) | 2 on its
    last (the activation is applied on the store); between them the accumulators go through
    the row's tile of `yr` (the output, or the tile buffer with bias 0 and no activation)."""
    acc = [f"a0_{v}" for v in range(nv)]
    L = [f"static inline void {name}(const float *restrict xq, const int32_t *restrict off, const float *restrict val,",
         "                           int f, float *restrict yr, float bias) {",
         "    const int nc = f >> 2;", *_block_start(acc, "f")]
    L += _accumulate(1, nv, vl)
    L += _block_finish(acc, "f", act)
    L += ["}"]
    return "\n".join(L)


def _block_start(acc: list[str], flags: str) -> list[str]:
    """A channel block's accumulators: from `bias` on the row's first block (`flags` & 1), else
    reloaded from the row's tile of `yr` (the previous block's partial sums)."""
    return [*[f"    dp_v {a};" for a in acc],
            f"    if ({flags} & 1) {{", *[f"        {a} = dp_splat(bias);" for a in acc],
            "    } else {", *[f"        {a} = dp_ld(yr + {v} * DP_VL);" for v, a in enumerate(acc)], "    }"]


def _block_finish(acc: list[str], flags: str, act: str) -> list[str]:
    """A channel block's store to `yr`, the activation applied on the row's last block (`flags` & 2)."""
    L = []
    if act != "none":
        L += [f"    if ({flags} & 2) {{", *[f"        {a} = {_VACT[act].format(a)};" for a in acc], "    }"]
    return L + [f"    dp_st(yr + {v} * DP_VL, {a});" for v, a in enumerate(acc)]


def _blocked_segments(spec: KernelSpec, geo: Geometry, groups: list[Group], cb: int, wm2: np.ndarray
                      ) -> tuple[list[int], list[int], list[float], int]:
    """The one-row groups' columns split by channel block, block-major: (segment table of
    (count << 2 | first | last << 1, start) per block and group, offsets, weights, blocks)."""
    cig = spec.cin // spec.groups
    nb = -(-cig // cb)
    per = [[[k for k in g.cols if (k % cig) // cb == b] for b in range(nb)] for g in groups]
    first = [next(b for b in range(nb) if p[b]) for p in per]
    last = [max(b for b in range(nb) if p[b]) for p in per]
    seg, offs, vals = [], [], []
    for b in range(nb):
        for gi, g in enumerate(groups):
            cols = per[gi][b]
            seg += [(len(cols) << 2 | (b == first[gi]) | (b == last[gi]) << 1) if cols else 0, len(offs)]
            offs += _col_offsets(spec, geo, g.rows[0], cols)
            vals += wm2[g.rows[0], cols].tolist()
    return seg, offs, vals, nb


def _mk_gemv(r: int, vl: int = 0) -> str:
    """GEMV (fc with one row): R rows at once; R = vector width vectorises across channels
    (one vector of R weights per column, 4 accumulators to hide the FMA latency)."""
    L = [f"static inline void mk_{r}(const float *restrict xq, const int32_t *restrict off, const float *restrict val,",
         "                          int nc, const int32_t *restrict rows, float *restrict ct) {"]
    if r == vl:
        L += ["    dp_v a0 = dp_zero(), a1 = dp_zero(), a2 = dp_zero(), a3 = dp_zero();", "    int j = 0;",
              "    for (; j + 4 <= nc; j += 4) {"]
        L += [f"        a{u} = dp_fma(a{u}, xq[off[j + {u}]], dp_ld(val + (size_t)(j + {u}) * {r}));" for u in range(4)]
        L += ["    }", f"    for (; j < nc; j++) a0 = dp_fma(a0, xq[off[j]], dp_ld(val + (size_t)j * {r}));",
              f"    float t[{r}];", "    dp_st(t, dp_add(dp_add(a0, a1), dp_add(a2, a3)));",
              f"    for (int i = 0; i < {r}; i++) ct[rows[i]] = t[i];", "}"]
        return "\n".join(L)
    if r == 1:
        L += ["    float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;", "    int j = 0;",
              "    for (; j + 4 <= nc; j += 4) {",
              "        s0 += val[j] * xq[off[j]]; s1 += val[j + 1] * xq[off[j + 1]];",
              "        s2 += val[j + 2] * xq[off[j + 2]]; s3 += val[j + 3] * xq[off[j + 3]];", "    }",
              "    for (; j < nc; j++) s0 += val[j] * xq[off[j]];",
              "    ct[rows[0]] = (s0 + s1) + (s2 + s3);", "}"]
        return "\n".join(L)
    L += [f"    float acc[{r}] = {{0}};", "    for (int j = 0; j < nc; j++) {",
          "        const float xj = xq[off[j]];", f"        const float *w = val + (size_t)j * {r};",
          f"        for (int i = 0; i < {r}; i++) acc[i] += w[i] * xj;", "    }",
          f"    for (int i = 0; i < {r}; i++) ct[rows[i]] = acc[i];", "}"]
    return "\n".join(L)


def _fill_src(spec: KernelSpec, geo: Geometry) -> str:
    if geo.mode == "gemv":
        return ""
    if geo.mode == "fc":
        # one tile's positions packed as a contiguous (cin x T) panel just before its kernels run
        # (so it is still in cache): a column's T positions sit next to the next column's, so
        # neither this copy nor the kernels stride by a power-of-two row length (which maps every
        # column to the same few cache sets)
        n, cin, t = spec.n, spec.cin, geo.t
        return "\n".join([
            "static void fill(const float *restrict x, float *restrict p, int q0, int cb0, int cb1) {",
            "    {",
            f"        const int te = {n} - q0 < {t} ? {n} - q0 : {t};",
            # 16 channels (one cache line of each input row) at a time: rows a power of two
            # apart would evict each other if read a float at a time; blocks [cb0, cb1)
            f"        for (int c0 = cb0 * 16; c0 < {cin} && c0 < cb1 * 16; c0 += 16) {{",
            f"            const int ce = c0 + 16 < {cin} ? c0 + 16 : {cin};",
            "            for (int u = 0; u < te; u++)",
            f"                for (int ci = c0; ci < ce; ci++) p[(size_t)ci * {t} + u] = x[(size_t)(q0 + u) * {cin} + ci];",
            f"            for (int u = te; u < {t}; u++)",
            f"                for (int ci = c0; ci < ce; ci++) p[(size_t)ci * {t} + u] = 0.f;",
            "        }", "    }", "}"])
    s, p, h, w = spec.stride, spec.padding, spec.h, spec.w
    # channels [c0, c1), input rows [r0, r1) of each (the padding around them is zeroed once)
    L = ["static void fill(const float *restrict x, float *restrict xc, int c0, int c1, int r0, int r1) {",
         "    for (int ci = c0; ci < c1; ci++) {",
         f"        const float *src = x + (size_t)ci * {h * w};",
         f"        float *dst = xc + (size_t)ci * {geo.cs};",
         "        for (int ih = r0; ih < r1; ih++) {",
         f"            const int r = ih + {p};",
         f"            float *drow = dst + (size_t)((r % {s}) * {s}) * {geo.plane} + (size_t)(r / {s}) * {geo.wph};",
         f"            const float *srow = src + (size_t)ih * {w};"]
    if geo.shifts:  # copy j, column c: input column c + j - p (the columns outside stay zero)
        for j in range(geo.shifts):
            lo, hi = max(0, p - j), min(geo.wph, w + p - j)
            if hi > lo:
                L += [f"            memcpy(drow + {j * geo.plane + lo}, srow + {lo + j - p}, {hi - lo} * sizeof(float));"]
    elif s == 1:
        L += [f"            memcpy(drow + {p}, srow, {w} * sizeof(float));"]
    else:
        # contiguous stores, strided loads (vectorised with permutes)
        for pb, c0, c1 in phase_columns(w, p, s):
            L += [f"            {{ float *d = drow + {pb * geo.plane};",
                  f"              for (int c = {c0}; c < {c1}; c++) d[c] = srow[c * {s} + {pb - p}]; }}"]
    L += ["        }", "    }", "}"]
    return "\n".join(L)


def _stage_src(spec: KernelSpec, geo: Geometry, cb: int) -> str:
    """`stage_in`: channel block b's slice of one image's input (1x1, stride 1, unpadded: channel
    ci's positions [q0, q0 + T) are contiguous) into `xs`, channel by channel T floats apart (the
    junk positions of a last, partial tile keep the finite values of an earlier tile)."""
    q, t, cin = geo.q, geo.t, spec.cin
    return "\n".join([
        "static inline void stage_in(float *restrict xs, const float *restrict xn, int b, int q0) {",
        f"    const int te = {q} - q0 < {t} ? {q} - q0 : {t};",
        f"    const int c1 = (b + 1) * {cb} < {cin} ? (b + 1) * {cb} : {cin};",
        f"    for (int ci = b * {cb}; ci < c1; ci++)",
        f"        memcpy(xs + (size_t)(ci - b * {cb}) * {t}, xn + (size_t)ci * {q} + q0, (size_t)te * sizeof(float));",
        "}"])


_EPI_PROTO = ("static void epilogue(const float *restrict ct, float *restrict y, int q0, const float *restrict bias,\n"
              "                     const int32_t *restrict rows, int rs, int nr) {")


def _epilogue_src(spec: KernelSpec, geo: Geometry) -> str:
    """Bias, activation and the store to the output, for the rows a range of chunks computed into
    the tile buffer: rows[i * rs] for i < nr (a slice of the groups' row list, or of the pattern
    rows' meta), so each thread finishes exactly the rows it computed."""
    act = spec.activation
    if geo.mode == "gemv":
        return "\n".join([
            _EPI_PROTO, "    (void)q0;",
            "    for (int i = 0; i < nr; i++) {",
            f"        const int co = rows[(size_t)i * rs]; const float v = ct[co] + bias[co]; y[co] = {_act_expr(act, 'v')};",
            "    }", "}"])
    if geo.mode == "fc":
        return "\n".join([
            _EPI_PROTO,
            f"    int te = {spec.n} - q0; if (te > {geo.t}) te = {geo.t};",
            # 16 rows at a time: their tile rows stay in L1 while every position reads them
            "    for (int i0 = 0; i0 < nr; i0 += 16) {",
            "        const int ie = i0 + 16 < nr ? i0 + 16 : nr;",
            "        for (int t = 0; t < te; t++)",
            "            for (int i = i0; i < ie; i++) {",
            "                const int co = rows[(size_t)i * rs];",
            f"                const float v = ct[(size_t)co * {geo.t} + t] + bias[co];",
            f"                y[(size_t)(q0 + t) * {spec.cout} + co] = {_act_expr(act, 'v')};", "            }", "    }", "}"])
    oh, ow, wph, t = spec.out_h, spec.out_w, geo.wph, geo.t
    if wph == ow:  # no junk columns: a tile row is one contiguous run of the output row co
        return "\n".join([
            _EPI_PROTO,
            f"    int te = {geo.q} - q0; if (te > {t}) te = {t};",
            "    for (int i = 0; i < nr; i++) {",
            "        const int co = rows[(size_t)i * rs];",
            f"        const float *c = ct + (size_t)co * {t};",
            f"        float *yo = y + (size_t)co * {oh * ow} + q0;",
            "        const float bb = bias[co];",
            f"        for (int w = 0; w < te; w++) {{ const float v = c[w] + bb; yo[w] = {_act_expr(act, 'v')}; }}",
            "    }", "}"])
    return "\n".join([
        _EPI_PROTO,
        f"    int qe = q0 + {t}; if (qe > {geo.q}) qe = {geo.q};",
        f"    for (int oh = q0 / {wph}; oh * {wph} < qe; oh++) {{",
        f"        int a = q0 - oh * {wph}; if (a < 0) a = 0;",
        f"        int e = qe - oh * {wph}; if (e > {ow}) e = {ow};",
        "        if (a >= e) continue;",
        "        for (int i = 0; i < nr; i++) {",
        "            const int co = rows[(size_t)i * rs];",
        f"            const float *c = ct + (size_t)co * {t} + (oh * {wph} - q0);",
        f"            float *yo = y + (size_t)co * {oh * ow} + (size_t)oh * {ow};",
        "            const float bb = bias[co];",
        f"            for (int w = a; w < e; w++) {{ const float v = c[w] + bb; yo[w] = {_act_expr(act, 'v')}; }}",
        "        }", "    }", "}"])


def _epilogue_all_src(spec: KernelSpec, geo: Geometry) -> str:
    """The epilogue of a whole tile: every row in order (rows of no group read a zero tile row),
    vectorised along channels (fc) or positions; what one thread runs."""
    act = spec.activation
    if geo.mode == "gemv":
        return "\n".join([
            "static void epilogue_all(const float *restrict ct, float *restrict y, int q0, const float *restrict bias) {",
            "    (void)q0;",
            f"    for (int co = 0; co < {spec.cout}; co++) {{ const float v = ct[co] + bias[co]; y[co] = {_act_expr(act, 'v')}; }}",
            "}"])
    if geo.mode == "fc":
        return "\n".join([
            "static void epilogue_all(const float *restrict ct, float *restrict y, int q0, const float *restrict bias) {",
            f"    int te = {spec.n} - q0; if (te > {geo.t}) te = {geo.t};",
            # 16 channels at a time: their tile rows stay in L1 while every position reads them
            f"    for (int c0 = 0; c0 < {spec.cout}; c0 += 16) {{",
            f"        const int ce = c0 + 16 < {spec.cout} ? c0 + 16 : {spec.cout};",
            "        for (int t = 0; t < te; t++)",
            "            for (int co = c0; co < ce; co++) {",
            f"                const float v = ct[(size_t)co * {geo.t} + t] + bias[co];",
            f"                y[(size_t)(q0 + t) * {spec.cout} + co] = {_act_expr(act, 'v')};", "            }", "    }", "}"])
    oh, ow, wph, t = spec.out_h, spec.out_w, geo.wph, geo.t
    if wph == ow:  # no junk columns (see _epilogue_src)
        return "\n".join([
            "static void epilogue_all(const float *restrict ct, float *restrict y, int q0, const float *restrict bias) {",
            f"    int te = {geo.q} - q0; if (te > {t}) te = {t};",
            f"    for (int co = 0; co < {spec.cout}; co++) {{",
            f"        const float *c = ct + (size_t)co * {t};",
            f"        float *yo = y + (size_t)co * {oh * ow} + q0;",
            "        const float bb = bias[co];",
            f"        for (int w = 0; w < te; w++) {{ const float v = c[w] + bb; yo[w] = {_act_expr(act, 'v')}; }}",
            "    }", "}"])
    return "\n".join([
        "static void epilogue_all(const float *restrict ct, float *restrict y, int q0, const float *restrict bias) {",
        f"    int qe = q0 + {t}; if (qe > {geo.q}) qe = {geo.q};",
        f"    for (int oh = q0 / {wph}; oh * {wph} < qe; oh++) {{",
        f"        int a = q0 - oh * {wph}; if (a < 0) a = 0;",
        f"        int e = qe - oh * {wph}; if (e > {ow}) e = {ow};",
        "        if (a >= e) continue;",
        f"        for (int co = 0; co < {spec.cout}; co++) {{",
        f"            const float *c = ct + (size_t)co * {t} + (oh * {wph} - q0);",
        f"            float *yo = y + (size_t)co * {oh * ow} + (size_t)oh * {ow};",
        "            const float bb = bias[co];",
        f"            for (int w = a; w < e; w++) {{ const float v = c[w] + bb; yo[w] = {_act_expr(act, 'v')}; }}",
        "        }", "    }", "}"])


def direct_ok(spec: KernelSpec, geo: Geometry) -> bool:
    """Whole-row tiles can be stored straight into the output when no junk columns exist."""
    return geo.mode == "conv" and geo.wph == spec.out_w and geo.q >= geo.t


@dataclass(frozen=True)
class Chunking:
    """How a kernel splits across threads: chunks [0, nchunks) are (tile, unit) pairs, where a unit
    is one group of rows (or one pattern row, one ELL block, one depthwise channel, or the tile's
    rows that have no kept weight), tile-major, or unit-major when a call has only a few tiles
    (`unit_major`: a thread then owns whole output rows, see `UNIT_MAJOR_TILES`); chunk c costs
    cost[c % len(cost)]: the unit's nonzero FMAs per position plus one per row (plus the tile
    buffer's cost in an image's last tile after direct ones: then the array covers an image's
    tiles, or every chunk when unit-major), so the harness balances threads by work, not by rows.
    `tws_floats`: each thread's scratch. `nprep`: prep chunks (the shared input copies), split
    evenly across threads before any chunk runs (by input rows where threads split an image's
    tiles: a thread copies about the rows its own chunks read); 0: no prep and no barrier.
    `private_prep`: every thread runs all the prep chunks into its own scratch instead (threads
    that split units, not tiles, each read all of the input), no barrier. `parts`: range calls per
    thread's share (1 for kernels that stage their input inside every call, `staged_input`), 0
    for the harness's default."""

    nchunks: int
    cost: tuple[int, ...]
    tws_floats: int
    nprep: int = 0
    unit_major: bool = False
    private_prep: bool = False
    parts: int = 0


PREP_CHUNKS = 32  # at least this many prep chunks per call where the input has the rows for it
# Calls of at most this many tiles order their chunks unit-major: tile-major, a thread boundary
# would cut every output row at a tile edge, and where rows are few positions long (14x14) the
# 64-byte lines on those edges, written by both threads, are a large share of the output
UNIT_MAJOR_TILES = 4
# A tile that goes through the tile buffer costs this much more per row and real position than a
# direct tile (its store, reload and epilogue): 14x14 pwconv's last tile took 1.3x the first's
TILE_BUFFER_COST = 3
MAX_COST_PERIOD = 16384  # per-tile costs only while the cost array stays this short


def is_unit_major(geo: Geometry, tiles: int, units: int) -> bool:
    """Whether a conv call of `tiles` tiles and `units` units per tile orders its chunks unit-major
    (`UNIT_MAJOR_TILES`), its per-chunk cost array staying within MAX_COST_PERIOD."""
    return geo.mode == "conv" and 1 < tiles <= UNIT_MAJOR_TILES and units * tiles <= MAX_COST_PERIOD


def _driver_src(spec: KernelSpec, geo: Geometry, symbol: str, head: list[str], body: list[str],
                body_direct: list[str] | None, empty_rows: Sequence[int], cost: Sequence[int],
                rows_expr: str, unit_rows: Sequence[int] = (), stage: int = 0) -> tuple[str, Chunking, int]:
    """The kernel's three entry points: `<symbol>_prep` (the shared input copies of a call, in
    chunks), `<symbol>_range` (chunks [c0, c1) with a private tile buffer) and `<symbol>` (one
    thread: every copy and every chunk, image by image).

    `body` / `body_direct` compute units [lo, hi) of one tile into the tile buffer `ct` / straight
    into the output; `rows_expr` is the epilogue's (rows, stride, count) for units [lo, hi);
    `unit_rows`: each unit's rows, which price an image's last, partial tile where the tiles before
    it are direct (it goes through the tile buffer: a thread given it and no more would finish last).
    `stage`: the channels per block of a kernel whose body stages its input (`staged_input`) into
    `xs`, the scratch after the tile buffer: then there is no copy, no prep and one part per thread.
    Rows with no kept weight are the last unit of every tile (its epilogue over their tile rows,
    which no group writes and so stay zero), so they are written by whichever thread takes that
    chunk rather than by one thread before the others start.
    Returns (source, chunking, workspace floats of the one-thread entry)."""
    args = "const float *restrict x, float *restrict y, float *restrict ws, const dp_array *restrict a"
    ng, ne = len(cost), len(empty_rows)
    nu = ng + (1 if ne else 0)  # units per tile
    ucost = [*cost, ne] if ne else list(cost)
    ohw = spec.out_h * spec.out_w
    act = _act_expr(spec.activation, "v")
    if geo.mode == "gemv":
        tiles, shared, tws = 1, 0, spec.cout
    elif geo.mode == "fc":
        tiles = geo.qpad // geo.t
        shared, tws = tiles * geo.xc_size, spec.cout * geo.t
    else:
        tiles, shared, tws = spec.n * (geo.qpad // geo.t), spec.n * geo.xc_size, spec.cout * geo.t
        if stage:
            shared, tws = 0, tws + stage * geo.t
    # the shared copies, in prep chunks: conv, one per (image, input row, block of channels) where
    # threads split an image's tiles, in row order like the tiles, so the thread that copies a band
    # of rows is the one whose tiles read it (then it is still in that core's cache), else one per
    # (image, channel, band of input rows) (every thread reads all of it: chunks of whole channel
    # planes, so no two threads write the same cache line of short rows); 1x1 stride-1 unpadded
    # convs with whole-row tiles read the NCHW input in place and only the last partial tile is
    # copied, into the zero-padded workspace, one chunk per (image, channel); fc, one per
    # (tile, 16 channels) of the packed panels
    inplace = (body_direct is not None and (spec.kh, spec.kw, spec.stride, spec.padding) == (1, 1, 1, 0)
               and geo.cs == geo.plane)
    qfull = geo.q // geo.t * geo.t if body_direct is not None else 0
    chw = spec.cin * spec.h * spec.w
    xn, wn = f"x + (size_t)n * {chw}", f"ws + (size_t)n * {geo.xc_size}"
    unit, copy_all, per = "", "", 0  # prep chunk p's copy; one image's (tile's for fc) whole copy
    tiles_img = geo.qpad // geo.t
    unit_major = is_unit_major(geo, tiles, nu)
    if geo.mode == "conv" and not inplace and not stage:
        copy_all = f"fill({xn}, {wn}, 0, {spec.cin}, 0, {spec.h});"
    if copy_all and tiles_img > 1 and not unit_major:
        cb = max(1, min(spec.cin, -(-PREP_CHUNKS // (spec.n * spec.h))))  # blocks of channels per row
        per = spec.h * cb
        unit = (f"const int r = u / {cb}, b = u - r * {cb}; "
                f"fill({xn}, {wn}, b * {spec.cin} / {cb}, (b + 1) * {spec.cin} / {cb}, r, r + 1);")
    elif copy_all:
        nb = max(1, min(spec.h, -(-PREP_CHUNKS // (spec.n * spec.cin))))  # bands of input rows
        per = spec.cin * nb
        unit = (f"const int ci = u / {nb}, b = u - ci * {nb}; "
                f"fill({xn}, {wn}, ci, ci + 1, b * {spec.h} / {nb}, (b + 1) * {spec.h} / {nb});")
    elif geo.mode == "conv" and qfull < geo.qpad and not stage:
        per = spec.cin
        mc = (f"memcpy({wn} + (size_t)k * {geo.cs} + {qfull}, {xn} + (size_t)k * {geo.q} + {qfull}, "
              f"{geo.q - qfull} * sizeof(float));")
        unit, copy_all = f"const int k = u; {mc}", f"for (int k = 0; k < {spec.cin}; k++) {mc}"
    elif geo.mode == "fc":
        per = -(-spec.cin // 16)
        unit = f"fill(x, ws + (size_t)n * {geo.xc_size}, n * {geo.t}, u, u + 1);"  # n: the tile here
    nprep = (spec.n if geo.mode == "conv" else tiles) * per if unit else 0
    # where threads split the units, not the tiles (a call of one tile, or unit-major), every thread
    # reads all of the copy: each makes its own, in its scratch before its tile buffer (the harness
    # runs every prep chunk on every thread, and no barrier): no thread reads lines another core wrote
    private = geo.mode == "conv" and bool(unit) and (tiles == 1 or unit_major)
    xbase, ctbase = ("tws", f"tws + {shared}") if private else ("ws", "tws")
    tcost = [ucost] * tiles_img  # each tile's unit costs
    if body_direct is not None and 0 < qfull < geo.qpad and unit_rows and tiles_img * nu <= MAX_COST_PERIOD:
        te = geo.q - qfull  # the last tile's real positions
        tcost[-1] = [c + -(-TILE_BUFFER_COST * r * te // geo.t) for c, r in zip(cost, unit_rows)] + ucost[ng:]
        ucost = [c for tc in tcost for c in tc]
    if unit_major:
        ucost = [tcost[tile % tiles_img][u] for u in range(nu) for tile in range(tiles)]
    nt = geo.qpad // geo.t if geo.mode == "conv" else tiles
    er = ", ".join(map(str, empty_rows))
    decls = [f"static const int32_t empty_rows[{ne}] = {{{er}}};", ""] if ne else []
    # the chunk loop: each step is one tile's units [lo, hu); groups [lo, hi)
    step = ["    for (int64_t c = c0; c < c1;) {",
            f"        const int64_t tile = c / {nu};",
            f"        const int lo = (int)(c - tile * {nu});",
            f"        const int hu = c1 - c < {nu} - lo ? lo + (int)(c1 - c) : {nu};",
            f"        const int hi = hu < {ng} ? hu : {ng};", "        (void)hi;",
            "        c += hu - lo;"]
    if unit_major:  # chunk u * tiles + tile: per tile, the units u with a chunk in [c0, c1)
        step = [f"    for (int64_t tile = 0; tile < {tiles}; tile++) {{",
                f"        const int lo = c0 <= tile ? 0 : (int)((c0 - tile + {tiles - 1}) / {tiles});",
                f"        const int hu = c1 <= tile ? 0 : (int)((c1 - tile + {tiles - 1}) / {tiles});",
                "        if (lo >= hu) continue;",
                f"        const int hi = hu < {ng} ? hu : {ng};", "        (void)hi;"]
    empties = f" if (hu == {nu}) epilogue(ct, {{y}}, q0, bias, empty_rows, 1, {ne});" if ne else ""
    # a whole tile's units: the epilogue of every row in order; part of a tile: of its rows
    epi = (f"if (lo == 0 && hu == {nu}) epilogue_all(ct, {{y}}, q0, bias); "
           f"else {{{{ epilogue(ct, {{y}}, q0, bias, {rows_expr});{empties} }}}}")
    tile_fn: list[str] = []
    if geo.mode == "gemv":
        rng = ["    float *ct = tws;", "    const float *xq = x;", "    const int q0 = 0;",
               f"    const int lo = (int)c0, hu = (int)c1, hi = hu < {ng} ? hu : {ng};", "    (void)hi;",
               *body, "    " + epi.format(y="y")]
    elif geo.mode == "fc":
        # one tile's units, shared by the chunked entry (the tile's panel in ws) and the one-thread
        # entry (which packs every tile into the same panel, still in cache from the last tile)
        tile_fn = ["static inline void fc_tile(const dp_array *restrict a, const float *restrict xq, float *restrict y,",
                   "                           float *restrict ct, int64_t tile, int lo, int hu) {", *head,
                   f"    const int q0 = (int)tile * {geo.t};", f"    const int hi = hu < {ng} ? hu : {ng};",
                   "    (void)hi;", *body, "    " + epi.format(y="y"), "}", ""]
        rng = ["    float *ct = tws;", *step,
               f"        fc_tile(a, ws + (size_t)tile * {geo.xc_size}, y, ct, tile, lo, hu);", "    }"]
    else:
        rng = [f"    float *ct = {ctbase};", "    (void)ct;"]
        if stage:
            rng += [f"    float *xs = ct + {spec.cout * geo.t};"]
        if ne and body_direct is not None and qfull and not unit_major:
            # the empty units of direct tiles: each empty row's run over the consecutive direct
            # tiles of [c0, c1) at once (a constant, stored in one pass as one thread would)
            rng += ["    {", f"        const int64_t ta = c0 <= {ng} ? 0 : (c0 - {ng} + {nu - 1}) / {nu};",
                    f"        const int64_t tb = c1 <= {ng} ? 0 : (c1 - 1 - {ng}) / {nu} + 1;",
                    f"        for (int64_t n = ta / {nt}; n * {nt} < tb; n++) {{",
                    f"            const int64_t ea = ta > n * {nt} ? ta - n * {nt} : 0;",
                    f"            const int64_t eb = tb - n * {nt} < {qfull // geo.t} ? tb - n * {nt} : {qfull // geo.t};",
                    f"            for (int e = 0; ea < eb && e < {ne}; e++) {{",
                    "                const float v = bias[empty_rows[e]];", f"                const float r = {act};",
                    f"                float *ye = y + ((size_t)n * {spec.cout} + empty_rows[e]) * {ohw} + ea * {geo.t};",
                    f"                for (int64_t w = 0; w < (eb - ea) * {geo.t}; w++) ye[w] = r;",
                    "            }", "        }", "    }"]
        rng += [*step,
               f"        const int n = (int)(tile / {nt});",
               f"        const int q0 = (int)(tile - (int64_t)n * {nt}) * {geo.t};",
               *([] if stage else [f"        const float *xc = {xbase} + (size_t)n * {geo.xc_size};", "        (void)xc;"]),
               f"        float *yn = y + (size_t)n * {spec.cout * ohw};"]
        ct_path = [f"            const float *xq = {'xs' if stage else 'xc + q0'};", *["        " + b for b in body],
                   "            " + epi.format(y="yn")]
        if body_direct is not None and qfull:
            src_x = "xs" if stage else f"x + (size_t)n * {chw} + q0" if inplace else "xc + q0"
            rng += [f"        if (q0 < {qfull}) {{", f"            const float *xq = {src_x};",
                    "            float *yq = yn + q0;", *["        " + b for b in body_direct]]
            if ne and unit_major:  # this direct tile's empty unit: its rows' constant
                rng += [f"            for (int e = 0; hu == {nu} && e < {ne}; e++) {{",
                        "                const float v = bias[empty_rows[e]];", f"                const float r = {act};",
                        f"                float *ye = yq + (size_t)empty_rows[e] * {ohw};",
                        f"                for (int w = 0; w < {geo.t}; w++) ye[w] = r;", "            }"]
            rng += ["        } else {", *ct_path, "        }"]
        else:
            rng += ["        {", *ct_path, "        }"]
        rng += ["    }"]
    head_r = head if geo.mode != "fc" else []
    if nu == 0:  # no rows at all: nothing to chunk
        rng, head_r = ["    (void)x; (void)y; (void)ws; (void)a; (void)c0; (void)c1; (void)tws;"], []
    nchunks = tiles * nu
    prep_body = []
    if unit:
        prep_body = ["    for (int64_t p = p0; p < p1; p++) {", f"        const int n = (int)(p / {per});",
                     f"        const int u = (int)(p - (int64_t)n * {per});", "        " + unit, "    }"]
    per_tile = nchunks // max(1, spec.n if geo.mode == "conv" else tiles)
    if geo.mode == "fc" and nu:
        run_body = [f"    for (int n = 0; n < {tiles}; n++) {{", f"        fill(x, ws, n * {geo.t}, 0, {per});",
                    f"        fc_tile(a, ws, y, ws + {geo.xc_size}, n, 0, {nu});", "    }"]
    elif geo.mode == "fc":
        run_body = []
    elif copy_all and unit_major:  # chunks run across images: every copy first
        run_body = [f"    for (int n = 0; n < {spec.n}; n++) {copy_all}",
                    f"    {symbol}_range(x, y, ws, a, 0, {nchunks}, ws{'' if private else f' + {shared}'});"]
    elif copy_all:  # image by image: the copy is still in cache for its chunks
        run_body = [f"    for (int n = 0; n < {spec.n}; n++) {{", "        " + copy_all,
                    f"        {symbol}_range(x, y, ws, a, (int64_t)n * {per_tile}, (int64_t)(n + 1) * {per_tile}, "
                    f"ws{'' if private else f' + {shared}'});", "    }"]
    else:
        run_body = [f"    {symbol}_range(x, y, ws, a, 0, {nchunks}, ws + {shared});"]
    pargs = f"{args}, int64_t p0, int64_t p1"
    lines = [*decls, *(tile_fn if geo.mode == "fc" and nu else []),
        f"void {symbol}_prep({pargs});", f"void {symbol}_prep({pargs}) {{",
        "    (void)x; (void)y; (void)ws; (void)a; (void)p0; (void)p1;", *prep_body, "}", "",
        f"void {symbol}_range({args}, int64_t c0, int64_t c1, float *restrict tws);",
        f"void {symbol}_range({args}, int64_t c0, int64_t c1, float *restrict tws) {{", *head_r, *rng, "}", "",
        f"void {symbol}({args});", f"void {symbol}({args}) {{",
        "    (void)x; (void)y; (void)ws; (void)a;", *run_body, "}", "",
        f"const int32_t {symbol}_cost[{max(1, len(ucost))}] = {{{', '.join(map(str, ucost or [1]))}}};"]
    # one thread's workspace: fc packs each tile into one panel, followed by the tile buffer
    ws_one = geo.xc_size + tws if geo.mode == "fc" else shared + tws
    chunking = Chunking(nchunks, tuple(ucost or [1]), shared + tws if private else tws, nprep, unit_major, private,
                        1 if stage else 0)
    return "\n".join(lines), chunking, max(ws_one, shared + tws)


_GROUP_ROWS = "rows + meta[4 * lo + 3], 1, meta[4 * hi + 3] - meta[4 * lo + 3]"


# ---- per-format generators -----------------------------------------------------------------
def phase_columns(w: int, p: int, s: int) -> list[tuple[int, int, int]]:
    """(phase pb, first c, end c) of a stride-phase-split row: phase pb holds the padded columns
    c*s + pb, i.e. input columns c*s + pb - p; only the c that fall inside the input are listed."""
    out = []
    for pb in range(s):
        c0, c1 = max(0, -(-(p - pb) // s)), (w - 1 + p - pb) // s + 1
        if c1 > c0:
            out.append((pb, c0, c1))
    return out


def _col_offsets(spec: KernelSpec, geo: Geometry, row: int, cols: Sequence[int]) -> list[int]:
    cig = spec.cin // spec.groups
    g = row // (spec.cout // spec.groups)
    out = []
    for k in cols:
        kk, cil = divmod(k, cig)
        i, j = divmod(kk, spec.kw)
        out.append(geo.offset(spec, g * cig + cil, i, j))
    return out


def one_row_scheme(spec: KernelSpec) -> bool:
    """Whether the scheme's `sparse` kernel shares no kept column between output rows: unstructured,
    N:M, 1xc blocks and 3x3 patterns (whose rows each keep their own pattern)."""
    sp = spec.sparsity
    return sp.scheme in ("unstructured", "nm", "pattern") or (sp.scheme == "block" and block_param(sp, (4, 1))[0] == 1)


def _gen_groups(spec: KernelSpec, wm2: np.ndarray, mask2: np.ndarray, variant: str, vl: int, regs: int,
                symbol: str, one_row: bool = False) -> tuple[str, list[np.ndarray], Geometry, dict]:
    single = one_row or variant == "csr" or spec.sparsity.scheme in ("unstructured", "nm") or (
        spec.sparsity.scheme == "block" and block_param(spec.sparsity, (4, 1))[0] == 1 and variant == "sparse")
    if spec.op == "fc" and spec.n == 1:
        rmax = 1 if single else vl
        nv = 1
    else:
        rmax = 1 if single else 4
        nv = max(1, min(nv_cap(vl), (regs - 4) // (rmax + 1)))
    geo = geometry(spec, vl, nv, aligned=True, one_row=single, nnz=int(mask2.sum()))
    if geo.mode == "gemv" and variant == "sparse" and spec.sparsity.scheme != "dense":
        return _gen_ell_gemv(spec, wm2, mask2, vl, geo, symbol)
    groups = make_groups(spec, mask2, variant, rmax)
    groups.sort(key=lambda g: -len(g.rows))
    meta, rows, offs, vals = [], [], [], []
    for g in groups:
        meta += [len(g.cols), len(offs), len(vals), len(rows)]
        rows += g.rows
        offs += _col_offsets(spec, geo, g.rows[0], g.cols)
        blk = wm2[np.ix_(g.rows, g.cols)].T  # (nc, R): column-major so the inner loop reads in order
        vals += blk.ravel().tolist()
    kernels, body, body_d = [], [], []
    direct = direct_ok(spec, geo)
    ohw = spec.out_h * spec.out_w
    gi = 0
    cb = channel_block(spec, geo, vl, single and variant == "sparse", float(mask2.mean())) if groups else 0
    segs: list[int] = []
    stage = cb if cb and staged_input(spec, geo, len(groups)) else 0
    if cb:  # one-row groups, channel block by channel block (see channel_block)
        segs, offs, vals, nb = _blocked_segments(spec, geo, groups, cb, wm2)
        if stage:  # column offsets into the staged block: channel within the block x the tile
            offs = [(o // geo.cs) % cb * geo.t for o in offs]
        meta[1::4] = meta[2::4] = [0] * len(groups)  # where a group's columns are: the segment table
        ng = len(groups)
        # with direct tiles the tile buffer serves only an image's last, partial tile: as many
        # vectors as its real positions need (14x14: 6 of 7)
        nv_ct = -(-(geo.q - geo.q // geo.t * geo.t) // vl) if direct and geo.q % geo.t else geo.nv
        kernels.append(_mk_blocked(nv_ct, vl, geo.t, "none", "mkb"))
        loop = ["    for (int b = 0; b < %d; b++) {" % nb,
                *([f"        stage_in(xs, x + (size_t)n * {spec.cin * geo.q}, b, q0);"] if stage else []),
                f"        const int32_t *sb = segs + (size_t)b * {2 * ng};",
                "        for (int g = lo; g < hi; g++) {", "            const int f = sb[2 * g];"]
        body += [*loop, f"            if (f) mkb(xq, offs + sb[2 * g + 1], vals + sb[2 * g + 1], f, "
                 f"ct + (size_t)rows[g] * {geo.t}, 0.f);", "        }", "    }"]
        if direct:
            kernels.append(_mk_blocked(geo.nv, vl, ohw, spec.activation, "mkbd"))
            body_d += [*loop, "            if (f) mkbd(xq, offs + sb[2 * g + 1], vals + sb[2 * g + 1], f, "
                       f"yq + (size_t)rows[g] * {ohw}, bias[rows[g]]);", "        }", "    }"]
    for r in sorted({len(g.rows) for g in groups} if not cb else (), reverse=True):
        g1 = gi + sum(1 for g in groups if len(g.rows) == r)
        step = column_step(r, vl, regs)
        kernels.append(_mk_gemv(r, vl) if geo.mode == "gemv" else _mk_spatial(r, geo.nv, geo.t, vl, step))
        loop = f"    for (int g = lo > {gi} ? lo : {gi}, ge = hi < {g1} ? hi : {g1}; g < ge; g++) {{"
        body += [loop,
                 "        const int32_t *m = meta + 4 * g;",
                 f"        mk_{r}(xq, offs + m[1], vals + m[2], m[0], rows + m[3], ct);", "    }"]
        if direct:
            kernels.append(_mk_direct(r, geo.nv, ohw, spec.activation, vl, step))
            body_d += [loop,
                       "        const int32_t *m = meta + 4 * g;",
                       f"        mkd_{r}(xq, offs + m[1], vals + m[2], m[0], rows + m[3], yq, bias);", "    }"]
        gi = g1
    used = {r for g in groups for r in g.rows}
    empty = [r for r in range(spec.cout) if r not in used]
    head = ["    const int32_t *meta = (const int32_t *)a[2].data;",
            "    const int32_t *rows = (const int32_t *)a[3].data;",
            "    const int32_t *offs = (const int32_t *)a[4].data;",
            "    const float *vals = (const float *)a[5].data;"]
    if cb:
        head += ["    const int32_t *segs = (const int32_t *)a[6].data;"]
    head += [f"    const float *bias = (const float *)a[{7 if cb else 6}].data;"]
    meta += [0, len(offs), len(vals), len(rows)]  # end of the last group's rows (the epilogue's slices)
    cost = [len(g.rows) * (len(g.cols) + 1) for g in groups]
    driver, chunking, ws = _driver_src(spec, geo, symbol, head, body, body_d if direct else None, empty, cost,
                                       _GROUP_ROWS, [len(g.rows) for g in groups], stage)
    copy = _stage_src(spec, geo, stage) if stage else _fill_src(spec, geo)
    src = "\n\n".join([*kernels, copy, _epilogue_src(spec, geo), _epilogue_all_src(spec, geo), driver])
    arrays = [np.asarray(meta, np.int32), np.asarray(rows, np.int32), np.asarray(offs, np.int32),
              np.asarray(vals, np.float32)] + ([np.asarray(segs, np.int32)] if cb else [])
    fmas = sum(len(g.rows) * len(g.cols) for g in groups)
    stats = {"groups": len(groups), "fma_per_position": fmas, "rmax": rmax,
             "mean_rows_per_group": (sum(len(g.rows) for g in groups) / len(groups)) if groups else 0.0}
    if cb:
        stats.update(channel_block=cb)
    if stage:
        stats.update(staged_input=True)
    one = [len(g.cols) for g in groups if len(g.rows) == 1]
    step = column_step(1, vl, regs) if geo.mode != "gemv" else 1
    if one and step > 1:  # the share of one-row columns run in full steps (the rest: one at a time)
        stats.update(column_step=step, stepped_share=round(sum(n - n % step for n in one) / sum(one), 4))
    return src, arrays, geo, stats, chunking, ws


def _gen_ell_gemv(spec: KernelSpec, wm2: np.ndarray, mask2: np.ndarray, vl: int, geo: Geometry,
                  symbol: str) -> tuple[str, list[np.ndarray], Geometry, dict]:
    """fc with one row and a sparse scheme: VL rows at a time in
    ELL layout (rows sorted by length, each lane its own column list, short rows padded with zero
    weights), one gathered input vector per step: vectorised across output channels."""
    cols = _row_cols(mask2)
    order = sorted((r for r in range(spec.cout) if cols[r]), key=lambda r: -len(cols[r]))
    meta, rows, offs, vals = [], [], [], []
    chunks = [order[i:i + vl] for i in range(0, len(order), vl)]
    for ch in chunks:
        nc = len(cols[ch[0]])
        meta += [nc, len(offs), len(vals), len(rows)]
        rows += ch
        o = np.zeros((nc, vl), np.int64)
        v = np.zeros((nc, vl), np.float32)
        for lane, r in enumerate(ch):
            c = np.asarray(cols[r], np.int64)
            o[:len(c), lane] = [geo.offset(spec, int(k), 0, 0) for k in c]
            v[:len(c), lane] = wm2[r, c]
        offs += o.ravel().tolist()
        vals += v.ravel().tolist()
    kern = ["static inline void mke(const float *restrict xq, const int32_t *restrict off, const float *restrict val,",
            "                       int nc, const int32_t *restrict rows, float *restrict ct, int nr) {",
            "    dp_v a0 = dp_zero(), a1 = dp_zero();", "    int j = 0;", "    for (; j + 2 <= nc; j += 2) {",
            "        a0 = dp_fmav(a0, dp_ld(val + (size_t)j * DP_VL), dp_gather(xq, off + (size_t)j * DP_VL));",
            "        a1 = dp_fmav(a1, dp_ld(val + (size_t)(j + 1) * DP_VL), dp_gather(xq, off + (size_t)(j + 1) * DP_VL));",
            "    }",
            "    if (j < nc) a0 = dp_fmav(a0, dp_ld(val + (size_t)j * DP_VL), dp_gather(xq, off + (size_t)j * DP_VL));",
            "    float t[DP_VL];", "    dp_st(t, dp_add(a0, a1));",
            "    for (int i = 0; i < nr; i++) ct[rows[i]] = t[i];", "}"]
    head = ["    const int32_t *meta = (const int32_t *)a[2].data;",
            "    const int32_t *rows = (const int32_t *)a[3].data;",
            "    const int32_t *offs = (const int32_t *)a[4].data;",
            "    const float *vals = (const float *)a[5].data;",
            "    const float *bias = (const float *)a[6].data;"]
    body = ["    for (int g = lo; g < hi; g++) {", "        const int32_t *m = meta + 4 * g;",
            f"        mke(xq, offs + m[1], vals + m[2], m[0], rows + m[3], ct, g + 1 < {len(chunks)} ? DP_VL : {len(chunks[-1]) if chunks else 0});",
            "    }"]
    meta += [0, len(offs), len(vals), len(rows)]
    empty = [r for r in range(spec.cout) if not cols[r]]
    cost = [len(cols[ch[0]]) * len(ch) + len(ch) for ch in chunks]
    driver, chunking, ws = _driver_src(spec, geo, symbol, head, body, None, empty, cost, _GROUP_ROWS)
    src = "\n\n".join(["\n".join(kern), _epilogue_src(spec, geo), _epilogue_all_src(spec, geo), driver])
    arrays = [np.asarray(meta, np.int32), np.asarray(rows, np.int32), np.asarray(offs, np.int32),
              np.asarray(vals, np.float32)]
    padded = sum(len(cols[ch[0]]) * vl for ch in chunks)
    stats = {"groups": len(chunks), "fma_per_position": padded, "rmax": vl, "format": "ell"}
    return src, arrays, geo, stats, chunking, ws


def _pattern_loops(spec: KernelSpec, geo: Geometry, taps: list, nv: int) -> list[str]:
    """A pattern row's loops: per pattern, its channels (count m[2 + p]), the 4 taps' offsets
    compiled in, NV accumulators a0.. over the tile."""
    L = []
    for p in range(len(taps)):
        offs = [geo.offset(spec, 0, i, j) for i, j in taps[p]]
        L += [f"    {{ /* pattern {p}: taps {taps[p]} */", f"        const int c = m[{2 + p}];",
              "        for (int i = 0; i < c; i++) {", "            const float *b = xq + ch[i];",
              "            const float *wi = w + 4 * i;"]
        L += [f"            const float w{e} = wi[{e}];" for e in range(4)]
        for e, o in enumerate(offs):
            L += [f"            a{v} = dp_fma(a{v}, w{e}, dp_ld(b + {o} + {v} * DP_VL));" for v in range(nv)]
        L += ["        }", "        ch += c; w += 4 * c;", "    }"]
    return L


# Kept kernels per (row, channel block, pattern) below which a channel-blocked pattern layer runs
# the one-row kernel over the same mask (see `_gen_pattern`)
PATTERN_MIN_PER_LOOP = 1.0


def _gen_pattern(spec: KernelSpec, wm: np.ndarray, pr: PruneResult, vl: int, regs: int,
                 symbol: str) -> tuple[str, list[np.ndarray], Geometry, dict]:
    """Pattern rows: per row, its kernels grouped by pattern, each pattern's loop with the taps'
    offsets compiled in (one offset and four weights per kernel). Where channel blocks leave a row
    fewer than PATTERN_MIN_PER_LOOP kernels per pattern on average (AVX-512, the SR layers at 0.9:
    about 0.4), most of a row's pattern loops run zero or one time and their entry and exit
    branches, which follow no pattern a predictor learns, cost more than the offsets they save:
    then the one-row kernel runs over the same pruned mask (measured 3-15% faster there)."""
    library, assign = pr.info["library"], pr.info["assign"]
    npat = len(library)
    nv = max(1, min(nv_cap(vl), (regs - 8) // 2))
    geo = geometry(spec, vl, nv, aligned=True)
    cig, cog = spec.cin // spec.groups, spec.cout // spec.groups
    taps = [[(int(e) // 3, int(e) % 3) for e in np.flatnonzero(library[p])] for p in range(npat)]
    hist = np.stack([(assign == p).sum(1) for p in range(npat)], 1)  # (cout, P)
    order = sorted((co for co in range(spec.cout) if hist[co].sum()), key=lambda co: tuple(-hist[co]))
    meta, choff, pvals = [], [], []
    for co in order:
        meta += [co, len(choff), *hist[co].tolist()]
        g = co // cog
        for p in range(npat):
            for cil in np.flatnonzero(assign[co] == p):
                choff.append(geo.offset(spec, g * cig + int(cil), 0, 0))
                pvals += [float(wm[co, i, j, cil]) for i, j in taps[p]]
    cb = channel_block(spec, geo, vl, True, float(pr.mask.mean()))
    if cb and len(choff) < PATTERN_MIN_PER_LOOP * len(order) * npat * -(-cig // cb):
        src, arrays, geo, stats, chunking, ws = _gen_groups(spec, wm.reshape(spec.cout, -1),
                                                            pr.mask.reshape(spec.cout, -1), "sparse", vl, regs,
                                                            symbol, one_row=True)
        return src, arrays, geo, {**stats, "patterns": npat, "format": "one-row"}, chunking, ws
    if cb:
        return _gen_pattern_blocked(spec, wm, geo, taps, assign, order, meta, cb, symbol)
    nv_ = geo.nv
    L = ["static inline void prow(const float *restrict xq, const int32_t *restrict m, const int32_t *restrict ch,",
         "                        const float *restrict w, float *restrict ct) {"]
    L += [f"    dp_v a{v} = dp_zero();" for v in range(nv_)]
    L += _pattern_loops(spec, geo, taps, nv_)
    L += [f"    dp_st(ct + (size_t)m[0] * {geo.t} + {v} * DP_VL, a{v});" for v in range(nv_)]
    L += ["}"]
    direct = direct_ok(spec, geo)
    ohw = spec.out_h * spec.out_w
    if direct:  # same body, accumulators start at the bias and go straight to the output
        D = "\n".join(L).replace("static inline void prow(", "static inline void prowd(").replace(
            "const float *restrict w, float *restrict ct) {",
            "const float *restrict w, float *restrict yq, const float *restrict bias) {")
        for v in range(nv_):
            D = D.replace(f"    dp_v a{v} = dp_zero();", f"    dp_v a{v} = dp_splat(bias[m[0]]);")
            D = D.replace(f"    dp_st(ct + (size_t)m[0] * {geo.t} + {v} * DP_VL, a{v});",
                          f"    dp_st(yq + (size_t)m[0] * {ohw} + {v} * DP_VL, {_VACT[spec.activation].format(f'a{v}')});")
        L += ["", D]
    head = ["    const int32_t *meta = (const int32_t *)a[2].data;",
            "    const int32_t *choff = (const int32_t *)a[3].data;",
            "    const float *pvals = (const float *)a[4].data;",
            "    const float *bias = (const float *)a[5].data;"]
    body = ["    for (int r = lo; r < hi; r++) {",
            f"        const int32_t *m = meta + {2 + npat} * r;",
            "        prow(xq, m, choff + m[1], pvals + 4 * (size_t)m[1], ct);", "    }"]
    body_d = [b.replace("prow(", "prowd(").replace(", ct);", ", yq, bias);") for b in body]
    empty = [co for co in range(spec.cout) if not hist[co].sum()]
    cost = [4 * int(hist[co].sum()) + 1 for co in order]
    driver, chunking, ws = _driver_src(spec, geo, symbol, head, body, body_d if direct else None, empty, cost,
                                       f"meta + (size_t){2 + npat} * lo, {2 + npat}, hi - lo", [1] * len(order))
    src = "\n\n".join(["\n".join(L), _fill_src(spec, geo), _epilogue_src(spec, geo), _epilogue_all_src(spec, geo), driver])
    arrays = [np.asarray(meta, np.int32), np.asarray(choff, np.int32), np.asarray(pvals, np.float32)]
    stats = {"rows": len(order), "fma_per_position": 4 * len(choff), "patterns": npat}
    return src, arrays, geo, stats, chunking, ws


def _gen_pattern_blocked(spec: KernelSpec, wm: np.ndarray, geo: Geometry, taps: list, assign: np.ndarray,
                         order: list[int], meta: list[int], cb: int, symbol: str):
    """The pattern kernel channel block by channel block (`channel_block`): per block and row a
    segment (flags: 4 when the row has channels in the block, | 1 on its first block, | 2 on its
    last, as in `_mk_blocked`; start; the block's channels per pattern), every row of the tile
    over one block before the next."""
    npat, nv, ohw = len(taps), geo.nv, spec.out_h * spec.out_w
    cig, cog = spec.cin // spec.groups, spec.cout // spec.groups
    nb, w = -(-cig // cb), 2 + npat
    chans = {co: [[np.flatnonzero((assign[co] == p) & (np.arange(cig) // cb == b)) for p in range(npat)]
                  for b in range(nb)] for co in order}
    used = {co: [b for b in range(nb) if any(len(c) for c in chans[co][b])] for co in order}
    meta[1::w] = [0] * len(order)  # where a row's channels are: the segment table
    segs, choff, pvals = [], [], []
    for b in range(nb):
        for co in order:
            cs = chans[co][b]
            flags = 4 | (b == used[co][0]) | (b == used[co][-1]) << 1 if b in used[co] else 0
            segs += [flags, len(choff), *[len(c) for c in cs]]
            for p in range(npat):
                for cil in cs[p]:
                    choff.append(geo.offset(spec, co // cog * cig + int(cil), 0, 0))
                    pvals += [float(wm[co, i, j, cil]) for i, j in taps[p]]
    kernels = []
    for name, act in (("prowb", "none"), ("prowbd", spec.activation)):
        acc = [f"a{v}" for v in range(nv)]
        L = [f"static inline void {name}(const float *restrict xq, const int32_t *restrict m, const int32_t *restrict ch,",
             "                          const float *restrict w, float *restrict yr, float bias) {",
             *_block_start(acc, "m[0]")]
        L += _pattern_loops(spec, geo, taps, nv)
        L += _block_finish(acc, "m[0]", act)
        kernels.append("\n".join(L + ["}"]))
    direct = direct_ok(spec, geo)
    head = ["    const int32_t *meta = (const int32_t *)a[2].data;",
            "    const int32_t *choff = (const int32_t *)a[3].data;",
            "    const float *pvals = (const float *)a[4].data;",
            "    const int32_t *segs = (const int32_t *)a[5].data;",
            "    const float *bias = (const float *)a[6].data;"]
    loop = [f"    for (int b = 0; b < {nb}; b++) {{", "        for (int r = lo; r < hi; r++) {",
            f"            const int32_t *m = segs + ((size_t)b * {len(order)} + r) * {w};",
            f"            const int co = meta[{w} * r];"]
    call = "            if (m[0]) {}(xq, m, choff + m[1], pvals + 4 * (size_t)m[1], {});"
    body = [*loop, call.format("prowb", f"ct + (size_t)co * {geo.t}, 0.f"), "        }", "    }"]
    body_d = [*loop, call.format("prowbd", f"yq + (size_t)co * {ohw}, bias[co]"), "        }", "    }"]
    empty = [co for co in range(spec.cout) if co not in used]
    cost = [4 * sum(len(c) for cs in chans[co] for c in cs) + 1 for co in order]
    driver, chunking, ws = _driver_src(spec, geo, symbol, head, body, body_d if direct else None, empty, cost,
                                       f"meta + (size_t){w} * lo, {w}, hi - lo", [1] * len(order))
    src = "\n\n".join([kernels[0], *(kernels[1:] if direct else []), _fill_src(spec, geo), _epilogue_src(spec, geo),
                        _epilogue_all_src(spec, geo), driver])
    arrays = [np.asarray(meta, np.int32), np.asarray(choff, np.int32), np.asarray(pvals, np.float32),
              np.asarray(segs, np.int32)]
    stats = {"rows": len(order), "fma_per_position": 4 * len(choff), "patterns": npat, "channel_block": cb}
    return src, arrays, geo, stats, chunking, ws


def generate(spec: KernelSpec, variant: str = "sparse", *, vector_floats: int | None = None,
             vector_regs: int | None = None, name: str | None = None, with_reference: bool = True,
             dtypes: tuple[str, ...] = ("fp32",)) -> GeneratedKernel:
    """Generate the C kernel of `spec`.

    `vector_floats` / `vector_regs`: the target's vector shape (`devprof.artifacts.harness_build.
    vector_shape` of the toolchain that builds it); unset, this machine's ISA (`local` builds).

    variant "sparse": the scheme's own specialised kernel; "csr": the CSR kernel on the same pruned
    weights (same-compiler sparse baseline); "dense": the generated dense kernel (zeros included).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    if vector_floats is None or vector_regs is None:
        from ..artifacts.harness_build import host_toolchain, vector_shape

        vl, regs = vector_shape(host_toolchain())
        vector_floats, vector_regs = vector_floats or vl, vector_regs or regs
    why = unsupported(spec, dtypes)
    if why:
        raise ValueError(why)
    w, b = dense_weights(spec)
    pr = prune(spec, w)
    wm = (w * pr.mask).astype(np.float32)
    wm2 = wm.reshape(spec.cout, -1)
    name = name or f"k{spec.id}_{variant}"
    symbol = f"dpk_{name}"
    if depthwise.applies(spec):
        src = depthwise.source(spec, symbol, vector_floats, _VACT[spec.activation], _act_expr(spec.activation, "v"))
        arrays = [np.ascontiguousarray(wm.reshape(spec.cout, -1), np.float32)]
        ws = depthwise.geometry(spec, vector_floats)[2]
        chunking = Chunking(spec.n * spec.cin, (1,), ws)
        geo = Geometry("depthwise", vector_floats, 1, spec.out_w, -(-spec.out_w // vector_floats) * vector_floats)
        stats = {"fma_per_position": spec.kh * spec.kw, "format": "depthwise"}
    elif unrolled.applies(spec, variant, vector_floats, one_row_scheme(spec), int(pr.mask.sum())):
        src, stats = unrolled.source(spec, wm2, b, symbol, vector_floats, _VACT[spec.activation])
        arrays = []
        nchunks, nprep, ws = unrolled.chunks(spec, vector_floats)
        chunking = Chunking(nchunks, (1,), 0, nprep=nprep)
        q = spec.out_h * spec.out_w
        geo = Geometry("unrolled", vector_floats, 1, q, q)
    elif variant == "sparse" and spec.sparsity.scheme == "pattern":
        src, arrays, geo, stats, chunking, ws = _gen_pattern(spec, wm, pr, vector_floats, vector_regs, symbol)
    else:
        src, arrays, geo, stats, chunking, ws = _gen_groups(spec, wm2, pr.mask.reshape(spec.cout, -1), variant,
                                              vector_floats, vector_regs, symbol)
    arrays.append(np.asarray(b, np.float32))
    stats.update(achieved_ratio=float(pr.achieved), nnz=int(pr.mask.sum()), tile=geo.t, mode=geo.mode)
    header = (f"/* generated by devprof: {spec.key}\n * variant {variant}; {stats} */\n"
              f"#define DP_VL {vector_floats}\n#include \"dp_harness.h\"\n")
    if with_reference:
        idx, ref = reference_samples(spec, input_tensor(spec), wm, b)
    else:
        idx, ref = np.zeros(0, np.int32), np.zeros(0, np.float32)
    return GeneratedKernel(name=name, spec=spec, variant=variant, source=header + "\n" + src + "\n",
                           arrays=[idx, ref, *arrays], in_elems=spec.input_elems if spec.op != "fc" else spec.n * spec.cin,
                           out_elems=spec.output_elems, ws_floats=ws, seed=input_seed(spec), stats=stats,
                           chunking=chunking)


def pruned_weights(spec: KernelSpec) -> tuple[np.ndarray, np.ndarray, PruneResult]:
    """(pruned weight, bias, prune result) exactly as the generated kernel uses them."""
    w, b = dense_weights(spec)
    pr = prune(spec, w)
    return (w * pr.mask).astype(np.float32), b, pr
