"""A tiny phone-side runtime for farm tests and bench/farm_scaling: one shell program per batch.

Why: the farm's scheduling (work queue, disconnects, cooldowns, one writer) must be exercised on
the real adb path — real adb servers, emulated phones, real push and shell — with kernels whose
duration is known and cheap for a 2-core CI machine. Each "kernel" sleeps `DEVPROF_PROBE_KERNEL_S`
seconds on the phone and reports the time it took, as the native harness reports its samples.
It is a test double for the `devprof-c` harness runtime only; the farm code under test is real.
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator, Sequence

from devprof.measure import Protocol
from devprof.records import KernelSpec, Measurement, RuntimeInfo
from devprof.runtimes.base import Outcome, Runtime
from devprof.runtimes.conditions import conditions_from

SCRIPT_NAME = "farm-probe.sh"
SCRIPT = """#!/bin/sh
# farm-probe: each argument after the first is a kernel id; each "kernel" sleeps $1 seconds.
k=$1; shift
for id in "$@"; do
  t0=$(date +%s%N); sleep "$k"; t1=$(date +%s%N)
  echo "$id $(( (t1 - t0) / 1000 ))"
done
"""


_LOCK = threading.Lock()  # farm workers are threads of one process


def _script() -> Path:
    with _LOCK:
        return _write_script()


def _write_script() -> Path:
    d = Path(os.environ.get("DEVPROF_CACHE") or tempfile.gettempdir()) / "farm-probe"
    d.mkdir(parents=True, exist_ok=True)
    p = d / SCRIPT_NAME
    if not p.exists() or p.read_text() != SCRIPT:
        tmp = d / f".{SCRIPT_NAME}.{os.getpid()}"
        tmp.write_text(SCRIPT)
        tmp.chmod(0o755)
        os.replace(tmp, p)
    return p


class ProbeRuntime(Runtime):
    name = "farm-probe"

    def __init__(self) -> None:
        self.kernel_s = float(os.environ.get("DEVPROF_PROBE_KERNEL_S", "0.05"))
        self.batch_size = int(os.environ.get("DEVPROF_PROBE_BATCH", "2"))

    def supports(self, spec: KernelSpec) -> str | None:
        return None

    def info(self, device, threads: int) -> RuntimeInfo:
        return RuntimeInfo(self.name, "1", threads)

    def measure(self, device, specs: Sequence[KernelSpec], threads: int, protocol: Protocol) -> Iterator[Outcome]:
        remote = device.stage([_script()])
        t0 = time.time()
        r = device.execute(["sh", SCRIPT_NAME, str(self.kernel_s), *(s.id for s in specs)], remote,
                           timeout_s=30 + self.kernel_s * len(specs), cpus=protocol.cpus)
        t1 = time.time()
        before = getattr(r, "state_before", None)
        cond = conditions_from(before, r.state_after, protocol.cpus) if before is not None else None
        got: dict[str, float] = {}
        for line in r.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                got[parts[0]] = float(parts[1])
        for s in specs:
            if s.id in got:
                kw = {"conditions": cond} if cond is not None else {}
                yield Outcome(s, Measurement((got[s.id],)), started_at=t0, finished_at=t1, **kw)
            else:
                yield Outcome(s, error=f"probe exited {r.returncode} without a result: {r.stderr.strip()[:120]}",
                              started_at=t0, finished_at=t1)
