"""Profiling a kernel suite on one device: specs -> (runtime, device) -> outcomes -> records.

The stages stay visible (as in TVM's measure.py): `plan` decides what to measure (skipping what
the dataset already holds), each runtime's `measure` builds, checks and times, and the
`devprof.session.Session` turns every outcome into a `Record` with full provenance and saves it
at once — so an interrupt or a dead device loses at most the kernel in flight, and `--resume`
picks up from there.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from .devices.base import Device
from .errors import DevprofError, UsageError
from .measure import Protocol
from .records import DeviceInfo, KernelSpec, Record, RuntimeInfo, record_key
from .runtimes import Runtime, get_runtime
from .runtimes.base import Outcome
from .session import DEFAULT_COOLDOWN_TIMEOUT_S, Session, Terminated, check_interrupt


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
    cooldown_timeouts: int = 0  # batches measured after the wait for --max-temp gave up
    saved_keys: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "saved_keys"}


def plan(device: Device, dinfo: DeviceInfo, specs: Sequence[KernelSpec], runtimes: Sequence[str], threads: int,
         session: Session) -> Plan:
    """Decide what to measure: supported (runtime, spec) pairs not yet in the dataset."""
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
            elif session.holds(record_key("kernel", s.id, dinfo.id, info.key)):
                already += 1
            else:
                todo.append(s)
        n = max(1, rt.batch_size_for(device))
        for i in range(0, len(todo), n):
            tasks.append(Task(rt, info, todo[i:i + n]))
    session.resume_rule(already, f"{already} of these measurements")
    return Plan(tasks, skipped, already)


def profile(device: Device, specs: Sequence[KernelSpec], runtimes: Sequence[str], out: str | os.PathLike,
            *, threads: int = 1, resume: bool = False, protocol: Protocol = Protocol(), suite: str = "",
            cooldown_s: float = 0.0, max_temp_c: float | None = None,
            cooldown_timeout_s: float = DEFAULT_COOLDOWN_TIMEOUT_S,
            on_plan: Callable[[Plan], None] | None = None,
            on_outcome: Callable[[Outcome, Record | None], None] | None = None,
            on_note: Callable[[str], None] | None = None) -> Summary:
    """Measure `specs` with each runtime on `device`, saving every record into the dataset `out`
    (one device: the same session a farm's writer uses)."""
    if threads < 1:
        raise UsageError("--threads must be >= 1")
    started = time.monotonic()
    session = Session(out, suite=suite, resume=resume, cooldown_s=cooldown_s, max_temp_c=max_temp_c,
                      cooldown_timeout_s=cooldown_timeout_s, on_note=on_note)
    summary = Summary(dataset=str(session.path), device=device.name)
    try:
        with session:
            dinfo = device.info()
            p = plan(device, dinfo, specs, runtimes, threads, session)
            check_interrupt()
            summary.skipped, summary.already = len(p.skipped), p.already
            if on_plan:
                on_plan(p)
            with session.pinned(device, protocol.cpus):
                for i, task in enumerate(p.tasks):
                    session.cool(device, first=(i == 0))
                    for o in session.measure(device, task.runtime, task.specs, threads, protocol):
                        rec = None
                        if o.ok:
                            rec = session.record_outcome(o, dinfo, task.info)
                            session.save([rec])
                            summary.measured += 1
                            summary.saved_keys.append(rec.key)
                        else:
                            entry = session.fail({"runtime": task.info.key, "device_id": dinfo.id,
                                                  "spec_id": o.spec.id, "spec_key": o.spec.key, "error": o.error})
                            summary.failed += 1
                            summary.failures.append(entry)
                        if on_outcome:
                            on_outcome(o, rec)
            session.compact()
    except KeyboardInterrupt:  # Ctrl-C, and SIGTERM via Terminated
        summary.interrupted = True
    finally:
        summary.cooldown_timeouts = session.cooldown_timeouts
        summary.seconds = round(time.monotonic() - started, 2)
    return summary


_Terminated = Terminated  # the farm's name for it


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
