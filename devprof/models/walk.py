"""The graph walk: a whole model (ONNX or .tflite) -> its layers, each a `KernelSpec`.

A layer is what a runtime executes as one kernel: a Conv with the BatchNormalization and the
activation after it (runtimes fold them), a Gemm with its activation, a pool, an elementwise op.
Nodes devprof cannot map are never dropped: they become layers with ``op="other"`` and
``attrs["onnx_op"]`` (or ``tflite_op``) naming them. Layout-only nodes (Reshape, Flatten, Identity,
Squeeze, Dropout...) are folded into the layer that produces their input.

Transformer graphs (token rows: (batch, seq, hidden)) map onto the token ops: a MatMul with a
constant weight is an `fc` over batch x seq rows (its bias Add folded in, as runtimes fuse it), a
MatMul of two activations a `matmul` (a scalar Div/Mul after it folded in), Softmax `softmax`,
LayerNormalization `layernorm`, GELU (the erf formula exporters write, or a Gelu node) `gelu`;
the Reshapes and Transposes that split and merge attention heads fold into the layer before them.

What a convolution absorbs depends on the runtime (`fusion`):

- ``generic`` (default; the architecture's view): BN and any activation (swish, PReLU included);
  an Add absorbs a ReLU/ReLU6 after it.
- ``onnxruntime`` (as ONNX Runtime's CPU optimiser at level ALL fuses on x86): BN, ReLU/ReLU6/
  sigmoid/hard-sigmoid/hard-swish/leaky-ReLU, and a residual Add (plus the activation after it)
  into the convolution that feeds it, as the NCHWc transformer does (``attrs["sum"]=1``); swish
  (x*sigmoid(x), run as one QuickGelu kernel) and PReLU stay separate layers.
- ``litert`` (as TFLite converters fuse): BN and ReLU/ReLU6 only; other activations are layers.

`walk(path_or_model)` is the one entry point; predictors use it for model-level prediction.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from ..errors import UsageError
from ..records import KernelSpec
from .layers import Layer, ModelLayers

#: ONNX ops that only relabel memory: folded into the layer that produced their input.
VIEW_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"}
#: ONNX activations a conv/fc absorbs (runtimes fuse them) and their `KernelSpec.activation`.
ACT_OPS = {"Relu": "relu", "HardSwish": "hswish", "HardSigmoid": "hsigmoid", "Sigmoid": "sigmoid",
           "PRelu": "prelu", "LeakyRelu": "leakyrelu", "Clip": "relu6"}
FUSIONS = ("generic", "onnxruntime", "litert")
#: Activations a conv/fc absorbs under each fusion policy.
CONV_ACTS = {
    "generic": {"relu", "relu6", "hswish", "hsigmoid", "sigmoid", "swish", "prelu", "leakyrelu"},
    "onnxruntime": {"relu", "relu6", "hswish", "hsigmoid", "sigmoid", "leakyrelu"},
    "litert": {"relu", "relu6"},
}


# ---- loading -------------------------------------------------------------------------------------
def load_onnx(src: Any):
    """An onnx.ModelProto from a path, bytes or a ModelProto; a one-line error when unreadable."""
    import onnx

    if isinstance(src, onnx.ModelProto):
        return src
    try:
        if isinstance(src, (bytes, bytearray)):
            m = onnx.load_from_string(bytes(src))
        else:
            p = Path(src)
            if not p.is_file():
                raise UsageError(f"model file {p} not found")
            m = onnx.load(str(p))
        if not m.graph.node:
            raise ValueError("the graph has no nodes")
        onnx.checker.check_model(m)
        from ..artifacts.onnx_ops import qdq_scale_problem  # a QDQ model's scales (int8)

        bad = qdq_scale_problem(m)
        if bad:
            raise UsageError(f"{src if isinstance(src, (str, os.PathLike)) else 'model'}: {bad}")
    except UsageError:
        raise
    except Exception as e:  # protobuf DecodeError, checker errors...
        where = src if isinstance(src, (str, os.PathLike)) else "model"
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"{where} is not a valid ONNX model ({msg[:200]})") from None
    return m


def walk(src: Any, fusion: str = "generic", name: str | None = None) -> ModelLayers:
    """Walk an ONNX model (path, bytes, ModelProto) or a .tflite file into its layers."""
    if fusion not in FUSIONS:
        raise UsageError(f"unknown fusion {fusion!r} (known: {', '.join(FUSIONS)})")
    if isinstance(src, (str, os.PathLike)) and str(src).endswith(".tflite"):
        from .tflite_walk import walk_tflite

        return walk_tflite(Path(src), name=name)
    if isinstance(src, (bytes, bytearray)) and bytes(src[4:8]) == b"TFL3":
        from .tflite_walk import walk_tflite

        return walk_tflite(bytes(src), name=name)
    m = load_onnx(src)
    from .quantize import is_quantized

    if is_quantized(m):  # QDQ int8: the layers of its float twin, in int8
        return _walk_quantized(m, fusion, name)
    return _OnnxWalker(m, fusion, name).run()


def _walk_quantized(model, fusion: str, name: str | None) -> ModelLayers:
    """A QDQ model's layers: the walk of its float view (devprof.models.quantize.float_view), each
    layer whose nodes compute on quantized activations in ``dtype="int8"``; the ReLU/ReLU6 that
    quantization folded into an output range is given back from the model's own metadata."""
    import json

    from .quantize import ACTIVATIONS_KEY, float_view

    fv, int8 = float_view(model)
    acts = json.loads(_meta(model, ACTIVATIONS_KEY) or "{}")
    ml = _OnnxWalker(fv, fusion, name or _meta(model, "devprof.family")).run()
    for layer in ml.layers:
        spec = layer.spec
        if spec.activation == "none" and acts.get(layer.name) in CONV_ACTS[fusion]:
            spec = spec.replace(activation=acts[layer.name])
        if int8.intersection(layer.nodes) and spec.op not in ("other", "model"):
            spec = spec.replace(dtype="int8")
        layer.spec = spec
    return ml


# ---- ONNX ----------------------------------------------------------------------------------------
class _OnnxWalker:
    def __init__(self, model, fusion: str, name: str | None) -> None:
        import onnx
        from onnx import numpy_helper, shape_inference

        self.fusion = fusion
        try:
            model = shape_inference.infer_shapes(model, strict_mode=False)
        except Exception as e:
            raise UsageError(f"cannot infer the model's shapes: {str(e).splitlines()[0][:200]}") from None
        g = model.graph
        self.name = name or _meta(model, "devprof.family") or g.name or "model"
        self.graph = g
        self.nodes = list(g.node)
        self.consts = {t.name: t for t in g.initializer}
        self._np = numpy_helper
        self.shapes: dict[str, tuple] = {}
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            dims = tuple(d.dim_value if d.dim_value > 0 else 1 for d in vi.type.tensor_type.shape.dim)
            self.shapes[vi.name] = dims
        for t in g.initializer:
            self.shapes[t.name] = tuple(t.dims)
        for n in self.nodes:  # Constant nodes are constants too, and so are Identity copies of constants
            if n.op_type == "Constant" and n.attribute:
                self.consts[n.output[0]] = onnx.helper.get_attribute_value(n.attribute[0])
            elif n.op_type == "Identity" and n.input and n.input[0] in self.consts:
                self.consts[n.output[0]] = self.consts[n.input[0]]
                self.shapes.setdefault(n.output[0], self.shapes.get(n.input[0], ()))
        self.consumers: dict[str, list] = {}
        for n in self.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.graph_outputs = {o.name for o in g.output}
        self.claimed: set[int] = set()
        self.ids = {id(n): k for k, n in enumerate(self.nodes)}
        real_inputs = [i for i in g.input if i.name not in self.consts]
        self.input_shape = self.shapes.get(real_inputs[0].name, ()) if real_inputs else ()

    # helpers
    def const(self, name: str):
        t = self.consts.get(name)
        return None if t is None else self._np.to_array(t)

    def attr(self, node, key: str, default: Any = None) -> Any:
        import onnx

        for a in node.attribute:
            if a.name == key:
                v = onnx.helper.get_attribute_value(a)
                return v.decode() if isinstance(v, bytes) else v
        return default

    def only_consumer(self, tensor: str):
        cs = self.consumers.get(tensor, [])
        if len(cs) != 1 or tensor in self.graph_outputs or self.ids[id(cs[0])] in self.claimed:
            return None
        return cs[0]

    def nhwc(self, tensor: str) -> tuple[int, int, int, int]:
        s = self.shapes.get(tensor, ())
        if len(s) == 4:
            return s[0], s[2], s[3], s[1]
        if len(s) == 2:
            return s[0], 1, 1, s[1]
        if len(s) == 3:
            return s[0], 1, s[2], s[1]
        n = 1
        for d in s:
            n *= d
        return 1, 1, 1, max(1, n)

    def claim(self, layer: dict, node) -> None:
        self.claimed.add(self.ids[id(node)])
        layer["nodes"].append(node.name or f"{node.op_type}_{self.ids[id(node)]}")
        layer["ops"].append(node.op_type)
        layer["output"] = node.output[0] if node.output else layer["output"]

    def activation_of(self, node) -> str | None:
        kind = ACT_OPS.get(node.op_type)
        if node.op_type == "Clip":
            lo = self.const(node.input[1]) if len(node.input) > 1 and node.input[1] else self.attr(node, "min")
            hi = self.const(node.input[2]) if len(node.input) > 2 and node.input[2] else self.attr(node, "max")
            try:
                import numpy as np

                lo = float(np.asarray(lo if lo is not None else -np.inf).reshape(-1)[0])
                hi = float(np.asarray(hi if hi is not None else np.inf).reshape(-1)[0])
            except (TypeError, ValueError, IndexError):
                return None
            return "relu6" if (lo, hi) == (0.0, 6.0) else ("relu" if lo == 0.0 and hi > 1e30 else None)
        if node.op_type == "HardSigmoid" and abs(float(self.attr(node, "alpha", 0.2)) - 1 / 6) > 1e-6:
            return None
        return kind

    def swish_after(self, tensor: str):
        """(sigmoid, mul) when `tensor` feeds exactly x * sigmoid(x)."""
        cs = self.consumers.get(tensor, [])
        if len(cs) != 2 or tensor in self.graph_outputs:
            return None
        sig = next((c for c in cs if c.op_type == "Sigmoid"), None)
        mul = next((c for c in cs if c.op_type == "Mul"), None)
        if sig is None or mul is None or set(mul.input) != {tensor, sig.output[0]}:
            return None
        if len(self.consumers.get(sig.output[0], [])) != 1:
            return None
        return sig, mul

    def absorb_tail(self, layer: dict, allow_bn: bool, allow_sum: bool) -> None:
        """Fold BN, one activation, views and (onnxruntime fusion) a residual Add after a layer."""
        act_done = False
        summed = False
        while True:
            out = layer["output"]
            acts = CONV_ACTS[self.fusion] if layer["fuse_acts"] else {"relu", "relu6"}
            sw = None if act_done or "swish" not in acts else self.swish_after(out)
            if sw:
                for n in sw:
                    self.claim(layer, n)
                layer["activation"], act_done = "swish", True
                continue
            nxt = self.only_consumer(out)
            if nxt is None:
                return
            if nxt.op_type == "BatchNormalization" and allow_bn and not act_done and not summed:
                self.claim(layer, nxt)
                layer["bias"] = True  # the folded BN's shift is the conv's bias
                continue
            if not act_done and self.activation_of(nxt) in acts:
                layer["activation"], act_done = self.activation_of(nxt), True
                self.claim(layer, nxt)
                continue
            if (allow_sum and not summed and not act_done and nxt.op_type == "Add"
                    and self.shapes.get(nxt.input[0]) == self.shapes.get(nxt.input[1])
                    and all(i not in self.consts for i in nxt.input)):
                self.claim(layer, nxt)
                layer["attrs"]["sum"] = 1
                summed = True
                continue
            if nxt.op_type in VIEW_OPS:
                self.claim(layer, nxt)
                continue
            return

    def run(self) -> ModelLayers:
        layers: list[Layer] = []
        for k, node in enumerate(self.nodes):
            is_const = node.op_type == "Constant" or (node.op_type == "Identity" and node.output
                                                       and node.output[0] in self.consts)
            if k in self.claimed or is_const:
                if is_const:
                    self.claimed.add(k)
                continue
            layer = {"nodes": [], "ops": [], "output": "", "activation": "none", "attrs": {}, "fuse_acts": True}
            sw = self.swish_after(node.input[0]) if node.op_type == "Sigmoid" else None
            if sw and sw[0] is node:  # a swish the producer did not absorb: one activation layer
                for part in sw:
                    self.claim(layer, part)
                self.absorb_views(layer)
                n_, h_, w_, c_ = self.nhwc(node.input[0])
                spec = KernelSpec(op="activation", n=n_, h=h_, w=w_, cin=c_, cout=c_, bias=False,
                                  attrs={"kind": "swish"})
                layers.append(Layer(len(layers), layer["nodes"][0], spec, layer["nodes"], layer["ops"], layer["output"]))
                continue
            gelu = self.gelu_from(node) if node.op_type == "Div" else None
            if gelu:  # GELU as exporters write it: x * 0.5 * (1 + erf(x / sqrt(2)))
                for part in gelu:
                    self.claim(layer, part)
                self.absorb_token_tail(layer, "gelu")
                spec = KernelSpec(op="gelu", bias=False, **self.token_fields(node.input[0]))
                layers.append(Layer(len(layers), layer["nodes"][0], spec, layer["nodes"], layer["ops"], layer["output"]))
                continue
            spec_fn = self.spec_for(node, layer)
            self.claim(layer, node)
            if spec_fn is not None and spec_fn[2] == "token":
                op, fields, _ = spec_fn
                layer["cout"] = fields["cout"]
                self.absorb_token_tail(layer, op)
                if layer.get("bias"):
                    fields["bias"] = True
                try:
                    spec = KernelSpec(op=op, **fields)
                except ValueError as e:
                    spec = KernelSpec(op="other", attrs={"onnx_op": node.op_type, "why": str(e)[:80]})
                layers.append(Layer(len(layers), layer["nodes"][0], spec, layer["nodes"], layer["ops"], layer["output"]))
                continue
            if spec_fn is None:  # an op devprof does not model
                op, fields = "other", self.other_fields(node)
                self.absorb_views(layer)
            else:
                op, fields, fuse = spec_fn
                if op in ("add", "mul") and self.fusion != "onnxruntime":  # TFLite-style fused ReLU
                    layer["fuse_acts"] = False
                    self.absorb_tail(layer, allow_bn=False, allow_sum=False)
                elif fuse:
                    self.absorb_tail(layer, allow_bn=op in ("conv2d", "dwconv2d", "pwconv", "other"),
                                     allow_sum=self.fusion == "onnxruntime" and op in ("conv2d", "dwconv2d", "pwconv"))
                else:
                    self.absorb_views(layer)
            attrs = {**fields.pop("attrs", {}), **layer["attrs"]}
            if layer.get("bias"):
                fields["bias"] = True
            try:
                spec = KernelSpec(op=op, activation=layer["activation"], attrs=attrs, **fields)
            except ValueError as e:
                spec = KernelSpec(op="other", attrs={"onnx_op": node.op_type, "why": str(e)[:80]})
            layers.append(Layer(len(layers), layer["nodes"][0], spec, layer["nodes"], layer["ops"], layer["output"]))
        return ModelLayers(self.name, layers, "onnx", self.fusion, tuple(self.input_shape))

    def token_fields(self, tensor: str) -> dict:
        """(batch, seq, hidden) of a tensor of token rows: n = every leading axis, h = seq."""
        s = self.shapes.get(tensor, ())
        if len(s) < 2:
            return {"n": 1, "h": 1, "w": 1, "cin": max(1, _numel(s)), "cout": max(1, _numel(s))}
        return {"n": _numel(s[:-2]), "h": s[-2], "w": 1, "cin": s[-1], "cout": s[-1]}

    def scalar_const(self, name: str) -> float | None:
        v = self.const(name)
        if v is None or v.size != 1:
            return None
        return float(v.reshape(-1)[0])

    def gelu_from(self, div) -> list | None:
        """[Div, Erf, Add, Mul, Mul] when `div` starts x * 0.5 * (1 + erf(x / sqrt(2)))."""
        x = div.input[0]
        if abs((self.scalar_const(div.input[1]) or 0.0) - 2 ** 0.5) > 1e-3:
            return None
        erf = self.only_consumer(div.output[0])
        add = erf and erf.op_type == "Erf" and self.only_consumer(erf.output[0])
        if not add or add.op_type != "Add" or self.scalar_const(
                next((i for i in add.input if i != erf.output[0]), "")) != 1.0:
            return None
        mul = self.only_consumer(add.output[0])
        if mul is None or mul.op_type != "Mul" or set(mul.input) != {x, add.output[0]}:
            return None
        half = self.only_consumer(mul.output[0])
        if half is None or half.op_type != "Mul" or self.scalar_const(
                next((i for i in half.input if i != mul.output[0]), "")) != 0.5:
            return None
        return [div, erf, add, mul, half]

    def absorb_token_tail(self, layer: dict, op: str) -> None:
        """Fold an fc's bias Add, a matmul's scalar scale and the head reshapes/transposes."""
        while True:
            out = layer["output"]
            nxt = self.only_consumer(out)
            if nxt is None:
                return
            others = [i for i in nxt.input if i != out]
            const = len(others) == 1 and others[0] in self.consts
            if (op == "fc" and nxt.op_type == "Add" and not layer.get("bias") and const
                    and _numel(self.shapes.get(others[0], ())) == layer.get("cout")):
                layer["bias"] = True
            elif (op == "matmul" and nxt.op_type in ("Div", "Mul") and not layer.get("scaled") and const
                  and self.scalar_const(others[0]) is not None):
                layer["scaled"] = True
            elif nxt.op_type not in VIEW_OPS and nxt.op_type != "Transpose":
                return
            self.claim(layer, nxt)

    def absorb_views(self, layer: dict) -> None:
        while True:
            nxt = self.only_consumer(layer["output"])
            if nxt is None or nxt.op_type not in VIEW_OPS:
                return
            self.claim(layer, nxt)

    def other_fields(self, node) -> dict:
        n, h, w, c = self.nhwc(node.input[0]) if node.input else (1, 1, 1, 1)
        out = self.nhwc(node.output[0]) if node.output else (1, 1, 1, c)
        attrs: dict[str, Any] = {"onnx_op": node.op_type}
        if node.op_type == "Transpose":
            attrs["perm"] = ",".join(map(str, self.attr(node, "perm", [])))
        if node.op_type == "Split":
            attrs["outputs"] = len(node.output)
        return {"n": n, "h": h, "w": w, "cin": c, "cout": out[3], "attrs": attrs}

    def spec_for(self, node, layer: dict):
        """(op, KernelSpec fields, fuse tail?) for a node that starts a layer, or None."""
        t = node.op_type
        if t in ("Conv", "ConvTranspose"):
            wshape = self.shapes.get(node.input[1], ())
            if len(wshape) != 4:
                return None
            n, h, w, cin = self.nhwc(node.input[0])
            k = self.attr(node, "kernel_shape", list(wshape[2:]))
            s = self.attr(node, "strides", [1, 1])
            p = self.attr(node, "pads", [0, 0, 0, 0])
            d = self.attr(node, "dilations", [1, 1])
            g = int(self.attr(node, "group", 1))
            auto = self.attr(node, "auto_pad", "NOTSET")
            if not (len(k) == len(s) == len(d) == 2 and len(p) == 4):  # 2-D convs only (a damaged file may say else)
                return None
            if auto in ("SAME_UPPER", "SAME_LOWER") and t == "Conv":  # TF-style: symmetric when even
                p = [_same_total(h, k[0], s[0], d[0]), _same_total(w, k[1], s[1], d[1])]
                p = [p[0] // 2, p[1] // 2] * 2 if p[0] % 2 == 0 and p[1] % 2 == 0 else [0, 1]
            elif auto not in ("NOTSET", "VALID"):
                return None
            if len(set(p)) > 1 or k[0] != k[1] or s[0] != s[1] or d[0] != d[1]:
                return None
            cout = wshape[0] if t == "Conv" else wshape[1] * g
            f = {"n": n, "h": h, "w": w, "cin": cin, "cout": cout, "kh": k[0], "kw": k[1], "stride": s[0],
                 "padding": p[0], "groups": g, "dilation": d[0], "bias": len(node.input) > 2 and bool(node.input[2])}
            if t == "ConvTranspose":
                f["attrs"] = {"onnx_op": "ConvTranspose", "output_padding": int(self.attr(node, "output_padding", [0])[0])}
                f["padding"] = 0  # `other`: the transposed conv's pads are in the attrs
                f["attrs"]["pads"] = p[0]
                f["groups"], f["stride"] = 1, s[0]
                return "other", {**f, "kh": k[0], "kw": k[1]}, True
            if g == cin == cout and g > 1:
                op = "dwconv2d"
            elif (k[0], k[1], g) == (1, 1, 1):
                op = "pwconv"
            else:
                op = "conv2d"
            if op == "pwconv" and p[0]:
                op = "conv2d"
            return op, f, True
        if t == "MatMul" and len(self.shapes.get(node.input[0], ())) >= 3 or (
                t == "MatMul" and node.input[1] not in self.consts):
            a, b = self.shapes.get(node.input[0], ()), self.shapes.get(node.input[1], ())
            if len(a) < 2 or len(b) < 2:
                return None
            if node.input[1] in self.consts and len(b) == 2:  # a linear layer over token rows
                return "fc", {"n": _numel(a[:-1]), "cin": b[0], "cout": b[1], "bias": False}, "token"
            return "matmul", {"n": _numel(a[:-2]), "h": a[-2], "w": 1, "cin": a[-1], "cout": b[-1],
                              "bias": False}, "token"
        if t == "Softmax" and int(self.attr(node, "axis", -1)) in (-1, len(self.shapes.get(node.input[0], ())) - 1):
            return "softmax", {**self.token_fields(node.input[0]), "bias": False}, "token"
        if t == "LayerNormalization" and int(self.attr(node, "axis", -1)) in (-1, len(self.shapes.get(node.input[0], ())) - 1):
            eps = float(f"{float(self.attr(node, 'epsilon', 1e-5)):.6g}")  # float32 attr -> its short form
            return "layernorm", {**self.token_fields(node.input[0]), "bias": len(node.input) > 2 and bool(node.input[2]),
                                 "attrs": {} if abs(eps - 1e-5) < 1e-12 else {"eps": eps}}, "token"
        if t in ("Gelu", "FastGelu"):
            approx = "tanh" if t == "FastGelu" or self.attr(node, "approximate", "none") == "tanh" else "none"
            return "gelu", {**self.token_fields(node.input[0]), "bias": False,
                            "attrs": {} if approx == "none" else {"approximate": "tanh"}}, "token"
        if t in ("Gemm", "MatMul"):
            wshape = self.shapes.get(node.input[1], ())
            if len(wshape) != 2 or len(self.shapes.get(node.input[0], ())) != 2:
                return None
            trans_b = int(self.attr(node, "transB", 0)) if t == "Gemm" else 0
            cout, cin = (wshape[0], wshape[1]) if trans_b else (wshape[1], wshape[0])
            rows = self.shapes[node.input[0]][0]
            bias = t == "Gemm" and len(node.input) > 2 and bool(node.input[2])
            return "fc", {"n": rows, "cin": cin, "cout": cout, "bias": bias}, True
        if t in ("MaxPool", "AveragePool"):
            n, h, w, c = self.nhwc(node.input[0])
            k = self.attr(node, "kernel_shape", [1, 1])
            s = self.attr(node, "strides", [1, 1])
            p = self.attr(node, "pads", [0, 0, 0, 0])
            if len(set(p)) > 1 or k[0] != k[1] or s[0] != s[1] or int(self.attr(node, "ceil_mode", 0)):
                return None
            op = "maxpool" if t == "MaxPool" else "avgpool"
            return op, {"n": n, "h": h, "w": w, "cin": c, "cout": c, "kh": k[0], "kw": k[1], "stride": s[0],
                        "padding": p[0], "bias": False}, False
        if t == "GlobalAveragePool" or (t == "ReduceMean" and self._reduces_hw(node)):
            n, h, w, c = self.nhwc(node.input[0])
            return "global_avgpool", {"n": n, "h": h, "w": w, "cin": c, "cout": c, "bias": False}, False
        if t in ("Add", "Mul"):
            a, b = (list(node.input) + ["", ""])[:2]
            sa, sb = self.shapes.get(a, ()), self.shapes.get(b, ())
            big = a if len(sa) >= len(sb) and _numel(sa) >= _numel(sb) else b
            small = b if big == a else a
            n, h, w, c = self.nhwc(big)
            if len(self.shapes.get(big, ())) == 3:  # token rows (batch, seq, hidden)
                f = self.token_fields(big)
                n, h, w, c = f["n"], f["h"], 1, f["cin"]
            attrs: dict[str, Any] = {}
            ss = self.shapes.get(small, ())
            if small in self.consts and _numel(ss) <= 1:
                attrs["operand"] = "scalar"
            elif small in self.consts:
                attrs["operand"] = "const"
            elif _numel(ss) != _numel(self.shapes.get(big, ())):
                attrs["operand"] = "broadcast"
            return t.lower(), {"n": n, "h": h, "w": w, "cin": c, "cout": c, "bias": False, "attrs": attrs}, False
        if t == "Concat":
            outs = self.shapes.get(node.output[0], ())
            axis = int(self.attr(node, "axis", 1))
            if len(outs) != 4 or axis not in (1, -3):
                return None
            chans = [self.shapes.get(i, (0, 0))[1] for i in node.input]
            n, h, w, _ = self.nhwc(node.output[0])
            return "concat", {"n": n, "h": h, "w": w, "cin": chans[0], "cout": sum(chans), "bias": False,
                              "attrs": {"channels": ",".join(map(str, chans))}}, False
        if t == "DepthToSpace":
            n, h, w, c = self.nhwc(node.input[0])
            r = int(self.attr(node, "blocksize", 1))
            return "depth_to_space", {"n": n, "h": h, "w": w, "cin": c, "cout": c // (r * r), "bias": False,
                                      "attrs": {"block": r, "mode": self.attr(node, "mode", "DCR")}}, False
        if t == "Resize":
            n, h, w, c = self.nhwc(node.input[0])
            _, ho, wo, _ = self.nhwc(node.output[0])
            return "resize", {"n": n, "h": h, "w": w, "cin": c, "cout": c, "bias": False,
                              "attrs": {"mode": self.attr(node, "mode", "nearest"), "out": f"{ho}x{wo}"}}, False
        if self.activation_of(node):
            n, h, w, c = self.nhwc(node.input[0])
            return "activation", {"n": n, "h": h, "w": w, "cin": c, "cout": c, "bias": False,
                                  "attrs": {"kind": self.activation_of(node)}}, False
        if t in ("Tanh",):
            n, h, w, c = self.nhwc(node.input[0])
            return "activation", {"n": n, "h": h, "w": w, "cin": c, "cout": c, "bias": False,
                                  "attrs": {"kind": "tanh"}}, False
        return None

    def _reduces_hw(self, node) -> bool:
        axes = self.attr(node, "axes")
        if axes is None and len(node.input) > 1:
            v = self.const(node.input[1])
            axes = None if v is None else list(v)
        return axes is not None and sorted(int(a) % 4 for a in axes) == [2, 3]


def _same_total(size: int, k: int, s: int, d: int) -> int:
    """Total padding of TF/ONNX SAME_* padding along one axis."""
    out = -(-size // s)
    return max((out - 1) * s + d * (k - 1) + 1 - size, 0)


def _numel(shape: Iterable[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _meta(model, key: str) -> str:
    for p in model.metadata_props:
        if p.key == key:
            return p.value
    return ""


def walk_for_predictor(path: Path, runtime: str) -> tuple[list[KernelSpec], list[str]]:
    """A model file's layer specs for `predictors.Predictor.predict_model`, with the fusion the
    bundle's runtime applies, and the names of the layers the walk could not read."""
    fusion = "litert" if runtime.startswith("litert") else runtime
    ml = walk(Path(path), fusion=fusion if fusion in FUSIONS else "generic")
    return ml.specs, [f"{l.name} ({','.join(l.ops)})" for l in ml.unknown]


def _register() -> None:
    from predictors.predictor import register_model_walker

    register_model_walker(walk_for_predictor)


_register()
