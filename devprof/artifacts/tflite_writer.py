"""Write .tflite flatbuffers with the schema that ai-edge-litert ships (no TensorFlow needed).

`TFLiteGraph` is a tiny graph builder over the schema's object API: add constant or activation
tensors (float32/16, int8/uint8/int32, with quantization parameters), add builtin operators,
`finish()` to bytes (with metadata entries such as `reduced_precision_support`). Single-op
kernels (`tflite_ops`) and whole models exported by devprof use it alike.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

#: numpy dtype -> schema TensorType (FLOAT32, FLOAT16, INT32, UINT8, INT64, INT8)
_TYPES = {np.dtype(np.float32): 0, np.dtype(np.float16): 1, np.dtype(np.int32): 2, np.dtype(np.uint8): 3,
          np.dtype(np.int64): 4, np.dtype(np.int8): 9}


def _schema():
    from ai_edge_litert import schema_py_generated as s

    return s


class TFLiteGraph:
    def __init__(self, name: str = "devprof") -> None:
        s = _schema()
        self.s = s
        self.name = name
        self.buffers = [s.BufferT()]  # buffer 0: the empty sentinel every model starts with
        self.tensors: list[Any] = []
        self.ops: list[Any] = []
        self.opcodes: dict[tuple[int, int], int] = {}  # (builtin code, version) -> operator code index
        self.codes: list[Any] = []

    def tensor(self, name: str, shape: Sequence[int], data: np.ndarray | None = None,
               dtype: Any = np.float32, quant: tuple | None = None) -> int:
        """Add a tensor (a constant when `data` is given); return its index.

        `quant` = (scales, zero_points, axis): affine quantization parameters, one per tensor or
        one per slice along `axis` (per-channel weights).
        """
        t = self.s.TensorT()
        t.name = name
        t.shape = [int(d) for d in shape]
        t.type = _TYPES[np.dtype(dtype if data is None else data.dtype)]
        t.buffer = 0
        if quant is not None:
            scales, zps, axis = quant
            q = self.s.QuantizationParametersT()
            q.scale = [float(v) for v in np.atleast_1d(scales)]
            q.zeroPoint = [int(v) for v in np.atleast_1d(zps)]
            q.quantizedDimension = int(axis)
            t.quantization = q
        if data is not None:
            b = self.s.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, builtin: str, inputs: Sequence[int], outputs: Sequence[int], options: str | None = None,
           version: int = 1, **fields: Any) -> None:
        """Add a builtin operator; `options` names its options table (e.g. "Conv2DOptions").

        `version` is the operator version a converter would write (it names the op's semantics:
        int8 CONV_2D is version 3, fp16-weight DEQUANTIZE version 3...); runtimes dispatch on it.
        """
        s = self.s
        code = getattr(s.BuiltinOperator, builtin)
        if (code, version) not in self.opcodes:
            oc = s.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = version
            self.codes.append(oc)
            self.opcodes[(code, version)] = len(self.codes) - 1
        o = s.OperatorT()
        o.opcodeIndex = self.opcodes[(code, version)]
        o.inputs = list(inputs)
        o.outputs = list(outputs)
        if options:
            opts = getattr(s, options + "T")()
            for k, v in fields.items():
                setattr(opts, k, v)
            o.builtinOptionsType = getattr(s.BuiltinOptions, options)
            o.builtinOptions = opts
        self.ops.append(o)

    def finish(self, inputs: Sequence[int], outputs: Sequence[int],
               metadata: dict[str, bytes] | None = None) -> bytes:
        """The model as flatbuffer bytes; `metadata` entries are stored as named buffers."""
        import flatbuffers

        s = self.s
        entries = []
        for key, value in (metadata or {}).items():
            b = s.BufferT()
            b.data = np.frombuffer(bytes(value), dtype=np.uint8)
            self.buffers.append(b)
            e = s.MetadataT()
            e.name, e.buffer = key, len(self.buffers) - 1
            entries.append(e)
        sg = s.SubGraphT()
        sg.tensors, sg.operators, sg.inputs, sg.outputs, sg.name = self.tensors, self.ops, list(inputs), list(outputs), "main"
        m = s.ModelT()
        m.version = 3
        m.description = self.name
        m.operatorCodes = self.codes
        m.subgraphs = [sg]
        m.buffers = self.buffers
        if entries:
            m.metadata = entries
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def same_pads(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int, int]:
    """TensorFlow SAME padding: (out, pad_before, pad_after) — the extra pixel goes after."""
    out = math.ceil(size / stride)
    eff = dilation * (k - 1) + 1
    total = max((out - 1) * stride + eff - size, 0)
    return out, total // 2, total - total // 2


FUSED = {"none": 0, "relu": 1, "relu6": 3}  # ActivationFunctionType NONE, RELU, RELU6
