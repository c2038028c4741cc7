"""Unrolled kernels: a one-row sparse conv with its kept weights compiled into the code.

A one-row kernel (unstructured, N:M, 1xc blocks, 3x3 patterns) shares no input vector between
output rows, so each FMA loads one vector of input: with 64-byte vectors (AVX-512) the loads, not
the FMA pipes, bound it, and on wide 3x3 layers the tile's input panel outgrows L1. Here the
weights become code instead: for one vector of output positions, a block of up to ACC output
channels keeps its accumulators in registers while every input vector that any of them needs is
loaded once and multiplied into each of them (its weights are constants, broadcast from memory),
so a load serves several FMAs, and the position's input window (cin x kh rows of one or two
cache lines) stays in L1 while every block passes over it. No offsets, no loop counters, no
branches: the sparsity is the instruction stream.

The input is copied once per call into one padded copy laid out row by row: padded row r holds
every channel's row r side by side, so a position's window spans kh rows of the copy rather than
cin planes. Rows are padded to an odd number of vectors (channels land in different cache sets).
Taps of columns j > 0 load unaligned: measured against one copy per kernel column (every load
aligned, kw times the copying and the window), the single copy was 1.05-1.25x faster.

The code grows with the kept weights, so only layers whose weights fit MAX_FMAS use it, and only
where it pays: AVX-512, stride-1 convs, output rows a whole number of vectors. Where several
blocks would pass over a window beyond WINDOW_BYTES, the input channels are split into passes
whose windows fit (`channel_blocks`).
"""
from __future__ import annotations

import numpy as np

from ..records import KernelSpec

ACC = 24
"""Accumulators (output channels) per block: with the input vector and slack, within AVX-512's
32 registers, so no block spills."""
MAX_FMAS = 20000
"""Most kept weights (FMA instructions) per kernel: the code is ~10 bytes per FMA, and compile time
grows with it."""
WINDOW_BYTES = 24576
"""Most bytes of one output vector's input window (cin x kh rows, two cache lines each) that
several blocks pass over: about 3/4 of a 32 KB L1 (`channel_blocks`). SR 3x3 64->32 (24 KB)
gained 1.1-1.3x in one pass; 128->32 (48 KB) in one pass lost up to 0.87x."""


def window_bytes(spec: KernelSpec, vl: int) -> int:
    """Bytes of the input one vector of output positions reads: cin x kh rows of vl + kw - 1
    floats from a vector-aligned start, in whole 64-byte lines (two for 16-float vectors)."""
    lines = -(-(vl + spec.kw - 1) * 4 // 64)
    return spec.cin * spec.kh * lines * 64


def applies(spec: KernelSpec, variant: str, vl: int, one_row: bool, nnz: int) -> bool:
    """Whether the fp32 `sparse` kernel of `spec` is unrolled (see the module docstring)."""
    return (variant == "sparse" and one_row and vl >= 16 and spec.op == "conv2d" and spec.stride == 1
            and spec.dilation == 1 and spec.groups == 1 and spec.kh * spec.kw > 1 and spec.out_w % vl == 0
            and 0 < nnz <= MAX_FMAS)


def channel_blocks(spec: KernelSpec, vl: int) -> list[range]:
    """Input channels per pass: all of them, or where several blocks of output channels would
    pass over a window beyond WINDOW_BYTES, balanced parts whose windows fit it (each pass but
    the first reloads the blocks' partial sums from the output, each but the last stores them
    without the activation)."""
    parts = 1 if spec.cout <= ACC else -(-window_bytes(spec, vl) // WINDOW_BYTES)
    return [range(spec.cin * t // parts, spec.cin * (t + 1) // parts) for t in range(parts)]


def row_floats(spec: KernelSpec, vl: int) -> int:
    """Floats per padded row of one channel: whole vectors, an odd number of them."""
    wp = -(-(spec.w + 2 * spec.padding) // vl) * vl
    return wp + vl if (wp // vl) % 2 == 0 else wp


def workspace(spec: KernelSpec, vl: int) -> tuple[int, int]:
    """(floats per padded row of every channel, floats of one image's copy)."""
    rs = spec.cin * row_floats(spec, vl)
    return rs, (spec.h + 2 * spec.padding) * rs


def chunks(spec: KernelSpec, vl: int) -> tuple[int, int, int]:
    """(chunks: vectors of every image's output rows, prep chunks: every image's padded rows,
    workspace floats: every image's copy)."""
    return (spec.n * spec.out_h * (spec.out_w // vl), spec.n * (spec.h + 2 * spec.padding),
            spec.n * workspace(spec, vl)[1])


def blocks(cout: int) -> list[range]:
    """Output channels per block: ceil(cout / ACC) blocks of balanced size."""
    nb = -(-cout // ACC)
    return [range(cout * t // nb, cout * (t + 1) // nb) for t in range(nb)]


def _hex(v: float) -> str:
    return float(np.float32(v)).hex() + "f"


def source(spec: KernelSpec, wm2: np.ndarray, bias: np.ndarray, symbol: str, vl: int, act_vec: str
           ) -> tuple[str, dict]:
    """C source (prep: rows of the copy; range: output vectors, every block) and stats."""
    p, kw, cin = spec.padding, spec.kw, spec.cin
    h, w, oh, ow = spec.h, spec.w, spec.out_h, spec.out_w
    wp = row_floats(spec, vl)
    rs, img = workspace(spec, vl)
    hp = h + 2 * p
    # column k of the (cout x K) weight matrix is (i, j, ci) (`codegen._col_offsets`)
    offs = []
    for k in range(wm2.shape[1]):
        r, ci = divmod(k, cin)
        i, j = divmod(r, kw)
        offs.append(i * rs + ci * wp + j)
    order = sorted(range(wm2.shape[1]), key=lambda k: offs[k])  # ascending addresses
    chans = channel_blocks(spec, vl)
    fns, loads = [], 0
    for c, ch in enumerate(chans):
        first, last = c == 0, c == len(chans) - 1
        for b, cos in enumerate(blocks(spec.cout)):
            sub = wm2[cos.start:cos.stop]
            L = [f"static __attribute__((noinline)) void {symbol}_b{len(fns)}(const float *restrict xq, float *restrict yq) {{"]
            L += [f"    dp_v a{n} = {f'dp_splat({_hex(bias[co])})' if first else f'dp_ld(yq + {co * oh * ow})'};"
                  for n, co in enumerate(cos)]
            for k in order:
                if k % cin not in ch:
                    continue
                nz = np.flatnonzero(sub[:, k])
                if not len(nz):
                    continue
                loads += 1
                L.append(f"    {{ const dp_v v = dp_ld(xq + {offs[k]});")
                L += [f"      a{n} = dp_fma(a{n}, {_hex(sub[n, k])}, v);" for n in nz]
                L.append("    }")
            L += [f"    dp_st(yq + {co * oh * ow}, {act_vec.format(f'a{n}') if last else f'a{n}'});" for n, co in enumerate(cos)]
            fns.append("\n".join(L + ["}"]))
    nvx = ow // vl
    nchunks, nprep, _ = chunks(spec, vl)
    args = "const float *restrict x, float *restrict y, float *restrict ws, const dp_array *restrict a"
    calls = [f"        {symbol}_b{b}(xq, yq);" for b in range(len(fns))]
    src = "\n\n".join([*fns, "\n".join([
        # prep chunk = (image, padded row); the padding rows and columns are never written (zero)
        f"void {symbol}_prep({args}, int64_t p0, int64_t p1);",
        f"void {symbol}_prep({args}, int64_t p0, int64_t p1) {{",
        "    (void)y; (void)a;",
        "    for (int64_t pc = p0; pc < p1; pc++) {",
        f"        const int n = (int)(pc / {hp}), r = (int)(pc % {hp});",
        f"        if (r < {p} || r >= {h + p}) continue;",
        f"        for (int ci = 0; ci < {cin}; ci++) {{",
        f"            const float *s = x + ((size_t)n * {cin} + ci) * {h * w} + (size_t)(r - {p}) * {w};",
        f"            memcpy(ws + (size_t)n * {img} + (size_t)r * {rs} + (size_t)ci * {wp} + {p}, s, {w} * sizeof(float));",
        "        }",
        "    }",
        "}",
        # chunk = (image, output row, vector of columns): every block over it
        f"void {symbol}_range({args}, int64_t c0, int64_t c1, float *restrict tws);",
        f"void {symbol}_range({args}, int64_t c0, int64_t c1, float *restrict tws) {{",
        "    (void)x; (void)a; (void)tws;",
        "    for (int64_t c = c0; c < c1; c++) {",
        f"        const int n = (int)(c / {oh * nvx}), u = (int)(c % {oh * nvx});",
        f"        const int oy = u / {nvx}, ox = (u % {nvx}) * {vl};",
        f"        const float *xq = ws + (size_t)n * {img} + (size_t)oy * {rs} + ox;",
        f"        float *yq = y + (size_t)n * {spec.cout * oh * ow} + (size_t)oy * {ow} + ox;",
        *calls,
        "    }",
        "}",
        f"void {symbol}({args});",
        f"void {symbol}({args}) {{",
        f"    {symbol}_prep(x, y, ws, a, 0, {nprep});",
        f"    {symbol}_range(x, y, ws, a, 0, {nchunks}, ws);",
        "}",
        f"const int32_t {symbol}_cost[1] = {{1}};"])])
    stats = {"format": "unrolled", "blocks": len(fns) // len(chans), "channel_passes": len(chans), "loads_per_vector": loads,
             "fma_per_position": int(np.count_nonzero(wm2))}
    return src, stats
