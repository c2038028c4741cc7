"""int8 kernels: the quantization devprof chooses, and the integer reference that checks them.

A `dtype = "int8"` spec is measured as a runtime would deploy it after static quantization:
weights int8, symmetric, one scale per output channel (zero point 0, range [-127, 127]); bias
int32 with scale input_scale x weight_scale[c]; activations 8-bit affine (scale and zero point,
asymmetric), `int8` for LiteRT (XNNPACK's QS8 path) and `uint8` for ONNX Runtime (its x86 QDQ
fusion turns Conv into QLinearConv only for uint8 activations). Activation ranges are calibrated
on the very tensors the kernel is checked with (`reference.make_tensors`), as a calibration pass
over representative inputs would; the output range always holds 0, so a fused ReLU/ReLU6 is the
requantization's clamp, which is how quantized runtimes fuse them.

`reference_q` computes the kernel in integers: (x_q - x_zp) times w_q summed exactly, plus b_q,
then requantized: y_q = y_zp + round(acc * x_scale * w_scale[c] / y_scale), clamped to the
activation's range. The rounding mode is a parameter (`ROUNDINGS`) because runtimes differ:
ONNX Runtime's MLAS and XNNPACK's QS8 kernels requantize in fp32 and round half to even (on
requantizations that hit exact halves they match `half_even` bit for bit, tests/test_quantized.py);
TFLite's builtin kernels use a fixed-point multiplier that matches no plain rule on such ties. An
fp32 or fixed-point multiplier is not the exact real scale either, so the check allows
`reference.TOLERANCES["int8"]` (one step of the output's scale).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..records import KernelSpec
from .reference import Pads, conv2d_nhwc, pool2d_nhwc, reference

#: Ops with an int8 single-op model (ONNX QDQ, full-integer TFLite) and an integer reference.
INT8_OPS = ("conv2d", "dwconv2d", "pwconv", "fc", "maxpool", "avgpool", "global_avgpool", "add", "mul")
#: Activations an int8 kernel fuses (as the requantization's clamp); others are refused.
INT8_ACTIVATIONS = ("none", "relu", "relu6")
#: 8-bit activation types: numpy type, smallest and largest value.
ACT_TYPES = {"int8": (np.int8, -128, 127), "uint8": (np.uint8, 0, 255)}
#: How a real value is rounded to an integer when requantizing.
ROUNDINGS = ("half_even", "half_away", "half_up")
WEIGHT_QMAX = 127  # symmetric int8 weights use [-127, 127] (TFLite's and XNNPACK's convention)
WEIGHT_QMAX_7BIT = 63  # "reduce_range": 7-bit weights, for x86 u8 x s8 kernels without VNNI (see onnxruntime.py)


@dataclass(frozen=True)
class QParams:
    """Affine 8-bit quantization of a tensor: real = scale * (q - zero_point)."""

    scale: float  # a float32 value: what the model stores and the runtime multiplies by
    zero_point: int
    dtype: str = "int8"

    @property
    def qmin(self) -> int:
        return ACT_TYPES[self.dtype][1]

    @property
    def qmax(self) -> int:
        return ACT_TYPES[self.dtype][2]

    @property
    def np_dtype(self):
        return ACT_TYPES[self.dtype][0]


def round_int(v: np.ndarray, rounding: str = "half_even") -> np.ndarray:
    """Round real values to integers (int64) with the given tie rule."""
    v = np.asarray(v, dtype=np.float64)
    if rounding == "half_even":
        r = np.rint(v)
    elif rounding == "half_away":
        r = np.sign(v) * np.floor(np.abs(v) + 0.5)
    elif rounding == "half_up":
        r = np.floor(v + 0.5)
    else:
        raise ValueError(f"unknown rounding {rounding!r} (known: {', '.join(ROUNDINGS)})")
    return r.astype(np.int64)


def choose_qparams(lo: float, hi: float, dtype: str = "int8") -> QParams:
    """Asymmetric parameters covering [lo, hi] widened to hold 0 (0 must be exact: padding, ReLU)."""
    _, qmin, qmax = ACT_TYPES[dtype]
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo <= 0:
        hi = lo + 1.0
    scale = float(np.float32((hi - lo) / (qmax - qmin)))
    zp = int(np.clip(qmin - int(round_int(lo / scale)), qmin, qmax))
    return QParams(scale, zp, dtype)


def quantize(x: np.ndarray, qp: QParams, rounding: str = "half_even") -> np.ndarray:
    """Real values -> saturated 8-bit integers of `qp` (as QuantizeLinear / TFLite QUANTIZE do)."""
    q = round_int(np.asarray(x, np.float64) / qp.scale, rounding) + qp.zero_point
    return np.clip(q, qp.qmin, qp.qmax).astype(qp.np_dtype)


def dequantize(q: np.ndarray, qp: QParams) -> np.ndarray:
    return qp.scale * (np.asarray(q, np.int64) - qp.zero_point).astype(np.float64)


def weight_scales(w: np.ndarray, qmax: int = WEIGHT_QMAX) -> np.ndarray:
    """Per-output-channel symmetric scales (float32) for weights whose axis 0 is the output channel.
    An all-zero channel (a pruned row) gets scale 1: runtimes reject scales that are not normal."""
    m = np.abs(w.reshape(w.shape[0], -1)).max(axis=1).astype(np.float64)
    return np.where(m > 0, m / qmax, 1.0).astype(np.float32)


@dataclass
class QKernel:
    """A spec's tensors quantized: what int8 single-op models are built from and `reference_q` reads.

    `inputs` holds the quantized activations by the name the float tensors have (`x`, and `y`
    for add/mul); `in_params` their parameters. Weighted ops carry `w_q` (int8, same layout as
    the float weights), `w_scale` (float32, one per output channel), `b_q` (int32) and
    `b_scale` (float32, = x scale * w_scale, as the models store it).
    """

    spec: KernelSpec
    inputs: dict[str, np.ndarray]
    in_params: dict[str, QParams]
    out: QParams
    w_q: np.ndarray | None = None
    w_scale: np.ndarray | None = None
    b_q: np.ndarray | None = None
    b_scale: np.ndarray | None = None
    act_dtype: str = "int8"
    floats: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # the dequantized inputs

    @property
    def x(self) -> QParams:
        return self.in_params["x"]


def supports_int8(spec: KernelSpec) -> str | None:
    """None when devprof builds and checks an int8 kernel for `spec`, else a one-line reason."""
    if spec.op not in INT8_OPS:
        return f"no int8 single-op model for {spec.op} (int8: {', '.join(INT8_OPS)})"
    if spec.activation != "none" and spec.op in ("maxpool", "avgpool", "global_avgpool"):
        return "int8 pools keep their input's quantization: no fused activation"
    if spec.activation not in INT8_ACTIVATIONS:
        return (f"int8 kernels fuse {'/'.join(INT8_ACTIVATIONS)} only (the requantization's clamp), "
                f"not {spec.activation}")
    return None


def quantize_kernel(spec: KernelSpec, t: dict[str, np.ndarray], act_dtype: str = "int8",
                    weight_qmax: int = WEIGHT_QMAX) -> QKernel:
    """Quantize the float tensors of `spec` (from `make_tensors`) as static quantization would;
    weights to [-weight_qmax, weight_qmax] (127, or 63 for 7-bit "reduce_range" weights)."""
    if act_dtype not in ACT_TYPES:
        raise ValueError(f"unknown activation type {act_dtype!r}")
    names = ["x", "y"] if spec.op in ("add", "mul") else ["x"]
    in_params = {k: choose_qparams(t[k].min(), t[k].max(), act_dtype) for k in names}
    inputs = {k: quantize(t[k], in_params[k]) for k in names}
    floats = {k: dequantize(inputs[k], in_params[k]) for k in names}
    qk = QKernel(spec, inputs, in_params, in_params["x"], act_dtype=act_dtype, floats=floats)
    if "w" in t:
        sx = np.float32(in_params["x"].scale)
        qk.w_scale = weight_scales(t["w"], weight_qmax)
        shape = (-1,) + (1,) * (t["w"].ndim - 1)
        qk.w_q = np.clip(round_int(t["w"] / qk.w_scale.reshape(shape)), -weight_qmax, weight_qmax).astype(np.int8)
        qk.b_scale = (sx * qk.w_scale).astype(np.float32)
        b = t.get("b", np.zeros(spec.cout, np.float32))
        qk.b_q = np.clip(round_int(b / qk.b_scale), -2**31, 2**31 - 1).astype(np.int32)
    if spec.op in ("maxpool", "avgpool", "global_avgpool"):
        return qk  # pools keep the input's parameters (TFLite requires it; ORT's QDQ fusion expects it)
    # calibrate the output on the float computation over the quantized inputs (activation included)
    ft = {k: v.astype(np.float32) for k, v in floats.items()}
    if qk.w_q is not None:
        ft["w"] = (qk.w_q.astype(np.float64) * qk.w_scale.reshape(shape)).astype(np.float32)
        ft["b"] = (qk.b_q.astype(np.float64) * qk.b_scale).astype(np.float32)
    y = reference(spec, ft)
    qk.out = choose_qparams(y.min(), y.max(), act_dtype)
    return qk


def _act_range(spec: KernelSpec, qp: QParams) -> tuple[int, int]:
    """The quantized clamp a fused activation becomes (TFLite's CalculateActivationRangeQuantized)."""
    lo, hi = qp.qmin, qp.qmax
    if spec.activation in ("relu", "relu6"):
        lo = max(lo, qp.zero_point)
    if spec.activation == "relu6":
        hi = min(hi, qp.zero_point + int(round_int(6.0 / qp.scale)))
    return lo, hi


def reference_q(qk: QKernel, pads: Pads | None = None, rounding: str = "half_even") -> np.ndarray:
    """The integer reference output of an int8 kernel (NHWC, or (n, cout) for fc), as int64.

    Accumulation is exact (integers in float64 stay exact far beyond any layer's K x 255 x 127);
    only the final requantization rounds, with `rounding`.
    """
    spec = qk.spec
    pads = pads or Pads.symmetric(spec)
    op = spec.op
    xp = qk.x
    xc = qk.inputs["x"].astype(np.int64) - xp.zero_point  # centred: 0 is the real 0 (and the padding)
    out = qk.out
    if op in ("conv2d", "dwconv2d", "pwconv", "fc"):
        if op == "fc":
            acc = xc.astype(np.float64) @ qk.w_q.astype(np.float64).T
        else:
            acc = conv2d_nhwc(xc.astype(np.float64), qk.w_q.astype(np.float64), None, spec.stride, pads,
                              spec.groups, spec.dilation)
        acc = acc + qk.b_q
        mult = np.float64(xp.scale) * qk.w_scale.astype(np.float64) / np.float64(out.scale)
        v = acc * mult
    elif op == "maxpool":
        v = pool2d_nhwc(xc.astype(np.float64), spec.kh, spec.stride, pads, "max")  # same parameters in and out
    elif op == "avgpool":
        v = pool2d_nhwc(xc.astype(np.float64), spec.kh, spec.stride, pads, "avg")
    elif op == "global_avgpool":
        v = xc.astype(np.float64).mean(axis=(1, 2), keepdims=True)
    elif op in ("add", "mul"):
        yp = qk.in_params["y"]
        yc = qk.inputs["y"].astype(np.int64) - yp.zero_point
        if op == "add":
            v = (np.float64(xp.scale) * xc + np.float64(yp.scale) * yc) / np.float64(out.scale)
        else:
            v = (np.float64(xp.scale) * np.float64(yp.scale) / np.float64(out.scale)) * (xc * yc)
    else:
        raise ValueError(f"no int8 reference for op {op!r}")
    q = round_int(v, rounding) + out.zero_point
    lo, hi = _act_range(spec, out)
    return np.clip(q, lo, hi)
