"""LiteRT (the TFLite interpreter from ai-edge-litert) on the local device.

Two variants, recorded as different runtimes: `litert` (XNNPACK delegate, what apps get by
default) and `litert-builtin` (TFLite's own builtin kernels, no delegate).
"""
from __future__ import annotations

import time
from typing import Callable, Iterator, Sequence

import numpy as np

from ..artifacts import tflite_ops
from .reference import check_output, make_tensors, reference
from ..devices.base import Device
from ..measure import BLOCK, Protocol
from ..records import KernelSpec, RuntimeInfo
from .base import Outcome, Runtime, timed_outcomes


def _litert_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ai-edge-litert")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


class LiteRT(Runtime):
    name = "litert"
    xnnpack = True
    batch_size = BLOCK  # kernels whose rounds alternate (devprof.measure); an interrupt loses at most these

    def available(self, device: Device) -> str | None:
        if not device.in_process:
            return f"{self.name} runs in-process on local only (on phones use benchmark_model)"
        return None

    def supports(self, spec: KernelSpec) -> str | None:
        return tflite_ops.supports(spec)

    def info(self, device: Device, threads: int) -> RuntimeInfo:
        return RuntimeInfo(self.name, _litert_version(), threads, {"xnnpack": self.xnnpack})

    def interpreter(self, model: bytes, threads: int):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        kind = OpResolverType.AUTO if self.xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        it = Interpreter(model_content=model, num_threads=threads, experimental_op_resolver_type=kind)
        it.allocate_tensors()
        return it

    def measure(self, device: Device, specs: Sequence[KernelSpec], threads: int,
                protocol: Protocol) -> Iterator[Outcome]:
        ready: list[tuple[KernelSpec, Callable[[], object], float]] = []
        for spec in specs:
            started = time.time()
            try:
                tensors = make_tensors(spec)
                model, feeds, pads = tflite_ops.build_model(spec, tensors)
                it = self.interpreter(model, threads)
                details = it.get_input_details()
                for d, arr in zip(details, feeds.values()):
                    it.set_tensor(d["index"], np.ascontiguousarray(arr, dtype=np.float32))
                it.invoke()
                y = it.get_tensor(it.get_output_details()[0]["index"]).copy()
            except Exception as e:  # this kernel failed, not the run
                yield Outcome(spec, error=f"{self.name} failed: {str(e).splitlines()[0][:300]}", started_at=started,
                              finished_at=time.time())
                continue
            bad = check_output(spec, y, reference(spec, tensors, pads))
            if bad:
                yield Outcome(spec, error=bad, started_at=started, finished_at=time.time())
                continue
            ready.append((spec, it.invoke, started))
        yield from timed_outcomes(device, ready, protocol, self.name)


class LiteRTBuiltin(LiteRT):
    name = "litert-builtin"
    xnnpack = False
