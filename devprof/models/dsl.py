"""A small layer DSL that writes ONNX graphs (via onnx.helper) with seeded random weights.

Builders describe networks as calls such as ``x = n.conv(x, 64, k=3, s=2, act="relu")``; each call
appends the ONNX nodes a framework exporter would (Conv + BatchNormalization + activation, never
pre-fused) so the graph walk and the runtimes see what real exported models look like. Shapes are
tracked (NCHW) so builders never repeat channel arithmetic, and node names follow the layer path.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


@dataclass(frozen=True)
class T:
    """A tensor handle: its ONNX name and NCHW shape (batch implied)."""

    name: str
    c: int
    h: int
    w: int


class Net:
    """Accumulates nodes and initializers; `model()` returns the ModelProto."""

    def __init__(self, name: str, seed: int = 0) -> None:
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self._count: dict[str, int] = {}
        self._scope: list[str] = []

    def randn(self, shape: tuple, std: float) -> np.ndarray:
        """Seeded float32 normal weights (generated in float32: big models build fast)."""
        w = self.rng.standard_normal(shape, dtype=np.float32)
        w *= np.float32(std)
        return w

    # ---- naming --------------------------------------------------------------------------
    def scope(self, name: str) -> "_Scope":
        return _Scope(self, name)

    def _uniq(self, base: str) -> str:
        path = ".".join(self._scope + [base]) if self._scope else base
        k = self._count.get(path, 0)
        self._count[path] = k + 1
        return path if k == 0 else f"{path}_{k}"

    def _const(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def _node(self, op: str, inputs: list[str], base: str, **attrs) -> str:
        name = self._uniq(base)
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    # ---- graph I/O -----------------------------------------------------------------------
    def input(self, c: int, h: int, w: int, name: str = "input") -> T:
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, c, h, w]))
        return T(name, c, h, w)

    def model(self, outputs: list[T] | T) -> onnx.ModelProto:
        outs = outputs if isinstance(outputs, list) else [outputs]
        vi = []
        for i, t in enumerate(outs):
            final = f"output{i}" if len(outs) > 1 else "output"
            self.nodes.append(helper.make_node("Identity", [t.name], [final], name=f"{final}_identity"))
            shape = [1, t.c] if (t.h, t.w) == (0, 0) else [1, t.c, t.h, t.w]
            vi.append(helper.make_tensor_value_info(final, TensorProto.FLOAT, shape))
        g = helper.make_graph(self.nodes, self.name, self.inputs, vi, self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="devprof")
        m.ir_version = 8
        return m  # tests run onnx.checker on every family; skipping it here keeps big builds fast

    # ---- layers --------------------------------------------------------------------------
    def conv(self, x: T, cout: int, k: int = 3, s: int = 1, groups: int = 1, act: str = "relu",
             bn: bool = True, bias: bool | None = None, p: int | None = None, base: str = "conv",
             gain: float = 1.0) -> T:
        """Conv (+ BatchNormalization) (+ activation), as exported from a framework."""
        p = k // 2 if p is None else p
        bias = (not bn) if bias is None else bias
        fan_in = x.c // groups * k * k
        w = self.randn((cout, x.c // groups, k, k), gain * np.sqrt(2.0 / fan_in))
        name = self._uniq(base)
        ins = [x.name, self._const(name + ".weight", w)]
        if bias:
            ins.append(self._const(name + ".bias", self.rng.normal(0, 0.05, cout).astype(np.float32)))
        self.nodes.append(helper.make_node("Conv", ins, [name], name=name, kernel_shape=[k, k],
                                           strides=[s, s], pads=[p, p, p, p], group=groups))
        ho, wo = (x.h + 2 * p - k) // s + 1, (x.w + 2 * p - k) // s + 1
        y = T(name, cout, ho, wo)
        if bn:
            y = self.bn(y)
        return self.act(y, act)

    def dw(self, x: T, k: int = 3, s: int = 1, act: str = "relu", bn: bool = True) -> T:
        return self.conv(x, x.c, k, s, groups=x.c, act=act, bn=bn, base="dwconv")

    def bn(self, x: T) -> T:
        c, r = x.c, self.rng
        base = self._uniq("bn")
        ins = [x.name] + [self._const(f"{base}.{n}", v.astype(np.float32)) for n, v in (
            ("scale", r.uniform(0.5, 1.0, c)), ("bias", r.normal(0, 0.05, c)),
            ("mean", r.normal(0, 0.05, c)), ("var", r.uniform(0.5, 1.5, c)))]
        self.nodes.append(helper.make_node("BatchNormalization", ins, [base], name=base, epsilon=1e-5))
        return T(base, c, x.h, x.w)

    def act(self, x: T, act: str | None) -> T:
        if act in (None, "none", ""):
            return x
        if act == "relu":
            return T(self._node("Relu", [x.name], "relu"), x.c, x.h, x.w)
        if act == "relu6":
            lo, hi = self._const(self._uniq("c0"), np.array(0, np.float32)), self._const(self._uniq("c6"), np.array(6, np.float32))
            return T(self._node("Clip", [x.name, lo, hi], "relu6"), x.c, x.h, x.w)
        if act == "hswish":
            return T(self._node("HardSwish", [x.name], "hswish"), x.c, x.h, x.w)
        if act == "hsigmoid":
            return T(self._node("HardSigmoid", [x.name], "hsigmoid", alpha=1.0 / 6, beta=0.5), x.c, x.h, x.w)
        if act == "sigmoid":
            return T(self._node("Sigmoid", [x.name], "sigmoid"), x.c, x.h, x.w)
        if act == "swish":  # x * sigmoid(x), as torch exports SiLU at opset 17
            sg = self._node("Sigmoid", [x.name], "sigmoid")
            return T(self._node("Mul", [x.name, sg], "swish"), x.c, x.h, x.w)
        if act == "prelu":
            slope = self._const(self._uniq("prelu.slope"), np.full((x.c, 1, 1), 0.25, np.float32))
            return T(self._node("PRelu", [x.name, slope], "prelu"), x.c, x.h, x.w)
        raise ValueError(f"unknown activation {act!r}")

    def add(self, a: T, b: T) -> T:
        return T(self._node("Add", [a.name, b.name], "add"), a.c, a.h, a.w)

    def mul(self, a: T, b: T) -> T:
        return T(self._node("Mul", [a.name, b.name], "mul"), a.c, a.h, a.w)

    def scale(self, x: T, v: float) -> T:
        c = self._const(self._uniq("scale.value"), np.array(v, np.float32))
        return T(self._node("Mul", [x.name, c], "scale"), x.c, x.h, x.w)

    def maxpool(self, x: T, k: int = 3, s: int = 2, p: int = 1) -> T:
        y = self._node("MaxPool", [x.name], "maxpool", kernel_shape=[k, k], strides=[s, s], pads=[p] * 4)
        return T(y, x.c, (x.h + 2 * p - k) // s + 1, (x.w + 2 * p - k) // s + 1)

    def gap(self, x: T) -> T:
        return T(self._node("GlobalAveragePool", [x.name], "gap"), x.c, 1, 1)

    def flatten(self, x: T) -> T:
        return T(self._node("Flatten", [x.name], "flatten", axis=1), x.c, 0, 0)

    def fc(self, x: T, cout: int) -> T:
        w = self.randn((cout, x.c), np.sqrt(1.0 / x.c))
        name = self._uniq("fc")
        ins = [x.name, self._const(name + ".weight", w),
               self._const(name + ".bias", self.rng.normal(0, 0.05, cout).astype(np.float32))]
        self.nodes.append(helper.make_node("Gemm", ins, [name], name=name, transB=1))
        return T(name, cout, 0, 0)

    def concat(self, xs: list[T]) -> T:
        y = self._node("Concat", [x.name for x in xs], "concat", axis=1)
        return T(y, sum(x.c for x in xs), xs[0].h, xs[0].w)

    def split2(self, x: T) -> tuple[T, T]:
        half = x.c // 2
        sizes = self._const(self._uniq("split.sizes"), np.array([half, x.c - half], np.int64))
        name = self._uniq("split")
        self.nodes.append(helper.make_node("Split", [x.name, sizes], [name + ".0", name + ".1"], name=name, axis=1))
        return T(name + ".0", half, x.h, x.w), T(name + ".1", x.c - half, x.h, x.w)

    def shuffle(self, x: T, groups: int = 2) -> T:
        """Channel shuffle as exporters write it: Reshape(5-D) -> Transpose -> Reshape."""
        s5 = self._const(self._uniq("shuffle.shape5"), np.array([1, groups, x.c // groups, x.h, x.w], np.int64))
        s4 = self._const(self._uniq("shuffle.shape4"), np.array([1, x.c, x.h, x.w], np.int64))
        r = self._node("Reshape", [x.name, s5], "shuffle.reshape")
        t = self._node("Transpose", [r], "shuffle.transpose", perm=[0, 2, 1, 3, 4])
        return T(self._node("Reshape", [t, s4], "shuffle.reshape"), x.c, x.h, x.w)

    def depth_to_space(self, x: T, r: int) -> T:
        y = self._node("DepthToSpace", [x.name], "pixelshuffle", blocksize=r, mode="DCR")
        return T(y, x.c // (r * r), x.h * r, x.w * r)

    def deconv(self, x: T, cout: int, k: int, s: int, p: int, op: int = 0) -> T:
        w = self.randn((x.c, cout, k, k), np.sqrt(1.0 / (x.c * k * k)))
        name = self._uniq("deconv")
        ins = [x.name, self._const(name + ".weight", w), self._const(name + ".bias", np.zeros(cout, np.float32))]
        self.nodes.append(helper.make_node("ConvTranspose", ins, [name], name=name, kernel_shape=[k, k],
                                           strides=[s, s], pads=[p] * 4, output_padding=[op, op]))
        return T(name, cout, (x.h - 1) * s - 2 * p + k + op, (x.w - 1) * s - 2 * p + k + op)

    def se(self, x: T, squeeze: int, inner_act: str = "relu", gate: str = "sigmoid") -> T:
        """Squeeze-and-excitation: GAP -> 1x1 conv -> act -> 1x1 conv -> gate -> Mul."""
        with self.scope("se"):
            g = self.gap(x)
            h = self.conv(g, max(1, squeeze), k=1, act=inner_act, bn=False, bias=True)
            h = self.conv(h, x.c, k=1, act=gate, bn=False, bias=True)
            return self.mul(x, h)


class _Scope:
    def __init__(self, net: Net, name: str) -> None:
        self.net, self.name = net, name

    def __enter__(self) -> None:
        self.net._scope.append(self.name)

    def __exit__(self, *exc) -> None:
        self.net._scope.pop()
