"""The Runtime seam: what executes kernels, independent of where (the Device) they run.

A runtime turns a batch of `KernelSpec`s into `Outcome`s on a device. It knows how its artifacts
are built (single-op ONNX/TFLite models, generated C) and how to read its own output; it never
writes records — `devprof.profile` does that with the provenance it adds.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from ..errors import one_line
from ..measure import Protocol, measure_interleaved
from ..records import Conditions, KernelSpec, Measurement, RuntimeInfo

if TYPE_CHECKING:  # pragma: no cover
    from ..devices.base import Device


#: What in-process runtimes, the harness and the phone tools check every kernel's output against
#: before timing it (devprof.runtimes.reference).
CHECKED = "numpy reference"


@dataclass(frozen=True)
class Outcome:
    """What running one spec produced: a measurement, or an error saying why not."""

    spec: KernelSpec
    measurement: Measurement | None = None
    error: str = ""  # one line; set when measurement is None
    conditions: Conditions = field(default_factory=Conditions)
    harness_version: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    #: The runtime's own kernels that computed it, where the runtime reports them (ORT's profile:
    #: "QLinearConv"; LiteRT: "CONV_2D:xnnpack"); "" when not read. Not yet stored in records.
    kernel: str = ""
    #: What the output was compared with before it was timed ("numpy reference"); "" when the
    #: outcome is a failure. Only a checked outcome becomes a record (devprof.session).
    checked: str = ""

    @property
    def ok(self) -> bool:
        return self.measurement is not None and not self.error


class Runtime(ABC):
    """A way of executing kernels. Subclasses set `name` and implement the three methods."""

    name: str = ""
    #: Preferred number of specs per `measure` call (the harness batches; in-process runtimes
    #: take one at a time so every finished kernel is saved at once).
    batch_size: int = 1

    def batch_size_for(self, device: "Device") -> int:
        """Specs per `measure` call on `device` (phones want large batches: each adb round trip
        costs ~20 ms, and a dying phone's finished kernels are kept anyway)."""
        return self.batch_size

    def available(self, device: "Device") -> str | None:
        """None when usable on `device`, else a one-line reason (e.g. not installed)."""
        return None

    @abstractmethod
    def supports(self, spec: KernelSpec) -> str | None:
        """None when this runtime can execute `spec`, else a short reason."""

    @abstractmethod
    def info(self, device: "Device", threads: int) -> RuntimeInfo:
        """Name, version, threads and options, as they go into every record."""

    @abstractmethod
    def measure(self, device: "Device", specs: Sequence[KernelSpec], threads: int,
                protocol: Protocol) -> Iterator[Outcome]:
        """Check each kernel's output against the numpy reference, then time it.

        Yields one `Outcome` per spec, as soon as it is known. A wrong answer yields an
        Outcome with `error` set and no measurement (never recorded as a timing).
        """


def timed_outcomes(device: "Device", ready: Sequence[tuple[KernelSpec, Callable[[], object], float]],
                   protocol: Protocol, runtime: str) -> Iterator[Outcome]:
    """Time checked in-process kernels together (alternating rounds) and yield their outcomes.

    `ready` holds (spec, one call, time its build started), timed in blocks of `protocol.block`.
    A block shares its conditions (frequency/temperature before and after) and its finish time.
    """
    from .conditions import conditions_around

    step = max(1, protocol.block)
    for i in range(0, len(ready), step):
        block = ready[i:i + step]
        with conditions_around(device) as cond:
            results = measure_interleaved([fn for _, fn, _ in block], protocol)
        yield from _outcomes(block, results, cond.result, runtime)


def _outcomes(block, results, conditions, runtime: str) -> Iterator[Outcome]:
    finished = time.time()
    for (spec, _, started), res in zip(block, results):
        if isinstance(res, Exception):
            why = one_line((str(res).splitlines() or [type(res).__name__])[0], 300)
            yield Outcome(spec, error=f"{runtime} failed while timed: {why}", started_at=started, finished_at=finished)
        else:
            yield Outcome(spec, res, conditions=conditions, started_at=started, finished_at=finished,
                          checked=CHECKED)
