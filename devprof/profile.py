"""Profiling: specs -> (runtime, device) -> outcomes -> records in a dataset. The one run loop.

The stages stay visible (as in TVM's measure.py): `plan` decides what to measure (skipping what
the dataset already holds), each runtime's `measure` builds, checks and times, and `Session`
turns every outcome into a `Record` with full provenance and saves it at once — so an interrupt
or a dead device loses at most the kernel in flight, and `--resume` picks up from there.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from . import __version__
from .devices.base import Device
from .errors import DevprofError, UsageError
from .measure import Protocol
from .records import DeviceInfo, KernelSpec, Record, RuntimeInfo, record_key
from .runtimes import Runtime, get_runtime
from .runtimes.base import Outcome
from .store import Dataset


@dataclass
class Task:
    """One (runtime, batch of specs) unit of work."""

    runtime: Runtime
    info: RuntimeInfo
    specs: list[KernelSpec]


@dataclass
class Plan:
    tasks: list[Task]
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (runtime, spec key, reason)
    already: int = 0  # records the dataset holds already

    @property
    def total(self) -> int:
        return sum(len(t.specs) for t in self.tasks)


@dataclass
class Summary:
    dataset: str
    device: str
    measured: int = 0
    failed: int = 0
    skipped: int = 0
    already: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    failures: list[dict] = field(default_factory=list)
    saved_keys: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "saved_keys"}


def plan(device: Device, dinfo: DeviceInfo, specs: Sequence[KernelSpec], runtimes: Sequence[str], threads: int,
         dataset: Dataset, resume: bool) -> Plan:
    """Decide what to measure: supported (runtime, spec) pairs not yet in the dataset."""
    have = dataset.keys() if dataset.exists() else set()
    tasks, skipped, already = [], [], 0
    for name in runtimes:
        rt = get_runtime(name)
        why = rt.available(device)
        if why:
            raise UsageError(f"runtime {name} is not available on {device.name}: {why}")
        info = rt.info(device, threads)
        todo: list[KernelSpec] = []
        for s in specs:
            reason = rt.supports(s)
            if reason:
                skipped.append((name, s.key, reason))
            elif record_key("kernel", s.id, dinfo.id, info.key) in have:
                already += 1
            else:
                todo.append(s)
        n = max(1, rt.batch_size_for(device))
        for i in range(0, len(todo), n):
            tasks.append(Task(rt, info, todo[i:i + n]))
    if already and not resume:
        raise UsageError(f"{dataset.path} already holds {already} of these measurements; pass --resume to "
                         "measure only what is missing, or choose another --out")
    return Plan(tasks, skipped, already)


class _Terminated(KeyboardInterrupt):
    """Raised from the SIGTERM handler so a terminated run stops like an interrupted one."""


_interrupts = 0  # SIGINTs received; some C extensions' imports (ai_edge_litert) swallow the exception


def _on_sigint(signum, frame):  # noqa: ARG001
    global _interrupts
    _interrupts += 1
    raise KeyboardInterrupt


def _check_interrupt() -> None:
    """Honour a Ctrl-C whose KeyboardInterrupt a library swallowed (at the next kernel boundary)."""
    if _interrupts:
        raise KeyboardInterrupt


if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # the CLI: count Ctrl-C before imports
    try:
        signal.signal(signal.SIGINT, _on_sigint)
    except ValueError:  # imported outside the main thread
        pass


def profile(device: Device, specs: Sequence[KernelSpec], runtimes: Sequence[str], out: str | os.PathLike,
            *, threads: int = 1, resume: bool = False, protocol: Protocol = Protocol(), suite: str = "",
            cooldown_s: float = 0.0, max_temp_c: float | None = None,
            on_plan: Callable[[Plan], None] | None = None,
            on_outcome: Callable[[Outcome, Record | None], None] | None = None) -> Summary:
    """Measure `specs` with each runtime on `device`, saving every record into the dataset `out`."""
    if threads < 1:
        raise UsageError("--threads must be >= 1")
    global _interrupts
    _interrupts = 0  # a Ctrl-C handled by an earlier run in this process (farm, tests) is not ours
    started = time.monotonic()
    ds = Dataset(out)
    ds.lock()
    old_term = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):  # noqa: ARG001
        raise _Terminated()

    try:
        signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread (tests, farms): SIGTERM keeps its default
        old_term = None
    summary = Summary(dataset=str(ds.path), device=device.name)
    pinned_self = False
    try:
        dinfo = device.info()
        p = plan(device, dinfo, specs, runtimes, threads, ds, resume)
        _check_interrupt()
        summary.skipped, summary.already = len(p.skipped), p.already
        if on_plan:
            on_plan(p)
        if protocol.cpus and device.in_process:
            old_affinity = os.sched_getaffinity(0)
            os.sched_setaffinity(0, [int(c) for c in protocol.cpus.split(",")])
            pinned_self = True
        for i, task in enumerate(p.tasks):
            if i and (cooldown_s > 0 or max_temp_c is not None):
                device.cooldown(max_temp_c, cooldown_s)
            for o in task.runtime.measure(device, task.specs, threads, protocol):
                rec = None
                if o.ok:
                    rec = Record(o.spec, dinfo, task.info, o.measurement, "kernel", o.conditions,
                                 o.started_at, o.finished_at, __version__, o.harness_version, suite=suite,
                                 kernel=o.kernel)
                    ds.append([rec])
                    summary.measured += 1
                    summary.saved_keys.append(rec.key)
                else:
                    entry = {"time": time.time(), "runtime": task.info.key, "device_id": dinfo.id,
                             "spec_id": o.spec.id, "spec_key": o.spec.key, "error": o.error}
                    ds.log_failure(entry)
                    summary.failed += 1
                    summary.failures.append(entry)
                if on_outcome:
                    on_outcome(o, rec)
                _check_interrupt()
        ds.compact()
    except KeyboardInterrupt:  # Ctrl-C, and SIGTERM via _Terminated
        summary.interrupted = True
        _interrupts = 0
    finally:
        if pinned_self:
            os.sched_setaffinity(0, old_affinity)
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        ds.unlock()
        summary.seconds = round(time.monotonic() - started, 2)
    return summary


def default_runtimes(device: Device, suite_runtimes: Iterable[str]) -> list[str]:
    """The suite's runtimes that can run on this device; phones fall back to the harness."""
    names = list(suite_runtimes) or ["onnxruntime", "litert"]
    usable = []
    for n in names:
        try:
            if get_runtime(n).available(device) is None:
                usable.append(n)
        except DevprofError:
            continue
    if not usable and not device.in_process:
        usable = ["devprof-c"]
    return usable
