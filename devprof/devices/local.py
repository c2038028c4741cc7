"""The embedded `local` device: this machine, measured with the same protocol as a phone."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
from functools import cached_property
from pathlib import Path
from typing import Sequence

from ..artifacts.isa import cpu_flags, recorded_features
from ..records import DeviceInfo
from .base import Device, DeviceState, ExecResult, staging_digest



def _read(path: str, default: str = "") -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def parse_cpus(spec: str, available: int | None = None) -> list[int]:
    """Parse a CPU list such as ``0``, ``0-3`` or ``0,2,4-5`` (taskset's list format)."""
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            if not (a.isdigit() and b.isdigit()) or int(a) > int(b):
                raise ValueError(f"bad CPU range {part!r}")
            out.extend(range(int(a), int(b) + 1))
        elif part.isdigit():
            out.append(int(part))
        else:
            raise ValueError(f"bad CPU list {spec!r} (expected e.g. 0-3 or 0,2)")
    if available is not None and any(c >= available for c in out):
        raise ValueError(f"CPU list {spec!r} names CPUs this device does not have (0-{available - 1})")
    return out


class LocalDevice(Device):
    kind = "local"
    in_process = True

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = Path(cache_dir or os.environ.get("DEVPROF_CACHE", Path.home() / ".cache" / "devprof"))

    @property
    def name(self) -> str:
        return "local"

    @property
    def abi(self) -> str:
        m = platform.machine().lower()
        return {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64-v8a", "arm64": "arm64-v8a"}.get(m, m)

    @cached_property
    def _cpuinfo(self) -> dict[str, str]:
        fields: dict[str, str] = {}
        for line in _read("/proc/cpuinfo").splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                fields.setdefault(k.strip(), v.strip())
        return fields

    def info(self) -> DeviceInfo:
        ci = self._cpuinfo
        cpu = ci.get("model name") or ci.get("Hardware") or platform.processor() or platform.machine()
        isa = recorded_features(cpu_flags())
        osname = _read("/etc/os-release")
        pretty = next((l.split("=", 1)[1].strip('"') for l in osname.splitlines() if l.startswith("PRETTY_NAME=")),
                      platform.system())
        mem_kb = next((int(l.split()[1]) for l in _read("/proc/meminfo").splitlines() if l.startswith("MemTotal:")), 0)
        extra = {"hostname": platform.node(), "python": platform.python_version(),
                 "memory_gib": round(mem_kb / 2**20, 1), "max_freq_khz": self._max_freq()}
        return DeviceInfo(kind="local", name="local", model=cpu, cpu=cpu, abi=self.abi, cores=os.cpu_count() or 1,
                          isa=isa, os=pretty, kernel=platform.release(), extra=extra)

    def available_cpus(self, cpus: str = "") -> int:
        """The pinned CPUs, else those this process may run on (taskset, a container's cpuset),
        which can be fewer than the machine has."""
        if cpus:
            return super().available_cpus(cpus)
        try:
            return len(os.sched_getaffinity(0)) or 1
        except (AttributeError, OSError):  # not Linux
            return os.cpu_count() or 1

    @staticmethod
    def _max_freq() -> int:
        v = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "-1")
        return int(v) if v.lstrip("-").isdigit() else -1

    def state(self, cpus: str = "") -> DeviceState:
        cpu = parse_cpus(cpus)[0] if cpus else 0
        base = f"/sys/devices/system/cpu/cpu{cpu}/cpufreq"
        gov = _read(f"{base}/scaling_governor")
        f = _read(f"{base}/scaling_cur_freq", "-1")
        freq = int(f) if f.lstrip("-").isdigit() else -1
        if freq < 0:  # no cpufreq (VMs): /proc/cpuinfo's "cpu MHz" is the best there is
            mhz = self._cpu_mhz(cpu)
            freq = int(mhz * 1000) if mhz > 0 else -1
        return DeviceState(governor=gov, freq_khz=freq, temp_c=self._temperature())

    @staticmethod
    def _cpu_mhz(cpu: int) -> float:
        cur = -1
        for line in _read("/proc/cpuinfo").splitlines():
            if line.startswith("processor"):
                cur = int(line.split(":")[1])
            elif line.startswith("cpu MHz") and cur == cpu:
                try:
                    return float(line.split(":")[1])
                except ValueError:
                    return -1.0
        return -1.0

    @staticmethod
    def _temperature() -> float:
        temps = []
        for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*")):
            t = _read(str(zone / "temp"))
            if t.lstrip("-").isdigit():
                temps.append(int(t) / 1000.0)
        return max(temps) if temps else float("nan")

    def stage(self, files: Sequence[Path]) -> str:
        """Copy files into a content-addressed folder of the cache (hard links where possible)."""
        dest = self.cache_dir / "staged" / staging_digest(files)
        if (dest / ".complete").exists():
            return str(dest)
        tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for p in files:
            shutil.copy2(p, tmp / p.name)
        (tmp / ".complete").touch()
        try:
            tmp.rename(dest)
        except OSError:  # a concurrent run staged the same content first
            shutil.rmtree(tmp, ignore_errors=True)
        return str(dest)

    def execute(self, argv: Sequence[str], cwd: str, timeout_s: float, cpus: str = "") -> ExecResult:
        def pin() -> None:
            if cpus:
                os.sched_setaffinity(0, parse_cpus(cpus))

        try:
            p = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout_s,
                               preexec_fn=pin if cpus else None)
        except subprocess.TimeoutExpired as e:
            return ExecResult(-9, _text(e.stdout), _text(e.stderr), timed_out=True)
        return ExecResult(p.returncode, p.stdout, p.stderr)


def _text(b: bytes | str | None) -> str:
    if b is None:
        return ""
    return b if isinstance(b, str) else b.decode(errors="replace")
