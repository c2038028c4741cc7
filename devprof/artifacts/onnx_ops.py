"""Single-op ONNX models for a `KernelSpec` (onnx.helper only; weights as initializers).

ONNX activations are NCHW: the model takes the spec's NHWC input transposed, and the runtime's
output is transposed back before it is checked against the NHWC numpy reference. The activation
is a separate node right after the op, which ONNX Runtime fuses into Conv/Gemm as it would in a
real model.

int8 specs become QDQ models (`build_qdq_model`), the form ONNX Runtime's quantizer writes:
uint8 activations and int8 per-channel weights enter through DequantizeLinear, the float op
computes, QuantizeLinear gives the uint8 output; ORT's graph optimiser fuses each such group into
an integer kernel (QLinearConv, QGemm, QLinearAdd...), which `runtimes.onnxruntime` verifies from
ORT's profile. A ReLU/ReLU6 stays a node before the QuantizeLinear: with the output's zero point
at 0 (and its range within 6) ORT folds it into the requantization, as it does in real models.
"""
from __future__ import annotations

import numpy as np

from ..records import KernelSpec
from ..runtimes.reference import LAYERNORM_EPS, TOKEN_OPS

OPSET = 17
SUPPORTED = ("conv2d", "dwconv2d", "pwconv", "fc", "maxpool", "avgpool", "global_avgpool", "add", "mul",
             "concat", "activation", "depth_to_space", "matmul", "softmax", "layernorm", "gelu", "attention")
#: Ops whose activations are token rows (n, seq, hidden): fed and returned as they are.
ROW_OPS = ("fc", *TOKEN_OPS)


def supports(spec: KernelSpec) -> str | None:
    if spec.op not in SUPPORTED:
        return f"no single-op ONNX model for {spec.op}"
    if spec.sparsity.scheme != "dense":
        return "ONNX Runtime runs dense kernels only (sparse schemes run in devprof-c)"
    if spec.dtype == "fp16":
        return ("fp16 is not measured on ONNX Runtime: its CPU execution provider casts fp16 Conv/Gemm to "
                "fp32 and back (no fp16 arithmetic); fp16 kernels run on litert")
    if spec.dtype == "int8":
        if spec.op in TOKEN_OPS:
            return f"int8 {spec.op} is not built yet (fp32 only)"
        from ..runtimes.quantize import supports_int8

        return supports_int8(spec)
    if spec.activation == "prelu":
        return "prelu needs a slope tensor"
    return None


def _act_nodes(helper, kind: str, src: str, dst: str) -> list:
    if kind == "none":
        return [helper.make_node("Identity", [src], [dst])]
    if kind == "relu":
        return [helper.make_node("Relu", [src], [dst])]
    if kind == "relu6":
        return [helper.make_node("Clip", [src, "clip_min", "clip_max"], [dst])]
    if kind == "hswish":
        return [helper.make_node("HardSwish", [src], [dst])]
    if kind == "hsigmoid":
        return [helper.make_node("HardSigmoid", [src], [dst], alpha=1 / 6, beta=0.5)]
    if kind == "sigmoid":
        return [helper.make_node("Sigmoid", [src], [dst])]
    if kind == "swish":
        return [helper.make_node("Sigmoid", [src], ["sig"]), helper.make_node("Mul", [src, "sig"], [dst])]
    if kind == "leakyrelu":
        return [helper.make_node("LeakyRelu", [src], [dst], alpha=0.01)]
    raise ValueError(kind)


def build_model(spec: KernelSpec, tensors: dict[str, np.ndarray]):
    """Return (ModelProto, feeds) computing `spec` with the given weights; feeds are NCHW."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list = []
    inits = []
    feeds: dict[str, np.ndarray] = {}
    op = spec.op
    x = tensors["x"]
    if op in ROW_OPS:
        feeds["x"] = x
    else:
        feeds["x"] = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    out = "pre" if spec.activation != "none" and op != "activation" else "y"
    if op in ("conv2d", "dwconv2d", "pwconv"):
        w = tensors["w"].transpose(0, 3, 1, 2)  # OHWI -> OIHW
        inits.append(numpy_helper.from_array(np.ascontiguousarray(w), "w"))
        ins = ["x", "w"]
        if "b" in tensors:
            inits.append(numpy_helper.from_array(tensors["b"], "b"))
            ins.append("b")
        p = spec.padding
        nodes.append(helper.make_node("Conv", ins, [out], kernel_shape=[spec.kh, spec.kw], strides=[spec.stride] * 2,
                                      pads=[p, p, p, p], group=spec.groups, dilations=[spec.dilation] * 2))
    elif op == "fc":
        inits.append(numpy_helper.from_array(tensors["w"], "w"))
        ins = ["x", "w"] + (["b"] if "b" in tensors else [])
        if "b" in tensors:
            inits.append(numpy_helper.from_array(tensors["b"], "b"))
        nodes.append(helper.make_node("Gemm", ins, [out], transB=1))
    elif op in ("maxpool", "avgpool"):
        p = spec.padding
        kw = dict(kernel_shape=[spec.kh, spec.kw], strides=[spec.stride] * 2, pads=[p, p, p, p])
        nodes.append(helper.make_node("MaxPool" if op == "maxpool" else "AveragePool", ["x"], [out], **kw))
    elif op == "global_avgpool":
        nodes.append(helper.make_node("GlobalAveragePool", ["x"], [out]))
    elif op in ("add", "mul"):
        feeds["y2"] = np.ascontiguousarray(tensors["y"].transpose(0, 3, 1, 2))
        nodes.append(helper.make_node("Add" if op == "add" else "Mul", ["x", "y2"], [out]))
    elif op == "concat":
        names = []
        for i, a in enumerate(tensors["inputs"]):
            names.append(f"x{i}" if i else "x")
            feeds[names[-1]] = np.ascontiguousarray(a.transpose(0, 3, 1, 2))
        nodes.append(helper.make_node("Concat", names, [out], axis=1))
    elif op == "activation":
        nodes.extend(_act_nodes(helper, spec.a.get("kind", spec.activation), "x", "y"))
    elif op == "depth_to_space":
        nodes.append(helper.make_node("DepthToSpace", ["x"], [out], blocksize=int(spec.a.get("block", 2)), mode="DCR"))
    elif op in TOKEN_OPS:
        _token_nodes(spec, tensors, helper, numpy_helper, nodes, inits, feeds, out)
    else:
        raise ValueError(f"no ONNX builder for {op}")
    if out == "pre":
        nodes.extend(_act_nodes(helper, spec.activation, "pre", "y"))
        if spec.activation == "relu6":
            inits += [numpy_helper.from_array(np.array(0, np.float32), "clip_min"),
                      numpy_helper.from_array(np.array(6, np.float32), "clip_max")]
    inputs = [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v.shape)) for k, v in feeds.items()]
    oshape = ([spec.n, spec.cout] if op == "fc" else [spec.n, spec.h, spec.cout] if op in TOKEN_OPS
              else [spec.n, spec.cout, spec.out_h, spec.out_w])
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, oshape)]
    graph = helper.make_graph(nodes, f"devprof_{spec.id}", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="devprof")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, feeds


def _token_nodes(spec: KernelSpec, tensors: dict, helper, numpy_helper, nodes: list, inits: list,
                 feeds: dict, out: str) -> None:
    """Transformer ops in the form exporters write them (PyTorch's ONNX export, opset 17):
    GELU as its erf formula and attention as projections, reshapes and MatMuls, which ONNX
    Runtime's optimiser fuses where it knows how, as it would in a real model."""
    op = spec.op

    def const(name: str, arr) -> str:
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    if op == "matmul":
        feeds["y2"] = tensors["y"]
        nodes.append(helper.make_node("MatMul", ["x", "y2"], [out]))
    elif op == "softmax":
        nodes.append(helper.make_node("Softmax", ["x"], [out], axis=-1))
    elif op == "layernorm":
        ins = ["x", const("scale", tensors["w"])] + ([const("shift", tensors["b"])] if "b" in tensors else [])
        nodes.append(helper.make_node("LayerNormalization", ins, [out], axis=-1,
                                      epsilon=float(spec.a.get("eps", LAYERNORM_EPS))))
    elif op == "gelu":
        f = np.float32
        if spec.a.get("approximate", "none") == "tanh":
            nodes += [helper.make_node("Mul", ["x", "x"], ["x2"]), helper.make_node("Mul", ["x2", "x"], ["x3"]),
                      helper.make_node("Mul", ["x3", const("c044715", f(0.044715))], ["cx3"]),
                      helper.make_node("Add", ["x", "cx3"], ["inner"]),
                      helper.make_node("Mul", ["inner", const("sqrt2pi", f(np.sqrt(2 / np.pi)))], ["arg"]),
                      helper.make_node("Tanh", ["arg"], ["t"])]
        else:
            nodes += [helper.make_node("Div", ["x", const("sqrt2", f(np.sqrt(2)))], ["xs"]),
                      helper.make_node("Erf", ["xs"], ["t"])]
        nodes += [helper.make_node("Add", ["t", const("one", f(1))], ["t1"]),
                  helper.make_node("Mul", ["x", "t1"], ["xt"]),
                  helper.make_node("Mul", ["xt", const("half", f(0.5))], [out])]
    elif op == "attention":
        heads = int(spec.a["heads"])
        d = spec.cin // heads
        w, b = tensors["w"], tensors.get("b")
        split = const("split_shape", np.array([0, 0, heads, d], np.int64))
        for i, name in enumerate("qkv"):
            nodes.append(helper.make_node("MatMul", ["x", const(f"w{name}", np.ascontiguousarray(w[i].T))], [f"{name}0"]))
            src = f"{name}0"
            if b is not None:
                nodes.append(helper.make_node("Add", [src, const(f"b{name}", b[i])], [f"{name}1"]))
                src = f"{name}1"
            nodes.append(helper.make_node("Reshape", [src, split], [f"{name}4"]))
            perm = [0, 2, 3, 1] if name == "k" else [0, 2, 1, 3]  # K goes in transposed: (n, h, d, seq)
            nodes.append(helper.make_node("Transpose", [f"{name}4"], [f"{name}h"], perm=perm))
        nodes += [helper.make_node("MatMul", ["qh", "kh"], ["scores"]),
                  helper.make_node("Div", ["scores", const("sqrt_d", np.float32(np.sqrt(d)))], ["scaled"]),
                  helper.make_node("Softmax", ["scaled"], ["probs"], axis=-1),
                  helper.make_node("MatMul", ["probs", "vh"], ["ctx"]),
                  helper.make_node("Transpose", ["ctx"], ["ctx_t"], perm=[0, 2, 1, 3]),
                  helper.make_node("Reshape", ["ctx_t", const("merge_shape", np.array([0, 0, spec.cin], np.int64))],
                                   ["merged"]),
                  helper.make_node("MatMul", ["merged", const("wo", np.ascontiguousarray(w[3].T))],
                                   ["o0" if b is not None else out])]
        if b is not None:
            nodes.append(helper.make_node("Add", ["o0", const("bo", b[3])], [out]))


#: The ONNX op of each int8 spec's float core (between DequantizeLinear and QuantizeLinear).
_QDQ_CORE = {"conv2d": "Conv", "dwconv2d": "Conv", "pwconv": "Conv", "fc": "Gemm", "maxpool": "MaxPool",
             "avgpool": "AveragePool", "global_avgpool": "GlobalAveragePool", "add": "Add", "mul": "Mul"}
_ONNX_TYPE = {"uint8": 2, "int8": 3}  # TensorProto.UINT8, INT8


def build_qdq_model(spec: KernelSpec, qk):
    """Return (ModelProto, feeds) for an int8 spec in QDQ form from its quantized tensors
    (`runtimes.quantize.QKernel`, usually with uint8 activations); feeds are NCHW integers."""
    import onnx
    from onnx import helper, numpy_helper

    def const(name: str, arr) -> None:
        inits.append(numpy_helper.from_array(np.asarray(arr), name))

    def dq(src: str, qp, dst: str) -> None:
        const(f"{src}_scale", np.float32(qp.scale))
        const(f"{src}_zp", np.array(qp.zero_point, qp.np_dtype))
        nodes.append(helper.make_node("DequantizeLinear", [src, f"{src}_scale", f"{src}_zp"], [dst]))

    op = spec.op
    nodes: list = []
    inits: list = []
    feeds: dict[str, np.ndarray] = {}
    names = ["x", "y"] if op in ("add", "mul") else ["x"]
    for k in names:
        q = qk.inputs[k]
        feeds[f"{k}_q"] = q if op == "fc" else np.ascontiguousarray(q.transpose(0, 3, 1, 2))
        dq(f"{k}_q", qk.in_params[k], f"{k}_f")
    core_in = [f"{k}_f" for k in names]
    attrs: dict = {}
    if qk.w_q is not None:
        w = qk.w_q if op == "fc" else np.ascontiguousarray(qk.w_q.transpose(0, 3, 1, 2))  # OHWI -> OIHW
        const("w_q", w)
        const("w_scale", qk.w_scale)
        const("w_zp", np.zeros(len(qk.w_scale), np.int8))
        nodes.append(helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w_f"], axis=0))
        const("b_q", qk.b_q)
        const("b_scale", qk.b_scale)
        const("b_zp", np.zeros(len(qk.b_scale), np.int32))
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "b_scale", "b_zp"], ["b_f"], axis=0))
        core_in += ["w_f", "b_f"]
    p = spec.padding
    if op in ("conv2d", "dwconv2d", "pwconv"):
        attrs = dict(kernel_shape=[spec.kh, spec.kw], strides=[spec.stride] * 2, pads=[p] * 4, group=spec.groups,
                     dilations=[spec.dilation] * 2)
    elif op == "fc":
        attrs = dict(transB=1)
    elif op in ("maxpool", "avgpool"):
        attrs = dict(kernel_shape=[spec.kh, spec.kw], strides=[spec.stride] * 2, pads=[p] * 4)
    core_out = "out_f" if spec.activation == "none" else "pre"
    nodes.append(helper.make_node(_QDQ_CORE[op], core_in, [core_out], **attrs))
    if spec.activation != "none":
        nodes.extend(_act_nodes(helper, spec.activation, "pre", "out_f"))
        if spec.activation == "relu6":
            const("clip_min", np.float32(0))
            const("clip_max", np.float32(6))
    const("out_scale", np.float32(qk.out.scale))
    const("out_zp", np.array(qk.out.zero_point, qk.out.np_dtype))
    nodes.append(helper.make_node("QuantizeLinear", ["out_f", "out_scale", "out_zp"], ["out"]))
    et = _ONNX_TYPE[qk.act_dtype]
    inputs = [helper.make_tensor_value_info(k, et, list(v.shape)) for k, v in feeds.items()]
    oshape = ([spec.n, spec.cout] if op == "fc" else [spec.n, spec.h, spec.cout] if op in TOKEN_OPS
              else [spec.n, spec.cout, spec.out_h, spec.out_w])
    graph = helper.make_graph(nodes, f"devprof_{spec.id}", inputs, [helper.make_tensor_value_info("out", et, oshape)],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="devprof")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, feeds


def output_to_nhwc(spec: KernelSpec, y: np.ndarray) -> np.ndarray:
    return y if spec.op in ROW_OPS else y.transpose(0, 2, 3, 1)


#: Scale inputs (by position) of the ONNX ops that carry quantization scales.
_SCALE_INPUTS = {"QuantizeLinear": (1,), "DequantizeLinear": (1,), "QLinearConv": (1, 4, 6),
                 "QLinearMatMul": (1, 4, 6), "QLinearAdd": (1, 4, 6), "QLinearMul": (1, 4, 6), "QGemm": (1, 4, 6)}


def qdq_scale_problem(model) -> str | None:
    """None when every constant quantization scale of `model` is positive and finite, else one line
    naming the first node whose scale is not (a zero scale divides by zero in every runtime)."""
    from onnx import helper, numpy_helper

    consts = {t.name: t for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = helper.get_attribute_value(n.attribute[0])
    for n in model.graph.node:
        for i in _SCALE_INPUTS.get(n.op_type, ()):
            name = n.input[i] if i < len(n.input) else ""
            if name not in consts:
                continue  # computed at run time (dynamic quantization): nothing to check here
            try:
                scale = numpy_helper.to_array(consts[name]).astype(np.float64)
            except Exception:  # not a numeric tensor: the checker's business
                continue
            bad = ~np.isfinite(scale) | (scale <= 0)
            if bad.any():
                what = "per-tensor scale" if scale.size == 1 else f"{int(bad.sum())} of {scale.size} per-channel scales"
                value = float(scale.ravel()[np.argmax(bad.ravel())])
                return (f"{n.op_type} node {n.name or n.output[0]!r} has {what} {value:g} (tensor {name!r}): "
                        "quantization scales must be positive and finite")
    return None
