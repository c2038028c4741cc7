"""Depthwise convolutions as a direct kernel: one channel at a time, vectors along output columns.

The implicit-GEMM loop of `codegen` treats a depthwise conv as C one-row groups of K*K columns,
walked tile by tile across *all* channels: every tile touches every channel's plane, so nothing
stays in cache and each output goes through the tile buffer. Depthwise layers dominate a pruned
MobileNet (they stay dense), so they get their own loop: the channel's input is copied once into
zero-bordered, stride-phase-split planes that fit in L1/L2 (so padding and stride cost no branch),
then each output row is computed VL columns at a time from K*K contiguous (unaligned) loads with
the weights held in registers, bias and activation applied, and stored straight into the NCHW
output.
"""
from __future__ import annotations

from ..records import KernelSpec


def applies(spec: KernelSpec) -> bool:
    """A plain depthwise conv: one input channel per output channel, no dilation, dense."""
    return (spec.op == "dwconv2d" and spec.groups == spec.cin == spec.cout and spec.dilation == 1
            and spec.sparsity.scheme == "dense")


def geometry(spec: KernelSpec, vl: int) -> tuple[int, int, int]:
    """(padded rows, floats per phase row, workspace floats)."""
    s, p = spec.stride, spec.padding
    hp = spec.h + 2 * p
    pw = -(-(spec.w + 2 * p) // s) + vl
    return hp, pw, s * hp * pw


def source(spec: KernelSpec, symbol: str, vl: int, act_vec: str, act_scalar: str) -> str:
    """C source of the kernel; arrays a[2] = weights (C x K*K), a[3] = bias (C)."""
    s, p, k = spec.stride, spec.padding, spec.kh
    h, w, c, oh, ow = spec.h, spec.w, spec.cin, spec.out_h, spec.out_w
    hp, pw, _ = geometry(spec, vl)
    fill = []
    for ph in range(s):  # padded column s*j + ph holds input column s*j + ph - p
        j0 = max(0, -(-(p - ph) // s))
        j1 = (w - 1 + p - ph) // s + 1
        if j1 > j0:
            fill.append(f"            {{ float *d = ws + ((size_t){ph * hp} + r + {p}) * {pw};\n"
                        f"              for (int j = {j0}; j < {j1}; j++) d[j] = srow[{s} * j + {ph - p}]; }}")
    def row(r: int, kx: int, oy: str) -> str:  # padded input row oy*s + r, column ox*s + kx
        return f"ws + ((size_t){(kx % s) * hp} + {oy} * {s} + {r}) * {pw} + ox + {kx // s}"

    taps_v, pair = [], []
    for ky in range(k):
        for kx in range(k):
            taps_v.append(f"                acc = dp_fma(acc, w{ky * k + kx}, dp_ld({row(ky, kx, 'oy')}));")
    # two output rows at once: each input row vector loaded once serves both (rows oy*s + r)
    for r in range(k + s):
        for kx in range(k):
            uses = [(a, r - a * s) for a in (0, 1) if 0 <= r - a * s < k]
            if not uses:
                continue
            pair.append(f"                {{ const dp_v v = dp_ld({row(r, kx, 'oy')});")
            pair += [f"                  acc{a} = dp_fma(acc{a}, w{ky * k + kx}, v);" for a, ky in uses]
            pair.append("                }")
    wdecl = [f"        const float w{i} = wc[{i}];" for i in range(k * k)]
    args = "const float *restrict x, float *restrict y, float *restrict ws, const dp_array *restrict a"
    return "\n".join([
        # chunks are channels (of every image), each thread with its own planes (tws)
        f"void {symbol}_prep({args}, int64_t p0, int64_t p1);",
        f"void {symbol}_prep({args}, int64_t p0, int64_t p1) {{ (void)x; (void)y; (void)ws; (void)a; (void)p0; (void)p1; }}",
        f"void {symbol}_range({args}, int64_t c0, int64_t c1, float *restrict tws);",
        f"void {symbol}_range({args}, int64_t c0, int64_t c1, float *restrict tws) {{",
        "    (void)ws;",
        "    const float *wt = (const float *)a[2].data;",
        "    const float *bias = (const float *)a[3].data;",
        "    for (int64_t nc = c0; nc < c1; nc++) {",
        f"        const int n = (int)(nc / {c}), c = (int)(nc % {c});",
        "        float *ws = tws;",
        f"        const float *src = x + ((size_t)n * {c} + c) * {h * w};",
        f"        float *dst = y + ((size_t)n * {c} + c) * {oh * ow};",
        f"        for (int r = 0; r < {h}; r++) {{",
        f"            const float *srow = src + (size_t)r * {w};",
        *fill,
        "        }",
        f"        const float *wc = wt + (size_t)c * {k * k};",
        *wdecl,
        "        const float b = bias[c];",
        "        int oy = 0;",
        f"        for (; oy + 2 <= {oh}; oy += 2) {{",
        "            int ox = 0;",
        f"            for (; ox + DP_VL <= {ow}; ox += DP_VL) {{",
        "                dp_v acc0 = dp_splat(b), acc1 = acc0;",
        *pair,
        f"                dp_st(dst + (size_t)oy * {ow} + ox, {act_vec.format('acc0')});",
        f"                dp_st(dst + (size_t)(oy + 1) * {ow} + ox, {act_vec.format('acc1')});",
        "            }",
        # the row's last columns: a whole vector (its reads stay inside the plane's slack), stored
        # through a buffer (narrow rows such as 7x7 are all tail)
        f"            if (ox < {ow}) {{",
        "                dp_v acc0 = dp_splat(b), acc1 = acc0;",
        *pair,
        "                float t0[DP_VL], t1[DP_VL];",
        f"                dp_st(t0, {act_vec.format('acc0')}); dp_st(t1, {act_vec.format('acc1')});",
        f"                memcpy(dst + (size_t)oy * {ow} + ox, t0, (size_t)({ow} - ox) * sizeof(float));",
        f"                memcpy(dst + (size_t)(oy + 1) * {ow} + ox, t1, (size_t)({ow} - ox) * sizeof(float));",
        "            }",
        "        }",
        f"        for (; oy < {oh}; oy++) {{",
        "            int ox = 0;",
        f"            for (; ox + DP_VL <= {ow}; ox += DP_VL) {{",
        "                dp_v acc = dp_splat(b);",
        *taps_v,
        f"                dp_st(dst + (size_t)oy * {ow} + ox, {act_vec.format('acc')});",
        "            }",
        f"            if (ox < {ow}) {{",
        "                dp_v acc = dp_splat(b);",
        *taps_v,
        "                float t0[DP_VL];",
        f"                dp_st(t0, {act_vec.format('acc')});",
        f"                memcpy(dst + (size_t)oy * {ow} + ox, t0, (size_t)({ow} - ox) * sizeof(float));",
        "            }",
        "        }",
        "    }",
        "}",
        f"void {symbol}({args});",
        f"void {symbol}({args}) {{ {symbol}_range(x, y, ws, a, 0, {spec.n * c}, ws); }}",
        f"const int32_t {symbol}_cost[1] = {{1}};",
    ])
