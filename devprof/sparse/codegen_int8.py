"""int8 C code generation: dense and every sparsity scheme as integer kernels for `devprof-c`.

The arithmetic is the integer reference's (`devprof.runtimes.quantize.reference_q`, rounding
half to even) bit for bit: int8 weights (per-channel symmetric, [-127, 127]) times uint8
activations (scale, zero point), summed exactly in int32, plus the int32 bias, then requantized
per output channel with a float64 multiplier (x_scale * w_scale[c] / y_scale, the reference's
own expression), rounded by `rint` and clamped to the fused activation's range. So the harness's
check is exact: outputs are the quantized bytes (the harness widens them for its check), and a
kernel off by one step fails.

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

Requantization happens in registers, in the micro-kernel: accumulators start at the row's bias,
and after the last quad each 16 of them become bytes (float32 product rounded to nearest even,
saturating packs, zero point, clamp) stored straight into the output row, so an output costs a
few vector instructions and no int32 round trip through memory. The float32 product is exact
enough only where `float_multipliers` proved it, per channel, against the float64 reference for
every accumulator the channel can reach — each form a target computes on its own (fused or
rounded product; on AVX-512 the fused product with the zero point inside, whose low 16 bits are
the int16 result when the channel provably stays inside int16: one vpermt2w then gathers two
vectors' values and one vpackuswb makes 32 bytes, with no subtraction, int32 pack or lane fix);
a channel without a proof for its target's form takes a float64 product in the same place. The
AVX-512 micro-kernels also block twice the positions (its 32 registers), so each row stores 32
bytes at a time. Tiles are up to 512 positions, and groups of up to 4 quads get micro-kernels
without a quad loop, so per-group overhead is spread over many outputs.

The input is the quantized tensor itself, shipped in the data file (the harness's generator makes
floats), so a timed call is the int8 layer alone: input copy, integer GEMM, requantization. Where
the copy would be the input byte for byte (stride 1, no padding, no shift: VNNI) and no tile reads
past its end, the kernel reads the input itself.
Kernels run on one thread (no chunked entry points yet).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..records import KernelSpec
from ..runtimes.quantize import INT8_ACTIVATIONS, QKernel, _act_range, quantize_kernel, reference_q
from .codegen import VARIANTS, GeneratedKernel, _col_offsets, geometry, make_groups, phase_columns
from .pruning import block_param, prune
from .weights import dense_weights, input_seed, input_tensor

#: activation type of devprof-c's int8 kernels (ONNX Runtime's x86 QDQ choice, and vpdpbusd's)
ACT_DTYPE = "uint8"
UNIT = 16  # positions per accumulator unit (two 8-lane int32 vectors, four NEON ones)
TILE_UNITS = 4  # units per tile at least (T = 64 positions), and the step of larger tiles
TILE_UNITS_MAX = 32  # at most (T = 512): a tile's per-group overhead spread over more positions
TILE_BYTES = 16384  # the input rows a tile rereads for each group (K x T bytes): L1-sized
UNROLL_QUADS = 4  # groups of up to this many quads get a micro-kernel without a quad loop
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


_ISA = r"""
#include <math.h>
/* the reference's requantization: float64 product, rint (half to even), zero point, clamp */
static inline uint8_t dp8_req(int32_t acc, double m) {
    int32_t q = (int32_t)rint((double)acc * m) + DP8_ZP;
    q = q < DP8_LO ? DP8_LO : q;
    q = q > DP8_HI ? DP8_HI : q;
    return (uint8_t)q;
}""" + _PATH_SELECT + r"""
#define DP8_UNROLL (DP8_PATH >= 1 && DP8_PATH <= 3)
/* The requantization family, each with its own proof (a channel's flag bits, `float_multipliers`)
 * and its own micro-kernel kinds (a column of the group table):
 *   0  AVX-512 BW + FMA: the fused product with the zero point in it, whose rounded integer's low
 *      16 bits are the int16 value (flag 4: not proven, or not inside int16 for every accumulator)
 *   1  x86 with FMA: the fused product, rint(acc * mf) (flag 1)
 *   2  the rest: float32 product, then rint (flag 2); the portable path uses float64 anyway */
#if DP8_PATH == 3 && defined(__FMA__) && defined(__AVX512BW__) && !defined(DP8_NO_LOWW)
#  define DP8_FAM 0
#  define DP8_BAD 5
#elif DP8_PATH >= 1 && DP8_PATH <= 3 && defined(__FMA__)
#  define DP8_FAM 1
#  define DP8_BAD 1
#else
#  define DP8_FAM 2
#  define DP8_BAD 2
#endif
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
static inline void dp8_init(dp8_acc *a, int32_t b) { a->v[0] = _mm256_set1_epi32(b); a->v[1] = a->v[0]; }
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
#if DP8_PATH == 3 && defined(__AVX512VBMI__) && !defined(DP8_NO_VBMI)
/* two vpermt2b from the four rows side by side: positions 0-7 and 8-15 (family 0), else
 * 0-3 | 8-11 and 4-7 | 12-15 (as below) */
static const uint8_t dp8_quads[64] __attribute__((aligned(32))) = {
#if DP8_FAM == 0
    0, 16, 32, 48, 1, 17, 33, 49, 2, 18, 34, 50, 3, 19, 35, 51, 4, 20, 36, 52, 5, 21, 37, 53, 6, 22, 38, 54, 7, 23, 39, 55,
    8, 24, 40, 56, 9, 25, 41, 57, 10, 26, 42, 58, 11, 27, 43, 59, 12, 28, 44, 60, 13, 29, 45, 61, 14, 30, 46, 62, 15, 31, 47, 63};
#else
    0, 16, 32, 48, 1, 17, 33, 49, 2, 18, 34, 50, 3, 19, 35, 51, 8, 24, 40, 56, 9, 25, 41, 57, 10, 26, 42, 58, 11, 27, 43, 59,
    4, 20, 36, 52, 5, 21, 37, 53, 6, 22, 38, 54, 7, 23, 39, 55, 12, 28, 44, 60, 13, 29, 45, 61, 14, 30, 46, 62, 15, 31, 47, 63};
#endif
static inline void dp8_ldx(dp8_x *x, const dp8_t *a, const dp8_t *b, const dp8_t *c, const dp8_t *d) {
    __m256i ab = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)a)), _mm_loadu_si128((const __m128i *)b), 1);
    __m256i cd = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)c)), _mm_loadu_si128((const __m128i *)d), 1);
    x->v[0] = _mm256_permutex2var_epi8(ab, _mm256_load_si256((const __m256i *)dp8_quads), cd);
    x->v[1] = _mm256_permutex2var_epi8(ab, _mm256_load_si256((const __m256i *)(dp8_quads + 32)), cd);
}
#else
static inline void dp8_ldx(dp8_x *x, const dp8_t *a, const dp8_t *b, const dp8_t *c, const dp8_t *d) {
    __m128i va = _mm_loadu_si128((const __m128i *)a), vb = _mm_loadu_si128((const __m128i *)b);
    __m128i vc = _mm_loadu_si128((const __m128i *)c), vd = _mm_loadu_si128((const __m128i *)d);
    __m128i ab0 = _mm_unpacklo_epi8(va, vb), ab1 = _mm_unpackhi_epi8(va, vb);
    __m128i cd0 = _mm_unpacklo_epi8(vc, vd), cd1 = _mm_unpackhi_epi8(vc, vd);
#if DP8_FAM == 0  /* positions 0-7 and 8-15 */
    x->v[0] = _mm256_set_m128i(_mm_unpackhi_epi16(ab0, cd0), _mm_unpacklo_epi16(ab0, cd0));
    x->v[1] = _mm256_set_m128i(_mm_unpackhi_epi16(ab1, cd1), _mm_unpacklo_epi16(ab1, cd1));
#else  /* positions 0-3 | 8-11 and 4-7 | 12-15: vpackssdw of the two then yields 0-7 | 8-15 */
    x->v[0] = _mm256_set_m128i(_mm_unpacklo_epi16(ab1, cd1), _mm_unpacklo_epi16(ab0, cd0));
    x->v[1] = _mm256_set_m128i(_mm_unpackhi_epi16(ab1, cd1), _mm_unpackhi_epi16(ab0, cd0));
#endif
}
#endif
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
/* requantize 8 accumulators to rint(acc * m) + zp: float32 (a channel whose float32 path
 * float_multipliers proved equal to the float64 reference), else the float64 product itself.
 * With FMA, one rounding of the exact product: adding 1.5 * 2^23 leaves the rounded integer in the
 * low bits, so the only conversion is the accumulators' (the conversion units are the bottleneck) */
static inline __m256i dp8_q8(__m256i a, float mf, double md, int ex) {
    if (!ex) {
#if defined(__FMA__)
        const __m256 v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a), _mm256_set1_ps(mf), _mm256_set1_ps(12582912.f));
        return _mm256_sub_epi32(_mm256_castps_si256(v), _mm256_set1_epi32(0x4B400000 - DP8_ZP));
#else
        const __m256i r = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_cvtepi32_ps(a), _mm256_set1_ps(mf)));
        return _mm256_add_epi32(r, _mm256_set1_epi32(DP8_ZP));
#endif
    }
    const __m256d d = _mm256_set1_pd(md), lim = _mm256_set1_pd(1073741824.0), nlim = _mm256_set1_pd(-1073741824.0);
    __m256d lo = _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(a)), d);
    __m256d hi = _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(a, 1)), d);
    lo = _mm256_max_pd(_mm256_min_pd(lo, lim), nlim);
    hi = _mm256_max_pd(_mm256_min_pd(hi, lim), nlim);
    return _mm256_add_epi32(_mm256_set_m128i(_mm256_cvtpd_epi32(hi), _mm256_cvtpd_epi32(lo)), _mm256_set1_epi32(DP8_ZP));
}
/* 16 outputs: requantize, saturate to int16, then to uint8, clamp, store */
static inline void dp8_out(const dp8_acc *a, uint8_t *y, float mf, double md, int ex) {
    __m256i w = _mm256_packs_epi32(dp8_q8(a->v[0], mf, md, ex), dp8_q8(a->v[1], mf, md, ex));
#if DP8_PATH == 1
    w = _mm256_permute4x64_epi64(w, 0xD8);  /* accumulators hold 0-7 and 8-15 here */
#endif
    __m128i b = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
#if DP8_LO > 0
    b = _mm_max_epu8(b, _mm_set1_epi8((char)DP8_LO));
#endif
#if DP8_HI < 255
    b = _mm_min_epu8(b, _mm_set1_epi8((char)DP8_HI));
#endif
    _mm_storeu_si128((__m128i *)y, b);
}
/* 16 outputs each of two rows (or two units of a row): one pack to bytes for both, one lane fix */
static inline void dp8_out2(const dp8_acc *a, const dp8_acc *c, uint8_t *ya, uint8_t *yc, float mfa, double mda, int exa,
                            float mfc, double mdc, int exc) {
    const __m256i wa = _mm256_packs_epi32(dp8_q8(a->v[0], mfa, mda, exa), dp8_q8(a->v[1], mfa, mda, exa));
    const __m256i wc = _mm256_packs_epi32(dp8_q8(c->v[0], mfc, mdc, exc), dp8_q8(c->v[1], mfc, mdc, exc));
#if DP8_PATH == 1
    __m256i b = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(wa, wc), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
#else
    __m256i b = _mm256_permute4x64_epi64(_mm256_packus_epi16(wa, wc), 0xD8);
#endif
#if DP8_LO > 0
    b = _mm256_max_epu8(b, _mm256_set1_epi8((char)DP8_LO));
#endif
#if DP8_HI < 255
    b = _mm256_min_epu8(b, _mm256_set1_epi8((char)DP8_HI));
#endif
    _mm_storeu_si128((__m128i *)ya, _mm256_castsi256_si128(b));
    _mm_storeu_si128((__m128i *)yc, _mm256_extracti128_si256(b, 1));
}
#if DP8_FAM == 0
/* Family 0: 8 accumulators (positions in order) to 8 int16 values, each in the low half of its
 * lane: with 1.5 * 2^23 + zp added in the FMA, the float's bits are 0x4B400000 + rint(acc * mf + zp),
 * whose low 16 bits are that integer wherever it fits int16 (proven per channel). So two of them
 * become 16 words in one vpermt2w, and 32 outputs bytes in one vpackuswb: no subtraction, no
 * vpackssdw, no lane fix. Rows without that proof (EX: flag 4) take the fused or float64 product
 * and are clamped to int16 */
static inline __m256i dp8_w8(__m256i a, float mf, double md, int ex) {
    if (!(ex & 4))
        return _mm256_castps_si256(_mm256_fmadd_ps(_mm256_cvtepi32_ps(a), _mm256_set1_ps(mf), _mm256_set1_ps(12582912.f + DP8_ZP)));
    const __m256i q = dp8_q8(a, mf, md, ex & 1);
    return _mm256_max_epi32(_mm256_min_epi32(q, _mm256_set1_epi32(32767)), _mm256_set1_epi32(-32768));
}
/* the low words of two vectors' lanes, side by side */
static const uint16_t dp8_loww[16] __attribute__((aligned(32))) = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
/* 16 outputs of a (positions 0-7, 8-15) and 16 of c: 32 bytes, a's then c's */
static inline __m256i dp8_b32(__m256i a0, __m256i a1, __m256i c0, __m256i c1) {
    const __m256i idx = _mm256_load_si256((const __m256i *)dp8_loww);
    __m256i b = _mm256_packus_epi16(_mm256_permutex2var_epi16(a0, idx, c0), _mm256_permutex2var_epi16(a1, idx, c1));
#if DP8_LO > 0
    b = _mm256_max_epu8(b, _mm256_set1_epi8((char)DP8_LO));
#endif
#if DP8_HI < 255
    b = _mm256_min_epu8(b, _mm256_set1_epi8((char)DP8_HI));
#endif
    return b;
}
static inline void dp8_outw(const dp8_acc *a, uint8_t *y, float mf, double md, int ex) {
    const __m256i w = _mm256_permutex2var_epi16(dp8_w8(a->v[0], mf, md, ex), _mm256_load_si256((const __m256i *)dp8_loww),
                                                dp8_w8(a->v[1], mf, md, ex));
    __m128i b = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
#if DP8_LO > 0
    b = _mm_max_epu8(b, _mm_set1_epi8((char)DP8_LO));
#endif
#if DP8_HI < 255
    b = _mm_min_epu8(b, _mm_set1_epi8((char)DP8_HI));
#endif
    _mm_storeu_si128((__m128i *)y, b);
}
/* 16 outputs each of two rows (or of two units of a row; CONTIG: c's go right after a's) */
static inline void dp8_outw2(const dp8_acc *a, const dp8_acc *c, uint8_t *ya, uint8_t *yc, float mfa, double mda, int exa,
                             float mfc, double mdc, int exc, int contig) {
    const __m256i b = dp8_b32(dp8_w8(a->v[0], mfa, mda, exa), dp8_w8(a->v[1], mfa, mda, exa),
                              dp8_w8(c->v[0], mfc, mdc, exc), dp8_w8(c->v[1], mfc, mdc, exc));
    if (contig) {
        _mm256_storeu_si256((__m256i *)ya, b);
    } else {
        _mm_storeu_si128((__m128i *)ya, _mm256_castsi256_si128(b));
        _mm_storeu_si128((__m128i *)yc, _mm256_extracti128_si256(b, 1));
    }
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
static inline void dp8_init(dp8_acc *a, int32_t b) { a->v[0] = a->v[1] = a->v[2] = a->v[3] = vdupq_n_s32(b); }
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
static inline int32x4_t dp8_q4(int32x4_t a, float mf, double md, int ex) {
    if (!ex) return vcvtnq_s32_f32(vmulq_n_f32(vcvtq_f32_s32(a), mf));
    float64x2_t lo = vmulq_n_f64(vcvtq_f64_s64(vmovl_s32(vget_low_s32(a))), md);
    float64x2_t hi = vmulq_n_f64(vcvtq_f64_s64(vmovl_high_s32(a)), md);
    return vcombine_s32(vqmovn_s64(vcvtnq_s64_f64(lo)), vqmovn_s64(vcvtnq_s64_f64(hi)));
}
static inline void dp8_out(const dp8_acc *a, uint8_t *y, float mf, double md, int ex) {
    const int16x8_t zp = vdupq_n_s16(DP8_ZP);
    int16x8_t h0 = vcombine_s16(vqmovn_s32(dp8_q4(a->v[0], mf, md, ex)), vqmovn_s32(dp8_q4(a->v[1], mf, md, ex)));
    int16x8_t h1 = vcombine_s16(vqmovn_s32(dp8_q4(a->v[2], mf, md, ex)), vqmovn_s32(dp8_q4(a->v[3], mf, md, ex)));
    uint8x16_t b = vcombine_u8(vqmovun_s16(vqaddq_s16(h0, zp)), vqmovun_s16(vqaddq_s16(h1, zp)));
#if DP8_LO > 0
    b = vmaxq_u8(b, vdupq_n_u8(DP8_LO));
#endif
#if DP8_HI < 255
    b = vminq_u8(b, vdupq_n_u8(DP8_HI));
#endif
    vst1q_u8(y, b);
}
#else
/* portable: the four columns' rows as they are, 4-term products per position */
typedef struct { int32_t v[16]; } dp8_acc;
typedef struct { dp8_t v[4][16]; } dp8_x;
static inline void dp8_init(dp8_acc *a, int32_t b) { for (int i = 0; i < 16; i++) a->v[i] = b; }
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
static inline void dp8_out(const dp8_acc *a, uint8_t *y, float mf, double md, int ex) {
    (void)mf; (void)ex;
    for (int i = 0; i < 16; i++) y[i] = dp8_req(a->v[i], md);
}
#endif
#if DP8_PATH == 0 || DP8_PATH == 4
static inline void dp8_out2(const dp8_acc *a, const dp8_acc *c, uint8_t *ya, uint8_t *yc, float mfa, double mda, int exa,
                            float mfc, double mdc, int exc) {
    dp8_out(a, ya, mfa, mda, exa);
    dp8_out(c, yc, mfc, mdc, exc);
}
#endif
"""


def _mk(r: int, tu: int, nq: int, ex: bool) -> str:
    """Micro-kernel: R rows x the tile's TU units, a few units at a time, over a group's quads of
    columns (NQ of them, unrolled, or a loop over `nq` when NQ is 0); each row's accumulators
    start at its bias and leave as requantized bytes. EX: some row takes a slower product (a
    test per row), else none does (no test at all). Unrolled kernels are x86's (DP8_UNROLL):
    arm64 compilers spill the weights they hoist out of the unit loop, so there the same name
    is the quad loop. Family 0 (AVX-512: 32 vector registers) takes twice the units at a time."""
    name = _mk_name(r, nq, ex)
    nu = _units(r, tu, 4)
    looped = _mk_code(name, r, nu, 0, ex, False)
    if not nq:
        return "\n".join(["#if DP8_FAM == 0", _mk_code(name, r, _units(r, tu, 8), 0, ex, True), "#else", looped, "#endif"])
    return "\n".join(["#if DP8_FAM == 0", _mk_code(name, r, _units(r, tu, 8), nq, ex, True),
                      "#elif DP8_UNROLL", _mk_code(name, r, nu, nq, ex, False), "#else", looped, "#endif"])


def _mk_code(name: str, r: int, nu: int, nq: int, ex: bool, loww: bool) -> str:
    L = [f"static inline void {name}(const dp8_t *restrict xq, const int32_t *restrict off,",
         "        const int32_t *restrict w4, const int32_t *restrict w16, int nq, int tu, const dp8_rowp *restrict rp) {",
         "    (void)nq;" if nq else "",
         f"    for (int u = 0; u < tu; u += {nu}) {{",
         "        const dp8_t *xu = xq + u * 16;"]
    L += [f"        dp8_acc a{i}_{u}; dp8_init(&a{i}_{u}, rp[{i}].b);" for i in range(r) for u in range(nu)]

    def step(j: str, ind: str) -> list[str]:
        S = [f"{ind}const int32_t *o = off + 4 * {j};"]
        S += [f"{ind}const int32_t k{i} = w4[{j} * {r} + {i}], p{i} = w16[({j} * {r} + {i}) * 2], "
              f"q{i} = w16[({j} * {r} + {i}) * 2 + 1];" for i in range(r)]
        for u in range(nu):
            S += [f"{ind}{{ dp8_x x; dp8_ldx(&x, xu + o[0] + {u * UNIT}, xu + o[1] + {u * UNIT}, "
                  f"xu + o[2] + {u * UNIT}, xu + o[3] + {u * UNIT});"]
            S += [f"{ind}  dp8_step(&a{i}_{u}, &x, k{i}, p{i}, q{i});" for i in range(r)]
            S += [f"{ind}}}"]
        return S

    if nq:
        for j in range(nq):
            L += ["        {", *step(str(j), "            "), "        }"]
    else:
        L += ["        for (int j = 0; j < nq; j++) {", *step("j", "            "), "        }"]
    outs = [(i, u) for i in range(r) for u in range(nu)]  # a row's consecutive units: family 0 stores 32 bytes

    def args(i: int, u: int) -> tuple[str, str]:
        return (f"&a{i}_{u}", f"rp[{i}].y + (u + {u}) * 16"), (f"rp[{i}].mf, rp[{i}].md, " + (f"rp[{i}].ex" if ex else "0"))

    for k in range(0, len(outs) - 1, 2):  # in pairs: one pack to bytes for two
        (a0, y0), p0 = args(*outs[k])
        (a1, y1), p1 = args(*outs[k + 1])
        if loww:
            contig = int(outs[k][0] == outs[k + 1][0] and outs[k + 1][1] == outs[k][1] + 1)
            L += [f"        dp8_outw2({a0}, {a1}, {y0}, {y1}, {p0}, {p1}, {contig});"]
        else:
            L += [f"        dp8_out2({a0}, {a1}, {y0}, {y1}, {p0}, {p1});"]
    if len(outs) % 2:
        (a0, y0), p0 = args(*outs[-1])
        L += [f"        dp8_out{'w' if loww else ''}({a0}, {y0}, {p0});"]
    return "\n".join(L + ["    }", "}"])


def _mk_name(r: int, nq: int, ex: bool) -> str:
    return f"mk8_{r}_{nq}{'x' if ex else ''}"


def _units(r: int, tu: int, regs: int) -> int:
    """Units per micro-kernel call: accumulators for R x NU units fit the vector registers
    (REGS units: 4 of two registers each with 16, 8 with AVX-512's 32), and NU divides the tile's
    TU units."""
    nu = min(max(1, regs // r), tu)
    while tu % nu:
        nu -= 1
    return nu


#: A channel's flags (`float_multipliers`): which float32 forms are not proven equal to the reference
FUSED_BAD = 1  # rint(acc * mf) + zp, one rounding (x86 FMA)
ROUND_BAD = 2  # rint(float32(acc * mf)) + zp (arm64, x86 without FMA)
NARROW_BAD = 4  # rint(acc * mf + zp), one rounding, inside int16 (AVX-512 family 0)
#: per requantization family (DP8_FAM), the flags that send a row to a slower product
FAMILY_FLAGS = (NARROW_BAD, FUSED_BAD, ROUND_BAD)
INT16_MAX = 32767


def _rint_plus(p: np.ndarray, zp: int) -> np.ndarray:
    """rint(p + zp), half to even, exactly (p + zp itself may not be a float64)."""
    f = np.floor(p)
    frac = p - f  # exact
    base = f + zp
    return base + ((frac > 0.5) | ((frac == 0.5) & (np.mod(base, 2) == 1)))


def float_multipliers(mult: np.ndarray, bound: np.ndarray, zp: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel: a float32 multiplier `mf`, and flags saying which of the kernel's float32
    forms are not proven to give the float64 reference's output for every accumulator
    |acc| <= bound (such rows take the float64 product on that target):
    FUSED_BAD  rint of the exact product (one fused rounding: x86 with FMA), then zero point and clamp;
    ROUND_BAD  rint of the float32 product (arm64);
    NARROW_BAD rint of the exact product plus the zero point, one rounding, which must also stay
               inside int16 for every accumulator (the AVX-512 path keeps its low 16 bits only).

    Every form is non-decreasing in acc, as the reference is, so they agree everywhere iff they
    step to each output level at the same acc: checked on a window around each step (float32's
    error is below 1e-4 near |v| < 2^9, a few acc steps), and at +-bound for steps that no
    accumulator reaches. The float32 value of the multiplier and its neighbours (+-2 ulp) are
    tried, as a near-tie may fall on either side with a neighbour; the first that proves the most
    forms is kept."""
    mult = np.asarray(mult, np.float64)
    bound = np.asarray(bound, np.int64)
    mf = mult.astype(np.float32)
    flags = np.full(len(mult), FUSED_BAD | ROUND_BAD | NARROW_BAD, np.int32)
    js = np.arange(lo - zp + 1, hi - zp + 1, dtype=np.float64)  # the output steps that matter
    safe = mult > 0
    # int32 conversions stay in range, accumulators are exact in float32, and the fused form's
    # 1.5 * 2^23 + product keeps a step of 1
    safe &= (bound.astype(np.float64) * np.where(safe, mult, 0.0) < 2.0**21) & (bound < 2**24)
    need = np.full(len(mult), 10**9, np.int64)
    need[safe] = np.ceil(1e-4 / mult[safe]).astype(np.int64) + 2
    if len(js) == 0:
        return mf, flags
    for w in np.unique(need[need <= 64]):
        cs = np.flatnonzero(need == w)
        m = mult[cs][:, None]
        t = np.floor((js[None, :] - 0.5) / m).astype(np.int64)  # (C, levels)
        t = np.clip(t, -bound[cs][:, None] - w - 1, bound[cs][:, None] + w + 1)
        acc = (t[:, :, None] + np.arange(-w, w + 1)[None, None, :]).reshape(len(cs), -1)
        acc = np.concatenate([acc, -bound[cs][:, None], bound[cs][:, None]], axis=1)
        want = np.rint(acc * m)
        want_c = np.clip(want + zp, lo, hi)
        lvl = want_c[:, :-2].reshape(len(cs), len(js), 2 * w + 1) - zp
        # the window brackets its step unless the step lies beyond the accumulators' reach
        reach = (np.abs(np.floor((js[None, :] - 0.5) / m)) <= bound[cs][:, None] + w)
        bracket = ((lvl[:, :, 0] < js[None, :]) & (lvl[:, :, -1] >= js[None, :])) | ~reach
        ok_c = bracket.all(axis=1)
        a32 = acc.astype(np.float32)
        best = np.full(len(cs), -1)
        for k in (0, 1, -1, 2, -2):
            f = (mf[cs].view(np.int32) + np.int32(k)).view(np.float32)
            f64 = f.astype(np.float64)[:, None]
            prod = a32.astype(np.float64) * f64  # exact: 24-bit accumulators times a float32
            rounded = np.clip(np.rint(a32 * f[:, None]).astype(np.float64) + zp, lo, hi)
            fused = np.clip(np.rint(prod) + zp, lo, hi)
            narrow = np.clip(_rint_plus(prod, zp), lo, hi)
            in16 = bound[cs] * f64[:, 0] + abs(zp) + 1 < INT16_MAX
            fl = (np.where(ok_c & (fused == want_c).all(axis=1), 0, FUSED_BAD)
                  | np.where(ok_c & (rounded == want_c).all(axis=1), 0, ROUND_BAD)
                  | np.where(ok_c & in16 & (narrow == want_c).all(axis=1), 0, NARROW_BAD))
            score = 3 - ((fl & FUSED_BAD) > 0) - ((fl & ROUND_BAD) > 0) - ((fl & NARROW_BAD) > 0)
            better = score > best
            best[better] = score[better]
            mf[cs[better]] = f[better]
            flags[cs[better]] = fl[better]
    return mf, flags


def _tile_units(positions: int, k: int) -> int:
    """Units (of 16 positions) per tile: the fewest padded positions, then the most units, as
    long as the tile's input rows (K x T bytes) stay L1-sized; a few for small layers."""
    units = -(-positions // UNIT)
    if units <= TILE_UNITS:
        return max(1, units)
    cap = max(TILE_UNITS, min(TILE_UNITS_MAX, TILE_BYTES // (UNIT * max(1, k))))
    cands = range(TILE_UNITS, cap + 1, TILE_UNITS)
    return min(cands, key=lambda t: (-(-units // t) * t, -t))


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
    positions = spec.n if spec.op == "fc" else spec.out_h * (-(-(spec.w + 2 * spec.padding) // spec.stride))
    tu = _tile_units(positions, layer.w_q2.shape[1])
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
    out = qk.out
    lo, hi = _act_range(spec, out)
    mult = (np.float64(qk.x.scale) * qk.w_scale.astype(np.float64) / np.float64(out.scale)).astype("<f8")
    bias = qk.b_q.astype(np.int64)
    mf, flags = float_multipliers(mult, np.abs(w2).sum(axis=1) * 255 + np.abs(bias), out.zero_point, lo, hi)
    meta, rows, offs, w4, w16 = [], [], [], [], []
    kinds: dict[tuple[int, int, bool], int] = {}  # micro-kernel (R, unrolled quads or 0, slower rows) -> id
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
        # one micro-kernel kind per requantization family (DP8_FAM): its rows' flags differ
        fam = [(len(g.rows), nq if nq <= UNROLL_QUADS else 0, bool((flags[g.rows] & bad).any())) for bad in FAMILY_FLAGS]
        meta += [nq, len(offs), len(w4), len(rows), len(g.rows), *(kinds.setdefault(k, len(kinds)) for k in fam)]
        rows += g.rows
        offs += o
        quads = wv.reshape(len(g.rows), nq, 4).transpose(1, 0, 2)  # (nq, R, 4)
        w4 += _bytes_as_i32(quads.astype(np.int8)).tolist()
        w16 += _bytes_as_i32(quads.astype(np.int16)).tolist()
    meta += [0, len(offs), len(w4), len(rows), 0, -1, -1, -1]
    rowsum = w2.sum(axis=1)
    used = {r for g in groups for r in g.rows}
    empty = [r for r in range(spec.cout) if r not in used]
    zp = qk.x.zero_point
    kernels = [_mk(r, tu, nq, ex) for (r, nq, ex) in kinds]
    symbol = f"dpk_{name or f'k{spec.id}_{variant}'}"
    ohw = spec.out_h * spec.out_w if spec.op != "fc" else 0
    # --- fill: the input copy (one byte per element, padding = the zero point's byte)
    if spec.op == "fc":
        n, cin = spec.n, spec.cin
        fill = ["static inline void fill(const uint8_t *restrict x, dp8_t *restrict xc) {",
                f"    memset(xc, PADB, {xc_size});",
                f"    for (int u = 0; u < {n}; u++)",
                f"        for (int ci = 0; ci < {cin}; ci++) xc[(size_t)ci * {cs} + u] = (dp8_t)(x[(size_t)u * {cin} + ci] - DP8_XSHIFT);",
                "}"]
    else:
        s_, p, h, w = spec.stride, spec.padding, spec.h, spec.w
        whole = s_ == 1 and p == 0  # every plane byte is copied: only the slack after them is padding
        fill = ["static inline void fill(const uint8_t *restrict x, dp8_t *restrict xc) {",
                (f"    memset(xc + {spec.cin * cs}, PADB, {xc_size - spec.cin * cs});" if whole else
                 f"    memset(xc, PADB, {xc_size});"),
                f"    for (int ci = 0; ci < {spec.cin}; ci++) {{",
                f"        const uint8_t *src = x + (size_t)ci * {h * w};",
                f"        dp8_t *dst = xc + (size_t)ci * {cs};"]
        if whole:
            fill += [f"        for (int i = 0; i < {h * w}; i++) dst[i] = (dp8_t)(src[i] - DP8_XSHIFT);", "    }", "}"]
        else:
            fill += [f"        for (int ih = 0; ih < {h}; ih++) {{",
                     f"            const int r = ih + {p};",
                     f"            dp8_t *drow = dst + (size_t)((r % {s_}) * {s_}) * {geo.plane} + (size_t)(r / {s_}) * {geo.wph};",
                     f"            const uint8_t *srow = src + (size_t)ih * {w};"]
            for pb, c0, c1 in phase_columns(w, p, s_):
                fill += [f"            {{ dp8_t *d = drow + {pb * geo.plane};",
                         f"              for (int c = {c0}; c < {c1}; c++) d[c] = (dp8_t)(srow[c * {s_} + {pb - p}] - DP8_XSHIFT); }}"]
            fill += ["        }", "    }", "}"]
    # a stride-1 unpadded plane is copied byte for byte where no shift applies (VNNI): the kernel then
    # reads the input itself, if no tile reads beyond it
    alias = (spec.op != "fc" and spec.stride == 1 and spec.padding == 0 and geo.cs == spec.h * spec.w
             and max(offs or [0]) + qpad <= spec.cin * spec.h * spec.w)
    # --- a group's rows go straight to the output when a full tile is one contiguous run there;
    # else through `tmp`, copied out after the micro-kernel
    direct = spec.op != "fc" and geo.wph == spec.out_w
    if spec.op == "fc":
        copy = [f"                    for (int t = 0; t < te; t++) yb[(size_t)(q0 + t) * {spec.cout} + co] = tmp[i * {T} + t];"]
    elif direct:  # the last, partial tile
        copy = [f"                    memcpy(yn + (size_t)co * {ohw} + q0, tmp + i * {T}, (size_t)te);"]
    else:  # copy out each output row's run (junk columns dropped)
        wph, ow = geo.wph, spec.out_w
        copy = [f"                    for (int oh = q0 / {wph}; oh * {wph} < q0 + te; oh++) {{",
                f"                        int a_ = q0 - oh * {wph}; if (a_ < 0) a_ = 0;",
                f"                        int e_ = q0 + te - oh * {wph}; if (e_ > {ow}) e_ = {ow};",
                f"                        if (e_ > a_) memcpy(yn + (size_t)co * {ohw} + (size_t)oh * {ow} + a_, tmp + i * {T} + (oh * {wph} - q0) + a_, (size_t)(e_ - a_));",
                "                    }"]
    body = ["                switch (m[5 + DP8_FAM]) {"]
    for (r, nq, ex), kid in kinds.items():
        body += [f"                case {kid}: {_mk_name(r, nq, ex)}(xq, offs + m[1], w4 + m[2], w16 + 2 * m[2], m[0], {tu}, rp); break;"]
    body += ["                }"]
    nimg = spec.n if spec.op != "fc" else 1
    run = [
        f"void {symbol}(const float *restrict xf, float *restrict y, float *restrict ws, const dp_array *restrict a);",
        f"void {symbol}(const float *restrict xf, float *restrict y, float *restrict ws, const dp_array *restrict a) {{",
        "    (void)xf;",
        "    uint8_t *yb = (uint8_t *)y;",
        "    const uint8_t *xin = (const uint8_t *)a[2].data;",
        "    const int32_t *meta = (const int32_t *)a[3].data;",
        "    const int32_t *rows = (const int32_t *)a[4].data;",
        "    const int32_t *offs = (const int32_t *)a[5].data;",
        "    const int32_t *w4 = (const int32_t *)a[6].data;",
        "    const int32_t *w16 = (const int32_t *)a[7].data;",
        "    const int32_t *beff = (const int32_t *)a[8].data;",
        "    const int32_t *rsum = (const int32_t *)a[9].data;",
        "    const double *mult = (const double *)a[10].data;",
        "    const float *multf = (const float *)a[11].data;",
        "    const int32_t *exf = (const int32_t *)a[12].data;",
        "    dp8_t *xc = (dp8_t *)ws;", "    (void)xc;",
        f"    uint8_t tmp[4 * {T}];",
        f"    for (int e = 0; e < {len(empty)}; e++) {{",
        "        const int co = EMPTY[e];",
        "        const uint8_t v = dp8_req(beff[co], mult[co]);",
        (f"        for (int t = 0; t < {spec.n}; t++) yb[(size_t)t * {spec.cout} + co] = v;" if spec.op == "fc" else
         f"        for (int n = 0; n < {spec.n}; n++) memset(yb + ((size_t)n * {spec.cout} + co) * {ohw}, v, {ohw});"),
        "    }",
        f"    for (int n = 0; n < {nimg}; n++) {{",
        f"        const uint8_t *xn = xin + (size_t)n * {spec.cin * spec.h * spec.w if spec.op != 'fc' else 0};",
        f"#if DP8_XSHIFT == 0 && {int(alias)}",
        "        const dp8_t *xs = xn;  /* the input is its own copy: same bytes, and no read beyond it */",
        "#else",
        "        fill(xn, xc);",
        "        const dp8_t *xs = xc;",
        "#endif",
        f"        uint8_t *yn = yb + (size_t)n * {spec.cout * ohw};", "        (void)yn;",
        f"        for (int q0 = 0; q0 < {q}; q0 += {T}) {{",
        f"            const int te = {q} - q0 < {T} ? {q} - q0 : {T};",
        f"            const int dir = {int(direct)} && te == {T};",
        "            const dp8_t *xq = xs + q0;",
        f"            for (int g = 0; g < {len(groups)}; g++) {{",
        "                const int32_t *m = meta + 8 * g;",
        "                dp8_rowp rp[4];",
        "                for (int i = 0; i < m[4]; i++) {",
        "                    const int co = rows[m[3] + i];",
        f"                    rp[i].y = dir ? yn + (size_t)co * {ohw} + q0 : tmp + i * {T};",
        "                    rp[i].md = mult[co]; rp[i].mf = multf[co]; rp[i].ex = exf[co] & DP8_BAD;",
        "                    rp[i].b = beff[co] - XOFF * rsum[co];",
        "                }",
        *body,
        "                if (dir) continue;",
        "                for (int i = 0; i < m[4]; i++) {",
        "                    const int co = rows[m[3] + i];",
        *copy,
        "                }",
        "            }",
        "        }",
        "    }",
        "}",
    ]
    head = [f"/* generated by devprof (int8): {spec.key}\n * variant {variant}; groups {len(groups)} */",
            "#include \"dp_harness.h\"",
            f"#define DP8_ZP {out.zero_point}", f"#define DP8_LO {lo}", f"#define DP8_HI {hi}",
            _ISA,
            "typedef struct { uint8_t *y; double md; float mf; int32_t b, ex; } dp8_rowp;",
            f"#define XOFF ({zp} - DP8_XSHIFT)",
            f"#define PADB ((int)(uint8_t)({zp} - DP8_XSHIFT))",
            f"static const int EMPTY[{max(1, len(empty))}] = {{{', '.join(map(str, empty)) or '0'}}};"]
    src = "\n\n".join(["\n".join(head), *kernels, "\n".join(fill), "\n".join(run)]) + "\n"
    arrays = [_bytes_as_i32(layer.x_q.astype(np.uint8)), np.asarray(meta, np.int32), np.asarray(rows or [0], np.int32),
              np.asarray(offs or [0], np.int32), np.asarray(w4 or [0], np.int32), np.asarray(w16 or [0], np.int32),
              np.clip(bias, -2**31, 2**31 - 1).astype(np.int32), rowsum.astype(np.int32), mult.view("<i4").copy(),
              mf.astype("<f4"), flags.astype(np.int32)]
    yflat = layer.y_q.ravel()
    if with_reference:
        if yflat.size <= SAMPLES_MAX:
            idx = np.arange(yflat.size)
        else:
            idx = np.unique(np.linspace(0, yflat.size - 1, SAMPLES_MAX).astype(np.int64))
        ref = yflat[idx].astype(np.float32)
    else:
        idx, ref = np.zeros(0, np.int64), np.zeros(0, np.float32)
    ws_floats = -(-xc_size // 4) + 16
    macs = sum(len(g.rows) * 4 * -(-max(1, len(g.cols)) // 4) for g in groups)
    stats = {"groups": len(groups), "dot4_per_position": macs // 4, "rmax": rmax, "act": ACT_DTYPE,
             "nnz": int(layer.mask2.sum()), "tile": T,
             "float64_channels": int(((flags & FUSED_BAD) > 0).sum()),
             "not_int16_channels": int(((flags & NARROW_BAD) > 0).sum())}
    k = GeneratedKernel(name=name or f"k{spec.id}_{variant}", spec=spec, variant=variant, source=src,
                           arrays=[idx.astype(np.int32), ref, *arrays], in_elems=1,
                           out_elems=spec.output_elems, ws_floats=ws_floats, seed=input_seed(spec), stats=stats,
                           chunking=None)
    k.out_u8 = True  # the harness widens the uint8 outputs for its check
    return k
