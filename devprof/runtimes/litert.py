"""LiteRT (the TFLite interpreter from ai-edge-litert) on the local device.

Two variants, recorded as different runtimes: `litert` (XNNPACK delegate, what apps get by
default) and `litert-builtin` (TFLite's own builtin kernels, no delegate).

int8 specs run as full-integer models (int8 activations: XNNPACK's QS8 kernels, which
requantize in fp32 and round half to even, exactly as the integer reference does). fp16 specs
run as fp16-weight models that XNNPACK computes in fp16 where the CPU has fp16 arithmetic
(`hostcpu.fp16_arithmetic`); elsewhere they are refused rather than timed as the fp32 kernel
they would be. Which kernels ran — XNNPACK or a builtin, per op — is read from the interpreter
after delegation and reported with the outcome (`Outcome.kernel`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from typing import Callable, Iterator, Sequence

import numpy as np

from ..artifacts import tflite_ops
from . import hostcpu
from .quantize import quantize_kernel, reference_q
from .reference import check_output, fp16_tensors, make_tensors, reference
from ..devices.base import Device
from ..measure import BLOCK, Protocol
from ..errors import one_line
from ..records import KernelSpec, RuntimeInfo
from .base import Outcome, Runtime, timed_outcomes


def _litert_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ai-edge-litert")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def ran_kernels(it) -> list[tuple[str, bool]]:
    """(op name, taken by a delegate) for each op of the model, read from the interpreter after
    delegation: an op was delegated when each tensor it produces leaves a DELEGATE node or is
    consumed only by delegated ops (a tensor a builtin hands to a delegate is that node's input)."""
    details = getattr(it, "_get_ops_details", None)  # the interpreter's own (private) op listing
    if details is None:
        return []
    ops = details()
    delegates = [o for o in ops if o["op_name"] == "DELEGATE"]
    plain = [o for o in ops if o["op_name"] != "DELEGATE"]
    d_out = {int(t) for d in delegates for t in d["outputs"]}
    d_in = {int(t) for d in delegates for t in d["inputs"]}
    taken: set[int] = set()
    for o in reversed(plain):  # ops are in execution order: consumers come later
        ok = bool(delegates)
        for t in map(int, o["outputs"]):
            consumers = [c for c in plain if t in set(map(int, c["inputs"]))]
            if t in d_out:
                continue
            if t in d_in or not consumers or any(c["index"] not in taken for c in consumers):
                ok = False
        if ok:
            taken.add(o["index"])
    return [(o["op_name"], o["index"] in taken) for o in plain]


def computed_in_fp16(y: np.ndarray) -> bool:
    """True when every output value is an fp16 number: what an fp16 computation returns, and what
    an fp32 one practically never does over more than a handful of values."""
    y = np.asarray(y, np.float32)
    return bool(np.array_equal(y, y.astype(np.float16).astype(np.float32)))


_delegate_announced = False


def new_interpreter(model: bytes, threads: int, xnnpack: bool):
    """A LiteRT interpreter for `model`, tensors allocated (XNNPACK on or off).

    TFLite announces its XNNPACK delegate once per process, straight on file descriptor 2
    ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU."), in the middle of devprof's
    progress and one-line errors; that line is dropped and anything else written meanwhile kept.
    """
    global _delegate_announced
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kind = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if _delegate_announced or not xnnpack:
        it = Interpreter(model_content=model, num_threads=threads, experimental_op_resolver_type=kind)
        it.allocate_tensors()
        return it
    with _native_stderr_without("INFO: Created TensorFlow Lite"):
        it = Interpreter(model_content=model, num_threads=threads, experimental_op_resolver_type=kind)
        it.allocate_tensors()
    _delegate_announced = True
    return it


@contextlib.contextmanager
def _native_stderr_without(prefix: str):
    """Run the body with file descriptor 2 captured; write back every line not starting with `prefix`."""
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [x for x in tmp.read().splitlines(keepends=True) if not x.startswith(prefix.encode())]
            if kept:
                os.write(2, b"".join(kept))


class LiteRT(Runtime):
    name = "litert"
    xnnpack = True
    batch_size = BLOCK  # kernels whose rounds alternate (devprof.measure); an interrupt loses at most these
    #: How the int8 kernels requantize: XNNPACK's QS8 (fp32, half to even); TFLite's builtin kernels
    #: use a fixed-point multiplier, within the stated 1 LSB of it.
    rounding = "half_even"

    def available(self, device: Device) -> str | None:
        if not device.in_process:
            return f"{self.name} runs in-process on local only (on phones use benchmark_model)"
        return None

    def supports(self, spec: KernelSpec) -> str | None:
        why = tflite_ops.supports(spec)
        if why or spec.dtype != "fp16":
            return why
        if not self.xnnpack:
            return "fp16: TFLite's builtin kernels compute fp16-weight models in fp32 (XNNPACK computes in fp16)"
        why = hostcpu.fp16_arithmetic()
        return f"fp16: {why}" if why else None

    def info(self, device: Device, threads: int) -> RuntimeInfo:
        return RuntimeInfo(self.name, _litert_version(), threads, {"xnnpack": self.xnnpack})

    def interpreter(self, model: bytes, threads: int):
        return new_interpreter(model, threads, self.xnnpack)

    def build(self, spec: KernelSpec):
        """(model bytes, feeds, expected output) for any dtype: the output the check compares with
        is the float64 reference, or for int8 the integer reference."""
        tensors = make_tensors(spec)
        if spec.dtype == "int8":
            qk = quantize_kernel(spec, tensors, "int8")
            model, feeds, pads = tflite_ops.build_int8_model(spec, qk)
            return model, feeds, reference_q(qk, pads, self.rounding)
        if spec.dtype == "fp16":
            tensors = fp16_tensors(tensors)  # the model holds these values exactly
        model, feeds, pads = tflite_ops.build_model(spec, tensors)
        return model, feeds, reference(spec, tensors, pads)

    def checked(self, spec: KernelSpec, threads: int) -> tuple[Callable[[], object] | None, str, str]:
        """Build and check one kernel: (the call to time, kernels that ran, "") or (None, kernels, why not)."""
        why = self.supports(spec)
        if why:
            return None, "", why
        model, feeds, want = self.build(spec)
        it = self.interpreter(model, threads)
        for d, arr in zip(it.get_input_details(), feeds.values()):
            it.set_tensor(d["index"], np.ascontiguousarray(arr, dtype=d["dtype"]))
        it.invoke()
        y = it.get_tensor(it.get_output_details()[0]["index"]).copy()
        kernels = ",".join(f"{op}:{'xnnpack' if taken else 'builtin'}" for op, taken in ran_kernels(it)
                           if op != "DEQUANTIZE")
        if spec.dtype == "fp16":
            if not computed_in_fp16(y):
                return None, kernels, "fp16: XNNPACK computed the fp16 model in fp32 on this CPU"
            kernels += " fp16"
        bad = check_output(spec, y, want)
        return (None, kernels, bad) if bad else (it.invoke, kernels, "")

    def measure(self, device: Device, specs: Sequence[KernelSpec], threads: int,
                protocol: Protocol) -> Iterator[Outcome]:
        ready: list[tuple[KernelSpec, Callable[[], object], float]] = []
        kernels: dict[str, str] = {}
        for spec in specs:
            started = time.time()
            try:
                call, kernels[spec.id], bad = self.checked(spec, threads)
            except Exception as e:  # this kernel failed, not the run
                why = one_line((str(e).splitlines() or [type(e).__name__])[0], 300)
                yield Outcome(spec, error=f"{self.name} failed: {why}", started_at=started, finished_at=time.time())
                continue
            if call is None:
                yield Outcome(spec, error=bad, started_at=started, finished_at=time.time(), kernel=kernels[spec.id])
                continue
            ready.append((spec, call, started))
        for o in timed_outcomes(device, ready, protocol, self.name):
            yield dataclasses.replace(o, kernel=kernels.get(o.spec.id, ""))


class LiteRTBuiltin(LiteRT):
    name = "litert-builtin"
    xnnpack = False
