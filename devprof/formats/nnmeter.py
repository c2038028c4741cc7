"""nn-Meter's released model datasets (JSONL) -> devprof model timings and records.

nn-Meter (Zhang et al., MobiSys'21) released ~26k generated CNNs as ``<family>.jsonl`` files:
one JSON object per line, holding the model id, its graph, and its measured end-to-end latency
(ms) on each device it was timed on, keyed by the predictor name::

    {"id": "mobilenetv2_0001",
     "cortexA76cpu_tflite21": 12.3, "adreno640gpu_tflite21": 4.5, ...,
     "graph": {"<node>": {"inbounds": [...], "outbounds": [...],
                          "attr": {"name": ..., "type": "Conv2D",
                                   "input_shape": [[1,112,112,32]], "output_shape": [[1,56,56,64]],
                                   "attr": {"weight_shape": [3,3,32,64], "strides": [2,2], ...}}}}}

`read(path)` returns one `NNMeterModel` per line: its layers as devprof `KernelSpec`s (convs with
their BatchNorm/bias/activation folded in, as nn-Meter's kernels fuse them; unknown ops kept as
``op="other"`` with ``attrs["nnmeter_op"]``) and its latency per device. `to_records` turns them
into devprof model records (kind ``model``), one per (model, device); `to_timings` feeds
`devprof.from_models` (learn a per-layer table from these end-to-end latencies).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import UsageError
from ..records import KernelSpec

#: nn-Meter's device (predictor) names and what they measured.
DEVICES = {
    "cortexA76cpu_tflite21": ("Pixel4", "CortexA76 CPU", "tflite", "2.1"),
    "adreno640gpu_tflite21": ("Mi9", "Adreno 640 GPU", "tflite", "2.1"),
    "adreno630gpu_tflite21": ("Pixel3XL", "Adreno 630 GPU", "tflite", "2.1"),
    "myriadvpu_openvino2019r2": ("Intel Movidius NCS2", "Myriad VPU", "openvino", "2019R2"),
}
_FOLD = {"BiasAdd", "FusedBatchNorm", "FusedBatchNormV3", "BatchNorm"}
_ACTS = {"Relu": "relu", "Relu6": "relu6", "Sigmoid": "sigmoid", "HardSwish": "hswish", "Hswish": "hswish",
         "Swish": "swish", "LeakyRelu": "leakyrelu"}
_VIEWS = {"Reshape", "Identity", "Squeeze", "Placeholder", "Const", "Flatten", "ExpandDims", "Shape",
          "StridedSlice", "Pack", "Transpose"}
MAX_LINE = 64 * 1024 * 1024


@dataclass
class NNMeterModel:
    id: str
    layers: list[KernelSpec]
    latency_ms: dict[str, float]
    input_shape: tuple = ()
    unknown: list[str] = field(default_factory=list)


def _shape(node: dict, key: str) -> list[int] | None:
    v = node.get("attr", {}).get(key)
    if isinstance(v, list) and v and isinstance(v[0], list):
        v = v[0]
    if isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v) and v:
        return [max(1, x) for x in v]
    return None


def _pad_for(h: int, out: int, k: int, s: int) -> int:
    """The symmetric padding that makes a k x k, stride-s window give `out` from `h`."""
    for p in range(0, k + 1):
        if (h + 2 * p - k) // s + 1 == out:
            return p
    return k // 2


def _pair(v: Any, default: int = 1) -> int:
    """strides/ksize as [s, s] or [1, s, s, 1] -> s."""
    if isinstance(v, list) and v:
        v = v[1] if len(v) == 4 else v[0]
    try:
        return max(1, int(v))
    except (TypeError, ValueError):
        return default


def graph_layers(graph: dict) -> tuple[list[KernelSpec], list[str], tuple]:
    """Walk an nn-Meter graph into layers (in the graph's node order, which is topological in the
    released files). Returns (specs, names of unknown ops, model input shape NHWC)."""
    if not isinstance(graph, dict):
        raise ValueError("graph must be an object")
    nodes = {k: v for k, v in graph.items() if isinstance(v, dict)}
    layers: list[KernelSpec] = []
    unknown: list[str] = []
    owner: dict[str, int] = {}  # node -> index of the layer it was folded into
    in_shape: tuple = ()

    def out_shape(name: str) -> list[int] | None:
        n = nodes.get(name)
        return _shape(n, "output_shape") if n else None

    for name, node in nodes.items():
        a = node.get("attr") if isinstance(node.get("attr"), dict) else {}
        typ = str(a.get("type", ""))
        inner = a.get("attr") if isinstance(a.get("attr"), dict) else {}
        ins = [i for i in node.get("inbounds", []) if isinstance(i, str)]
        outs = _shape(node, "output_shape")
        ishape = _shape(node, "input_shape") or (out_shape(ins[0]) if ins else None)
        if typ == "Placeholder" and outs and not in_shape:
            in_shape = tuple(outs)
        if typ in _VIEWS or not typ:
            if ins and ins[0] in owner:
                owner[name] = owner[ins[0]]
            continue
        prev = owner.get(ins[0]) if len(ins) == 1 else None
        if typ in _FOLD and prev is not None:
            owner[name] = prev
            continue
        if typ in _ACTS and prev is not None and layers[prev].activation == "none" and \
                layers[prev].op in ("conv2d", "dwconv2d", "pwconv", "fc", "add"):
            layers[prev] = layers[prev].replace(activation=_ACTS[typ])
            owner[name] = prev
            continue
        spec = None
        try:
            if typ in ("Conv2D", "DepthwiseConv2dNative") and ishape and outs and len(ishape) == 4:
                ws = inner.get("weight_shape") or []
                k = int(ws[0]) if ws else _pair(inner.get("kernel_shape"), 1)
                s = _pair(inner.get("strides"))
                _, h, w, c = ishape
                cout = outs[-1]
                p = _pad_for(h, outs[1], k, s)
                if typ == "DepthwiseConv2dNative":
                    spec = KernelSpec("dwconv2d", h=h, w=w, cin=c, cout=c, kh=k, kw=k, stride=s, padding=p, groups=c)
                elif k == 1 and s == 1 and p == 0:
                    spec = KernelSpec("pwconv", h=h, w=w, cin=c, cout=cout)
                else:
                    spec = KernelSpec("conv2d", h=h, w=w, cin=c, cout=cout, kh=k, kw=k, stride=s, padding=p)
            elif typ == "MatMul" and ishape and outs:
                spec = KernelSpec("fc", cin=ishape[-1], cout=outs[-1])
            elif typ in ("MaxPool", "AvgPool") and ishape and outs and len(ishape) == 4:
                k = _pair(inner.get("ksize"), 2)
                s = _pair(inner.get("strides"), k)
                _, h, w, c = ishape
                spec = KernelSpec("maxpool" if typ == "MaxPool" else "avgpool", h=h, w=w, cin=c, cout=c, kh=k,
                                  kw=k, stride=s, padding=_pad_for(h, outs[1], k, s), bias=False)
            elif typ == "Mean" and ishape and len(ishape) == 4:
                _, h, w, c = ishape
                spec = KernelSpec("global_avgpool", h=h, w=w, cin=c, cout=c, bias=False)
            elif typ in ("Add", "AddV2", "Mul") and outs and len(outs) == 4:
                _, h, w, c = outs
                spec = KernelSpec("add" if typ != "Mul" else "mul", h=h, w=w, cin=c, cout=c, bias=False)
            elif typ in ("ConcatV2", "Concat") and outs and len(outs) == 4:
                _, h, w, c = outs
                chans = [out_shape(i)[-1] for i in ins if out_shape(i)]
                spec = KernelSpec("concat", h=h, w=w, cin=c, cout=c, bias=False, attrs={"channels": chans})
            elif typ in _ACTS and outs:
                h, w, c = (outs[1], outs[2], outs[3]) if len(outs) == 4 else (1, 1, outs[-1])
                spec = KernelSpec("activation", h=h, w=w, cin=c, cout=c, bias=False, attrs={"kind": _ACTS[typ]})
        except (ValueError, TypeError, IndexError):
            spec = None
        if spec is None:
            unknown.append(typ)
            h, w, c = 1, 1, 1
            if outs and len(outs) == 4:
                _, h, w, c = outs
            spec = KernelSpec("other", h=h, w=w, cin=c, cout=c, bias=False, attrs={"nnmeter_op": typ})
        owner[name] = len(layers)
        layers.append(spec)
    return layers, unknown, in_shape


def parse_line(line: str, where: str = "line") -> NNMeterModel:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as e:
        raise UsageError(f"{where} is not valid JSON ({str(e)[:80]})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not isinstance(obj.get("graph"), dict):
        raise UsageError(f"{where}: an nn-Meter model line is an object with 'id' and 'graph'")
    lat: dict[str, float] = {}
    for k, v in obj.items():
        if k in ("id", "graph"):
            continue
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0:
            lat[k] = float(v)
    try:
        layers, unknown, in_shape = graph_layers(obj["graph"])
    except ValueError as e:
        raise UsageError(f"{where}: {e}") from None
    return NNMeterModel(obj["id"], layers, lat, in_shape, unknown)


def read(path: str | Path) -> list[NNMeterModel]:
    """Every model of an nn-Meter JSONL file (blank lines skipped; a bad line: one-line error)."""
    p = Path(path)
    out = []
    try:
        with open(p, encoding="utf-8") as f:
            for i, line in enumerate(f, start=1):
                if len(line) > MAX_LINE:
                    raise UsageError(f"{p}:{i}: line too long")
                if line.strip():
                    out.append(parse_line(line, f"{p}:{i}"))
    except FileNotFoundError:
        raise UsageError(f"{p} not found") from None
    except UnicodeDecodeError:
        raise UsageError(f"{p} is not UTF-8 text") from None
    except OSError as e:
        raise UsageError(f"cannot read {p}: {e.strerror or e}") from None
    return out


def devices_of(models: Iterable[NNMeterModel]) -> list[str]:
    return sorted({d for m in models for d in m.latency_ms})


def to_timings(models: Iterable[NNMeterModel], device: str):
    """`devprof.from_models.ModelTiming`s of the models timed on `device` (layers keyed by spec key)."""
    from ..models.layers import ModelTiming

    out = []
    for m in models:
        if device in m.latency_ms:
            out.append(ModelTiming(m.id, [s.key for s in m.layers], m.latency_ms[device] * 1000.0,
                                   specs={s.key: s for s in m.layers}))
    return out


def device_info(device: str):
    from ..records import DeviceInfo

    phone, proc, _, _ = DEVICES.get(device, (device, "", "", ""))
    return DeviceInfo(kind="imported", name=phone, model=device, cpu=proc, extra={"source": "nn-meter"})


def runtime_info(device: str):
    from ..records import RuntimeInfo

    _, _, rt, ver = DEVICES.get(device, ("", "", "unknown", ""))
    return RuntimeInfo(rt, ver, 1, {"source": "nn-meter"})


def to_records(models: Iterable[NNMeterModel], suite: str = "nn-meter") -> list:
    """One model record (kind "model", op "model") per (model, device) latency."""
    from ..records import Measurement, Record, content_id

    recs = []
    for m in models:
        n, h, w, c = (list(m.input_shape) + [1, 1, 1, 1])[:4] if len(m.input_shape) == 4 else (1, 1, 1, 1)
        spec = KernelSpec("model", n=n, h=h, w=w, cin=c, cout=c, bias=False,
                          attrs={"name": m.id, "source": "nn-meter", "layers": len(m.layers)})
        for dev, ms in sorted(m.latency_ms.items()):
            run = content_id(["nn-meter", m.id, dev])
            recs.append(Record(spec, device_info(dev), runtime_info(dev), Measurement((ms * 1000.0,)), kind="model",
                               model_run_id=run, model_name=m.id, suite=suite))
    return recs
