"""ONNX model -> .tflite (NHWC) with devprof's own flatbuffer writer (`build.tflite_writer`).

Converts the ops devprof's model families use, the way TFLite converters do: BatchNormalization is
folded into the convolution before it, ReLU/ReLU6 become fused activations, padding that TFLite's
SAME cannot express becomes an explicit PAD, channel shuffle becomes a 5-D reshape/transpose in
NHWC. Anything else raises `UnsupportedOp` (one line naming the node).

Transformer encoders (one input of token rows, (batch, seq, hidden)) keep their layout: a MatMul
with a constant weight becomes FULLY_CONNECTED (keep_num_dims), two activations BATCH_MATMUL,
Softmax SOFTMAX, the GELU erf formula one GELU op, LayerNormalization the MEAN / RSQRT arithmetic
the TFLite converter writes, and the head Reshapes / Transposes RESHAPE / TRANSPOSE.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..artifacts.tflite_writer import TFLiteGraph, same_pads
from ..errors import UsageError

_FUSED = {"relu": 1, "relu6": 3}


class UnsupportedOp(UsageError):
    """The model holds an op (or a form of it) the TFLite exporter does not convert."""


def onnx_to_tflite(model) -> bytes:
    """Convert an ONNX ModelProto (single NCHW image input, batch 1) to .tflite bytes (NHWC)."""
    return _Exporter(model).run()


class _Exporter:
    def __init__(self, model) -> None:
        from onnx import numpy_helper, shape_inference

        from .walk import _meta

        m = shape_inference.infer_shapes(model)
        self.g = m.graph
        self.np = numpy_helper
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in self.g.initializer}
        for n in self.g.node:
            if n.op_type == "Constant":
                import onnx

                self.consts[n.output[0]] = numpy_helper.to_array(onnx.helper.get_attribute_value(n.attribute[0]))
            elif n.op_type == "Identity" and n.input and n.input[0] in self.consts:  # a shared weight
                self.consts[n.output[0]] = self.consts[n.input[0]]
        self.shapes: dict[str, tuple] = {}
        for vi in list(self.g.input) + list(self.g.value_info) + list(self.g.output):
            self.shapes[vi.name] = tuple(max(1, d.dim_value) for d in vi.type.tensor_type.shape.dim)
        self.consumers: dict[str, list] = {}
        for n in self.g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.out = TFLiteGraph(_meta(m, "devprof.family") or self.g.name or "devprof")
        self.t: dict[str, int] = {}  # ONNX tensor -> TFLite tensor index
        self.done: set[str] = set()
        self.outputs = {o.name for o in self.g.output}
        self.tokens = False  # a transformer's token rows: no NCHW -> NHWC change anywhere

    # ---- helpers -------------------------------------------------------------------------------
    def attr(self, node, key: str, default: Any = None) -> Any:
        import onnx

        for a in node.attribute:
            if a.name == key:
                v = onnx.helper.get_attribute_value(a)
                return v.decode() if isinstance(v, bytes) else v
        return default

    def nhwc(self, name: str) -> tuple:
        s = self.shapes[name]
        return (s[0], s[2], s[3], s[1]) if len(s) == 4 and not self.tokens else s

    def new(self, name: str, shape) -> int:
        return self.out.tensor(name, shape)

    def const(self, name: str, arr: np.ndarray) -> int:
        return self.out.tensor(name, arr.shape, np.ascontiguousarray(arr))

    def single(self, tensor: str, op: str):
        cs = self.consumers.get(tensor, [])
        if len(cs) == 1 and cs[0].op_type == op and tensor not in self.outputs:
            return cs[0]
        return None

    def fused_act(self, tensor: str):
        """(onnx node, fused code) when `tensor`'s sole consumer is ReLU or Clip(0, 6)."""
        cs = self.consumers.get(tensor, [])
        if len(cs) != 1 or tensor in self.outputs:
            return None, 0
        n = cs[0]
        if n.op_type == "Relu":
            return n, 1
        if n.op_type == "Clip" and self.clip(n) == (0.0, 6.0):
            return n, 3
        return None, 0

    def clip(self, n) -> tuple:
        lo = self.consts.get(n.input[1]) if len(n.input) > 1 and n.input[1] else None
        hi = self.consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        return (float(np.asarray(lo).reshape(-1)[0]) if lo is not None else -np.inf,
                float(np.asarray(hi).reshape(-1)[0]) if hi is not None else np.inf)

    def operand(self, name: str, like: str) -> int:
        """A tensor or a constant operand of an elementwise op, laid out NHWC."""
        if name in self.t:
            return self.t[name]
        v = np.asarray(self.consts[name], np.float32)
        if v.ndim == 4:
            v = v.transpose(0, 2, 3, 1)
        elif v.ndim == 3:  # (C, 1, 1) per-channel -> (1, 1, C)
            v = v.transpose(1, 2, 0)
        return self.const(name, np.ascontiguousarray(v))

    def pad_input(self, x: int, name: str, shape: tuple, p: int, value: float | None = None) -> tuple[int, tuple]:
        n, h, w, c = shape
        pads = self.const(name + ".pads", np.array([[0, 0], [p, p], [p, p], [0, 0]], np.int32))
        ps = (n, h + 2 * p, w + 2 * p, c)
        y = self.new(name + ".padded", ps)
        if value is None:
            self.out.op("PAD", [x, pads], [y])
        else:
            self.out.op("PADV2", [x, pads, self.const(name + ".padval", np.array([value], np.float32))], [y])
        return y, ps

    def padding(self, node, xi: int, shape: tuple, k: int, s: int, p: int, fill: float | None = None):
        """('SAME'|'VALID', input index) reproducing ONNX's symmetric padding `p`."""
        if p == 0:  # codes of the schema's Padding enum: SAME = 0, VALID = 1
            return 1, xi
        oh, t, _ = same_pads(shape[1], k, s)
        ow, l, _ = same_pads(shape[2], k, s)
        want_h, want_w = (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1
        if (oh, ow, t, l) == (want_h, want_w, p, p):
            return 0, xi
        y, _ = self.pad_input(xi, node.name, shape, p, fill)
        return 1, y

    # ---- conversion ----------------------------------------------------------------------------
    def run(self) -> bytes:
        inputs = [i for i in self.g.input if i.name not in self.consts]
        if len(inputs) != 1 or len(self.shapes[inputs[0].name]) not in (3, 4):
            raise UnsupportedOp("the TFLite exporter takes models with one input: an NCHW image or token rows")
        name = inputs[0].name
        self.tokens = len(self.shapes[name]) == 3
        self.t[name] = self.new(name, self.nhwc(name))
        in_idx = self.t[name]
        for node in self.g.node:
            if node.output and (node.output[0] in self.done or node.output[0] in self.consts):
                continue
            fn = getattr(self, "op_" + node.op_type, None)
            if fn is None:
                raise UnsupportedOp(f"TFLite export: op {node.op_type} (node {node.name}) is not supported")
            fn(node)
            self.done.update(node.output)
        outs = [self.t[o.name] for o in self.g.output]
        return self.out.finish([in_idx], outs)

    def alias(self, src: str, dst: str) -> None:
        self.t[dst] = self.t[src]
        self.done.add(dst)

    def op_Identity(self, n) -> None:
        self.alias(n.input[0], n.output[0])

    op_Dropout = op_Identity

    def op_Conv(self, n) -> None:
        w = np.asarray(self.consts[n.input[1]], np.float32)
        b = np.asarray(self.consts[n.input[2]], np.float32) if len(n.input) > 2 and n.input[2] else np.zeros(w.shape[0], np.float32)
        out = n.output[0]
        bn = self.single(out, "BatchNormalization")
        if bn is not None:  # fold BN: y = (conv - mean) * gamma / sqrt(var + eps) + beta
            gamma, beta, mean, var = (np.asarray(self.consts[i], np.float32) for i in bn.input[1:5])
            scale = gamma / np.sqrt(var + float(self.attr(bn, "epsilon", 1e-5)))
            w = w * scale[:, None, None, None]
            b = (b - mean) * scale + beta
            self.done.add(bn.output[0])
            out = bn.output[0]
        act, code = self.fused_act(out)
        if act is not None:
            self.done.add(act.output[0])
            out = act.output[0]
        g = int(self.attr(n, "group", 1))
        k = self.attr(n, "kernel_shape", list(w.shape[2:]))
        s = self.attr(n, "strides", [1, 1])
        p = self.attr(n, "pads", [0, 0, 0, 0])
        if len(set(p)) > 1 or k[0] != k[1] or s[0] != s[1] or self.attr(n, "dilations", [1, 1]) != [1, 1]:
            raise UnsupportedOp(f"TFLite export: conv {n.name} with asymmetric pads/kernels/strides or dilation")
        shape = self.nhwc(n.input[0])
        mode, xi = self.padding(n, self.t[n.input[0]], shape, k[0], s[0], p[0])
        y = self.new(out, self.nhwc(n.output[0]))
        cin, cout = shape[3], w.shape[0]
        if g == 1:
            wi = self.const(n.name + ".w", w.transpose(0, 2, 3, 1))
            self.out.op("CONV_2D", [xi, wi, self.const(n.name + ".b", b)], [y], "Conv2DOptions", padding=mode,
                        strideH=s[0], strideW=s[1], fusedActivationFunction=code, dilationHFactor=1, dilationWFactor=1)
        elif g == cin == cout:
            wi = self.const(n.name + ".w", w.transpose(1, 2, 3, 0))  # (1, kh, kw, C)
            self.out.op("DEPTHWISE_CONV_2D", [xi, wi, self.const(n.name + ".b", b)], [y], "DepthwiseConv2DOptions",
                        padding=mode, strideH=s[0], strideW=s[1], depthMultiplier=1, fusedActivationFunction=code,
                        dilationHFactor=1, dilationWFactor=1)
        else:
            raise UnsupportedOp(f"TFLite export: grouped conv {n.name} (groups={g}) is not a TFLite builtin")
        self.t[out] = y
        self.t[n.output[0]] = y

    def op_ConvTranspose(self, n) -> None:
        w = np.asarray(self.consts[n.input[1]], np.float32)  # (Cin, Cout, kh, kw)
        b = np.asarray(self.consts[n.input[2]], np.float32) if len(n.input) > 2 and n.input[2] else None
        k, s = self.attr(n, "kernel_shape")[0], self.attr(n, "strides", [1, 1])[0]
        p = self.attr(n, "pads", [0, 0, 0, 0])[0]
        if int(self.attr(n, "group", 1)) != 1:
            raise UnsupportedOp(f"TFLite export: grouped ConvTranspose {n.name}")
        nb, h, wd, _ = self.nhwc(n.input[0])
        cout = w.shape[1]
        full = (nb, (h - 1) * s + k, (wd - 1) * s + k, cout)
        ys = self.nhwc(n.output[0])
        shape_t = self.const(n.name + ".oshape", np.array(full, np.int32))
        wi = self.const(n.name + ".w", w.transpose(1, 2, 3, 0))  # (Cout, kh, kw, Cin)
        yv = self.new(n.name + ".valid", full)
        self.out.op("TRANSPOSE_CONV", [shape_t, wi, self.t[n.input[0]]], [yv], "TransposeConvOptions", padding=1,
                    strideH=s, strideW=s)
        y = self.new(n.output[0] + (".nobias" if b is not None and b.any() else ""), ys)
        self.out.op("SLICE", [yv, self.const(n.name + ".begin", np.array([0, p, p, 0], np.int32)),
                              self.const(n.name + ".size", np.array(ys, np.int32))], [y])
        if b is not None and b.any():
            yb = self.new(n.output[0], ys)
            self.out.op("ADD", [y, self.const(n.name + ".b", b)], [yb], "AddOptions")
            y = yb
        self.t[n.output[0]] = y

    def op_BatchNormalization(self, n) -> None:
        gamma, beta, mean, var = (np.asarray(self.consts[i], np.float32) for i in n.input[1:5])
        scale = gamma / np.sqrt(var + float(self.attr(n, "epsilon", 1e-5)))
        shape = self.nhwc(n.output[0])
        m = self.new(n.name + ".scaled", shape)
        self.out.op("MUL", [self.t[n.input[0]], self.const(n.name + ".scale", scale)], [m], "MulOptions")
        y = self.new(n.output[0], shape)
        self.out.op("ADD", [m, self.const(n.name + ".shift", beta - mean * scale)], [y], "AddOptions")
        self.t[n.output[0]] = y

    def _unary(self, n, builtin: str, options: str | None = None, **fields) -> None:
        y = self.new(n.output[0], self.nhwc(n.output[0]))
        self.out.op(builtin, [self.t[n.input[0]]], [y], options, **fields)
        self.t[n.output[0]] = y

    def op_Relu(self, n) -> None:
        self._unary(n, "RELU")

    def op_Clip(self, n) -> None:
        lohi = self.clip(n)
        if lohi == (0.0, 6.0):
            return self._unary(n, "RELU6")
        if lohi[0] == 0.0 and lohi[1] == np.inf:
            return self._unary(n, "RELU")
        raise UnsupportedOp(f"TFLite export: Clip{lohi} (node {n.name})")

    def op_HardSwish(self, n) -> None:
        self._unary(n, "HARD_SWISH")

    def op_Sigmoid(self, n) -> None:
        self._unary(n, "LOGISTIC")

    def op_HardSigmoid(self, n) -> None:
        # relu6(x + 3) / 6 == clip(x / 6 + 1/2, 0, 1) when alpha = 1/6, beta = 1/2 (the torch form)
        if abs(float(self.attr(n, "alpha", 0.2)) - 1 / 6) > 1e-6 or abs(float(self.attr(n, "beta", 0.5)) - 0.5) > 1e-6:
            raise UnsupportedOp(f"TFLite export: HardSigmoid with alpha/beta other than 1/6, 1/2 ({n.name})")
        shape = self.nhwc(n.output[0])
        a = self.new(n.name + ".plus3", shape)
        self.out.op("ADD", [self.t[n.input[0]], self.const(n.name + ".three", np.array([3.0], np.float32))], [a],
                    "AddOptions", fusedActivationFunction=3)
        y = self.new(n.output[0], shape)
        self.out.op("MUL", [a, self.const(n.name + ".sixth", np.array([1 / 6], np.float32))], [y], "MulOptions")
        self.t[n.output[0]] = y

    def op_PRelu(self, n) -> None:
        y = self.new(n.output[0], self.nhwc(n.output[0]))
        self.out.op("PRELU", [self.t[n.input[0]], self.operand(n.input[1], n.input[0])], [y])
        self.t[n.output[0]] = y

    def _binary(self, n, builtin: str, options: str) -> None:
        a, b = n.input[0], n.input[1]
        out = n.output[0]
        act, code = self.fused_act(out)
        if act is not None:
            self.done.add(act.output[0])
            out = act.output[0]
        y = self.new(out, self.nhwc(n.output[0]))
        self.out.op(builtin, [self.operand(a, b), self.operand(b, a)], [y], options, fusedActivationFunction=code)
        self.t[n.output[0]] = self.t[out] = y

    def op_Add(self, n) -> None:
        self._binary(n, "ADD", "AddOptions")

    def op_Mul(self, n) -> None:
        self._binary(n, "MUL", "MulOptions")

    def op_GlobalAveragePool(self, n) -> None:
        y = self.new(n.output[0], self.nhwc(n.output[0]))
        self.out.op("MEAN", [self.t[n.input[0]], self.const(n.name + ".axes", np.array([1, 2], np.int32))], [y],
                    "ReducerOptions", keepDims=True)
        self.t[n.output[0]] = y

    def _pool(self, n, builtin: str) -> None:
        k = self.attr(n, "kernel_shape")
        s = self.attr(n, "strides", [1, 1])
        p = self.attr(n, "pads", [0, 0, 0, 0])
        if len(set(p)) > 1 or k[0] != k[1] or s[0] != s[1] or int(self.attr(n, "ceil_mode", 0)):
            raise UnsupportedOp(f"TFLite export: pool {n.name} with asymmetric pads or ceil_mode")
        if p[0] and builtin == "AVERAGE_POOL_2D":
            raise UnsupportedOp(f"TFLite export: padded average pool {n.name}")
        shape = self.nhwc(n.input[0])
        mode, xi = self.padding(n, self.t[n.input[0]], shape, k[0], s[0], p[0], fill=-3.0e38)
        y = self.new(n.output[0], self.nhwc(n.output[0]))
        self.out.op(builtin, [xi], [y], "Pool2DOptions", padding=mode, strideH=s[0], strideW=s[1],
                    filterHeight=k[0], filterWidth=k[1])
        self.t[n.output[0]] = y

    def op_MaxPool(self, n) -> None:
        self._pool(n, "MAX_POOL_2D")

    def op_AveragePool(self, n) -> None:
        self._pool(n, "AVERAGE_POOL_2D")

    def op_Flatten(self, n) -> None:
        s = self.shapes[n.input[0]]
        if len(s) == 4 and (s[2], s[3]) != (1, 1):
            raise UnsupportedOp(f"TFLite export: Flatten {n.name} of a spatial tensor (layout would differ)")
        out = self.shapes[n.output[0]]
        y = self.new(n.output[0], out)
        self.out.op("RESHAPE", [self.t[n.input[0]], self.const(n.name + ".shape", np.array(out, np.int32))], [y])
        self.t[n.output[0]] = y

    def op_Gemm(self, n) -> None:
        w = np.asarray(self.consts[n.input[1]], np.float32)
        if not int(self.attr(n, "transB", 0)):
            w = w.T
        if int(self.attr(n, "transA", 0)) or float(self.attr(n, "alpha", 1.0)) != 1.0 or float(self.attr(n, "beta", 1.0)) != 1.0:
            raise UnsupportedOp(f"TFLite export: Gemm {n.name} with transA/alpha/beta")
        b = np.asarray(self.consts[n.input[2]], np.float32) if len(n.input) > 2 and n.input[2] else np.zeros(w.shape[0], np.float32)
        out = n.output[0]
        act, code = self.fused_act(out)
        if act is not None:
            self.done.add(act.output[0])
            out = act.output[0]
        y = self.new(out, self.shapes[n.output[0]])
        self.out.op("FULLY_CONNECTED", [self.t[n.input[0]], self.const(n.name + ".w", np.ascontiguousarray(w)),
                                        self.const(n.name + ".b", b)], [y], "FullyConnectedOptions",
                    fusedActivationFunction=code)
        self.t[n.output[0]] = self.t[out] = y

    def op_Concat(self, n) -> None:
        axis = int(self.attr(n, "axis", 1))
        if axis not in (1, -3) or len(self.shapes[n.output[0]]) != 4:
            raise UnsupportedOp(f"TFLite export: Concat {n.name} on axis {axis}")
        y = self.new(n.output[0], self.nhwc(n.output[0]))
        self.out.op("CONCATENATION", [self.t[i] for i in n.input], [y], "ConcatenationOptions", axis=3)
        self.t[n.output[0]] = y

    def op_Split(self, n) -> None:
        axis = int(self.attr(n, "axis", 0))
        sizes = [self.shapes[o][1] for o in n.output]
        if axis not in (1, -3) or len(set(sizes)) != 1:
            raise UnsupportedOp(f"TFLite export: Split {n.name} (axis {axis}, sizes {sizes})")
        ys = [self.new(o, self.nhwc(o)) for o in n.output]
        self.out.op("SPLIT", [self.const(n.name + ".axis", np.array(3, np.int32)), self.t[n.input[0]]], ys,
                    "SplitOptions", numSplits=len(ys))
        for o, y in zip(n.output, ys):
            self.t[o] = y

    def op_Reshape(self, n) -> None:
        """Only the channel-shuffle pattern Reshape(5-D) -> Transpose(0,2,1,3,4) -> Reshape(4-D),
        and any reshape of token rows (no layout change there)."""
        if self.tokens:
            out = self.shapes[n.output[0]]
            y = self.new(n.output[0], out)
            self.out.op("RESHAPE", [self.t[n.input[0]], self.const(n.name + ".shape", np.array(out, np.int32))], [y],
                        "ReshapeOptions", newShape=list(out))
            self.t[n.output[0]] = y
            return
        s5 = self.shapes[n.output[0]]
        tr = self.single(n.output[0], "Transpose")
        back = self.single(tr.output[0], "Reshape") if tr is not None else None
        if (len(s5) != 5 or tr is None or back is None or list(self.attr(tr, "perm")) != [0, 2, 1, 3, 4]
                or self.shapes[back.output[0]] != self.shapes[n.input[0]]):
            raise UnsupportedOp(f"TFLite export: Reshape {n.name} (only flatten and channel shuffle are converted)")
        b, g, cg, h, w = s5
        r1 = self.new(n.output[0], (b, h, w, g, cg))
        self.out.op("RESHAPE", [self.t[n.input[0]], self.const(n.name + ".s5", np.array([b, h, w, g, cg], np.int32))], [r1])
        t = self.new(tr.output[0], (b, h, w, cg, g))
        self.out.op("TRANSPOSE", [r1, self.const(tr.name + ".perm", np.array([0, 1, 2, 4, 3], np.int32))], [t])
        y = self.new(back.output[0], (b, h, w, g * cg))
        self.out.op("RESHAPE", [t, self.const(back.name + ".s4", np.array([b, h, w, g * cg], np.int32))], [y])
        self.t[back.output[0]] = y
        self.done.update([tr.output[0], back.output[0]])

    def op_DepthToSpace(self, n) -> None:
        if self.attr(n, "mode", "DCR") != "DCR":
            raise UnsupportedOp(f"TFLite export: DepthToSpace {n.name} in CRD mode")
        self._unary(n, "DEPTH_TO_SPACE", "DepthToSpaceOptions", blockSize=int(self.attr(n, "blocksize")))

    # ---- transformer encoders (token rows; no layout change) ------------------------------------
    def _token_only(self, n) -> None:
        if not self.tokens:
            raise UnsupportedOp(f"TFLite export: {n.op_type} {n.name} outside a token-row model")

    def _scalar(self, name: str) -> float | None:
        v = self.consts.get(name)
        return None if v is None or np.asarray(v).size != 1 else float(np.asarray(v).reshape(-1)[0])

    def op_MatMul(self, n) -> None:
        self._token_only(n)
        a, b = n.input
        if b in self.consts and np.asarray(self.consts[b]).ndim == 2:
            w = np.ascontiguousarray(np.asarray(self.consts[b], np.float32).T)  # (out, in)
            out, bias = n.output[0], np.zeros(w.shape[0], np.float32)
            add = self.single(out, "Add")  # the bias Add folds into the FC, as the converter does
            other = [i for i in add.input if i != out] if add is not None else []
            if other and other[0] in self.consts and np.asarray(self.consts[other[0]]).shape == (w.shape[0],):
                bias, out = np.asarray(self.consts[other[0]], np.float32), add.output[0]
                self.done.add(out)
            y = self.new(out, self.shapes[out])
            self.out.op("FULLY_CONNECTED", [self.t[a], self.const(n.name + ".w", w), self.const(n.name + ".b", bias)],
                        [y], "FullyConnectedOptions", keepNumDims=True)
            self.t[n.output[0]] = self.t[out] = y
            return
        y = self.new(n.output[0], self.shapes[n.output[0]])
        self.out.op("BATCH_MATMUL", [self.t[a], self.t[b]], [y], "BatchMatMulOptions", adjX=False, adjY=False)
        self.t[n.output[0]] = y

    def op_Transpose(self, n) -> None:
        self._token_only(n)
        perm = [int(v) for v in self.attr(n, "perm")]
        y = self.new(n.output[0], self.shapes[n.output[0]])
        self.out.op("TRANSPOSE", [self.t[n.input[0]], self.const(n.name + ".perm", np.array(perm, np.int32))], [y])
        self.t[n.output[0]] = y

    def op_Softmax(self, n) -> None:
        self._token_only(n)
        if int(self.attr(n, "axis", -1)) not in (-1, len(self.shapes[n.input[0]]) - 1):
            raise UnsupportedOp(f"TFLite export: Softmax {n.name} not over the last axis")
        self._unary(n, "SOFTMAX", "SoftmaxOptions", beta=1.0)

    def _gelu_chain(self, div) -> list | None:
        erf = self.single(div.output[0], "Erf")
        add = self.single(erf.output[0], "Add") if erf is not None else None
        mul = self.single(add.output[0], "Mul") if add is not None else None
        half = self.single(mul.output[0], "Mul") if mul is not None else None
        if half is None or set(mul.input) != {div.input[0], add.output[0]}:
            return None
        return [erf, add, mul, half]

    def op_Div(self, n) -> None:
        self._token_only(n)
        c = self._scalar(n.input[1])
        if c is None:
            raise UnsupportedOp(f"TFLite export: Div {n.name} by a tensor")
        chain = self._gelu_chain(n) if abs(c - 2 ** 0.5) < 1e-3 else None
        if chain:  # x * 0.5 * (1 + erf(x / sqrt 2)): one GELU, as the converter fuses it
            out = chain[-1].output[0]
            y = self.new(out, self.shapes[out])
            self.out.op("GELU", [self.t[n.input[0]]], [y], "GeluOptions", approximate=False)
            self.t[out] = y
            self.done.update(o for node in chain for o in node.output)
            return
        y = self.new(n.output[0], self.shapes[n.output[0]])
        self.out.op("MUL", [self.t[n.input[0]], self.const(n.name + ".inv", np.array([1.0 / c], np.float32))], [y],
                    "MulOptions")
        self.t[n.output[0]] = y

    def op_LayerNormalization(self, n) -> None:
        self._token_only(n)
        shape = self.shapes[n.input[0]]
        if int(self.attr(n, "axis", -1)) not in (-1, len(shape) - 1):
            raise UnsupportedOp(f"TFLite export: LayerNormalization {n.name} not over the last axis")
        x, name, red = self.t[n.input[0]], n.name, tuple(shape[:-1]) + (1,)
        axis = self.const(name + ".axis", np.array([-1], np.int32))
        mean, var, ve, r = (self.new(f"{name}.{k}", red) for k in ("mean", "var", "var_eps", "rstd"))
        sq, xc, xn = (self.new(f"{name}.{k}", shape) for k in ("sqdiff", "centered", "normed"))
        o = self.out
        o.op("MEAN", [x, axis], [mean], "ReducerOptions", keepDims=True)
        o.op("SQUARED_DIFFERENCE", [x, mean], [sq])
        o.op("MEAN", [sq, axis], [var], "ReducerOptions", keepDims=True)
        eps = float(self.attr(n, "epsilon", 1e-5))
        o.op("ADD", [var, self.const(name + ".eps", np.array([eps], np.float32))], [ve], "AddOptions")
        o.op("RSQRT", [ve], [r])
        o.op("SUB", [x, mean], [xc], "SubOptions")
        o.op("MUL", [xc, r], [xn], "MulOptions")
        has_shift = len(n.input) > 2 and bool(n.input[2])
        y = self.new(n.output[0], shape)
        scaled = y if not has_shift else self.new(name + ".scaled", shape)
        scale = np.asarray(self.consts[n.input[1]], np.float32)
        o.op("MUL", [xn, self.const(name + ".scale", scale)], [scaled], "MulOptions")
        if has_shift:
            o.op("ADD", [scaled, self.const(name + ".shift", np.asarray(self.consts[n.input[2]], np.float32))], [y],
                 "AddOptions")
        self.t[n.output[0]] = y
