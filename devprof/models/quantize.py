"""int8 whole models: static quantization of a float ONNX model into QDQ form (what
``--model M --dtype int8`` profiles), and the float view of a QDQ model that the graph walk reads.

Calibration runs on seeded random inputs: the activation ranges only set scales, and devprof times
models, it does not judge their accuracy. Weights are per-channel symmetric int8, activations
uint8 (ONNX Runtime's QLinearConv / QGemm path). A QDQ model the user gives is profiled as it is.

The walk maps a QDQ model onto the layers of its float twin: a DequantizeLinear of a constant is
that constant (dequantized), a QuantizeLinear -> DequantizeLinear pair on an activation is the
activation itself; a layer whose compute node reads a dequantized activation is int8.
"""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from ..errors import UsageError

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger",
                     "ConvInteger", "QGemm", "QLinearAdd", "QLinearMul", "DynamicQuantizeLinear"})
#: Metadata of the QDQ models devprof makes: {layer node name: the ReLU/ReLU6 quantization folded
#: into the output range}, so that their layers keep the float model's keys.
ACTIVATIONS_KEY = "devprof.int8_activations"
#: Calibration batches of random inputs (the ranges only set the scales).
CALIBRATION_BATCHES = 4


def is_quantized(model) -> bool:
    """True when the ONNX graph holds quantization nodes (QDQ or integer operators)."""
    return any(n.op_type in QDQ_OPS for n in model.graph.node)


def quantize_static_int8(model, batches: int = CALIBRATION_BATCHES, reduce_range: bool = False):
    """`model` (float ONNX) -> a QDQ int8 model: BN folded first (ONNX Runtime's basic graph
    optimisation), then static quantization calibrated on seeded random inputs, per-channel int8
    weights (7-bit with `reduce_range`: for x86 without VNNI, whose u8 x s8 kernels saturate with
    full 8-bit weights — `devprof.runtimes.hostcpu`), uint8 activations. One-line UsageError when
    ONNX Runtime cannot quantize it."""
    import logging

    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1:
        raise UsageError(f"--dtype int8 quantizes models with one input (this one has {len(inputs)})")
    inp = inputs[0]
    shape = [d.dim_value if d.dim_value > 0 else 1 for d in inp.type.tensor_type.shape.dim]

    class _Random(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(range(batches))

        def get_next(self):
            k = next(self._it, None)
            return None if k is None else {inp.name: np.random.default_rng(k).random(shape, dtype=np.float32)}

    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryDirectory(prefix="devprof-quant-") as d:
        raw, folded, out = (os.path.join(d, f) for f in ("raw.onnx", "folded.onnx", "int8.onnx"))
        onnx.save(model, raw)
        try:
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # BN into Conv, no contrib ops
            so.optimized_model_filepath = folded
            ort.InferenceSession(raw, so, providers=["CPUExecutionProvider"])
            root.setLevel(logging.ERROR)  # ORT's quantizer logs advice on the root logger
            quantize_static(folded, out, _Random(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            reduce_range=reduce_range)
        except Exception as e:  # noqa: BLE001 - ORT's quantizer raises anything
            msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UsageError(f"--dtype int8: ONNX Runtime cannot quantize this model ({msg[:200]})") from None
        finally:
            root.setLevel(level)
        q = onnx.load(out)
    from .walk import walk

    acts = {l.name: l.spec.activation for l in walk(model, fusion="generic").layers
            if l.spec.activation in ("relu", "relu6")}
    del q.metadata_props[:]
    for p in model.metadata_props:
        q.metadata_props.add(key=p.key, value=p.value)
    q.metadata_props.add(key=ACTIVATIONS_KEY, value=json.dumps(acts, sort_keys=True))
    for k, n in enumerate(q.graph.node):  # the profiler maps kernels to layers by node name
        if not n.name:
            n.name = f"{n.op_type}_{k}"
    return q


def float_view(model):
    """(the float twin of QDQ `model` for the graph walk, names of nodes that compute in int8).

    DequantizeLinear of a constant becomes that constant, dequantized; a QuantizeLinear whose
    outputs only feed DequantizeLinear nodes is dropped with them, their consumers reading the
    float tensor. Names of compute nodes are kept, so ONNX Runtime's profile of the QDQ model
    (which names fused QLinear kernels after them) maps onto the walk's layers."""
    import onnx
    from onnx import helper, numpy_helper

    g = model.graph
    consts = {t.name: t for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = helper.get_attribute_value(n.attribute[0])
    producers = {o: n for n in g.node for o in n.output}
    alias: dict[str, str] = {}  # a DequantizeLinear's output -> the float tensor it stands for
    new_inits = []
    drop: set[int] = set()
    for k, n in enumerate(g.node):
        if n.op_type != "DequantizeLinear":
            continue
        if n.input[0] in consts and all(i in consts for i in n.input[1:] if i):
            x = numpy_helper.to_array(consts[n.input[0]]).astype(np.float64)
            s = numpy_helper.to_array(consts[n.input[1]]).astype(np.float64)
            zp = (numpy_helper.to_array(consts[n.input[2]]).astype(np.float64)
                  if len(n.input) > 2 and n.input[2] else np.zeros_like(s))
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            if s.size > 1:
                bshape = [1] * x.ndim
                bshape[axis] = -1
                s, zp = s.reshape(bshape), zp.reshape(bshape)
            new_inits.append(numpy_helper.from_array(((x - zp) * s).astype(np.float32), n.output[0]))
            drop.add(k)
        else:
            q = producers.get(n.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                alias[n.output[0]] = q.input[0]
                drop.add(k)
    used_by_others = {i for k, n in enumerate(g.node) if k not in drop for i in n.input}
    for k, n in enumerate(g.node):
        if n.op_type == "QuantizeLinear" and not any(o in used_by_others for o in n.output) \
                and not any(o in {x.name for x in g.output} for o in n.output):
            drop.add(k)

    def real(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    int8: set[str] = set()
    for k, n in enumerate(g.node):
        if k in drop:
            continue
        m = onnx.NodeProto()
        m.CopyFrom(n)
        if any(i in alias for i in n.input):
            int8.add(n.name)
        del m.input[:]
        m.input.extend(real(i) for i in n.input)
        out.graph.node.append(m)
    for o in out.graph.output:
        o.name = real(o.name)
    kept_inits = [t for t in out.graph.initializer if t.name not in {x.name for x in new_inits}]
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept_inits + new_inits)
    del out.graph.value_info[:]
    return out, int8


def as_dtype(src, dtype: str, reduce_range: bool = False):
    """`src` (a `ModelSource`) to profile in `dtype`: fp32 as it is; int8 statically quantized
    (a model that is already quantized is profiled as it is; `reduce_range` as for
    `quantize_static_int8`). One-line UsageError otherwise."""
    from .sources import ModelSource

    dtype = src.dtype or dtype  # a suite's [[model]] entry says for itself
    if dtype in ("", "fp32"):
        return src
    if dtype != "int8":
        raise UsageError(f"--dtype {dtype}: whole models run in fp32 or int8 (fp16 applies to kernel suites)")
    if src.onnx is None:
        raise UsageError(f"--dtype int8 quantizes ONNX models; {src.name} is a .tflite model, profiled as it is "
                         "(give a full-integer .tflite without --dtype)")
    if is_quantized(src.onnx):
        return src
    return ModelSource(src.name, onnx=quantize_static_int8(src.onnx, reduce_range=reduce_range), family=src.family)
