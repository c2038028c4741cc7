"""ONNX Runtime (CPU execution provider) on the local device: one single-op model per kernel.

int8 specs run as QDQ models with uint8 activations and int8 per-channel weights (7-bit on x86
without VNNI: `hostcpu.x86_without_vnni`). Before timing, the check run is profiled and the
kernels ORT actually ran are read back: a model ORT did not fuse into integer kernels (any
DequantizeLinear/QuantizeLinear left running means the op computed in float) is refused, and
the kernels that ran are reported with the outcome (`Outcome.kernel`, e.g. ``QLinearConv``).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import tempfile
import time
from typing import Callable, Iterator, Sequence

from ..artifacts import onnx_ops
from . import hostcpu
from .quantize import WEIGHT_QMAX, WEIGHT_QMAX_7BIT, quantize_kernel, reference_q
from .reference import check_output, make_tensors, reference
from ..devices.base import Device
from ..measure import BLOCK, Protocol
from ..errors import one_line
from ..records import KernelSpec, RuntimeInfo
from .base import Outcome, Runtime, timed_outcomes


def session_options(threads: int, profile_prefix: str | None = None):
    """Session options for every ORT measurement (single-op kernels and whole models alike):
    fixed intra-op threads, sequential execution, full graph optimisation, no spinning at 1 thread."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if threads == 1:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return so


#: How ORT's integer kernels requantize (MLAS: fp32 multiply, round half to even), the reference's rounding.
ROUNDING = "half_even"
#: ORT ops that mean a QDQ group was not fused: the op between them computed in float.
_FLOAT_QDQ = ("DequantizeLinear", "QuantizeLinear")


def profiled_kernels(sess) -> list[str]:
    """The ops ORT ran in a profiled session's runs so far, in order of first run (ends profiling)."""
    path = sess.end_profiling()
    try:
        with open(path) as f:
            events = json.load(f)
    finally:
        os.unlink(path)
    seen: dict[str, None] = {}
    for e in events:
        if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time"):
            seen.setdefault(str(e.get("args", {}).get("op_name", "?")), None)
    return list(seen)


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    batch_size = BLOCK  # kernels whose rounds alternate (devprof.measure); an interrupt loses at most these
    act_dtype = "uint8"  # int8 specs: activations ORT's x86 QDQ fusion turns into QLinearConv

    def available(self, device: Device) -> str | None:
        if not device.in_process:
            return "onnxruntime runs in-process on local only (on phones use onnxruntime_perf_test)"
        return None

    def supports(self, spec: KernelSpec) -> str | None:
        return onnx_ops.supports(spec)

    def info(self, device: Device, threads: int) -> RuntimeInfo:
        import onnxruntime as ort

        return RuntimeInfo(self.name, ort.__version__, threads,
                           {"ep": "CPUExecutionProvider", "graph_optimization": "all"})

    def build(self, spec: KernelSpec, tensors: dict):
        """The single-op model and its feeds (a seam: a subclass may build differently)."""
        return onnx_ops.build_model(spec, tensors)

    def weight_qmax(self) -> int:
        """127; 63 (7-bit weights, ORT's `reduce_range`) on x86 without VNNI, where MLAS's u8 x s8
        kernels add pairs of products in saturating 16-bit lanes and full-range weights overflow."""
        return WEIGHT_QMAX_7BIT if hostcpu.x86_without_vnni() else WEIGHT_QMAX

    def build_int8(self, spec: KernelSpec, tensors: dict):
        """(model, feeds, quantized tensors) of an int8 spec: QDQ, uint8 activations."""
        qk = quantize_kernel(spec, tensors, self.act_dtype, self.weight_qmax())
        model, feeds = onnx_ops.build_qdq_model(spec, qk)
        return model, feeds, qk

    def session(self, model_bytes: bytes, threads: int, profile_prefix: str | None = None):
        import onnxruntime as ort

        return ort.InferenceSession(model_bytes, session_options(threads, profile_prefix),
                                    providers=["CPUExecutionProvider"])

    def checked(self, spec: KernelSpec, threads: int) -> tuple[Callable[[], object] | None, str, str]:
        """Build and check one kernel: (the call to time, kernels that ran, "") or (None, kernels, why not)."""
        why = self.supports(spec)
        if why:
            return None, "", why
        tensors = make_tensors(spec)
        if spec.dtype != "int8":
            model, feeds = self.build(spec, tensors)
            sess = self.session(model.SerializeToString(), threads)
            y = sess.run(None, feeds)[0]
            bad = check_output(spec, onnx_ops.output_to_nhwc(spec, y), reference(spec, tensors))
            return (None, "", bad) if bad else (functools.partial(sess.run, None, feeds), "", "")
        model, feeds, qk = self.build_int8(spec, tensors)
        data = model.SerializeToString()
        with tempfile.TemporaryDirectory(prefix="devprof-ort-") as tmp:
            probe = self.session(data, threads, os.path.join(tmp, "check"))
            y = probe.run(None, feeds)[0]
            ran = profiled_kernels(probe)
        kernels = ",".join(ran)
        if any(k in _FLOAT_QDQ for k in ran):
            return None, kernels, (f"onnxruntime did not fuse the QDQ model into integer kernels (ran {kernels}): "
                                   "the op computed in float")
        bad = check_output(spec, onnx_ops.output_to_nhwc(spec, y), reference_q(qk, rounding=ROUNDING))
        if bad:
            return None, kernels, bad
        sess = self.session(data, threads)
        return functools.partial(sess.run, None, feeds), kernels, ""

    def measure(self, device: Device, specs: Sequence[KernelSpec], threads: int,
                protocol: Protocol) -> Iterator[Outcome]:
        ready: list[tuple[KernelSpec, Callable[[], object], float]] = []
        kernels: dict[str, str] = {}
        for spec in specs:
            started = time.time()
            try:
                call, kernels[spec.id], bad = self.checked(spec, threads)
            except Exception as e:  # a build or run failure of this one kernel, not of the run
                yield Outcome(spec, error=f"onnxruntime failed: {one_line((str(e).splitlines() or [type(e).__name__])[0], 300)}",
                              started_at=started, finished_at=time.time())
                continue
            if call is None:
                yield Outcome(spec, error=bad, started_at=started, finished_at=time.time(), kernel=kernels[spec.id])
                continue
            ready.append((spec, call, started))
        for o in timed_outcomes(device, ready, protocol, self.name):
            yield dataclasses.replace(o, kernel=kernels.get(o.spec.id, ""))
