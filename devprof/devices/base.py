"""The Device seam: where kernels run. It knows transport, fingerprint and thermal state only.

`local` runs on this machine; `adb` (devices/adb.py) on a phone through an adb server. Runtimes
ask a device to stage files (`stage`) and run a program (`execute`); in-process runtimes (ONNX
Runtime, LiteRT) only run where `in_process` is true.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..records import DeviceInfo


@dataclass(frozen=True)
class DeviceState:
    """A snapshot of what changes under a measurement: frequency, governor, temperature."""

    governor: str = ""
    freq_khz: int = -1  # current frequency of the first pinned (or first) CPU
    temp_c: float = float("nan")


@dataclass(frozen=True)
class ExecResult:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False


def staging_digest(files: Sequence[Path]) -> str:
    """Content address of a set of files (names and bytes): the folder they are staged in, so an
    unchanged batch is never transferred twice, on this host or on a phone."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(files, key=lambda p: p.name):
        d = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                d.update(chunk)
        h.update(p.name.encode() + b"\0" + d.hexdigest().encode() + b"\0")
    return h.hexdigest()[:16]


class Device(ABC):
    kind: str = ""
    #: True when Python runtimes (ORT, LiteRT) can run kernels in this process.
    in_process: bool = False

    @property
    @abstractmethod
    def name(self) -> str: ...

    @abstractmethod
    def info(self) -> DeviceInfo:
        """The fingerprint that goes into every record."""

    @property
    @abstractmethod
    def abi(self) -> str:
        """Binary ABI for native artifacts: ``x86_64`` or ``arm64-v8a``."""

    @property
    def cpu_features(self) -> frozenset[str]:
        """The CPU features its fingerprint records (`DeviceInfo.isa`: /proc/cpuinfo names such as
        ``asimddp``, ``asimdhp``): what decides which kernels devprof-c builds for it."""
        return frozenset(self.info().isa)

    @abstractmethod
    def state(self, cpus: str = "") -> DeviceState: ...

    @abstractmethod
    def stage(self, files: Sequence[Path]) -> str:
        """Make `files` available on the device in one content-addressed folder; return its path
        there. Files already present (same content) are not transferred again."""

    @abstractmethod
    def execute(self, argv: Sequence[str], cwd: str, timeout_s: float, cpus: str = "") -> ExecResult:
        """Run argv (no shell interpretation of its items) in `cwd`, pinned to `cpus` if given."""

    def resolve_cores(self, cores: str) -> str:
        """Turn a `--cores` value (a CPU list such as ``0-3``; phones also take cluster names
        ``little``/``mid``/``big``/``prime``) into a CPU list string, validated for this device."""
        from ..errors import UsageError
        from .local import parse_cpus

        if not cores:
            return ""
        n = self.info().cores or None
        try:
            cpus = parse_cpus(cores, n)
        except ValueError as e:
            raise UsageError(f"--cores {cores!r}: {e}") from None
        if not cpus:
            raise UsageError(f"--cores {cores!r} names no CPU")
        return ",".join(str(c) for c in cpus)

    def available_cpus(self, cpus: str = "") -> int:
        """How many CPUs a run on this device may use: those of `cpus` (a `resolve_cores` list)
        when pinned, else all of the device's."""
        if cpus:
            return len([c for c in cpus.split(",") if c.strip()])
        return self.info().cores or 1

    def check_threads(self, threads: int, cpus: str = "", oversubscribe: bool = False) -> None:
        """Refuse more threads than the CPUs the run may use (`available_cpus`), unless
        `oversubscribe`: the extra threads wait for a CPU, so the timings measure the scheduler's
        time-sharing rather than the kernel, and every record would look valid."""
        from ..errors import UsageError

        n = self.available_cpus(cpus)
        if threads > n and not oversubscribe:
            where = f"the {n} CPU{'s' if n != 1 else ''} " + (f"pinned with --cores ({cpus})" if cpus
                                                              else f"available on {self.name}")
            raise UsageError(f"--threads {threads} is more than {where}: the timings would measure time-sharing, "
                             f"not the kernels; use --threads {n} or fewer, or add --oversubscribe to measure "
                             "anyway")

    def wait_cool(self, max_temp_c: float, timeout_s: float = 120.0) -> bool:
        """Wait until the device is at most `max_temp_c`; False when `timeout_s` passed first
        (a device without a readable sensor counts as cool: there is nothing to wait for)."""
        import time

        deadline = time.monotonic() + timeout_s
        while True:
            t = self.state().temp_c
            if not (t == t) or t <= max_temp_c:  # NaN: no sensor, nothing to wait for
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))

    def cooldown(self, max_temp_c: float | None = None, pause_s: float = 0.0, timeout_s: float = 120.0) -> bool:
        """Pause `pause_s`, then wait until the device is cool enough; True when the wait gave up."""
        import time

        if pause_s > 0:
            time.sleep(pause_s)
        return max_temp_c is not None and not self.wait_cool(max_temp_c, timeout_s)
