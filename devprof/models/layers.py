"""The types every part of devprof shares about a model's layers: what the graph walks produce
(`Layer`, `ModelLayers`) and what whole-model timings hold (`ModelTiming`).

They live apart from the walks, the profilers and the readers of timing files, so that each of
those imports them and none imports another for its types (the ONNX walk and the .tflite walk,
the nn-Meter reader and the whole-model fit).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..records import KernelSpec


@dataclass
class Layer:
    """One layer of a model: its spec, the graph nodes folded into it, and where it sits."""

    index: int
    name: str  # the name of the node that carries the computation (the conv, the pool...)
    spec: KernelSpec
    nodes: list[str] = field(default_factory=list)  # every original node folded into the layer
    ops: list[str] = field(default_factory=list)  # their op types, same order
    output: str = ""  # tensor the layer produces (after its fused ops)

    @property
    def known(self) -> bool:
        return self.spec.op != "other"

    def shape_str(self) -> str:
        s = self.spec
        if s.op in ("fc",):
            return f"{s.cin}->{s.cout}"
        core = f"{s.h}x{s.w}x{s.cin}"
        if s.op in ("conv2d", "dwconv2d", "pwconv") or (s.op == "other" and s.kh > 1):
            return f"{core} k{s.kh} s{s.stride} ->{s.out_h}x{s.out_w}x{s.cout}"
        return core if s.cout == s.cin else f"{core}->{s.cout}"


@dataclass
class ModelLayers:
    """The walk's result: the layers in execution order plus what identifies the model."""

    name: str
    layers: list[Layer]
    source: str  # "onnx" | "tflite"
    fusion: str
    input_shape: tuple = ()

    @property
    def specs(self) -> list[KernelSpec]:
        return [l.spec for l in self.layers]

    @property
    def unknown(self) -> list[Layer]:
        return [l for l in self.layers if not l.known]

    def by_node(self) -> dict[str, int]:
        """Original node name -> layer index (how runtime profiles are mapped back)."""
        return {n: l.index for l in self.layers for n in l.nodes}

    def __len__(self) -> int:
        return len(self.layers)


@dataclass
class ModelTiming:
    """One whole model: its layer ids in execution order and its end-to-end latency (µs)."""

    name: str
    layers: list[str]
    latency_us: float
    specs: dict[str, KernelSpec] = field(default_factory=dict)  # optional: a KernelSpec per layer id
