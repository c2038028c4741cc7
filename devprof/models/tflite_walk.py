"""The graph walk for .tflite files: operators -> layers (`KernelSpec`s), as `walk` does for ONNX.

TFLite graphs are already fused the way the interpreter runs them (BN folded, ReLU/ReLU6 as fused
activations), so one operator is one layer; an explicit PAD before a conv or pool is folded into
it (its padding), RESHAPE/SQUEEZE into the layer before. Unknown operators become ``op="other"``
layers with ``attrs["tflite_op"]``.

Transformer graphs (token rows, (batch, seq, hidden)): BATCH_MATMUL is `matmul`, SOFTMAX `softmax`,
GELU `gelu`, the layer-norm arithmetic devprof's exporter writes (MEAN, SQUARED_DIFFERENCE, MEAN,
ADD, RSQRT, SUB, MUL, MUL[, ADD]) one `layernorm`; a TRANSPOSE after a token layer folds into it
as a view does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from ..records import KernelSpec
from .layers import Layer, ModelLayers

_ACT = {0: "none", 1: "relu", 3: "relu6"}
_VIEWS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}
_LAYERNORM = ["MEAN", "SQUARED_DIFFERENCE", "MEAN", "ADD", "RSQRT", "SUB", "MUL", "MUL"]
_TOKEN_OPS = ("matmul", "softmax", "layernorm", "gelu")
_STANDALONE_ACT = {"RELU": "relu", "RELU6": "relu6", "HARD_SWISH": "hswish", "LOGISTIC": "sigmoid",
                   "PRELU": "prelu", "LEAKY_RELU": "leakyrelu", "TANH": "tanh"}


def load_tflite(src: Any):
    """(ModelT, schema module) from a path or bytes; a one-line error when it is not a TFLite model."""
    from ai_edge_litert import schema_py_generated as s

    try:
        data = Path(src).read_bytes() if not isinstance(src, (bytes, bytearray)) else bytes(src)
    except OSError as e:
        raise UsageError(f"cannot read model {src}: {e.strerror or e}") from None
    where = src if not isinstance(src, (bytes, bytearray)) else "model"
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise UsageError(f"{where} is not a TFLite model (no TFL3 identifier)")
    try:
        m = s.ModelT.InitFromPackedBuf(data, 0)
        if not m.subgraphs or not m.operatorCodes:
            raise ValueError("no subgraph or operator codes")
        sg = m.subgraphs[0]
        for op in sg.operators or []:
            for i in list(op.inputs) + list(op.outputs):
                if i >= len(sg.tensors):
                    raise ValueError("operator refers to a missing tensor")
            if op.opcodeIndex >= len(m.operatorCodes):
                raise ValueError("operator refers to a missing operator code")
    except UsageError:
        raise
    except Exception as e:  # flatbuffers raise assorted errors on truncated or corrupt data
        raise UsageError(f"{where} is a truncated or corrupt TFLite model ({type(e).__name__}: "
                         f"{(str(e).splitlines() or [''])[0][:120]})") from None
    return m, s


def walk_tflite(src: Any, name: str | None = None) -> ModelLayers:
    m, s = load_tflite(src)
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    sg = m.subgraphs[0]
    T = sg.tensors

    def shape(i: int) -> tuple:
        return tuple(int(d) for d in (T[i].shape if T[i].shape is not None else []))

    def tname(i: int) -> str:
        n = T[i].name
        return n.decode(errors="replace") if isinstance(n, bytes) else str(n)

    def opname(op) -> str:
        c = m.operatorCodes[op.opcodeIndex]
        code = max(int(c.builtinCode), int(c.deprecatedBuiltinCode))
        return names.get(code, f"BUILTIN_{code}")

    def nhwc(i: int) -> tuple:
        sh = shape(i)
        if len(sh) == 4:
            return sh
        if len(sh) == 2:
            return sh[0], 1, 1, sh[1]
        return 1, 1, 1, int(np.prod(sh)) if sh else 1

    def tokens(i: int) -> dict:
        sh = shape(i)
        if len(sh) < 2:
            return {"n": 1, "h": 1, "w": 1, "cin": int(np.prod(sh)) if sh else 1}
        return {"n": int(np.prod(sh[:-2])), "h": sh[-2], "w": 1, "cin": sh[-1]}

    ops = list(sg.operators or [])
    consumers: dict[int, list[int]] = {}
    for k, op in enumerate(ops):
        for i in op.inputs:
            consumers.setdefault(int(i), []).append(k)
    layers: list[Layer] = []
    claimed: set[int] = set()
    pad_of: dict[int, tuple[int, str]] = {}  # op index -> (pad pixels, PAD op's output name)
    for k, op in enumerate(ops):
        if k in claimed:
            continue
        kind = opname(op)
        opts = op.builtinOptions
        x = int(op.inputs[0]) if len(op.inputs) else -1
        out = int(op.outputs[0]) if len(op.outputs) else -1
        nodes = [tname(out) if out >= 0 else f"{kind}_{k}"]
        opsl = [kind]
        if kind in ("PAD", "PADV2"):
            cs = consumers.get(out, [])
            nxt = ops[cs[0]] if len(cs) == 1 else None
            pads = m.buffers[T[int(op.inputs[1])].buffer].data if len(op.inputs) > 1 else None
            if nxt is not None and opname(nxt) in ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D") \
                    and pads is not None and len(pads):
                p = np.frombuffer(bytes(pads), np.int32).reshape(-1, 2)
                if p.shape[0] == 4 and len(set(p[1:3].reshape(-1).tolist())) == 1:
                    pad_of[cs[0]] = (int(p[1, 0]), nodes[0], x)
                    claimed.add(k)
                    continue
        fields: dict[str, Any]
        act = _ACT.get(int(getattr(opts, "fusedActivationFunction", 0) or 0), "none")
        if kind == "MEAN" and len(shape(x)) == 3 and [opname(o) for o in ops[k:k + len(_LAYERNORM)]] == _LAYERNORM:
            span = list(range(k + 1, k + len(_LAYERNORM)))
            last = ops[span[-1]]
            nxt = k + len(_LAYERNORM)
            shift = nxt < len(ops) and opname(ops[nxt]) == "ADD" and int(last.outputs[0]) in list(ops[nxt].inputs)
            if shift:
                span.append(nxt)
            claimed.update(span)
            out = int(ops[span[-1]].outputs[0])
            nodes = [tname(out)]
            opsl = [opname(ops[j]) for j in [k, *span]]
            t = tokens(x)
            eps = 1e-5
            for i in ops[k + 3].inputs:  # ADD(variance, eps)
                buf = m.buffers[T[int(i)].buffer].data if T[int(i)].buffer else None
                if buf is not None and len(buf) == 4:
                    eps = float(f"{float(np.frombuffer(bytes(buf), np.float32)[0]):.6g}")
            attrs = {} if abs(eps - 1e-5) < 1e-12 else {"eps": eps}
            layers.append(Layer(len(layers), nodes[0], KernelSpec(op="layernorm", cout=t["cin"], bias=shift, attrs=attrs,
                                                                  **t), nodes, opsl, tname(out)))
            claimed.add(k)
            continue
        try:
            if kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D"):
                pre = pad_of.get(k)
                if pre:
                    x = pre[2]
                    nodes.insert(0, pre[1])
                    opsl.insert(0, "PAD")
                n, h, w, c = nhwc(x)
                if kind.endswith("POOL_2D"):
                    kh, kw, cout = opts.filterHeight, opts.filterWidth, c
                else:
                    ws = shape(int(op.inputs[1]))
                    kh, kw = ws[1], ws[2]
                    cout = ws[0] if kind == "CONV_2D" else ws[3]
                st = int(opts.strideH)
                if pre:
                    p = pre[0]
                elif int(opts.padding) == 0:  # SAME: the symmetric pad with the same output
                    p = (kh - 1) // 2
                else:
                    p = 0
                groups = c if kind == "DEPTHWISE_CONV_2D" else 1
                op_ = {"CONV_2D": "pwconv" if (kh, kw, p) == (1, 1, 0) else "conv2d", "DEPTHWISE_CONV_2D": "dwconv2d",
                       "MAX_POOL_2D": "maxpool", "AVERAGE_POOL_2D": "avgpool"}[kind]
                fields = {"n": n, "h": h, "w": w, "cin": c, "cout": cout, "kh": kh, "kw": kw, "stride": st,
                          "padding": p, "groups": groups, "bias": not kind.endswith("POOL_2D") and len(op.inputs) > 2}
                spec = KernelSpec(op=op_, activation=act, **fields)
            elif kind == "FULLY_CONNECTED":
                ws = shape(int(op.inputs[1]))
                rows = int(np.prod(shape(x))) // ws[1]
                spec = KernelSpec(op="fc", n=rows, cin=ws[1], cout=ws[0], activation=act, bias=len(op.inputs) > 2)
            elif kind == "BATCH_MATMUL":
                a, b = shape(x), shape(int(op.inputs[1]))
                adj = bool(getattr(opts, "adjY", False))
                spec = KernelSpec(op="matmul", n=int(np.prod(a[:-2])), h=a[-2], cin=a[-1], cout=b[-2] if adj else b[-1])
            elif kind in ("SOFTMAX", "GELU"):
                t = tokens(x)
                spec = KernelSpec(op=kind.lower(), cout=t["cin"], bias=False, **t,
                                  attrs={"approximate": "tanh"} if kind == "GELU" and getattr(opts, "approximate", False)
                                  else {})
            elif kind in ("ADD", "MUL"):
                big = int(max(op.inputs[:2], key=lambda i: int(np.prod(shape(int(i))) or 1)))
                if len(shape(big)) == 3:  # token rows
                    t = tokens(big)
                    n, h, w, c = t["n"], t["h"], 1, t["cin"]
                else:
                    n, h, w, c = nhwc(big)
                spec = KernelSpec(op=kind.lower(), n=n, h=h, w=w, cin=c, cout=c, activation=act, bias=False)
            elif kind == "MEAN":
                n, h, w, c = nhwc(x)
                spec = KernelSpec(op="global_avgpool", n=n, h=h, w=w, cin=c, cout=c, bias=False)
            elif kind == "CONCATENATION":
                chans = [nhwc(int(i))[3] for i in op.inputs]
                n, h, w, _ = nhwc(out)
                spec = KernelSpec(op="concat", n=n, h=h, w=w, cin=chans[0], cout=sum(chans), bias=False,
                                  activation=act, attrs={"channels": ",".join(map(str, chans))})
            elif kind == "DEPTH_TO_SPACE":
                n, h, w, c = nhwc(x)
                r = int(opts.blockSize)
                spec = KernelSpec(op="depth_to_space", n=n, h=h, w=w, cin=c, cout=c // (r * r), bias=False,
                                  attrs={"block": r, "mode": "DCR"})
            elif kind in _STANDALONE_ACT:
                n, h, w, c = nhwc(x)
                spec = KernelSpec(op="activation", n=n, h=h, w=w, cin=c, cout=c, bias=False,
                                  attrs={"kind": _STANDALONE_ACT[kind]})
            else:
                raise LookupError(kind)
        except (LookupError, ValueError, AttributeError, TypeError, IndexError):
            n, h, w, c = nhwc(x) if x >= 0 else (1, 1, 1, 1)
            spec = KernelSpec(op="other", n=n, h=h, w=w, cin=c, cout=nhwc(out)[3] if out >= 0 else c, bias=False,
                              attrs={"tflite_op": kind})
        # fold views that follow (and, after a token layer, transposes)
        views = _VIEWS | ({"TRANSPOSE"} if spec.op in _TOKEN_OPS or (spec.op == "fc" and len(shape(x)) == 3) else set())
        if spec.op == "matmul":  # the 1/sqrt(d) scale the exporter writes as MUL by a constant
            cs = consumers.get(out, [])
            sc = ops[cs[0]] if len(cs) == 1 else None
            if sc is not None and opname(sc) == "MUL" and any(
                    T[int(i)].buffer and m.buffers[T[int(i)].buffer].data is not None and int(np.prod(shape(int(i)))) == 1
                    for i in sc.inputs):
                views = views | {"MUL"}
        cur = out
        while cur >= 0:
            cs = consumers.get(cur, [])
            if len(cs) != 1 or opname(ops[cs[0]]) not in views:
                break
            claimed.add(cs[0])
            cur = int(ops[cs[0]].outputs[0])
            if spec.op == "matmul" and opname(ops[cs[0]]) == "MUL":
                views = views - {"MUL"}  # one scale, then views only
            nodes.append(tname(cur))
            opsl.append(opname(ops[cs[0]]))
        layers.append(Layer(len(layers), nodes[0] if opsl[0] != "PAD" else nodes[1], spec, nodes, opsl,
                            tname(cur) if cur >= 0 else ""))
        claimed.add(k)
    desc = m.description.decode(errors="replace") if isinstance(m.description, bytes) else (m.description or "")
    inp = nhwc(int(sg.inputs[0])) if sg.inputs is not None and len(sg.inputs) else ()
    return ModelLayers(name or desc or "model", layers, "tflite", "litert", tuple(inp))
