"""Model sources: what the user named (a file, a built-in family, ``package.module:factory``, a
suite's ``[[model]]`` entry) resolved to the ONNX graph or .tflite bytes that are walked and
profiled, and the input a model is run on.

Kept apart from the profilers (`devprof.model_profiling.profile`, `prune`, `phone`), which all
take their models from here.
"""
from __future__ import annotations

import hashlib
import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import UsageError
from .walk import load_onnx


@dataclass
class ModelSource:
    """A model to profile: its name, and its ONNX graph or its .tflite bytes."""

    name: str
    onnx: Any = None  # onnx.ModelProto when the model is (or was converted from) ONNX
    tflite: bytes | None = None  # .tflite bytes when given as such
    family: str = ""
    dtype: str = ""  # the data type a suite's [[model]] entry asks for ("" = what the command says)

    @property
    def content_hash(self) -> str:
        data = self.onnx.SerializeToString() if self.onnx is not None else self.tflite
        return hashlib.sha256(data).hexdigest()[:16]


def resolve_model(arg: str, res: Any = None) -> ModelSource:
    """``FILE.onnx`` | ``FILE.tflite`` | a built-in family (``mobilenetv2``, ``mobilenetv2@160``)
    | ``package.module:factory`` (torch extra) -> a `ModelSource`."""
    from .builders import FAMILIES, build

    p = Path(arg)
    try:
        p.exists()
    except OSError as e:  # ENAMETOOLONG from a hostile name: still a one-line error
        raise UsageError(f"--model {arg[:120]!r}: {e.strerror or e}") from None
    if p.suffix.lower() in (".onnx", ".tflite") or p.exists():
        if not p.is_file():
            raise UsageError(f"model file {p} not found")
        if p.suffix.lower() == ".tflite":
            from .tflite_walk import load_tflite

            data = p.read_bytes()
            load_tflite(data)  # validates, one-line error when malformed
            return ModelSource(p.stem, tflite=data)
        return ModelSource(p.stem, onnx=load_onnx(p))
    base, _, at = arg.partition("@")
    if at:
        try:
            res = [int(v) for v in at.lower().split("x")]
            res = res[0] if len(res) == 1 else res
        except ValueError:
            raise UsageError(f"bad resolution in {arg!r} (expected e.g. mobilenetv2@160 or fsrcnn@180x320)") from None
    key = base.lower().replace("-", "_")
    if key in FAMILIES:
        m = build(key, res=res)
        tag = "" if res is None else "@" + ("x".join(map(str, res)) if isinstance(res, list) else str(res))
        return ModelSource(f"{key}{tag}", onnx=m, family=key)
    if ":" in base and re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", base):
        return ModelSource(base.replace(":", "."), onnx=torch_to_onnx(base, res))
    raise UsageError(f"--model {arg!r}: not a file, a built-in family ({', '.join(FAMILIES)}) "
                     "or package.module:factory")


def torch_to_onnx(target: str, res: Any = None):
    """Export ``package.module:factory`` (a torch.nn.Module or a function returning one) to ONNX."""
    try:
        import torch
    except ImportError:
        raise UsageError("--model package.module:factory needs torch: pip install 'devprof[torch]'") from None
    mod_name, fn_name = target.split(":")
    try:
        obj = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as e:
        raise UsageError(f"cannot import {target}: {e}") from None
    net = obj if isinstance(obj, torch.nn.Module) else obj()
    if not isinstance(net, torch.nn.Module):
        raise UsageError(f"{target} did not give a torch.nn.Module")
    net.eval()
    h, w = (res, res) if isinstance(res, int) else (tuple(res) if res else (224, 224))
    x = torch.randn(1, int(getattr(net, "in_channels", 3)), h, w)
    import io
    import warnings

    buf = io.BytesIO()
    try:
        # the TorchScript exporter: the torch.export-based one needs onnxscript, not a devprof dependency
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            _export(torch, net, x, buf)
    except Exception as e:
        raise UsageError(f"torch.onnx.export of {target} failed: {(str(e).splitlines() or [''])[0][:200]}") from None
    return load_onnx(buf.getvalue())


def _export(torch, net, x, buf) -> None:
    try:
        torch.onnx.export(net, (x,), buf, opset_version=17, input_names=["input"], output_names=["output"],
                          dynamo=False)
    except TypeError:  # a torch without the dynamo switch
        torch.onnx.export(net, (x,), buf, opset_version=17, input_names=["input"], output_names=["output"])


def model_input(model) -> tuple[str, np.ndarray]:
    """The name of `model`'s first non-constant input and a seeded random tensor of its shape."""
    inits = {t.name for t in model.graph.initializer}
    inp = [i for i in model.graph.input if i.name not in inits][0]
    shape = [d.dim_value if d.dim_value > 0 else 1 for d in inp.type.tensor_type.shape.dim]
    return inp.name, np.random.default_rng(0).random(shape, dtype=np.float32)


def iter_sources(models: Sequence[Any]) -> Iterator[ModelSource]:
    """The `ModelSource` of each entry, built one at a time (a suite's models are built lazily)."""
    from .variants import expand_entry

    for m in models:
        if isinstance(m, ModelSource):
            yield m
        elif isinstance(m, dict):
            dtype = str(m.get("dtype", ""))
            if "path" in m:
                src = resolve_model(str(m["path"]))
                src.dtype = dtype
                yield src
                continue
            for name, proto in expand_entry(m):
                yield ModelSource(name, onnx=proto, family=str(m.get("family", "")), dtype=dtype)
        else:
            yield resolve_model(str(m))


def tflite_of(src: "ModelSource", runtime: str) -> bytes:
    """The .tflite bytes LiteRT runs for `src`: the user's own file, or devprof's export of the ONNX
    graph — float only, so an int8 (QDQ) ONNX model is refused with one line."""
    if src.tflite is not None:
        return src.tflite
    from .quantize import is_quantized

    if is_quantized(src.onnx):
        raise UsageError(f"{runtime}: devprof's .tflite exporter writes float models; an int8 ONNX model runs on "
                         "onnxruntime (give a full-integer .tflite for LiteRT)")
    from .tflite_export import onnx_to_tflite

    return onnx_to_tflite(src.onnx)
