"""A model run's results (`ModelRun`, its `LayerRow`s) and the specs of its records (the
``model`` record and the ``(overhead)`` term), shared by every profiler of whole models: local
(`devprof.model_profiling.profile`), pruned (`prune`) and phones (`phone`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..records import KernelSpec, Measurement, Record
from ..models.layers import Layer, ModelLayers
from ..models.sources import ModelSource

#: The layer name of the per-model overhead term's record.
OVERHEAD_NAME = "(overhead)"


@dataclass
class LayerRow:
    layer: Layer
    measurement: Measurement | None  # None: no kernel ran for it (fused away by the runtime)
    reorder_us: float = 0.0


@dataclass
class ModelRun:
    """One model on one runtime: its end-to-end time, its layers (ORT) and the records written."""

    name: str
    runtime: str
    run_id: str
    model_hash: str
    e2e: Measurement | None = None
    rows: list[LayerRow] = field(default_factory=list)
    overhead_us: float = 0.0
    interleaved_us: float = float("nan")  # median of clean runs interleaved with the profiled ones
    profiled_us: float = float("nan")  # median wall time of the profiled runs
    framework_us: float = float("nan")  # median time per profiled run spent outside kernels
    cpu_us: float = float("nan")  # median CPU time of the clean runs (1 thread: immune to preemption)
    unmapped: list[str] = field(default_factory=list)
    error: str = ""
    records: list[Record] = field(default_factory=list)
    skipped: bool = False  # already in the dataset (--resume)

    @property
    def layer_sum_us(self) -> float:
        return float(sum(r.measurement.median_us for r in self.rows if r.measurement is not None))

    @property
    def reference_us(self) -> float:
        """The end-to-end figure the layers are compared with: the clean runs interleaved with the
        profiled ones (same machine load), else the protocol's end-to-end median."""
        if self.interleaved_us == self.interleaved_us:
            return self.interleaved_us
        return self.e2e.median_us if self.e2e else float("nan")

    @property
    def gap(self) -> float:
        """(end-to-end − Σ layer medians) / end-to-end; the overhead term's share."""
        if not self.e2e or not self.rows:
            return float("nan")
        return (self.reference_us - self.layer_sum_us) / self.reference_us

    @property
    def gap_cpu(self) -> float:
        """(end-to-end CPU time − Σ layer medians) / end-to-end CPU time (1 thread only): the same
        check with preemption by other processes taken out of the end-to-end side."""
        if not self.rows or self.cpu_us != self.cpu_us or self.cpu_us <= 0:
            return float("nan")
        return (self.cpu_us - self.layer_sum_us) / self.cpu_us

    def to_dict(self) -> dict:
        return {"model": self.name, "runtime": self.runtime, "model_run_id": self.run_id, "hash": self.model_hash,
                "e2e_median_us": self.e2e.median_us if self.e2e else None, "layers": len(self.rows),
                "layer_sum_us": self.layer_sum_us if self.rows else None,
                "interleaved_e2e_us": _num(self.interleaved_us), "profiled_run_us": _num(self.profiled_us),
                "gap": _num(self.gap), "overhead_us": self.overhead_us, "framework_us": _num(self.framework_us),
                "e2e_cpu_us": _num(self.cpu_us), "gap_cpu": _num(self.gap_cpu),
                "unmapped_kernels": self.unmapped, "error": self.error, "skipped": self.skipped}


def _num(v: float) -> float | None:
    return None if v != v else round(float(v), 4)


def model_spec(src: ModelSource, ml: ModelLayers, prune: str = "") -> KernelSpec:
    n, h, w, c = (tuple(ml.input_shape) + (1, 1, 1, 1))[:4] if ml.source == "tflite" else _nhwc(ml.input_shape)
    attrs = {"model": src.name, "hash": src.content_hash, "layers": len(ml), "fusion": ml.fusion}
    if src.family:
        attrs["family"] = src.family
    if prune:
        attrs["prune"] = prune
    dtype = "fp32"
    if src.onnx is not None:
        from ..models.quantize import is_quantized

        dtype = "int8" if is_quantized(src.onnx) else "fp32"
    return KernelSpec(op="model", n=n, h=h, w=w, cin=c, cout=c, bias=False, dtype=dtype, attrs=attrs)


def _nhwc(shape: tuple) -> tuple:
    s = tuple(shape) + (1,) * (4 - len(shape))
    return s[0], s[2], s[3], s[1]


def overhead_spec(src: ModelSource) -> KernelSpec:
    return KernelSpec(op="other", bias=False, attrs={"term": "overhead", "model": src.name, "hash": src.content_hash})


def run_error(e: Exception) -> str:
    """What a model run that failed records in its failure log: one model failing on one runtime
    must not end the suite. The one exception: the dataset refusing a record it already holds
    (`--resume` missing), which is re-raised, since every later run would be refused too."""
    from ..errors import DevprofError, UsageError, one_line

    if isinstance(e, UsageError) and "already holds" in str(e):
        raise e
    if isinstance(e, DevprofError):
        return str(e)
    return f"{type(e).__name__}: {one_line((str(e).splitlines() or [''])[0], 200)}"
