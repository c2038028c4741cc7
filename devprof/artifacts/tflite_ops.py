"""Single-op .tflite models for a `KernelSpec` (NHWC, as TFLite is).

TFLite knows only SAME and VALID padding. When the spec's symmetric padding gives the same output
size as SAME, the model uses SAME (as a converted real model would) and the reference is computed
with TFLite's asymmetric SAME pads; otherwise an explicit PAD op precedes a VALID op.

Data types, as the TFLite converter writes them:

- ``fp16``: weights and biases stored as fp16 constants, each followed by a DEQUANTIZE op to
  fp32, and the ``reduced_precision_support = fp16accfp16`` metadata, with which XNNPACK computes
  in fp16 where the CPU has fp16 arithmetic (and in fp32 everywhere else).
- ``int8`` (full-integer): int8 input and output with scale and zero point, int8 weights with one
  scale per output channel, int32 bias; fused ReLU/ReLU6 as the clamp. XNNPACK runs these with its
  QS8 kernels. `build_int8_model` takes the quantized tensors (`runtimes.quantize.QKernel`).
"""
from __future__ import annotations

import numpy as np

from ..records import KernelSpec
from ..runtimes.reference import LAYERNORM_EPS, TOKEN_OPS, Pads
from .tflite_writer import FUSED, TFLiteGraph, same_pads

#: Metadata that lets XNNPACK run the model in fp16 (with fp16 accumulation) where it can.
FP16_METADATA = {"reduced_precision_support": b"fp16accfp16"}
#: Operator versions the converter writes for full-integer int8 models (op_version.cc).
_INT8_VERSION = {"CONV_2D": 3, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 4, "MAX_POOL_2D": 2,
                 "AVERAGE_POOL_2D": 2, "ADD": 2, "MUL": 2, "PAD": 2}

SUPPORTED = ("conv2d", "dwconv2d", "pwconv", "fc", "maxpool", "avgpool", "global_avgpool", "add", "mul",
             "concat", "activation", "depth_to_space", "matmul", "softmax", "layernorm", "gelu", "attention")
_SEPARATE_ACT = {"hswish": "HARD_SWISH", "sigmoid": "LOGISTIC", "leakyrelu": "LEAKY_RELU"}


def supports(spec: KernelSpec) -> str | None:
    if spec.op not in SUPPORTED:
        return f"no single-op TFLite model for {spec.op}"
    if spec.sparsity.scheme != "dense":
        return "LiteRT runs dense kernels only (sparse schemes run in devprof-c)"
    if spec.dtype == "int8":
        if spec.op in TOKEN_OPS:
            return f"int8 {spec.op} is not built yet (fp32 only)"
        from ..runtimes.quantize import supports_int8

        return supports_int8(spec)
    if spec.activation not in FUSED and spec.activation not in _SEPARATE_ACT:
        return f"activation {spec.activation} not mapped to TFLite"
    if spec.groups != 1 and spec.op == "conv2d":
        return "grouped (non-depthwise) conv is not a TFLite builtin"
    return None


def _padding(spec: KernelSpec) -> tuple[str, Pads]:
    """Choose SAME/VALID (+explicit PAD) and return the pads the reference must use."""
    if spec.op in ("fc", "global_avgpool", "add", "mul", "concat", "activation", "depth_to_space", *TOKEN_OPS):
        return "VALID", Pads(0, 0, 0, 0)
    p = spec.padding
    if p == 0:
        return "VALID", Pads(0, 0, 0, 0)
    oh, t, b = same_pads(spec.h, spec.kh, spec.stride, spec.dilation)
    ow, l, r = same_pads(spec.w, spec.kw, spec.stride, spec.dilation)
    if (oh, ow) == (spec.out_h, spec.out_w):
        return "SAME", Pads(t, b, l, r)
    return "PAD", Pads(p, p, p, p)


def build_model(spec: KernelSpec, tensors: dict[str, np.ndarray]) -> tuple[bytes, dict[str, np.ndarray], Pads]:
    """Return (flatbuffer bytes, NHWC feeds by input order, pads for the reference): fp32 or fp16."""
    return _build(spec, _FloatTensors(spec.dtype == "fp16"), tensors)


def build_int8_model(spec: KernelSpec, qk) -> tuple[bytes, dict[str, np.ndarray], Pads]:
    """The full-integer model of an int8 spec from its quantized tensors (`quantize.QKernel`):
    (flatbuffer bytes, int8 NHWC feeds by input order, pads for the integer reference)."""
    return _build(spec, _Int8Tensors(qk), dict(qk.inputs))


class _FloatTensors:
    """fp32 tensors; with `fp16`, constant weights stored as fp16 behind a DEQUANTIZE op."""

    def __init__(self, fp16: bool) -> None:
        self.fp16 = fp16

    def act(self, g: TFLiteGraph, name: str, shape, like: str = "x") -> int:  # noqa: ARG002
        return g.tensor(name, shape)

    def const(self, g: TFLiteGraph, name: str, arr: np.ndarray, axis: int = 0) -> int:  # noqa: ARG002
        if not self.fp16:
            return g.tensor(name, arr.shape, arr)
        half = g.tensor(f"{name}_fp16", arr.shape, np.ascontiguousarray(arr, np.float16))
        out = g.tensor(name, arr.shape)
        g.op("DEQUANTIZE", [half], [out], version=3)  # version 3: fp16 -> fp32
        return out

    def weights(self, g: TFLiteGraph, spec: KernelSpec, tensors: dict, layout) -> tuple[int, int]:
        w = layout(tensors["w"])
        b = tensors.get("b", np.zeros(spec.cout, np.float32))
        return self.const(g, "w", w), self.const(g, "b", b)

    def version(self, builtin: str) -> int:  # noqa: ARG002
        return 1

    def metadata(self) -> dict[str, bytes] | None:
        return FP16_METADATA if self.fp16 else None


class _Int8Tensors:
    """int8 activations with their quantization, per-channel int8 weights, int32 bias."""

    def __init__(self, qk) -> None:
        self.qk = qk

    def act(self, g: TFLiteGraph, name: str, shape, like: str = "x") -> int:
        qp = self.qk.out if like == "out" else self.qk.in_params[like]
        return g.tensor(name, shape, dtype=np.int8, quant=(qp.scale, qp.zero_point, 0))

    def weights(self, g: TFLiteGraph, spec: KernelSpec, tensors: dict, layout) -> tuple[int, int]:  # noqa: ARG002
        qk = self.qk
        w = layout(qk.w_q)
        axis = 3 if spec.op == "dwconv2d" else 0  # the output channel: (1, kh, kw, C) for depthwise
        n = len(qk.w_scale)
        wi = g.tensor("w", w.shape, w, quant=(qk.w_scale, np.zeros(n, np.int64), axis))
        bi = g.tensor("b", qk.b_q.shape, qk.b_q, quant=(qk.b_scale, np.zeros(n, np.int64), 0))
        return wi, bi

    def version(self, builtin: str) -> int:
        return _INT8_VERSION.get(builtin, 1)

    def metadata(self) -> None:
        return None


def _build(spec: KernelSpec, tt, tensors: dict[str, np.ndarray]) -> tuple[bytes, dict[str, np.ndarray], Pads]:
    g = TFLiteGraph(f"devprof_{spec.id}")
    mode, pads = _padding(spec)
    op = spec.op
    x = tensors["x"]
    feeds: dict[str, np.ndarray] = {"x": x}
    xi = tt.act(g, "x", x.shape)
    inputs = [xi]
    v = tt.version
    if mode == "PAD":
        p = spec.padding
        pad = g.tensor("pads", (4, 2), np.array([[0, 0], [p, p], [p, p], [0, 0]], np.int32))
        xp = tt.act(g, "x_padded", (x.shape[0], x.shape[1] + 2 * p, x.shape[2] + 2 * p, x.shape[3]))
        g.op("PAD", [xi, pad], [xp], "PadOptions", version=v("PAD"))
        xi = xp
    padding = 0 if mode == "SAME" else 1  # Padding.SAME = 0, VALID = 1
    sep = _SEPARATE_ACT.get(spec.activation) if op != "activation" else None
    fused = FUSED.get(spec.activation, 0) if sep is None else 0
    out_shape = ((spec.n, spec.cout) if op == "fc" else (spec.n, spec.h, spec.cout) if op in TOKEN_OPS
                 else (spec.n, spec.out_h, spec.out_w, spec.cout))
    y = tt.act(g, "y" if sep is None else "pre", out_shape, "out")
    if op in ("conv2d", "pwconv", "dwconv2d"):
        if op == "dwconv2d":
            wi, bi = tt.weights(g, spec, tensors, lambda w: np.ascontiguousarray(w.transpose(3, 1, 2, 0)))  # (C,kh,kw,1) -> (1,kh,kw,C)
            g.op("DEPTHWISE_CONV_2D", [xi, wi, bi], [y], "DepthwiseConv2DOptions", version=v("DEPTHWISE_CONV_2D"),
                 padding=padding, strideW=spec.stride, strideH=spec.stride, depthMultiplier=1,
                 fusedActivationFunction=fused, dilationWFactor=spec.dilation, dilationHFactor=spec.dilation)
        else:
            wi, bi = tt.weights(g, spec, tensors, lambda w: w)
            g.op("CONV_2D", [xi, wi, bi], [y], "Conv2DOptions", version=v("CONV_2D"), padding=padding,
                 strideW=spec.stride, strideH=spec.stride, fusedActivationFunction=fused,
                 dilationWFactor=spec.dilation, dilationHFactor=spec.dilation)
    elif op == "fc":
        wi, bi = tt.weights(g, spec, tensors, lambda w: w)
        g.op("FULLY_CONNECTED", [xi, wi, bi], [y], "FullyConnectedOptions", version=v("FULLY_CONNECTED"),
             fusedActivationFunction=fused)
    elif op in ("maxpool", "avgpool"):
        name = "MAX_POOL_2D" if op == "maxpool" else "AVERAGE_POOL_2D"
        g.op(name, [xi], [y], "Pool2DOptions", version=v(name), padding=padding, strideW=spec.stride,
             strideH=spec.stride, filterWidth=spec.kw, filterHeight=spec.kh, fusedActivationFunction=fused)
    elif op == "global_avgpool":
        g.op("AVERAGE_POOL_2D", [xi], [y], "Pool2DOptions", version=v("AVERAGE_POOL_2D"), padding=1, strideW=1,
             strideH=1, filterWidth=spec.w, filterHeight=spec.h, fusedActivationFunction=fused)
    elif op in ("add", "mul"):
        feeds["y2"] = tensors["y"]
        yi = tt.act(g, "y2", tensors["y"].shape, "y")
        inputs.append(yi)
        name = "ADD" if op == "add" else "MUL"
        g.op(name, [xi, yi], [y], "AddOptions" if op == "add" else "MulOptions", version=v(name),
             fusedActivationFunction=fused)
    elif op == "concat":
        feeds = {}
        inputs = []
        for i, a in enumerate(tensors["inputs"]):
            feeds[f"x{i}"] = a
            inputs.append(tt.act(g, f"x{i}", a.shape))
        g.op("CONCATENATION", inputs, [y], "ConcatenationOptions", axis=3, fusedActivationFunction=fused)
    elif op == "activation":
        kind = spec.a.get("kind", spec.activation)
        if kind in ("relu", "relu6"):
            g.op("RELU" if kind == "relu" else "RELU6", [xi], [y])
        else:
            g.op(_SEPARATE_ACT[kind], [xi], [y], "LeakyReluOptions" if kind == "leakyrelu" else None,
                 **({"alpha": 0.01} if kind == "leakyrelu" else {}))
    elif op == "depth_to_space":
        g.op("DEPTH_TO_SPACE", [xi], [y], "DepthToSpaceOptions", blockSize=int(spec.a.get("block", 2)))
    elif op in TOKEN_OPS:
        if op == "matmul":
            feeds["y2"] = tensors["y"]
            inputs.append(tt.act(g, "y2", tensors["y"].shape, "y"))
        _token_ops(g, tt, spec, tensors, xi, inputs[-1], y)
    else:
        raise ValueError(f"no TFLite builder for {op}")
    out = y
    if sep is not None:
        out = tt.act(g, "y", out_shape, "out")
        g.op(sep, [y], [out], "LeakyReluOptions" if sep == "LEAKY_RELU" else None,
             **({"alpha": 0.01} if sep == "LEAKY_RELU" else {}))
    return g.finish(inputs, [out], metadata=tt.metadata()), feeds, pads


def _token_ops(g: TFLiteGraph, tt, spec: KernelSpec, tensors: dict, xi: int, yi: int, out: int) -> None:
    """Transformer ops as the TFLite converter writes them: BATCH_MATMUL, SOFTMAX and GELU are
    builtins; layer norm has no builtin and becomes MEAN / SQUARED_DIFFERENCE / RSQRT arithmetic;
    attention is FULLY_CONNECTED projections, RESHAPE / TRANSPOSE into heads and BATCH_MATMULs."""
    op = spec.op
    n, seq, hid = spec.n, spec.h, spec.cin

    def tmp(name: str, shape) -> int:
        return g.tensor(name, shape)

    def scalar(name: str, v: float) -> int:
        return g.tensor(name, (1,), np.array([v], np.float32))

    if op == "matmul":
        g.op("BATCH_MATMUL", [xi, yi], [out], "BatchMatMulOptions", adjX=False, adjY=False)
    elif op == "softmax":
        g.op("SOFTMAX", [xi], [out], "SoftmaxOptions", beta=1.0)
    elif op == "gelu":
        g.op("GELU", [xi], [out], "GeluOptions", approximate=spec.a.get("approximate", "none") == "tanh")
    elif op == "layernorm":
        axis = g.tensor("axis", (1,), np.array([-1], np.int32))
        mean = tmp("mean", (n, seq, 1))
        g.op("MEAN", [xi, axis], [mean], "ReducerOptions", keepDims=True)
        sq = tmp("sqdiff", (n, seq, hid))
        g.op("SQUARED_DIFFERENCE", [xi, mean], [sq])
        var = tmp("var", (n, seq, 1))
        g.op("MEAN", [sq, axis], [var], "ReducerOptions", keepDims=True)
        ve = tmp("var_eps", (n, seq, 1))
        g.op("ADD", [var, scalar("eps", float(spec.a.get("eps", LAYERNORM_EPS)))], [ve], "AddOptions")
        r = tmp("rstd", (n, seq, 1))
        g.op("RSQRT", [ve], [r])
        xc = tmp("centered", (n, seq, hid))
        g.op("SUB", [xi, mean], [xc], "SubOptions")
        xn = tmp("normed", (n, seq, hid))
        g.op("MUL", [xc, r], [xn], "MulOptions")
        scaled = out if "b" not in tensors else tmp("scaled", (n, seq, hid))
        g.op("MUL", [xn, tt.const(g, "scale", tensors["w"])], [scaled], "MulOptions")
        if "b" in tensors:
            g.op("ADD", [scaled, tt.const(g, "shift", tensors["b"])], [out], "AddOptions")
    elif op == "attention":
        heads = int(spec.a["heads"])
        d = hid // heads
        w = tensors["w"]
        b = tensors.get("b", np.zeros((4, hid), np.float32))
        split = g.tensor("split_shape", (4,), np.array([n, seq, heads, d], np.int32))
        perm = g.tensor("perm_heads", (4,), np.array([0, 2, 1, 3], np.int32))
        hs = []
        for i, name in enumerate("qkv"):
            p = tmp(f"{name}", (n, seq, hid))
            g.op("FULLY_CONNECTED", [xi, tt.const(g, f"w{name}", w[i]), tt.const(g, f"b{name}", b[i])], [p],
                 "FullyConnectedOptions", keepNumDims=True)
            r = tmp(f"{name}_split", (n, seq, heads, d))
            g.op("RESHAPE", [p, split], [r], "ReshapeOptions", newShape=[n, seq, heads, d])
            h = tmp(f"{name}_heads", (n, heads, seq, d))
            g.op("TRANSPOSE", [r, perm], [h], "TransposeOptions")
            hs.append(h)
        scores = tmp("scores", (n, heads, seq, seq))
        g.op("BATCH_MATMUL", [hs[0], hs[1]], [scores], "BatchMatMulOptions", adjX=False, adjY=True)
        scaled = tmp("scaled", (n, heads, seq, seq))
        g.op("MUL", [scores, scalar("inv_sqrt_d", float(1 / np.sqrt(d)))], [scaled], "MulOptions")
        probs = tmp("probs", (n, heads, seq, seq))
        g.op("SOFTMAX", [scaled], [probs], "SoftmaxOptions", beta=1.0)
        ctx = tmp("ctx", (n, heads, seq, d))
        g.op("BATCH_MATMUL", [probs, hs[2]], [ctx], "BatchMatMulOptions", adjX=False, adjY=False)
        ctx_t = tmp("ctx_t", (n, seq, heads, d))
        g.op("TRANSPOSE", [ctx, perm], [ctx_t], "TransposeOptions")
        merged = tmp("merged", (n, seq, hid))
        g.op("RESHAPE", [ctx_t, g.tensor("merge_shape", (3,), np.array([n, seq, hid], np.int32))], [merged],
             "ReshapeOptions", newShape=[n, seq, hid])
        g.op("FULLY_CONNECTED", [merged, tt.const(g, "wo", w[3]), tt.const(g, "bo", b[3])], [out],
             "FullyConnectedOptions", keepNumDims=True)
    else:
        raise ValueError(f"no TFLite builder for {op}")
