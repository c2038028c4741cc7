"""ONNX Runtime (CPU execution provider) on the local device: one single-op model per kernel."""
from __future__ import annotations

import functools
import time
from typing import Callable, Iterator, Sequence

from ..artifacts import onnx_ops
from .reference import check_output, make_tensors, reference
from ..devices.base import Device
from ..measure import BLOCK, Protocol
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


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    batch_size = BLOCK  # kernels whose rounds alternate (devprof.measure); an interrupt loses at most these

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

    def session(self, model_bytes: bytes, threads: int):
        import onnxruntime as ort

        return ort.InferenceSession(model_bytes, session_options(threads), providers=["CPUExecutionProvider"])

    def measure(self, device: Device, specs: Sequence[KernelSpec], threads: int,
                protocol: Protocol) -> Iterator[Outcome]:
        ready: list[tuple[KernelSpec, Callable[[], object], float]] = []
        for spec in specs:
            started = time.time()
            try:
                tensors = make_tensors(spec)
                model, feeds = self.build(spec, tensors)
                sess = self.session(model.SerializeToString(), threads)
                y = sess.run(None, feeds)[0]
            except Exception as e:  # a build or run failure of this one kernel, not of the run
                yield Outcome(spec, error=f"onnxruntime failed: {str(e).splitlines()[0][:300]}", started_at=started,
                              finished_at=time.time())
                continue
            bad = check_output(spec, onnx_ops.output_to_nhwc(spec, y), reference(spec, tensors))
            if bad:
                yield Outcome(spec, error=bad, started_at=started, finished_at=time.time())
                continue
            ready.append((spec, functools.partial(sess.run, None, feeds), started))
        yield from timed_outcomes(device, ready, protocol, self.name)
