"""int8 C code generation: dense and every sparsity scheme as integer kernels for `devprof-c`.

The arithmetic is the integer reference's (`devprof.runtimes.quantize.reference_q`, rounding
half to even) bit for bit: int8 weights (per-channel symmetric, [-127, 127]) times uint8
activations (scale, zero point), summed exactly in int32, plus the int32 bias, then requantized
per output channel with a float64 multiplier (x_scale * w_scale[c] / y_scale, the reference's
own expression), rounded by `rint` and clamped to the fused activation's range. So the harness's
check is exact: outputs are shipped as the quantized integers (as floats, which hold them
exactly), and a kernel off by one step fails.

Layout follows the fp32 generator (`codegen`): an implicit GEMM over a padded, stride-phase-split,
channel-major copy of the input, one byte per element, where a weight column k is an offset.
What changes is the inner product: a group's kept columns (the rows of a group share them; see
`codegen.make_groups`) are regrouped in fours along K, zero-padded to a multiple of 4, because
that is what dot-product instructions consume: each step loads the four columns' rows of 16
positions, interleaves them into 4-byte quads per position (once per group, shared by its R
rows) and accumulates one 4-term dot product per row and position:

  x86 AVX-512 VNNI / AVX-VNNI  ``vpdpbusd`` (u8 x s8); the input copy keeps the raw uint8 value
  x86 AVX2                     exact 16-bit pairs (``vpmovsxbw`` + ``vpmaddwd``): ``vpmaddubsw``
                               would saturate with full-range weights
  arm64 +dotprod               ``sdot`` (s8 x s8) on inputs stored as x - 128
  anything else                portable C on the same data (what the compiler makes of it)

The stored input byte is x - XSHIFT (XSHIFT = 0 for VNNI, 128 elsewhere); padding holds the
zero point's byte, so padding contributes the real zero once the per-row correction
(zp - XSHIFT) * sum(w[row]) is taken off the bias. `-DDP8_PORTABLE` forces the portable path.

The input is the quantized tensor itself, shipped in the data file (the harness's generator makes
floats), so a timed call is the int8 layer alone: input copy, integer GEMM, requantization.
Kernels run on one thread (no chunked entry points yet).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..records import KernelSpec
from ..runtimes.quantize import INT8_ACTIVATIONS, QKernel, _act_range, quantize_kernel, reference_q
from .codegen import VARIANTS, GeneratedKernel, _col_offsets, geometry, make_groups
from .pruning import block_param, prune
from .weights import dense_weights, input_seed, input_tensor

#: activation type of devprof-c's int8 kernels (ONNX Runtime's x86 QDQ choice, and vpdpbusd's)
ACT_DTYPE = "uint8"
UNIT = 16  # positions per accumulator unit (two 8-lane int32 vectors, four NEON ones)
TILE_UNITS = 4  # units per tile: T = 64 positions
SAMPLES_MAX = 20000


def unsupported(spec: KernelSpec) -> str | None:
    """None when devprof-c generates an int8 kernel for `spec`, else why not (one line)."""
    if spec.op not in ("conv2d", "dwconv2d", "pwconv", "fc"):
        return f"devprof-c generates conv and fc kernels only, not {spec.op}"
    if spec.dilation != 1:
        return "dilated convolutions are not generated"
    if spec.activation not in INT8_ACTIVATIONS:
        return f"int8 kernels fuse {'/'.join(INT8_ACTIVATIONS)} only (the requantization's clamp), not {spec.activation}"
    if spec.input_elems >= 2**31 or spec.output_elems >= 2**31 or spec.n * spec.cin >= 2**31:
        return "too large"
    return None


@dataclass
class Int8Layer:
    """A spec's pruned weights quantized, its quantized input and the integer reference output."""

    qk: QKernel
    mask2: np.ndarray  # (cout, K) kept weights
    w_q2: np.ndarray  # (cout, K) int8
    x_q: np.ndarray  # the input in the kernel's layout: NCHW (conv) or (n, cin) (fc), uint8
    y_q: np.ndarray  # reference output in the kernel's layout, int64


def quantized_layer(spec: KernelSpec) -> Int8Layer:
    """Quantize the pruned layer exactly as the generated kernel computes it."""
    w, b = dense_weights(spec)
    pr = prune(spec, w)
    wm = (w * pr.mask).astype(np.float32)
    x = input_tensor(spec)
    xin = x if spec.op == "fc" else x.transpose(0, 2, 3, 1)  # the references read NHWC
    qk = quantize_kernel(spec, {"x": np.ascontiguousarray(xin), "w": wm, "b": b}, ACT_DTYPE)
    y = reference_q(qk, rounding="half_even")
    x_q = qk.inputs["x"] if spec.op == "fc" else qk.inputs["x"].transpose(0, 3, 1, 2)
    if spec.op != "fc":
        y = y.transpose(0, 3, 1, 2)
    return Int8Layer(qk, pr.mask.reshape(spec.cout, -1), qk.w_q.reshape(spec.cout, -1),
                     np.ascontiguousarray(x_q), np.ascontiguousarray(y))


def _bytes_as_i32(b: np.ndarray) -> np.ndarray:
    b = np.ascontiguousarray(b).view(np.uint8).ravel()
    pad = (-len(b)) % 4
    if pad:
        b = np.concatenate([b, np.zeros(pad, np.uint8)])
    return b.view("<i4").copy()


# ---- the ISA layer: one unit = 16 positions, one step = a quad of columns ---------------------
#: Which path a build takes: decided by the compiler's own macros, so `PATH_PROBE` run through the
#: target's preprocessor (`harness_build.preprocess`) names the path a kernel was built with.
_PATH_SELECT = r"""
#if defined(DP8_PORTABLE)
#  define DP8_PATH 0
#elif defined(__AVX512VNNI__) && defined(__AVX512VL__)
#  define DP8_PATH 3
#elif defined(__AVXVNNI__)
#  define DP8_PATH 2
#elif defined(__AVX2__)
#  define DP8_PATH 1
#elif defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#  define DP8_PATH 4
#else
#  define DP8_PATH 0
#endif"""
PATH_PROBE = _PATH_SELECT + "\ndp8_path DP8_PATH\n"
#: DP8_PATH -> the name records carry (`Record.kernel`: "int8 sdot").
PATH_NAMES = {0: "portable", 1: "avx2", 2: "avx-vnni", 3: "avx512-vnni", 4: "sdot"}
#: The object flags of an int8 kernel for an arm64 CPU with the dot product (/proc/cpuinfo
#: ``asimddp``): the last -march wins, so only the kernel uses the extension.
DOTPROD_CFLAGS = ("-march=armv8.2-a+dotprod",)


def cflags_for(abi: str, native: bool, features: frozenset[str] | set[str]) -> tuple[str, ...]:
    """An int8 kernel's own flags for a target of `abi` with CPU `features`: +dotprod on arm64 CPUs
    that have it. A `native` build (``-march=native``, the local device) already targets its CPU."""
    return DOTPROD_CFLAGS if abi == "arm64-v8a" and not native and "asimddp" in features else ()


def path_from_probe(preprocessed: str) -> str:
    """The path name in `PATH_PROBE`'s preprocessed text ("sdot", "portable"...)."""
    for line in preprocessed.splitlines():
        word, _, value = line.strip().partition(" ")
        if word == "dp8_path" and value.strip().isdigit():
            return PATH_NAMES.get(int(value), "portable")
    raise ValueError("the int8 path probe printed no path")


_ISA = _PATH_SELECT + r"""
#if DP8_PATH == 2 || DP8_PATH == 3
#  define DP8_XSHIFT 0
typedef uint8_t dp8_t;
#else
#  define DP8_XSHIFT 128
typedef int8_t dp8_t;
#endif

#if DP8_PATH >= 1 && DP8_PATH <= 3
#include <immintrin.h>
typedef struct { __m256i v[2]; } dp8_acc;
static inline void dp8_zero(dp8_acc *a) { a->v[0] = _mm256_setzero_si256(); a->v[1] = a->v[0]; }
static inline void dp8_st(int32_t *p, const dp8_acc *a) {
    _mm256_storeu_si256((__m256i *)p, a->v[0]); _mm256_storeu_si256((__m256i *)(p + 8), a->v[1]);
}
#if DP8_PATH == 1
/* exact 16-bit pairs: (a, b) and (c, d) sign-extended, vpmaddwd with the weights' i16 pairs */
typedef struct { __m256i v[4]; } dp8_x;
static inline void dp8_ldx(dp8_x *x, const dp8_t *a, const dp8_t *b, const dp8_t *c, const dp8_t *d) {
    __m128i va = _mm_loadu_si128((const __m128i *)a), vb = _mm_loadu_si128((const __m128i *)b);
    __m128i vc = _mm_loadu_si128((const __m128i *)c), vd = _mm_loadu_si128((const __m128i *)d);
    x->v[0] = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(va, vb));
    x->v[1] = _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(va, vb));
    x->v[2] = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(vc, vd));
    x->v[3] = _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(vc, vd));
}
static inline void dp8_step(dp8_acc *acc, const dp8_x *x, int32_t w4, int32_t wab, int32_t wcd) {
    (void)w4;
    const __m256i p = _mm256_set1_epi32(wab), q = _mm256_set1_epi32(wcd);
    acc->v[0] = _mm256_add_epi32(acc->v[0], _mm256_add_epi32(_mm256_madd_epi16(x->v[0], p), _mm256_madd_epi16(x->v[2], q)));
    acc->v[1] = _mm256_add_epi32(acc->v[1], _mm256_add_epi32(_mm256_madd_epi16(x->v[1], p), _mm256_madd_epi16(x->v[3], q)));
}
#else
/* 4-byte quads per position (u8), vpdpbusd with the weights' quad */
typedef struct { __m256i v[2]; } dp8_x;
static inline void dp8_ldx(dp8_x *x, const dp8_t *a, const dp8_t *b, const dp8_t *c, const dp8_t *d) {
    __m128i va = _mm_loadu_si128((const __m128i *)a), vb = _mm_loadu_si128((const __m128i *)b);
    __m128i vc = _mm_loadu_si128((const __m128i *)c), vd = _mm_loadu_si128((const __m128i *)d);
    __m128i ab0 = _mm_unpacklo_epi8(va, vb), ab1 = _mm_unpackhi_epi8(va, vb);
    __m128i cd0 = _mm_unpacklo_epi8(vc, vd), cd1 = _mm_unpackhi_epi8(vc, vd);
    x->v[0] = _mm256_set_m128i(_mm_unpackhi_epi16(ab0, cd0), _mm_unpacklo_epi16(ab0, cd0));
    x->v[1] = _mm256_set_m128i(_mm_unpackhi_epi16(ab1, cd1), _mm_unpacklo_epi16(ab1, cd1));
}
static inline void dp8_step(dp8_acc *acc, const dp8_x *x, int32_t w4, int32_t wab, int32_t wcd) {
    (void)wab; (void)wcd;
    const __m256i w = _mm256_set1_epi32(w4);
#if DP8_PATH == 3
    acc->v[0] = _mm256_dpbusd_epi32(acc->v[0], x->v[0], w);
    acc->v[1] = _mm256_dpbusd_epi32(acc->v[1], x->v[1], w);
#else
    acc->v[0] = _mm256_dpbusd_avx_epi32(acc->v[0], x->v[0], w);
    acc->v[1] = _mm256_dpbusd_avx_epi32(acc->v[1], x->v[1], w);
#endif
}
#endif
#elif DP8_PATH == 4
#include <arm_neon.h>
#if defined(__GNUC__) && !defined(__clang__)
/* GCC's first scheduling pass hoists every load of a step (16 for four units) above the zips and
 * then spills accumulators inside the loop; without it GCC's loop is as clang's: no stack access */
#pragma GCC optimize("no-schedule-insns")
#endif
/* 4-byte quads per position (s8), sdot with the weights' quad */
typedef struct { int32x4_t v[4]; } dp8_acc;
typedef struct { int8x16_t v[4]; } dp8_x;
static inline void dp8_zero(dp8_acc *a) { a->v[0] = a->v[1] = a->v[2] = a->v[3] = vdupq_n_s32(0); }
static inline void dp8_st(int32_t *p, const dp8_acc *a) {
    vst1q_s32(p, a->v[0]); vst1q_s32(p + 4, a->v[1]); vst1q_s32(p + 8, a->v[2]); vst1q_s32(p + 12, a->v[3]);
}
static inline void dp8_ldx(dp8_x *x, const dp8_t *a, const dp8_t *b, const dp8_t *c, const dp8_t *d) {
    int8x16_t va = vld1q_s8(a), vb = vld1q_s8(b), vc = vld1q_s8(c), vd = vld1q_s8(d);
    int16x8_t ab0 = vreinterpretq_s16_s8(vzip1q_s8(va, vb)), ab1 = vreinterpretq_s16_s8(vzip2q_s8(va, vb));
    int16x8_t cd0 = vreinterpretq_s16_s8(vzip1q_s8(vc, vd)), cd1 = vreinterpretq_s16_s8(vzip2q_s8(vc, vd));
    x->v[0] = vreinterpretq_s8_s16(vzip1q_s16(ab0, cd0));
    x->v[1] = vreinterpretq_s8_s16(vzip2q_s16(ab0, cd0));
    x->v[2] = vreinterpretq_s8_s16(vzip1q_s16(ab1, cd1));
    x->v[3] = vreinterpretq_s8_s16(vzip2q_s16(ab1, cd1));
}
static inline void dp8_step(dp8_acc *acc, const dp8_x *x, int32_t w4, int32_t wab, int32_t wcd) {
    (void)wab; (void)wcd;
    const int8x16_t w = vreinterpretq_s8_s32(vdupq_n_s32(w4));
    acc->v[0] = vdotq_s32(acc->v[0], x->v[0], w);
    acc->v[1] = vdotq_s32(acc->v[1], x->v[1], w);
    acc->v[2] = vdotq_s32(acc->v[2], x->v[2], w);
    acc->v[3] = vdotq_s32(acc->v[3], x->v[3], w);
}
#else
/* portable: the four columns' rows as they are, 4-term products per position */
typedef struct { int32_t v[16]; } dp8_acc;
typedef struct { dp8_t v[4][16]; } dp8_x;
static inline void dp8_zero(dp8_acc *a) { memset(a->v, 0, sizeof a->v); }
static inline void dp8_st(int32_t *p, const dp8_acc *a) { memcpy(p, a->v, sizeof a->v); }
static inline void dp8_ldx(dp8_x *x, const dp8_t *a, const dp8_t *b, const dp8_t *c, const dp8_t *d) {
    memcpy(x->v[0], a, 16); memcpy(x->v[1], b, 16); memcpy(x->v[2], c, 16); memcpy(x->v[3], d, 16);
}
static inline void dp8_step(dp8_acc *acc, const dp8_x *x, int32_t w4, int32_t wab, int32_t wcd) {
    (void)wab; (void)wcd;
    int8_t w[4];
    memcpy(w, &w4, 4);
    for (int i = 0; i < 16; i++)
        acc->v[i] += (int32_t)w[0] * x->v[0][i] + (int32_t)w[1] * x->v[1][i] + (int32_t)w[2] * x->v[2][i]
                     + (int32_t)w[3] * x->v[3][i];
}
#endif
"""


#: A run of one output row requantized in float32, vectorised; a value whose float32 product
#: lies within 5e-4 of a rounding tie (where float32's error, below 4e-4 for |v| < 2048, could
#: round it the other way) sends the run through the float64 path, so the result is always the
#: float64 reference's. |v| >= 2048 clamps the same either way (outputs are 0..255).
_ROW = """static inline void dp8_row(const int32_t *restrict c, uint8_t *restrict y, int n, int32_t bb, float mf, double mm) {{
    int amb = 0, i = 0;
#if DP8_PATH >= 1 && DP8_PATH <= 3
    {{ /* 16 at a time: float32 product, round, clamp in float (exact for integers), pack to bytes */
        const __m256 m = _mm256_set1_ps(mf), zp = _mm256_set1_ps({zp}.f), lo = _mm256_set1_ps({lo}.f);
        const __m256 hi = _mm256_set1_ps({hi}.f), tie = _mm256_set1_ps(0.4995f), sign = _mm256_set1_ps(-0.f);
        const __m256i b = _mm256_set1_epi32(bb);
        __m256 ambv = _mm256_setzero_ps();
        for (; i + 16 <= n; i += 16) {{
            __m256 v0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(c + i)), b)), m);
            __m256 v1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(c + i + 8)), b)), m);
            __m256 r0 = _mm256_round_ps(v0, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            __m256 r1 = _mm256_round_ps(v1, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            ambv = _mm256_or_ps(ambv, _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_sub_ps(v0, r0)), tie, _CMP_GT_OQ));
            ambv = _mm256_or_ps(ambv, _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_sub_ps(v1, r1)), tie, _CMP_GT_OQ));
            r0 = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(r0, zp), lo), hi);
            r1 = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(r1, zp), lo), hi);
            __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(_mm256_cvtps_epi32(r0), _mm256_cvtps_epi32(r1)), 0xD8);
            _mm_storeu_si128((__m128i *)(y + i), _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1)));
        }}
        amb = _mm256_movemask_ps(ambv);
    }}
#endif
    for (; i < n; i++) {{
        const float v = (float)(c[i] + bb) * mf;
        float r = rintf(v), d = v - r;
        d = d < 0.f ? -d : d;
        amb |= d > 0.4995f;
        r = r < -4096.f ? -4096.f : r;
        r = r > 4096.f ? 4096.f : r;
        int32_t q = (int32_t)r + {zp};
        q = q < {lo} ? {lo} : q;
        q = q > {hi} ? {hi} : q;
        y[i] = (uint8_t)q;
    }}
    if (amb)
        for (i = 0; i < n; i++) y[i] = dp8_req(c[i] + bb, mm);
}}"""


def _mk(r: int, nu: int, t: int) -> str:
    """Micro-kernel: R rows x NU units of 16 positions over a group's quads of columns."""
    L = [f"static inline void mk8_{r}_{nu}(const dp8_t *restrict xq, const int32_t *restrict off,",
         "        const int32_t *restrict w4, const int32_t *restrict w16, int nq, int32_t *restrict ct) {"]
    L += [f"    dp8_acc a{i}_{u}; dp8_zero(&a{i}_{u});" for i in range(r) for u in range(nu)]
    L += ["    for (int j = 0; j < nq; j++) {", "        const int32_t *o = off + 4 * j;"]
    L += [f"        const int32_t k{i} = w4[j * {r} + {i}], p{i} = w16[(j * {r} + {i}) * 2], "
          f"q{i} = w16[(j * {r} + {i}) * 2 + 1];" for i in range(r)]
    for u in range(nu):
        L += [f"        {{ dp8_x x; dp8_ldx(&x, xq + o[0] + {u * UNIT}, xq + o[1] + {u * UNIT}, "
              f"xq + o[2] + {u * UNIT}, xq + o[3] + {u * UNIT});"]
        L += [f"          dp8_step(&a{i}_{u}, &x, k{i}, p{i}, q{i});" for i in range(r)]
        L += ["        }"]
    L += ["    }"]
    L += [f"    dp8_st(ct + {i} * {t} + {u * UNIT}, &a{i}_{u});" for i in range(r) for u in range(nu)]
    return "\n".join(L + ["}"])


def _units(r: int, tu: int) -> int:
    """Units per micro-kernel call: accumulators for R x NU units fit the 16 vector registers,
    and NU divides the tile's TU units."""
    nu = min(max(1, 4 // r), tu)
    while tu % nu:
        nu -= 1
    return nu


def generate(spec: KernelSpec, variant: str = "sparse", *, name: str | None = None,
             with_reference: bool = True) -> GeneratedKernel:
    """Generate the int8 C kernel of `spec` (variant as in `codegen.generate`)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    why = unsupported(spec)
    if why:
        raise ValueError(why)
    layer = quantized_layer(spec)
    qk = layer.qk
    # positions per tile: up to TILE_UNITS units, fewer when the layer has fewer positions (fc
    # with a few rows, small feature maps), so padding never exceeds one unit per tile
    positions = spec.n if spec.op == "fc" else spec.out_h * (-(-(spec.w + 2 * spec.padding) // spec.stride))
    tu = max(1, min(TILE_UNITS, -(-positions // UNIT)))
    T = UNIT * tu
    single = variant == "csr" or spec.sparsity.scheme in ("unstructured", "nm", "pattern") or (
        spec.sparsity.scheme == "block" and block_param(spec.sparsity, (4, 1))[0] == 1 and variant == "sparse")
    rmax = 1 if single else 4
    # positions: conv output positions of the padded plane (junk columns included), fc rows
    if spec.op == "fc":
        q = spec.n
        qpad = -(-q // T) * T
        cs = qpad
        offsets = lambda row, cols: [c * cs for c in cols]  # noqa: E731
        xc_size = spec.cin * cs + T
        geo = None
    else:
        geo = geometry(spec, UNIT, TILE_UNITS)
        geo = type(geo)(geo.mode, T, tu, geo.q, -(-geo.q // T) * T, geo.hph, geo.wph, geo.plane, geo.cs,
                        spec.cin * geo.cs + -(-geo.q // T) * T + T)
        q, qpad, cs, xc_size = geo.q, geo.qpad, geo.cs, geo.xc_size
        offsets = lambda row, cols: _col_offsets(spec, geo, row, cols)  # noqa: E731
    groups = make_groups(spec, layer.mask2, variant, rmax)
    groups.sort(key=lambda g: -len(g.rows))
    w2 = layer.w_q2.astype(np.int64)
    meta, rows, offs, w4, w16 = [], [], [], [], []
    for g in groups:
        cols = list(g.cols)
        if not cols:
            cols = [0]
        nq = -(-len(cols) // 4)
        o = offsets(g.rows[0], cols)
        wv = w2[np.ix_(g.rows, cols)]  # (R, nc)
        padn = nq * 4 - len(cols)
        o += [o[-1]] * padn
        wv = np.concatenate([wv, np.zeros((len(g.rows), padn), np.int64)], axis=1)
        meta += [nq, len(offs), len(w4), len(rows), len(g.rows)]
        rows += g.rows
        offs += o
        quads = wv.reshape(len(g.rows), nq, 4).transpose(1, 0, 2)  # (nq, R, 4)
        w4 += _bytes_as_i32(quads.astype(np.int8)).tolist()
        w16 += _bytes_as_i32(quads.astype(np.int16)).tolist()
    meta += [0, len(offs), len(w4), len(rows), 0]
    out = qk.out
    lo, hi = _act_range(spec, out)
    mult = (np.float64(qk.x.scale) * qk.w_scale.astype(np.float64) / np.float64(out.scale)).astype("<f8")
    rowsum = w2.sum(axis=1)
    bias = qk.b_q.astype(np.int64)
    used = {r for g in groups for r in g.rows}
    empty = [r for r in range(spec.cout) if r not in used]
    zp = qk.x.zero_point
    rs = sorted({len(g.rows) for g in groups}, reverse=True)
    kernels = [_mk(r, _units(r, tu), T) for r in rs]
    symbol = f"dpk_{name or f'k{spec.id}_{variant}'}"
    ohw = spec.out_h * spec.out_w if spec.op != "fc" else 0
    # --- fill: the input copy (one byte per element, padding = the zero point's byte)
    if spec.op == "fc":
        n, cin = spec.n, spec.cin
        fill = ["static void fill(const uint8_t *restrict x, dp8_t *restrict xc) {",
                f"    memset(xc, PADB, {xc_size});",
                f"    for (int u = 0; u < {n}; u++)",
                f"        for (int ci = 0; ci < {cin}; ci++) xc[(size_t)ci * {cs} + u] = (dp8_t)(x[(size_t)u * {cin} + ci] - DP8_XSHIFT);",
                "}"]
    else:
        s, p, h, w = spec.stride, spec.padding, spec.h, spec.w
        fill = ["static void fill(const uint8_t *restrict x, dp8_t *restrict xc) {",
                f"    memset(xc, PADB, {xc_size});",
                f"    for (int ci = 0; ci < {spec.cin}; ci++) {{",
                f"        const uint8_t *src = x + (size_t)ci * {h * w};",
                f"        dp8_t *dst = xc + (size_t)ci * {cs};",
                f"        for (int ih = 0; ih < {h}; ih++) {{",
                f"            const int r = ih + {p};",
                f"            dp8_t *drow = dst + (size_t)((r % {s}) * {s}) * {geo.plane} + (size_t)(r / {s}) * {geo.wph};",
                f"            const uint8_t *srow = src + (size_t)ih * {w};"]
        for pb in range(s):
            c0 = max(0, -(-(p - pb) // s))
            c1 = (w - 1 + p - pb) // s + 1
            if c1 > c0:
                fill += [f"            {{ dp8_t *d = drow + {pb * geo.plane};",
                         f"              for (int c = {c0}; c < {c1}; c++) d[c] = (dp8_t)(srow[c * {s} + {pb - p}] - DP8_XSHIFT); }}"]
        fill += ["        }", "    }", "}"]
    # --- epilogue: rows of one group for the tile at q0
    if spec.op == "fc":
        store = [f"            uint8_t tmp[{T}];", "            dp8_row(c, tmp, te, bb, mf, mm);",
                 f"            for (int t = 0; t < te; t++) yb[(size_t)(q0 + t) * {spec.cout} + co] = tmp[t];"]
    elif geo.wph == spec.out_w:  # no junk columns: the tile's positions are contiguous in the output
        store = [f"            dp8_row(c, yn + (size_t)co * {ohw} + q0, te, bb, mf, mm);"]
    else:  # requantize the whole tile (full vectors), then copy out each output row's run
        wph, ow = geo.wph, spec.out_w
        store = [f"            uint8_t tmp[{T}];", "            dp8_row(c, tmp, te, bb, mf, mm);",
                 f"            for (int oh = q0 / {wph}; oh * {wph} < q0 + te; oh++) {{",
                 f"                int a_ = q0 - oh * {wph}; if (a_ < 0) a_ = 0;",
                 f"                int e_ = q0 + te - oh * {wph}; if (e_ > {ow}) e_ = {ow};",
                 f"                if (e_ > a_) memcpy(yn + (size_t)co * {ohw} + (size_t)oh * {ow} + a_, tmp + (oh * {wph} - q0) + a_, (size_t)(e_ - a_));",
                 "            }"]
    body = []
    for r in rs:
        nu = _units(r, tu)
        calls = [f"            mk8_{r}_{nu}(xq + {u0 * UNIT}, offs + m[1], w4 + m[2], w16 + 2 * m[2], m[0], "
                 f"ct + {u0 * UNIT});" for u0 in range(0, tu, nu)]
        body += [f"        if (m[4] == {r}) {{", *calls, "        }"]
    nimg = spec.n if spec.op != "fc" else 1
    run = [
        f"void {symbol}(const float *restrict xf, float *restrict y, float *restrict ws, const dp_array *restrict a);",
        f"void {symbol}(const float *restrict xf, float *restrict y, float *restrict ws, const dp_array *restrict a) {{",
        "    (void)xf;",
        "    uint8_t *yb = (uint8_t *)y;",
        "    const float *multf = (const float *)a[11].data;",
        "    const uint8_t *xin = (const uint8_t *)a[2].data;",
        "    const int32_t *meta = (const int32_t *)a[3].data;",
        "    const int32_t *rows = (const int32_t *)a[4].data;",
        "    const int32_t *offs = (const int32_t *)a[5].data;",
        "    const int32_t *w4 = (const int32_t *)a[6].data;",
        "    const int32_t *w16 = (const int32_t *)a[7].data;",
        "    const int32_t *beff = (const int32_t *)a[8].data;",
        "    const int32_t *rsum = (const int32_t *)a[9].data;",
        "    const double *mult = (const double *)a[10].data;",
        "    int32_t *ct = (int32_t *)ws;",
        f"    dp8_t *xc = (dp8_t *)(ws + {4 * UNIT * TILE_UNITS});",
        "#define REQ(v) dp8_req((v) + bb, mm)",
        f"    for (int e = 0; e < {len(empty)}; e++) {{",
        "        const int co = EMPTY[e];",
        "        const int32_t bb = beff[co]; const double mm = mult[co];",
        "        const uint8_t v = REQ(0);",
        (f"        for (int t = 0; t < {spec.n}; t++) yb[(size_t)t * {spec.cout} + co] = v;" if spec.op == "fc" else
         f"        for (int n = 0; n < {spec.n}; n++) for (int t = 0; t < {ohw}; t++) yb[((size_t)n * {spec.cout} + co) * {ohw} + t] = v;"),
        "    }",
        f"    for (int n = 0; n < {nimg}; n++) {{",
        f"        fill(xin + (size_t)n * {spec.cin * spec.h * spec.w if spec.op != 'fc' else 0}, xc);",
        f"        uint8_t *yn = yb + (size_t)n * {spec.cout * ohw};", "        (void)yn;",
        f"        for (int q0 = 0; q0 < {q}; q0 += {T}) {{",
        f"            const int te = {q} - q0 < {T} ? {q} - q0 : {T};",
        "            const dp8_t *xq = xc + q0;",
        f"            for (int g = 0; g < {len(groups)}; g++) {{",
        "                const int32_t *m = meta + 5 * g;",
        *["    " + b for b in body],
        "                for (int i = 0; i < m[4]; i++) {",
        "                    const int co = rows[m[3] + i];",
        "                    const int32_t bb = beff[co] - XOFF * rsum[co]; const double mm = mult[co]; const float mf = multf[co];",
        "                    (void)mf;",
        f"                    const int32_t *c = ct + i * {T};",
        *["        " + s_ for s_ in store],
        "                }",
        "            }",
        "        }",
        "    }",
        "#undef REQ",
        "}",
    ]
    head = [f"/* generated by devprof (int8): {spec.key}\n * variant {variant}; groups {len(groups)} */",
            "#include \"dp_harness.h\"", _ISA,
            f"#define XOFF ({zp} - DP8_XSHIFT)",
            f"#define PADB ((int)(uint8_t)({zp} - DP8_XSHIFT))",
            f"static const int EMPTY[{max(1, len(empty))}] = {{{', '.join(map(str, empty)) or '0'}}};",
            "#include <math.h>",
            "static inline uint8_t dp8_req(int32_t acc, double m) {",
            f"    int32_t q = (int32_t)rint((double)acc * m) + {out.zero_point};",
            f"    q = q < {lo} ? {lo} : q;", f"    q = q > {hi} ? {hi} : q;", "    return (uint8_t)q;", "}",
            _ROW.format(zp=out.zero_point, lo=lo, hi=hi)]
    src = "\n\n".join(["\n".join(head), *kernels, "\n".join(fill), "\n".join(run)]) + "\n"
    arrays = [_bytes_as_i32(layer.x_q.astype(np.uint8)), np.asarray(meta, np.int32), np.asarray(rows or [0], np.int32),
              np.asarray(offs or [0], np.int32), np.asarray(w4 or [0], np.int32), np.asarray(w16 or [0], np.int32),
              np.clip(bias, -2**31, 2**31 - 1).astype(np.int32), rowsum.astype(np.int32), mult.view("<i4").copy(),
              mult.astype(np.float32)]
    yflat = layer.y_q.ravel()
    if with_reference:
        if yflat.size <= SAMPLES_MAX:
            idx = np.arange(yflat.size)
        else:
            idx = np.unique(np.linspace(0, yflat.size - 1, SAMPLES_MAX).astype(np.int64))
        ref = yflat[idx].astype(np.float32)
    else:
        idx, ref = np.zeros(0, np.int64), np.zeros(0, np.float32)
    ws_floats = 4 * UNIT * TILE_UNITS + -(-xc_size // 4) + 16
    macs = sum(len(g.rows) * 4 * -(-max(1, len(g.cols)) // 4) for g in groups)
    stats = {"groups": len(groups), "dot4_per_position": macs // 4, "rmax": rmax, "act": ACT_DTYPE,
             "nnz": int(layer.mask2.sum()), "tile": T}
    k = GeneratedKernel(name=name or f"k{spec.id}_{variant}", spec=spec, variant=variant, source=src,
                           arrays=[idx.astype(np.int32), ref, *arrays], in_elems=1,
                           out_elems=spec.output_elems, ws_floats=ws_floats, seed=input_seed(spec), stats=stats,
                           chunking=None)
    k.out_u8 = True  # the harness widens the uint8 outputs for its check
    return k
