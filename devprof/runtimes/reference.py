"""Numpy reference semantics of every op, and the deterministic tensors a kernel is checked with.

Every runtime's output is compared with `reference(spec, tensors)` once before it is timed; a
kernel that disagrees is reported and never recorded. Layouts: activations NHWC, conv weights
OHWI (I = cin / groups), fc weights (cout, cin). int8 kernels are checked against the integer
reference in `quantize.reference_q`, fp16 kernels against this one on fp16-rounded tensors
(`fp16_tensors`); how close each must come is `TOLERANCES`, the one statement of it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..records import KernelSpec


#: How closely a runtime's output must match the reference, per data type (docs/dataset-schema.md):
#: fp32 and fp16: |got - want| <= atol + rtol * max(|want|, RMS(want)), where fp16's rtol grows with
#: the square root of the reduction length K (fp16 accumulation error is a random walk over K
#: roundings of 2^-11); int8: within `lsb` steps of the output's scale of the integer reference.
TOLERANCES: dict[str, dict[str, float]] = {
    "fp32": {"rtol": 1e-4, "atol": 1e-4},
    "fp16": {"rtol": 2.0**-11, "rtol_per_sqrt_k": 2.0**-9, "atol": 1e-3},
    "int8": {"lsb": 1},
}


def reduction_length(spec: KernelSpec) -> int:
    """Terms summed into one output value: what fp16 rounding error grows with."""
    if spec.op in ("conv2d", "dwconv2d", "pwconv"):
        return spec.kh * spec.kw * (spec.cin // spec.groups)
    if spec.op == "fc":
        return spec.cin
    if spec.op in ("maxpool", "avgpool"):
        return spec.kh * spec.kw
    if spec.op == "global_avgpool":
        return spec.h * spec.w
    if spec.op in ("matmul", "softmax", "layernorm"):
        return spec.cin
    if spec.op == "attention":
        return max(spec.cin, spec.h)
    return 1


def fp16_tensors(t: dict) -> dict:
    """`t` with every float tensor rounded to fp16 (kept as float32): what an fp16 model holds."""
    def r(a):
        return a.astype(np.float16).astype(np.float32) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a

    return {k: [r(a) for a in v] if isinstance(v, list) else r(v) for k, v in t.items()}


@dataclass(frozen=True)
class Pads:
    """Explicit (top, bottom, left, right) padding: TFLite's SAME is asymmetric, ONNX's symmetric."""

    top: int
    bottom: int
    left: int
    right: int

    @classmethod
    def symmetric(cls, spec: KernelSpec) -> "Pads":
        return cls(spec.padding, spec.padding, spec.padding, spec.padding)


def make_tensors(spec: KernelSpec, seed: int | None = None) -> dict[str, np.ndarray]:
    """Deterministic inputs and weights for `spec` (seeded from its id unless `seed` is given).

    Weights are scaled like a real initialiser so outputs stay O(1) and fp32 comparisons are fair.
    Sparse specs get a plain dense weight here; pruning happens in `devprof.sparse`.
    """
    rng = np.random.default_rng(int(spec.id[:8], 16) if seed is None else seed)
    t: dict[str, np.ndarray] = {}
    if spec.op == "fc":
        t["x"] = rng.standard_normal((spec.n, spec.cin), dtype=np.float32)
    elif spec.op in TOKEN_OPS:
        t["x"] = rng.standard_normal((spec.n, spec.h, spec.cin), dtype=np.float32)
    else:
        t["x"] = rng.standard_normal((spec.n, spec.h, spec.w, spec.cin), dtype=np.float32)
    ws = spec.weight_shape
    if spec.op == "layernorm":
        t["w"] = (1.0 + 0.1 * rng.standard_normal(ws, dtype=np.float32)).astype(np.float32)
        if spec.bias:
            t["b"] = (0.1 * rng.standard_normal(spec.cout, dtype=np.float32)).astype(np.float32)
    elif spec.op == "attention":
        t["w"] = (rng.standard_normal(ws, dtype=np.float32) / np.sqrt(spec.cin)).astype(np.float32)
        if spec.bias:
            t["b"] = (0.1 * rng.standard_normal((4, spec.cout), dtype=np.float32)).astype(np.float32)
    elif ws:
        fan_in = int(np.prod(ws[1:]))
        t["w"] = (rng.standard_normal(ws, dtype=np.float32) / np.sqrt(fan_in)).astype(np.float32)
        if spec.bias:
            t["b"] = (0.1 * rng.standard_normal(spec.cout, dtype=np.float32)).astype(np.float32)
    if spec.op in ("add", "mul"):
        t["y"] = rng.standard_normal(t["x"].shape, dtype=np.float32)
    if spec.op == "matmul":  # scaled like a projection so outputs stay O(1)
        t["y"] = (rng.standard_normal((spec.n, spec.cin, spec.cout), dtype=np.float32) / np.sqrt(spec.cin)).astype(np.float32)
    if spec.op == "concat":
        chans = spec.a.get("channels") or (spec.cin, spec.cout - spec.cin)
        t["inputs"] = [rng.standard_normal((spec.n, spec.h, spec.w, c), dtype=np.float32) for c in chans]
    return t


#: Ops whose activations are token rows, (n, h = seq, cin): 3-D in every runtime, no layout change.
TOKEN_OPS = ("matmul", "softmax", "layernorm", "gelu", "attention")
LAYERNORM_EPS = 1e-5


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    from scipy.special import erf

    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def layernorm(x: np.ndarray, scale: np.ndarray, shift: np.ndarray | None, eps: float) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps) * scale
    return y + shift if shift is not None else y


def attention(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, heads: int) -> np.ndarray:
    """Multi-head self-attention over (n, seq, hidden) with stacked (4, hidden, hidden) weights."""
    n, seq, hid = x.shape
    d = hid // heads
    proj = [x @ w[i].T + (b[i] if b is not None else 0.0) for i in range(3)]
    q, k, v = (p.reshape(n, seq, heads, d).transpose(0, 2, 1, 3) for p in proj)
    a = softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(d)) @ v  # (n, heads, seq, d)
    y = a.transpose(0, 2, 1, 3).reshape(n, seq, hid) @ w[3].T
    return y + b[3] if b is not None else y


def activation(x: np.ndarray, kind: str) -> np.ndarray:
    if kind == "none":
        return x
    if kind == "relu":
        return np.maximum(x, 0)
    if kind == "relu6":
        return np.clip(x, 0, 6)
    if kind == "hswish":
        return x * np.clip(x + 3, 0, 6) / 6
    if kind == "hsigmoid":
        return np.clip(x + 3, 0, 6) / 6
    if kind == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if kind == "swish":
        return x / (1 + np.exp(-x))
    if kind == "leakyrelu":
        return np.where(x > 0, x, 0.01 * x)
    raise ValueError(f"no reference for activation {kind!r}")


def conv2d_nhwc(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int, pads: Pads,
                groups: int = 1, dilation: int = 1) -> np.ndarray:
    """Grouped 2-D convolution, NHWC x OHWI -> NHWC, computed in float64 for a trustworthy oracle."""
    n, h, wd, cin = x.shape
    cout, kh, kw, cig = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (pads.top, pads.bottom), (pads.left, pads.right), (0, 0)))
    oh = (h + pads.top + pads.bottom - dilation * (kh - 1) - 1) // stride + 1
    ow = (wd + pads.left + pads.right - dilation * (kw - 1) - 1) // stride + 1
    cog = cout // groups
    out = np.zeros((n, oh, ow, cout), dtype=np.float64)
    w64 = w.astype(np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i * dilation: i * dilation + stride * (oh - 1) + 1: stride,
                       j * dilation: j * dilation + stride * (ow - 1) + 1: stride, :]
            for g in range(groups):
                pg = patch[..., g * cig:(g + 1) * cig]
                wg = w64[g * cog:(g + 1) * cog, i, j, :]  # (cog, cig)
                out[..., g * cog:(g + 1) * cog] += pg @ wg.T
    if b is not None:
        out += b
    return out


def pool2d_nhwc(x: np.ndarray, k: int, stride: int, pads: Pads, mode: str) -> np.ndarray:
    """Max or average pooling; averages exclude padding (ONNX's and TFLite's default)."""
    n, h, w, c = x.shape
    oh = (h + pads.top + pads.bottom - k) // stride + 1
    ow = (w + pads.left + pads.right - k) // stride + 1
    fill = -np.inf if mode == "max" else 0.0
    xp = np.pad(x.astype(np.float64), ((0, 0), (pads.top, pads.bottom), (pads.left, pads.right), (0, 0)),
                constant_values=fill)
    ones = np.pad(np.ones((1, h, w, 1)), ((0, 0), (pads.top, pads.bottom), (pads.left, pads.right), (0, 0)))
    acc = np.full((n, oh, ow, c), fill)
    cnt = np.zeros((1, oh, ow, 1))
    for i in range(k):
        for j in range(k):
            sl = (slice(None), slice(i, i + stride * (oh - 1) + 1, stride), slice(j, j + stride * (ow - 1) + 1, stride))
            if mode == "max":
                acc = np.maximum(acc, xp[sl])
            else:
                acc = acc + xp[sl]
                cnt = cnt + ones[sl]
    return acc if mode == "max" else acc / cnt


def reference(spec: KernelSpec, t: dict[str, np.ndarray], pads: Pads | None = None) -> np.ndarray:
    """The expected output of `spec` on tensors `t` (float64, NHWC / (n, cout) for fc)."""
    pads = pads or Pads.symmetric(spec)
    op = spec.op
    if op in ("conv2d", "dwconv2d", "pwconv"):
        y = conv2d_nhwc(t["x"], t["w"], t.get("b"), spec.stride, pads, spec.groups, spec.dilation)
    elif op == "fc":
        y = t["x"].astype(np.float64) @ t["w"].astype(np.float64).T
        if "b" in t:
            y = y + t["b"]
    elif op in ("maxpool", "avgpool"):
        y = pool2d_nhwc(t["x"], spec.kh, spec.stride, pads, "max" if op == "maxpool" else "avg")
    elif op == "global_avgpool":
        y = t["x"].astype(np.float64).mean(axis=(1, 2), keepdims=True)
    elif op == "add":
        y = t["x"].astype(np.float64) + t["y"]
    elif op == "mul":
        y = t["x"].astype(np.float64) * t["y"]
    elif op == "concat":
        y = np.concatenate([a.astype(np.float64) for a in t["inputs"]], axis=-1)
    elif op == "activation":
        return activation(t["x"].astype(np.float64), spec.a.get("kind", spec.activation))
    elif op == "matmul":
        y = t["x"].astype(np.float64) @ t["y"].astype(np.float64)
    elif op == "softmax":
        y = softmax(t["x"].astype(np.float64))
    elif op == "layernorm":
        y = layernorm(t["x"].astype(np.float64), t["w"], t.get("b"), float(spec.a.get("eps", LAYERNORM_EPS)))
    elif op == "gelu":
        y = gelu(t["x"].astype(np.float64), spec.a.get("approximate", "none"))
    elif op == "attention":
        b = t["b"].astype(np.float64) if "b" in t else None
        y = attention(t["x"].astype(np.float64), t["w"].astype(np.float64), b, int(spec.a["heads"]))
    elif op == "depth_to_space":
        bs = int(spec.a.get("block", 2))
        n, h, w, c = t["x"].shape
        y = t["x"].astype(np.float64).reshape(n, h, w, bs, bs, c // bs**2).transpose(0, 1, 3, 2, 4, 5)
        y = y.reshape(n, h * bs, w * bs, c // bs**2)
    else:
        raise ValueError(f"no reference for op {op!r}")
    return activation(y, spec.activation)


def check_output(spec: KernelSpec, got: np.ndarray, want: np.ndarray, rtol: float | None = None,
                 atol: float | None = None) -> str | None:
    """None when `got` matches `want` within `TOLERANCES[spec.dtype]`, else a one-line reason.

    fp32: accumulation over K terms differs from the float64 oracle by O(sqrt(K) eps |y|), which
    rtol 1e-4 on the RMS covers with margin. int8: `got` and `want` are the quantized integers.
    """
    tol = TOLERANCES[spec.dtype]
    if spec.dtype == "int8":
        return check_quantized(got, want, int(tol["lsb"]))
    if rtol is None:
        rtol = tol["rtol"] + tol.get("rtol_per_sqrt_k", 0.0) * float(np.sqrt(reduction_length(spec)))
    atol = tol["atol"] if atol is None else atol
    got = np.asarray(got)
    if got.shape != want.shape:
        return f"output shape {tuple(got.shape)} != expected {tuple(want.shape)}"
    if not np.all(np.isfinite(got)):
        return "output contains NaN or Inf"
    scale = float(np.sqrt(np.mean(want**2))) if want.size else 1.0
    err = np.abs(got.astype(np.float64) - want)
    tol = atol + rtol * np.maximum(np.abs(want), scale)
    bad = err > tol
    if bad.any():
        i = np.unravel_index(int(np.argmax(err - tol)), err.shape)
        return (f"wrong output: {int(bad.sum())} of {bad.size} values off, worst at {tuple(int(v) for v in i)}: "
                f"got {float(got[i]):.6g}, expected {float(want[i]):.6g}")
    return None


def check_quantized(got: np.ndarray, want: np.ndarray, lsb: int) -> str | None:
    """None when every value of `got` is within `lsb` steps of `want`, else a one-line reason."""
    got = np.asarray(got)
    if got.shape != want.shape:
        return f"output shape {tuple(got.shape)} != expected {tuple(want.shape)}"
    err = np.abs(got.astype(np.int64) - np.asarray(want).astype(np.int64))
    bad = err > lsb
    if bad.any():
        i = np.unravel_index(int(np.argmax(err)), err.shape)
        return (f"wrong output: {int(bad.sum())} of {bad.size} values off by more than {lsb} LSB, worst at "
                f"{tuple(int(v) for v in i)}: got {int(got[i])}, expected {int(want[i])}")
    return None
