"""Single-op .tflite models for a `KernelSpec` (NHWC, as TFLite is).

TFLite knows only SAME and VALID padding. When the spec's symmetric padding gives the same output
size as SAME, the model uses SAME (as a converted real model would) and the reference is computed
with TFLite's asymmetric SAME pads; otherwise an explicit PAD op precedes a VALID op.
"""
from __future__ import annotations

import numpy as np

from ..records import KernelSpec
from ..runtimes.reference import Pads
from .tflite_writer import FUSED, TFLiteGraph, same_pads

SUPPORTED = ("conv2d", "dwconv2d", "pwconv", "fc", "maxpool", "avgpool", "global_avgpool", "add", "mul",
             "concat", "activation", "depth_to_space")
_SEPARATE_ACT = {"hswish": "HARD_SWISH", "sigmoid": "LOGISTIC", "leakyrelu": "LEAKY_RELU"}


def supports(spec: KernelSpec) -> str | None:
    if spec.op not in SUPPORTED:
        return f"no single-op TFLite model for {spec.op}"
    if spec.sparsity.scheme != "dense":
        return "LiteRT runs dense kernels only (sparse schemes run in devprof-c)"
    if spec.dtype != "fp32":
        return "only fp32 single-op models so far"
    if spec.activation not in FUSED and spec.activation not in _SEPARATE_ACT:
        return f"activation {spec.activation} not mapped to TFLite"
    if spec.groups != 1 and spec.op == "conv2d":
        return "grouped (non-depthwise) conv is not a TFLite builtin"
    return None


def _padding(spec: KernelSpec) -> tuple[str, Pads]:
    """Choose SAME/VALID (+explicit PAD) and return the pads the reference must use."""
    if spec.op in ("fc", "global_avgpool", "add", "mul", "concat", "activation", "depth_to_space"):
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
    """Return (flatbuffer bytes, NHWC feeds by input order, pads for the reference)."""
    g = TFLiteGraph(f"devprof_{spec.id}")
    mode, pads = _padding(spec)
    op = spec.op
    x = tensors["x"]
    feeds: dict[str, np.ndarray] = {"x": x}
    xi = g.tensor("x", x.shape)
    inputs = [xi]
    if mode == "PAD":
        p = spec.padding
        pad = g.tensor("pads", (4, 2), np.array([[0, 0], [p, p], [p, p], [0, 0]], np.int32))
        xp = g.tensor("x_padded", (x.shape[0], x.shape[1] + 2 * p, x.shape[2] + 2 * p, x.shape[3]))
        g.op("PAD", [xi, pad], [xp], "PadOptions")
        xi = xp
    padding = 0 if mode == "SAME" else 1  # Padding.SAME = 0, VALID = 1
    sep = _SEPARATE_ACT.get(spec.activation) if op != "activation" else None
    fused = FUSED.get(spec.activation, 0) if sep is None else 0
    out_shape = (spec.n, spec.cout) if op == "fc" else (spec.n, spec.out_h, spec.out_w, spec.cout)
    y = g.tensor("y" if sep is None else "pre", out_shape)
    if op in ("conv2d", "pwconv", "dwconv2d"):
        w = tensors["w"]
        b = tensors.get("b", np.zeros(spec.cout, np.float32))
        if op == "dwconv2d":
            wt = np.ascontiguousarray(w.transpose(3, 1, 2, 0))  # (C,kh,kw,1) -> (1,kh,kw,C)
            wi, bi = g.tensor("w", wt.shape, wt), g.tensor("b", b.shape, b)
            g.op("DEPTHWISE_CONV_2D", [xi, wi, bi], [y], "DepthwiseConv2DOptions", padding=padding,
                 strideW=spec.stride, strideH=spec.stride, depthMultiplier=1, fusedActivationFunction=fused,
                 dilationWFactor=spec.dilation, dilationHFactor=spec.dilation)
        else:
            wi, bi = g.tensor("w", w.shape, w), g.tensor("b", b.shape, b)
            g.op("CONV_2D", [xi, wi, bi], [y], "Conv2DOptions", padding=padding, strideW=spec.stride,
                 strideH=spec.stride, fusedActivationFunction=fused, dilationWFactor=spec.dilation,
                 dilationHFactor=spec.dilation)
    elif op == "fc":
        w = tensors["w"]
        b = tensors.get("b", np.zeros(spec.cout, np.float32))
        wi, bi = g.tensor("w", w.shape, w), g.tensor("b", b.shape, b)
        g.op("FULLY_CONNECTED", [xi, wi, bi], [y], "FullyConnectedOptions", fusedActivationFunction=fused)
    elif op in ("maxpool", "avgpool"):
        g.op("MAX_POOL_2D" if op == "maxpool" else "AVERAGE_POOL_2D", [xi], [y], "Pool2DOptions", padding=padding,
             strideW=spec.stride, strideH=spec.stride, filterWidth=spec.kw, filterHeight=spec.kh,
             fusedActivationFunction=fused)
    elif op == "global_avgpool":
        g.op("AVERAGE_POOL_2D", [xi], [y], "Pool2DOptions", padding=1, strideW=1, strideH=1, filterWidth=spec.w,
             filterHeight=spec.h, fusedActivationFunction=fused)
    elif op in ("add", "mul"):
        feeds["y2"] = tensors["y"]
        yi = g.tensor("y2", tensors["y"].shape)
        inputs.append(yi)
        g.op("ADD" if op == "add" else "MUL", [xi, yi], [y], "AddOptions" if op == "add" else "MulOptions",
             fusedActivationFunction=fused)
    elif op == "concat":
        feeds = {}
        inputs = []
        for i, a in enumerate(tensors["inputs"]):
            feeds[f"x{i}"] = a
            inputs.append(g.tensor(f"x{i}", a.shape))
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
    else:
        raise ValueError(f"no TFLite builder for {op}")
    out = y
    if sep is not None:
        out = g.tensor("y", out_shape)
        g.op(sep, [y], [out], "LeakyReluOptions" if sep == "LEAKY_RELU" else None,
             **({"alpha": 0.01} if sep == "LEAKY_RELU" else {}))
    return g.finish(inputs, [out]), feeds, pads
