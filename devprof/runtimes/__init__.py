"""Runtime registry: name -> "module:Class", imported only when used (imports are heavy)."""
from __future__ import annotations

import importlib

from ..errors import UsageError
from .base import Outcome, Runtime

RUNTIMES: dict[str, str] = {
    "onnxruntime": "devprof.runtimes.onnxruntime:OnnxRuntime",
    "litert": "devprof.runtimes.litert:LiteRT",
    "litert-builtin": "devprof.runtimes.litert:LiteRTBuiltin",
    "tflite-benchmark": "devprof.runtimes.phone_tools:TFLiteBenchmark",  # phones: TFLite benchmark_model
    "ort-perf-test": "devprof.runtimes.phone_tools:OrtPerfTest",  # phones: onnxruntime_perf_test
    "openblas": "devprof.runtimes.openblas:OpenBLASGemm",  # dense GEMM baseline (static OpenBLAS, any ABI)
    "devprof-c": "devprof.runtimes.harness:DevprofC",
}


def get_runtime(name: str) -> Runtime:
    """Instantiate a runtime by name, or fail with a one-line error listing the known ones."""
    target = RUNTIMES.get(name)
    if target is None:
        raise UsageError(f"unknown runtime {name!r} (known: {', '.join(sorted(RUNTIMES))})")
    mod, cls = target.split(":")
    return getattr(importlib.import_module(mod), cls)()


__all__ = ["RUNTIMES", "Outcome", "Runtime", "get_runtime"]
