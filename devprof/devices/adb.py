"""Phones over adb: the `adb` device backend (adbutils talking to an adb server).

Why it looks the way it does: every adbutils shell call costs ~20 ms by itself (a version check
and a 10 ms sleep on close), so the backend spends round trips like money:

* the fingerprint (getprop, every CPU's cpufreq, thermal zones, battery, kernel, the CPU features
  of /proc/cpuinfo) is ONE shell call;
* `stage` is ONE sync session: STAT the folder's completion marker, and only when it is missing
  SEND every file and then the marker (content-addressed, ``/data/local/tmp/devprof/<hash>/``);
* `execute` is ONE shell call per batch: frequency and temperature are read on the phone just
  before and just after the run (so throttling is caught without extra calls), the program runs
  under ``timeout`` (a hung kernel cannot hang the batch) and ``taskset`` (pinning).

Nothing from the user reaches the phone's shell unquoted: every argv item goes through
`shlex.quote`; serials and names are only compared, never sent to a shell.
"""
from __future__ import annotations

import os
import shlex
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

from ..artifacts.isa import parse_cpu_features, recorded_features
from ..errors import DeviceError, UsageError
from ..records import DeviceInfo
from . import table
from .base import Device, DeviceState, ExecResult, staging_digest

REMOTE_ROOT = "/data/local/tmp/devprof"
COMPLETE = ".devprof-complete"
_STATE_TAG = "@@devprof-state"
_SPIN_ITERS = 30000  # ~20-50 ms of shell arithmetic: enough for schedutil/interactive to ramp up
_ABIS = {"arm64-v8a": "arm64-v8a", "aarch64": "arm64-v8a", "x86_64": "x86_64", "x86": "x86",
         "armeabi-v7a": "armeabi-v7a"}
#: Thermal zone types that track the CPU/SoC (phones expose dozens of zones: modem, PMIC, ...).
_CPU_ZONE_WORDS = ("cpu", "soc", "tsens", "cluster", "big", "little", "mid", "skin", "ap", "xo")

# One shell call gathers the whole fingerprint; sections are separated by marker lines.
_FINGERPRINT_SH = r"""getprop
echo @@cpus
for d in /sys/devices/system/cpu/cpu[0-9]*; do
  echo "${d##*/} $(cat $d/cpufreq/cpuinfo_max_freq 2>/dev/null || echo -1) $(cat $d/cpufreq/scaling_governor 2>/dev/null || echo -) $(cat $d/cpufreq/scaling_cur_freq 2>/dev/null || echo -1)"
done
echo @@thermal
for z in /sys/class/thermal/thermal_zone*; do
  echo "${z##*/} $(cat $z/temp 2>/dev/null || echo x) $(cat $z/type 2>/dev/null || echo unknown)"
done
echo @@battery
echo "$(cat /sys/class/power_supply/battery/capacity 2>/dev/null || echo -1) $(cat /sys/class/power_supply/battery/temp 2>/dev/null || echo x)"
echo @@kernel
uname -r
echo @@mem
grep MemTotal /proc/meminfo 2>/dev/null
echo @@cpuinfo
grep -E '^(Features|flags)' /proc/cpuinfo 2>/dev/null | head -n 1
"""


def parse_server(adb_server: str | None) -> tuple[str, int]:
    """``HOST:PORT`` (or ``PORT``) -> (host, port); default $ANDROID_ADB_SERVER_HOST/PORT or 5037."""
    host = os.environ.get("ANDROID_ADB_SERVER_HOST", "127.0.0.1")
    port_s = os.environ.get("ANDROID_ADB_SERVER_PORT", "5037")
    if adb_server:
        h, sep, p = adb_server.rpartition(":")
        host, port_s = (h or host, p) if sep else (host, adb_server)
    if not port_s.isdigit() or not (0 < int(port_s) < 65536):
        raise UsageError(f"bad adb server address {adb_server or port_s!r} (expected HOST:PORT)")
    return host, int(port_s)


def adb_binary() -> tuple[str, str]:
    """The adb program devprof starts servers with, and where it comes from: ``$ADBUTILS_ADB_PATH``,
    the one on PATH (Debian's ``adb`` package, the SDK's platform-tools), else the copy bundled
    with adbutils. Raises DeviceError when there is none."""
    import shutil

    env = os.environ.get("ADBUTILS_ADB_PATH")
    if env:
        return env, "$ADBUTILS_ADB_PATH"
    on_path = shutil.which("adb")
    if on_path:
        return on_path, "PATH"
    try:
        from adbutils import adb_path

        return adb_path(), "the copy bundled with adbutils: adb is not on PATH"
    except Exception:  # adbutils raises its own AdbError when it has no binary for this platform
        raise DeviceError("no adb program: install Android's platform-tools (Debian: apt install adb) or "
                          "set ADBUTILS_ADB_PATH") from None


_notes_said: set[str] = set()


def _ensure_local_server(host: str, port: int, on_note=None) -> None:
    """Start a local adb server quietly when none listens (adbutils would start one too, but
    with adb's "* daemon started" chatter on our stderr, breaking one-line errors)."""
    import socket
    import subprocess

    if host not in ("127.0.0.1", "localhost", "::1"):
        return
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError:
        pass
    try:
        exe, origin = adb_binary()
    except DeviceError:
        return  # the connection attempt that follows reports the failure in one line
    if not origin.startswith("PATH") and exe not in _notes_said:
        _notes_said.add(exe)
        (on_note or _stderr_note)(f"starting an adb server on port {port} with {exe} ({origin})")
    try:
        subprocess.run([exe, "-P", str(port), "start-server"], capture_output=True, timeout=20.0)
    except (OSError, subprocess.SubprocessError):
        pass  # the connection attempt that follows reports the failure in one line


def _stderr_note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def client(adb_server: str | None = None, timeout_s: float = 30.0):
    """A client of the adb server at `adb_server` (HOST:PORT), or of the default one.

    Only the default server ($ANDROID_ADB_SERVER_PORT or 5037 on this machine) is started when
    none listens: an address the user names is connected to, never started — a typo such as
    ``127.0.0.1:1`` must not leave a stray adb daemon on port 1."""
    import adbutils

    host, port = parse_server(adb_server)
    if not adb_server:
        _ensure_local_server(host, port)
    return adbutils.AdbClient(host=host, port=port, socket_timeout=timeout_s)


@dataclass(frozen=True)
class Cluster:
    """CPUs that share a max frequency: a cluster (little, mid, big, prime)."""

    name: str
    cpus: tuple[int, ...]
    max_khz: int

    @property
    def cpu_list(self) -> str:
        return _cpu_list(self.cpus)


def _cpu_list(cpus: Sequence[int]) -> str:
    """(4, 5, 6) -> "4-6"; (0, 2) -> "0,2"."""
    cs = sorted(set(cpus))
    parts, i = [], 0
    while i < len(cs):
        j = i
        while j + 1 < len(cs) and cs[j + 1] == cs[j] + 1:
            j += 1
        parts.append(f"{cs[i]}-{cs[j]}" if j > i else str(cs[i]))
        i = j + 1
    return ",".join(parts)


def clusters_from_freqs(max_khz: dict[int, int]) -> list[Cluster]:
    """Group CPUs by max frequency and name the groups from slowest to fastest.

    Two groups: little/big. Three: little/big/prime when the fastest is a single CPU (Snapdragon
    865/888: 4+3+1), else little/mid/big (Tensor: 4+2+2). Four: little/mid/big/prime.
    """
    groups: dict[int, list[int]] = {}
    for cpu, khz in sorted(max_khz.items()):
        groups.setdefault(khz, []).append(cpu)
    ordered = sorted(groups.items())
    n = len(ordered)
    if n == 1:
        names = ["big"]
    elif n == 2:
        names = ["little", "big"]
    elif n == 3:
        names = ["little", "big", "prime"] if len(ordered[-1][1]) == 1 else ["little", "mid", "big"]
    else:
        names = ["little"] + [f"mid{i}" if n > 4 else "mid" for i in range(1, n - 2)] + ["big", "prime"]
    return [Cluster(nm, tuple(cpus), khz) for nm, (khz, cpus) in zip(names, ordered)]


@dataclass
class Fingerprint:
    """What one fingerprint shell call read from the phone."""

    props: dict[str, str]
    max_khz: dict[int, int]
    governors: dict[int, str]
    cur_khz: dict[int, int]
    zones: list[tuple[str, str, float]]  # (zone dir, type, °C)
    battery_level: int
    battery_temp_c: float
    kernel: str
    mem_kb: int
    clusters: list[Cluster] = field(default_factory=list)
    #: /proc/cpuinfo's feature names (arm64 ``Features``: asimddp, asimdhp...): which kernels it runs
    features: frozenset[str] = frozenset()

    @property
    def cpu_zone_dirs(self) -> list[str]:
        """The thermal zones that follow the CPU (all plausible ones when none is named so)."""
        ok = [z for z in self.zones if 0 < z[2] < 150]
        cpuish = [z for z in ok if any(w in z[1].lower() for w in _CPU_ZONE_WORDS)]
        return [z[0] for z in (cpuish or ok)]


def _temp_c(raw: str) -> float:
    """sysfs temperatures are millidegrees on most phones, degrees on a few."""
    try:
        v = float(raw)
    except ValueError:
        return float("nan")
    return v / 1000.0 if abs(v) > 200 else v


def parse_getprop(text: str) -> dict[str, str]:
    props = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and "]: [" in line and line.endswith("]"):
            k, _, v = line[1:-1].partition("]: [")
            props[k] = v
    return props


def parse_fingerprint(text: str) -> Fingerprint:
    sections: dict[str, list[str]] = {"props": []}
    cur = "props"
    for line in text.splitlines():
        if line.startswith("@@"):
            cur = line[2:].strip()
            sections[cur] = []
        else:
            sections.setdefault(cur, []).append(line)
    props = parse_getprop("\n".join(sections["props"]))
    max_khz, govs, cur_khz = {}, {}, {}
    for line in sections.get("cpus", []):
        parts = line.split()
        if len(parts) >= 4 and parts[0][3:].isdigit():
            cpu = int(parts[0][3:])
            max_khz[cpu] = int(parts[1]) if parts[1].lstrip("-").isdigit() else -1
            govs[cpu] = "" if parts[2] == "-" else parts[2]
            cur_khz[cpu] = int(parts[3]) if parts[3].lstrip("-").isdigit() else -1
    zones = []
    for line in sections.get("thermal", []):
        parts = line.split(None, 2)
        if len(parts) == 3:
            zones.append((parts[0], parts[2].strip(), _temp_c(parts[1])))
    bat = (sections.get("battery") or ["-1 x"])[0].split()
    level = int(bat[0]) if bat and bat[0].lstrip("-").isdigit() else -1
    btemp = _temp_c(bat[1]) if len(bat) > 1 else float("nan")
    if btemp == btemp and abs(btemp) > 100:  # tenths of a degree (Android's unit) read as degrees
        btemp /= 10
    elif len(bat) > 1 and bat[1].lstrip("-").isdigit():
        btemp = int(bat[1]) / 10.0
    kernel = (sections.get("kernel") or [""])[0].strip()
    mem = (sections.get("mem") or [""])
    mem_kb = int(mem[0].split()[1]) if mem and len(mem[0].split()) >= 2 and mem[0].split()[1].isdigit() else 0
    valid = {c: f for c, f in max_khz.items() if f > 0}
    fp = Fingerprint(props, max_khz, govs, cur_khz, zones, level, btemp, kernel, mem_kb)
    fp.clusters = clusters_from_freqs(valid) if valid else []
    fp.features = parse_cpu_features("\n".join(sections.get("cpuinfo", [])))
    return fp


@dataclass(frozen=True)
class AdbExecResult(ExecResult):
    """An `ExecResult` that also carries the phone's state read just before and after the run
    (in the same shell call), so runtimes fill `Conditions` without extra round trips."""

    state_before: DeviceState = field(default_factory=DeviceState)
    state_after: DeviceState = field(default_factory=DeviceState)
    seconds: float = 0.0


class AdbDevice(Device):
    """One phone attached to an adb server."""

    kind = "adb"
    in_process = False

    def __init__(self, serial: str, adb_server: str | None = None, remote_root: str = REMOTE_ROOT) -> None:
        self.serial = serial
        self.adb_server = adb_server
        self.remote_root = remote_root
        self._client = client(adb_server)
        self._dev = self._client.device(serial=serial)
        self._staged: set[str] = set()
        self.round_trips = 0  # shell calls + sync sessions made (bench/adb_overhead reads it)

    def __repr__(self) -> str:
        return f"AdbDevice({self.serial!r})"

    # ------------------------------------------------------------------ transport
    def _adb_error(self, what: str, e: BaseException) -> DeviceError:
        return DeviceError(f"phone {self.serial} stopped answering during {what} ({type(e).__name__}: "
                           f"{e or 'connection lost'}); measurements saved so far are kept — reconnect it and "
                           "rerun with --resume")

    def shell(self, command: str, timeout_s: float = 60.0, what: str = "a shell command") -> tuple[int, str, str]:
        """Run one shell command line (already quoted) on the phone with the shell v2 protocol:
        (exit code, stdout, stderr). When the phone goes away midway, the DeviceError carries what
        had arrived (``err.partial = (stdout, stderr)``), so finished kernels of a batch are kept.
        A silent phone past `timeout_s` raises adbutils.AdbTimeout (with ``.partial`` too)."""
        import adbutils

        self.round_trips += 1
        out, err = bytearray(), bytearray()
        rc: int | None = None
        try:
            c = self._dev.open_transport(timeout=timeout_s)
        except (adbutils.AdbError, OSError, EOFError) as e:
            raise self._adb_error(what, e) from None
        try:
            c.send_command(f"shell,v2:{command}")
            c.check_okay()
            while rc is None:
                head = c.read_exact(5)
                ident, n = head[0], int.from_bytes(head[1:5], "little")
                data = c.read_exact(n) if n else b""
                if ident == 1:
                    out += data
                elif ident == 2:
                    err += data
                elif ident == 3:
                    rc = data[0] if data else 255
        except adbutils.AdbTimeout as e:
            e.partial = (out.decode(errors="replace"), err.decode(errors="replace"))  # type: ignore[attr-defined]
            raise
        except (adbutils.AdbError, OSError, EOFError) as e:
            de = self._adb_error(what, e)
            de.partial = (out.decode(errors="replace"), err.decode(errors="replace"))  # type: ignore[attr-defined]
            raise de from None
        finally:
            c.close()
        return rc, out.decode(errors="replace"), err.decode(errors="replace")

    # ------------------------------------------------------------------ identity
    @cached_property
    def fingerprint(self) -> Fingerprint:
        rc, out, err = self.shell(_FINGERPRINT_SH, 30.0, "the fingerprint read")
        fp = parse_fingerprint(out)
        if not fp.props:
            raise DeviceError(f"phone {self.serial} gave no properties (getprop failed: {err.strip()[:200]})")
        return fp

    @property
    def model_code(self) -> str:
        return self.fingerprint.props.get("ro.product.model", "")

    @property
    def name(self) -> str:
        code = self.model_code
        return table.marketing_name(code) if code else self.serial

    @property
    def abi(self) -> str:
        raw = self.fingerprint.props.get("ro.product.cpu.abi", "")
        return _ABIS.get(raw, raw)

    @property
    def emulated(self) -> bool:
        """An emulator, not a phone: the Android emulator sets ``ro.boot.qemu`` (``ro.kernel.qemu``
        before Android 11) and runs on the ranchu/goldfish boards. Its timings (under qemu, or of
        the host CPU) say nothing about a phone, so its records are marked and kept apart."""
        p = self.fingerprint.props
        return (p.get("ro.boot.qemu") == "1" or p.get("ro.kernel.qemu") == "1"
                or p.get("ro.hardware", "") in ("ranchu", "goldfish"))

    @property
    def clusters(self) -> list[Cluster]:
        return self.fingerprint.clusters

    def soc(self) -> str:
        p, code = self.fingerprint.props, self.model_code
        row = table.lookup(code)
        raw = p.get("ro.soc.model") or p.get("ro.board.platform") or p.get("ro.hardware") or ""
        known = row.soc_for(code) if row else ""
        if known and raw and raw.lower() not in known.lower():
            return f"{known} [{raw}]"
        return known or raw

    def info(self) -> DeviceInfo:
        fp = self.fingerprint
        p = fp.props
        cl = fp.clusters
        cpu = (f"{'+'.join(f'{len(c.cpus)}x{c.max_khz / 1e6:.2f}' for c in cl)} GHz "
               f"({'/'.join(c.name for c in cl)})") if cl else "unknown"
        gov = sorted({g for g in fp.governors.values() if g})
        extra: dict[str, Any] = {
            "adb_serial": self.serial, "manufacturer": p.get("ro.product.manufacturer", ""),
            "device": p.get("ro.product.device", ""), "sdk": p.get("ro.build.version.sdk", ""),
            "clusters": ";".join(f"{c.name}={c.cpu_list}@{c.max_khz}" for c in cl),
            "governor": ",".join(gov),
            "thermal_zones": ";".join(f"{t}={c:.1f}" for _, t, c in fp.zones if c == c),
            "battery_level": fp.battery_level,
            "battery_temp_c": None if fp.battery_temp_c != fp.battery_temp_c else round(fp.battery_temp_c, 1),
            "memory_gib": round(fp.mem_kb / 2**20, 1),
        }
        release = p.get("ro.build.version.release", "?")
        return DeviceInfo(kind="adb", name=self.name, model=self.model_code,
                          serial=p.get("ro.serialno") or self.serial, soc=self.soc(), abi=self.abi, cpu=cpu,
                          cores=len(fp.max_khz), isa=recorded_features(fp.features),
                          os=f"Android {release} (SDK {p.get('ro.build.version.sdk', '?')})",
                          kernel=fp.kernel, build=p.get("ro.build.fingerprint", ""), extra=extra,
                          emulated=self.emulated)

    def matches(self, wanted: str) -> bool:
        """Does the normalised name `wanted` designate this phone (model code, marketing name, family)?"""
        return wanted in table.names_for(self.model_code) if self.model_code else False

    # ------------------------------------------------------------------ cores and state
    def resolve_cores(self, cores: str) -> str:
        """``little``/``mid``/``big``/``prime``/``all`` -> that cluster's CPU list; lists such as
        ``0-3`` are validated against the phone's CPU count."""
        c = cores.strip().lower()
        if not c:
            return ""
        if c == "all":
            return ",".join(str(x) for x in sorted(self.fingerprint.max_khz))
        by_name = {cl.name: cl for cl in self.clusters}
        if c in by_name:  # the same comma form as Device.resolve_cores gives for lists
            return ",".join(str(x) for x in by_name[c].cpus)
        if c[0].isalpha():
            raise UsageError(f"--cores {cores!r}: {self.name} has clusters "
                             f"{', '.join(f'{cl.name} ({cl.cpu_list})' for cl in self.clusters) or 'none readable'}")
        return super().resolve_cores(cores)

    def _state_probe(self, cpu: int) -> str:
        """Shell snippet printing one state line (freq, governor, temps) to stderr."""
        base = f"/sys/devices/system/cpu/cpu{cpu}/cpufreq"
        temps = " ".join(f"/sys/class/thermal/{z}/temp" for z in self.fingerprint.cpu_zone_dirs)
        cat_t = f"$(cat {temps} 2>/dev/null | tr '\\n' ' ')" if temps else ""
        return (f'echo "{_STATE_TAG} $1 $(cat {base}/scaling_cur_freq 2>/dev/null || echo -1) '
                f'$(cat {base}/scaling_governor 2>/dev/null || echo -) {cat_t}" >&2')

    @staticmethod
    def _parse_state(parts: list[str]) -> DeviceState:
        freq = int(parts[0]) if parts and parts[0].lstrip("-").isdigit() else -1
        gov = parts[1] if len(parts) > 1 and parts[1] != "-" else ""
        temps = [t for t in (_temp_c(x) for x in parts[2:]) if t == t and 0 < t < 150]
        return DeviceState(governor=gov, freq_khz=freq, temp_c=max(temps) if temps else float("nan"))

    def _first_cpu(self, cpus: str) -> int:
        from .local import parse_cpus

        return parse_cpus(cpus)[0] if cpus else 0

    def state(self, cpus: str = "") -> DeviceState:
        script = f"s() {{ {self._state_probe(self._first_cpu(cpus))}; }}; s now 2>&1"
        _, out, _ = self.shell(script, 20.0, "a state read")
        for line in out.splitlines():
            if line.startswith(_STATE_TAG):
                return self._parse_state(line.split()[2:])
        return DeviceState()

    # ------------------------------------------------------------------ files
    def stage(self, files: Sequence[Path]) -> str:
        """Push `files` into ``/data/local/tmp/devprof/<content hash>/`` in one sync session;
        nothing is sent when the folder is complete already (its marker is pushed last)."""
        files = [Path(f) for f in files]
        names = [f.name for f in files]
        if len(set(names)) != len(names):
            raise UsageError(f"stage: two files share a name in {names}")
        remote = f"{self.remote_root}/{staging_digest(files)}"
        if remote in self._staged:
            return remote
        self.round_trips += 1
        try:
            with self._sync_session() as s:
                if not s.exists(f"{remote}/{COMPLETE}"):
                    for f in files:
                        s.send(f, f"{remote}/{f.name}", 0o755 if os.access(f, os.X_OK) else 0o644)
                    s.send_bytes(b"ok\n", f"{remote}/{COMPLETE}", 0o644)
        except (OSError, EOFError, ConnectionError) as e:
            raise self._adb_error("a push", e) from None
        self._staged.add(remote)
        return remote

    def _sync_session(self) -> "_SyncSession":
        import adbutils

        try:
            c = self._dev.open_transport(timeout=60.0)
            c.send_command("sync:")
            c.check_okay()
        except (adbutils.AdbError, OSError) as e:
            raise self._adb_error("a push", e) from None
        return _SyncSession(c)

    def pull_text(self, remote: str) -> str:
        """Read a (small) text file from the phone."""
        rc, out, err = self.shell(f"cat {shlex.quote(remote)}", 60.0, "a pull")
        if rc != 0:
            raise DeviceError(f"cannot read {remote} on {self.serial}: {err.strip()[:200]}")
        return out

    # ------------------------------------------------------------------ run
    def execute(self, argv: Sequence[str], cwd: str, timeout_s: float, cpus: str = "") -> AdbExecResult:
        """Run argv on the phone in ONE shell call: cd, a short spin on the pinned CPU, state probe,
        ``timeout -s KILL`` + ``taskset``, state probe. Every argv item is quoted; `cpus` is a validated CPU list."""
        import adbutils

        if not argv:
            raise UsageError("execute: empty command")
        run = " ".join(shlex.quote(str(a)) for a in argv)
        pin = ""
        if cpus:
            from .local import parse_cpus

            pin = f"taskset {sum(1 << c for c in parse_cpus(cpus)):x} "
            run = pin + run
        secs = max(1, int(timeout_s + 0.999))
        # Ramp the pinned CPU up before the "before" read: an idle core reports its idle frequency,
        # which would hide throttling (after < before) behind the governor's ramp-up.
        spin = f"{pin}sh -c 'i=0; while [ $i -lt {_SPIN_ITERS} ]; do i=$((i+1)); done'"
        script = (f"cd {shlex.quote(cwd)} || exit 126\n"
                  f"s() {{ {self._state_probe(self._first_cpu(cpus))}; }}\n"
                  f"{spin}\n"
                  f"s before\n"
                  # phones without toybox `timeout` (old Androids) still get the host-side timeout
                  f'if command -v timeout >/dev/null 2>&1; then T="timeout -s KILL {secs}"; else T=""; fi\n'
                  f"$T {run}\n"
                  f"rc=$?\n"
                  f"s after\n"
                  f"exit $rc\n")
        t0 = time.monotonic()
        try:
            rc, out, err = self.shell(script, timeout_s + 30.0, "a batch")
        except adbutils.AdbTimeout as e:
            partial = getattr(e, "partial", ("", ""))
            return AdbExecResult(-9, partial[0], f"no answer from {self.serial} within {timeout_s + 30:.0f} s",
                                 timed_out=True, seconds=time.monotonic() - t0)
        except DeviceError as e:  # gone midway: hand over what the batch printed before, then raise
            partial = getattr(e, "partial", ("", ""))
            e.partial = AdbExecResult(-1, partial[0], partial[1], seconds=time.monotonic() - t0)  # type: ignore[attr-defined]
            raise
        dt = time.monotonic() - t0
        before = after = DeviceState()
        kept = []
        for line in err.splitlines(keepends=True):
            if line.startswith(_STATE_TAG):
                parts = line.split()
                st = self._parse_state(parts[2:])
                if len(parts) > 1 and parts[1] == "before":
                    before = st
                else:
                    after = st
            else:
                kept.append(line)
        timed_out = rc in (124, 137) and dt >= secs * 0.9
        return AdbExecResult(rc, out, "".join(kept), timed_out=timed_out, state_before=before,
                             state_after=after, seconds=dt)


class _SyncSession:
    """Several sync requests over one transport (adbutils opens one connection per request)."""

    def __init__(self, conn: Any) -> None:
        self.c = conn
        self.sock: socket.socket = conn.conn
        # small request/answer messages: without this, Nagle + delayed ACK stall every file ~40 ms
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def __enter__(self) -> "_SyncSession":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.sock.sendall(b"QUIT" + struct.pack("<I", 0))
        except OSError:
            pass
        self.c.close()

    def _recv(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("the phone closed the sync connection")
            buf += chunk
        return bytes(buf)

    def _req(self, ident: bytes, arg: str) -> None:
        b = arg.encode()
        self.sock.sendall(ident + struct.pack("<I", len(b)) + b)

    def exists(self, path: str) -> bool:
        self._req(b"STAT", path)
        head = self._recv(16)
        if head[:4] != b"STAT":
            raise EOFError(f"unexpected sync answer {head[:4]!r}")
        mode, _size, mtime = struct.unpack("<III", head[4:])
        return mode != 0 or mtime != 0

    def send_bytes(self, data: bytes, remote: str, mode: int) -> None:
        path = f"{remote},{0o100000 | mode}".encode()
        msg = [b"SEND", struct.pack("<I", len(path)), path]
        for off in range(0, len(data), 64 * 1024):
            chunk = data[off:off + 64 * 1024]
            msg += [b"DATA", struct.pack("<I", len(chunk)), chunk]
        msg += [b"DONE", struct.pack("<I", int(time.time()))]
        self.sock.sendall(b"".join(msg))  # one write per file: request, data and end together
        head = self._recv(8)
        if head[:4] == b"FAIL":
            (n,) = struct.unpack("<I", head[4:])
            msg = self._recv(n).decode(errors="replace")
            raise DeviceError(f"push to {remote} failed: {msg}")
        if head[:4] != b"OKAY":
            raise EOFError(f"unexpected sync answer {head[:4]!r}")

    def send(self, local: Path, remote: str, mode: int) -> None:
        self.send_bytes(Path(local).read_bytes(), remote, mode)


# ---------------------------------------------------------------------- discovery
def adb_states(adb_server: str | None = None) -> list[tuple[str, str]]:
    """(serial, state) of everything the adb server knows: device, offline, unauthorized..."""
    import adbutils

    try:
        infos = client(adb_server, timeout_s=10.0).list()
    except (adbutils.AdbError, OSError) as e:
        host, port = parse_server(adb_server)
        raise DeviceError(f"cannot reach the adb server at {host}:{port} ({e})") from None
    return [(i.serial, i.state) for i in infos]


def attached_serials(adb_server: str | None = None) -> list[str]:
    """Serials of phones in state ``device`` on the server (offline/unauthorized ones are skipped)."""
    return [s for s, st in adb_states(adb_server) if st == "device"]


def list_phones(adb_server: str | None = None) -> list[AdbDevice]:
    """Every phone attached to the adb server; [] when no server answers (listing must not fail)."""
    try:
        serials = attached_serials(adb_server)
    except DeviceError:
        return []
    phones = []
    for s in serials:
        d = AdbDevice(s, adb_server)
        try:
            d.fingerprint  # noqa: B018  (one call; a phone that does not answer is left out)
        except DeviceError:
            continue
        phones.append(d)
    return phones


def _short(name: str, limit: int = 80) -> str:
    """A user-given name for an error message: quoted, control characters escaped, bounded."""
    return repr(name[:limit] + ("…" if len(name) > limit else ""))


_STATE_HINTS = {"unauthorized": "accept the USB debugging prompt on the phone",
                "offline": "reconnect the cable or restart adb", "no permissions": "check the udev rules"}


def _describe(phones: Sequence[AdbDevice], others: Sequence[tuple[str, str]] = ()) -> str:
    """``local, SERIAL (Galaxy S20 5G, SM-G981U), SERIAL2 [unauthorized: accept the prompt]``."""
    items = ["local"] + [f"{p.serial} ({p.name}, {p.model_code})" for p in phones]
    items += [f"{s} [{st}: {_STATE_HINTS.get(st, 'not usable')}]" for s, st in others if st != "device"]
    return ", ".join(items)


def resolve(name: str, adb_server: str | None = None) -> AdbDevice:
    """The one attached phone `name` designates: a serial, a user alias, a model code
    (``SM-G981U`` or its prefix ``SM-G981``), a marketing name (``S20``, ``Galaxy S20 5G``), or
    ``adb``/``phone`` ($ANDROID_SERIAL, else the only phone). One-line error when none or several."""
    name = name.strip()
    if not name:
        raise UsageError("empty --device name")
    serials = attached_serials(adb_server)
    if name in serials:  # a serial is exact: no fingerprint needed
        return AdbDevice(name, adb_server)
    alias = table.aliases().get(table.norm(name))
    if alias is not None:
        if alias in serials:
            return AdbDevice(alias, adb_server)
        name = alias
    phones = list_phones(adb_server)
    if table.norm(name) in ("adb", "phone", "android"):
        env = os.environ.get("ANDROID_SERIAL")
        if env:
            hits = [p for p in phones if p.serial == env]
            if not hits:
                raise UsageError(f"ANDROID_SERIAL={env!r} is not attached; attached: {_describe(phones)}")
            return hits[0]
        hits = phones
    else:
        wanted = table.norm(name)
        hits = [p for p in phones if p.matches(wanted) or table.norm(p.info().serial) == wanted]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise UsageError(f"no attached device matches {_short(name)}; attached: "
                         f"{_describe(phones, adb_states(adb_server))}")
    env = os.environ.get("ANDROID_SERIAL")
    if env and any(p.serial == env for p in hits):
        return next(p for p in hits if p.serial == env)
    raise UsageError(f"{_short(name)} matches {len(hits)} phones: {_describe(hits)[len('local, '):]}; "
                     "pass a serial (or set ANDROID_SERIAL)")
