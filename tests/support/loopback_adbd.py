#!/usr/bin/env python3
"""An emulated Android phone: the *device* side of ADB over TCP, in standard-library asyncio.

Why: no phone is attached to CI machines, yet devprof's whole phone path (the real `adb` server,
adbutils, push, shell, getprop, sysfs reads, taskset pinning, timeouts, disconnects) must be
exercised for real. The real adb server connects to this process with
``adb connect 127.0.0.1:PORT`` and sees a phone (by default a Galaxy S20 5G, SM-G981U, ABI x86_64
so that devprof's x86_64 harness runs here).

What it serves (and advertises nothing more): ``shell:`` (legacy raw and shell protocol v2 with
exit codes), ``exec:`` and ``sync:`` (STAT/STA2/LST2/LIST/LIS2/SEND/RECV/QUIT).

The phone's file system is a sandbox folder on this machine. Device paths under ``/data``,
``/sdcard``, ``/storage`` and ``/sys`` map into it the same way for sync (push/pull) and for
shell commands (those prefixes are rewritten in the command line), so a binary pushed to
``/data/local/tmp/x`` runs as ``/data/local/tmp/x``. Shell commands run on this machine with
``/bin/sh`` in the sandbox, ``SANDBOX/bin`` first on PATH: it holds ``getprop`` (answers from the
configured properties) and ``taskset`` (maps the phone's CPU numbers onto this machine's CPUs,
since the phone has 8 CPUs and CI machines may have 2). ``SANDBOX/sys`` holds cpufreq files
per CPU (clusters with different max frequencies), thermal zones and a battery.

Fault injection (for tests): ``--die-on REGEX [--die-on-count N] [--die-delay S]`` makes the
phone vanish (children killed, sockets dropped) S seconds after the N-th shell command matching
REGEX started, as a phone that is unplugged mid-batch. SIGTERM does the same at once.

arm64: ``--abi arm64-v8a`` presents a Galaxy S20 5G as sold in Korea (SM-G981N: Snapdragon 865,
1+3+4 clusters, ABI list ``arm64-v8a,armeabi-v7a,armeabi``) and runs what is pushed to it the
way the phone would, but under ``qemu-aarch64-static``: there is no binfmt_misc registration on
CI machines, so a command word that names a pushed aarch64 ELF, in command position (after
``;``, ``&&``, ``|``... and wrapper words such as ``timeout -s KILL 5``, ``taskset 70`` or an
expanded ``$T``), gets the emulator prefixed. Such a phone says ``ro.boot.qemu=1``, as the Android
emulator does, so devprof marks its records emulated (their timings say nothing about a phone).

Run: ``python tests/support/loopback_adbd.py --sandbox DIR [--port 0] [--model SM-G991U]``;
the first stdout line is ``listening on HOST:PORT`` (port 0 picks a free port).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shlex
import signal
import stat
import struct
import sys
from dataclasses import dataclass, field
from typing import Awaitable, Callable

log = logging.getLogger("loopback_adbd")


def _cmd(s: bytes) -> int:
    return struct.unpack("<I", s)[0]


A_SYNC, A_CNXN, A_OPEN, A_OKAY, A_CLSE, A_WRTE, A_AUTH = map(
    _cmd, (b"SYNC", b"CNXN", b"OPEN", b"OKAY", b"CLSE", b"WRTE", b"AUTH"))
A_VERSION_SKIP_CHECKSUM = 0x01000001
MAX_PAYLOAD = 1024 * 1024
SYNC_DATA_MAX = 64 * 1024
HDR = struct.Struct("<6I")
#: Only what is served. No sendrecv_v2 (adb >= 30 would send SND2/RCV2), no cmd/abb.
FEATURES = "shell_v2,stat_v2,ls_v2,fixed_push_mkdir,fixed_push_symlink_timestamp"
#: Device path prefixes that live in the sandbox (sync and shell alike). /proc/cpuinfo too: an
#: arm64 phone reports its own CPU features, not this machine's.
MAPPED_ROOTS = ("/data", "/sdcard", "/storage", "/sys", "/proc/cpuinfo")

#: Galaxy S20 5G (US, Snapdragon 865) as its getprop reports it, with an x86_64 ABI so that
#: devprof's x86_64 harness build runs on this machine.
DEFAULT_PROPS: dict[str, str] = {
    "ro.product.name": "x1quex", "ro.product.model": "SM-G981U", "ro.product.device": "x1q",
    "ro.product.manufacturer": "samsung", "ro.product.brand": "samsung",
    "ro.product.cpu.abi": "x86_64", "ro.product.cpu.abilist": "x86_64",
    "ro.soc.manufacturer": "Qualcomm", "ro.soc.model": "SM8250", "ro.board.platform": "kona",
    "ro.hardware": "qcom", "ro.build.version.sdk": "33", "ro.build.version.release": "13",
    "ro.build.fingerprint": "samsung/x1quex/x1q:13/TP1A.220624.014/G981USQS9HWE1:user/release-keys",
    "ro.build.type": "user", "ro.debuggable": "0", "sys.boot_completed": "1", "ro.serialno": "R3CN30EMUL",
}

#: (cpu count, max kHz) per cluster: Snapdragon 865's 4 little A55, 3 big A77 and 1 prime A77.
DEFAULT_CLUSTERS: tuple[tuple[int, int], ...] = ((4, 1804800), (3, 2419200), (1, 2841600))

#: What an arm64 phone reports besides its ABI (the Android emulator's own marker when binaries
#: run under qemu here).
ARM64_ABI_PROPS = {"ro.product.cpu.abi": "arm64-v8a", "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi",
                   "ro.product.cpu.abilist64": "arm64-v8a", "ro.product.cpu.abilist32": "armeabi-v7a,armeabi"}
#: ELF e_machine values -> the ABI that runs them (to spot binaries foreign to this machine).
ELF_MACHINES = {183: "arm64-v8a", 62: "x86_64"}
#: The model `--abi arm64-v8a` presents when no `--model` is given.
ARM64_MODEL = "SM-G981N"
#: The ``Features`` line of a Snapdragon 865's /proc/cpuinfo (Kryo 585: Cortex-A77 and A55 cores,
#: ARMv8.2-A with the dot product and fp16 arithmetic), as its Linux 4.19 kernel prints it.
#: qemu-aarch64-static's default CPU executes sdot and fp16, so what it allows runs here.
S20_FEATURES = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop "
                "asimddp")
#: (CPU count, implementer, part) per cluster of the Snapdragon 865 (Qualcomm 0x51: Kryo 585 Silver
#: 0x805, Gold 0x804), for its /proc/cpuinfo.
S20_CPU_PARTS = ((4, "0x51", "0x805"), (4, "0x51", "0x804"))


def arm64_cpuinfo(features: str, parts: tuple[tuple[int, str, str], ...] = S20_CPU_PARTS,
                  hardware: str = "Qualcomm Technologies, Inc SM8250") -> str:
    """An arm64 Android phone's /proc/cpuinfo: one block per CPU, every one with `features`."""
    blocks, cpu = [], 0
    for n, implementer, part in parts:
        for _ in range(n):
            blocks.append(f"processor\t: {cpu}\nBogoMIPS\t: 38.40\nFeatures\t: {features}\n"
                          f"CPU implementer\t: {implementer}\nCPU architecture: 8\nCPU variant\t: 0xd\n"
                          f"CPU part\t: {part}\nCPU revision\t: 14\n")
            cpu += 1
    return "\n".join(blocks) + f"\nHardware\t: {hardware}\n"

#: Coherent identities for `--model` (props over DEFAULT_PROPS, and CPU clusters), so that farm tests
#: can start an S20 next to an S21 and each looks like itself (SoC, board, build fingerprint).
PRESETS: dict[str, tuple[dict[str, str], tuple[tuple[int, int], ...]]] = {
    "SM-G981U": ({}, DEFAULT_CLUSTERS),
    "SM-G988U": ({"ro.product.name": "z3quex", "ro.product.device": "z3q", "ro.serialno": "R3CN30ULTRA",
                  "ro.build.fingerprint": "samsung/z3quex/z3q:13/TP1A.220624.014/G988USQS9HWE1:user/release-keys"},
                 DEFAULT_CLUSTERS),
    "SM-G991U": ({"ro.product.name": "o1quex", "ro.product.device": "o1q", "ro.soc.model": "SM8350",
                  "ro.board.platform": "lahaina", "ro.serialno": "R3CR10S21EM",
                  "ro.build.fingerprint": "samsung/o1quex/o1q:14/UP1A.231005.007/G991USQS9FXA1:user/release-keys",
                  "ro.build.version.sdk": "34", "ro.build.version.release": "14"},
                 ((4, 1804800), (3, 2419200), (1, 2841600))),
    # Galaxy S20 5G, Korean model: Snapdragon 865 like SM-G981U (the European SM-G981B has an
    # Exynos 990 with 2+2+4 cores instead), arm64 as every real S20.
    "SM-G981N": ({"ro.product.name": "x1qksx", "ro.serialno": "R3CN30ARM64",
                  "ro.build.fingerprint": "samsung/x1qksx/x1q:13/TP1A.220624.014/G981NKSS9HWE1:user/release-keys",
                  **ARM64_ABI_PROPS}, DEFAULT_CLUSTERS),
    "Pixel 7": ({"ro.product.name": "panther", "ro.product.device": "panther", "ro.product.manufacturer": "Google",
                 "ro.product.brand": "google", "ro.soc.manufacturer": "Google", "ro.soc.model": "GS201",
                 "ro.board.platform": "gs201", "ro.hardware": "panther", "ro.serialno": "28031FDH2000EM",
                 "ro.build.fingerprint": "google/panther/panther:14/AP2A.240805.005/12025142:user/release-keys",
                 "ro.build.version.sdk": "34", "ro.build.version.release": "14"},
                ((4, 1803000), (2, 2348000), (2, 2850000))),
}


@dataclass
class PhoneProfile:
    """Everything that makes the emulated phone a particular phone."""

    props: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PROPS))
    clusters: tuple[tuple[int, int], ...] = DEFAULT_CLUSTERS
    governor: str = "schedutil"
    thermal: dict[str, float] = field(default_factory=lambda: {"cpu-0-0-usr": 41.0, "battery": 31.5,
                                                                   "skin-therm": 33.0})
    battery_level: int = 87
    battery_temp_c: float = 30.5
    #: /proc/cpuinfo's text; None: this machine's (an x86_64 phone's binaries run on this CPU)
    cpuinfo: str | None = None

    @property
    def serialno(self) -> str:
        return self.props.get("ro.serialno", "EMULATED0001")


def parse_clusters(text: str) -> tuple[tuple[int, int], ...]:
    """``4x1804800,3x2419200,1x2841600`` -> ((4, 1804800), (3, 2419200), (1, 2841600))."""
    out = []
    for part in text.split(","):
        n, _, khz = part.strip().partition("x")
        if not (n.isdigit() and khz.isdigit()):
            raise argparse.ArgumentTypeError(f"bad cluster {part!r} (expected COUNTxMAXKHZ)")
        out.append((int(n), int(khz)))
    return tuple(out)


# ----------------------------------------------------------------------------------- sandbox
def elf_abi(path: str) -> str:
    """The ABI an ELF file is built for ("" when it is no ELF of a known machine)."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return ""
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return ""
    order = "<" if head[5] == 1 else ">"
    return ELF_MACHINES.get(struct.unpack_from(order + "H", head, 18)[0], "")


def host_abi() -> str:
    import platform

    m = platform.machine().lower()
    return {"amd64": "x86_64", "aarch64": "arm64-v8a", "arm64": "arm64-v8a"}.get(m, m)


def foreign_runners() -> dict[str, list[str]]:
    """ABI -> argv prefix that runs its binaries on this machine (qemu user mode), for the ABIs
    this machine cannot run natively."""
    import shutil

    out: dict[str, list[str]] = {}
    if host_abi() != "arm64-v8a":
        qemu = shutil.which("qemu-aarch64-static")
        if qemu:
            sysroot = "/usr/aarch64-linux-gnu"  # only dynamic binaries need it; devprof's are static
            out["arm64-v8a"] = [qemu] + (["-L", sysroot] if os.path.isdir(sysroot) else [])
    return out


#: Words that run the next word as a program; each takes the options listed (with their argument
#: when the second item is True), and `timeout`/`taskset` one positional argument more.
_WRAPPERS: dict[str, tuple[tuple[str, ...], int]] = {
    "timeout": (("-s", "-k", "--signal", "--kill-after"), 1), "taskset": ((), 1),
    "exec": ((), 0), "nohup": ((), 0), "command": ((), 0), "env": ((), 0), "nice": (("-n",), 0),
}
_ASSIGNMENT = re.compile(r"[A-Za-z_]\w*=\S*\Z")
_EXPANSION = re.compile(r"\$(\w+|\{\w+\})\Z")
#: Where a new simple command starts in a shell line.
_SEPARATOR = re.compile(r"[;&|(){}!\n`]|\$\(|(?<!\S)(?:then|do|else|elif|if|while|until)(?![^\s;])")


def command_position(words: list[str]) -> bool:
    """Do `words` (what precedes a word since the last separator) leave it in command position:
    only assignments, expansions such as ``$T`` (a wrapper held in a variable) and wrapper
    commands with their options and arguments?"""
    i = 0
    while i < len(words):
        w = words[i]
        if _ASSIGNMENT.match(w) or _EXPANSION.match(w):
            i += 1
            continue
        if w not in _WRAPPERS:
            return False
        with_arg, positional = _WRAPPERS[w]
        i += 1
        while i < len(words) and words[i].startswith("-") and words[i] != "-":
            takes_arg = words[i] in with_arg
            i += 2 if takes_arg else 1
        i += positional
    return i == len(words)


class Sandbox:
    """The phone's file system: a folder, plus the shims and sysfs files devprof reads."""

    def __init__(self, root: str, profile: PhoneProfile) -> None:
        self.root = os.path.realpath(root)
        self.profile = profile
        for d in ("sdcard", "storage", "data/local/tmp", "bin", "sys"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        self._write_getprop()
        self._write_taskset()
        self._write_sysfs()
        self._write_cpuinfo()
        self.env = dict(os.environ, PATH=os.path.join(self.root, "bin") + ":" + os.environ.get("PATH", "/usr/bin:/bin"),
                        ANDROID_DATA=self.path("/data"), EXTERNAL_STORAGE=self.path("/sdcard"),
                        TMPDIR=self.path("/data/local/tmp"))
        root_re = "|".join(re.escape(r) for r in MAPPED_ROOTS)
        # A mapped root at the start of a word, followed by "/" or the end of the word.
        self._path_re = re.compile(rf"(?<![\w./-])({root_re})(?=/|$|[\s'\";|&)<>*?\[])")

    def path(self, dev_path: str) -> str:
        """Device path -> host path inside the sandbox (``..`` cannot escape it)."""
        return os.path.join(self.root, os.path.normpath("/" + dev_path).lstrip("/"))

    def rewrite(self, command: str) -> str:
        """Map absolute device paths in a shell command line into the sandbox."""
        return self._path_re.sub(lambda m: self.root + m.group(1), command)

    def run_foreign(self, command: str, runners: dict[str, list[str]]) -> str:
        """Prefix the emulator to every sandbox path (already rewritten) that is in command
        position and names an ELF of a foreign ABI: what binfmt_misc does on a host set up for it.
        Paths given as arguments (``cat``, ``chmod``, ``ls``...) are left alone."""
        if not runners:
            return command
        word = re.compile(r"(?<![^\s'\"])(['\"]?)(" + re.escape(self.root) + r"/[^\s'\";|&()<>`]*)\1(?=[\s;|&)]|$)")
        out, last = [], 0
        for m in word.finditer(command):
            runner = runners.get(elf_abi(m.group(2)))
            if not runner:
                continue
            before = _SEPARATOR.split(command[:m.start()])[-1]
            if not command_position(before.split()):
                continue
            out += [command[last:m.start()], " ".join(shlex.quote(x) for x in runner), " "]
            last = m.start()
        return "".join(out) + command[last:]

    def _write(self, dev_path: str, text: str, mode: int = 0o644) -> None:
        p = self.path(dev_path)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)

    def _write_getprop(self) -> None:
        props = self.profile.props
        lines = ["#!/bin/sh", "# getprop of the emulated phone (generated)", 'if [ $# -eq 0 ]; then', "cat <<'EOF'"]
        lines += [f"[{k}]: [{v}]" for k, v in sorted(props.items())] + ["EOF", "exit 0", "fi", 'case "$1" in']
        lines += [f"  {shlex.quote(k)}) echo {shlex.quote(v)} ;;" for k, v in sorted(props.items())]
        lines += ['  *) echo "$2" ;;', "esac"]
        self._write("/bin/getprop", "\n".join(lines) + "\n", 0o755)

    def _write_taskset(self) -> None:
        """toybox-style ``taskset MASK cmd...`` / ``taskset -c LIST cmd...``, with the phone's CPUs
        folded onto this machine's (CPU i -> host CPU i mod n): pinning stays real, just coarser."""
        script = f"""#!{sys.executable}
import os, sys
def cpus(a, is_list):
    if is_list:
        out = set()
        for part in a.split(","):
            lo, _, hi = part.partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
        return out
    m = int(a, 16)
    return {{i for i in range(m.bit_length()) if m >> i & 1}}
args = sys.argv[1:]
is_list = bool(args) and args[0] == "-c"
if is_list:
    args = args[1:]
if len(args) < 2:
    sys.exit("usage: taskset [-c] MASK|LIST COMMAND...")
host = sorted(os.sched_getaffinity(0))
want = {{host[c % len(host)] for c in cpus(args[0], is_list)}}
os.sched_setaffinity(0, want)
try:
    os.execvp(args[1], args[1:])
except OSError as e:
    sys.stderr.write(f"taskset: {{args[1]}}: {{e.strerror}}\\n")
    sys.exit(127)
"""
        self._write("/bin/taskset", script, 0o755)

    def _write_cpuinfo(self) -> None:
        text = self.profile.cpuinfo
        if text is None:
            try:
                with open("/proc/cpuinfo") as f:
                    text = f.read()
            except OSError:
                text = ""
        self._write("/proc/cpuinfo", text)

    def _write_sysfs(self) -> None:
        p = self.profile
        ncpu = sum(n for n, _ in p.clusters)
        self._write("/sys/devices/system/cpu/possible", f"0-{ncpu - 1}\n")
        self._write("/sys/devices/system/cpu/online", f"0-{ncpu - 1}\n")
        cpu = 0
        for n, khz in p.clusters:
            related = f"{cpu}-{cpu + n - 1}" if n > 1 else str(cpu)
            for _ in range(n):
                base = f"/sys/devices/system/cpu/cpu{cpu}/cpufreq"
                for name, val in (("cpuinfo_max_freq", khz), ("cpuinfo_min_freq", 300000), ("scaling_max_freq", khz),
                                  ("scaling_min_freq", 300000), ("scaling_cur_freq", khz),
                                  ("scaling_governor", p.governor), ("related_cpus", related)):
                    self._write(f"{base}/{name}", f"{val}\n")
                cpu += 1
        for i, (kind, temp) in enumerate(p.thermal.items()):
            self._write(f"/sys/class/thermal/thermal_zone{i}/type", kind + "\n")
            self._write(f"/sys/class/thermal/thermal_zone{i}/temp", f"{int(temp * 1000)}\n")
        bat = "/sys/class/power_supply/battery"
        self._write(f"{bat}/capacity", f"{p.battery_level}\n")
        self._write(f"{bat}/temp", f"{int(p.battery_temp_c * 10)}\n")  # tenths of a degree, as Android
        self._write(f"{bat}/status", "Charging\n")


# ---------------------------------------------------------------------------------- transport
class StreamClosed(Exception):
    pass


class Stream:
    """One ADB stream (our local id <-> the host's remote id) with stop-and-wait OKAY flow control."""

    def __init__(self, conn: "Connection", lid: int, rid: int) -> None:
        self.conn, self.lid, self.rid = conn, lid, rid
        self.inq: asyncio.Queue[bytes] = asyncio.Queue()
        self.can_send = asyncio.Event()
        self.can_send.set()  # may WRTE right after our OKAY
        self.wlock = asyncio.Lock()
        self.closed = False
        self.buf = bytearray()

    async def write(self, data: bytes) -> None:
        mp = self.conn.max_payload
        async with self.wlock:
            for off in range(0, len(data), mp):
                while not self.can_send.is_set():
                    await self.can_send.wait()
                if self.closed:
                    raise StreamClosed()
                self.can_send.clear()  # one WRTE in flight until the host OKAYs it
                self.conn.send(A_WRTE, self.lid, self.rid, bytes(data[off:off + mp]))
                await self.conn.drain()

    async def read(self) -> bytes:
        """Next WRTE payload from the host; b'' on close. We OKAY once we took it."""
        data = await self.inq.get()
        if data and not self.closed:
            self.conn.send(A_OKAY, self.lid, self.rid)
        return data

    async def readexactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            d = await self.read()
            if not d:
                raise StreamClosed()
            self.buf += d
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def remote_closed(self) -> None:
        self.closed = True
        self.inq.put_nowait(b"")
        self.can_send.set()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.send(A_CLSE, self.lid, self.rid)
            self.can_send.set()
        self.conn.streams.pop(self.lid, None)


Handler = Callable[[Stream, str], Awaitable[None]]


class Connection:
    """One TCP connection from the adb server: CNXN handshake (no AUTH), then multiplexed streams."""

    def __init__(self, phone: "EmulatedPhone", reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.phone, self.reader, self.writer = phone, reader, writer
        self.version, self.max_payload = A_VERSION_SKIP_CHECKSUM, MAX_PAYLOAD
        self.streams: dict[int, Stream] = {}
        self.next_id = 1
        self.tasks: set[asyncio.Task] = set()

    def send(self, cmd: int, a0: int, a1: int, data: bytes = b"") -> None:
        chk = 0 if (self.version >= A_VERSION_SKIP_CHECKSUM and cmd != A_CNXN) else (sum(data) & 0xFFFFFFFF)
        self.writer.write(HDR.pack(cmd, a0, a1, len(data), chk, cmd ^ 0xFFFFFFFF) + data)

    async def drain(self) -> None:
        await self.writer.drain()

    async def run(self) -> None:
        try:
            while True:
                cmd, a0, a1, n, _chk, magic = HDR.unpack(await self.reader.readexactly(24))
                if magic != cmd ^ 0xFFFFFFFF:
                    raise ValueError("bad magic")
                data = await self.reader.readexactly(n) if n else b""
                self.dispatch(cmd, a0, a1, data)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as e:
            log.info("connection closed: %r", e)
        finally:
            for s in list(self.streams.values()):
                s.remote_closed()
            for t in list(self.tasks):
                t.cancel()
            self.writer.close()

    def dispatch(self, cmd: int, a0: int, a1: int, data: bytes) -> None:
        if cmd == A_CNXN:  # host: CNXN(version, maxdata, "host::features=...")
            self.version = min(a0, A_VERSION_SKIP_CHECKSUM)
            self.max_payload = min(a1, MAX_PAYLOAD)
            props = self.phone.profile.props
            banner = ";".join(f"{k}={props.get(k, '')}" for k in ("ro.product.name", "ro.product.model",
                                                                   "ro.product.device"))
            self.send(A_CNXN, self.version, self.max_payload, f"device::{banner};features={FEATURES}".encode())
        elif cmd == A_OPEN:  # OPEN(remote id, 0, "service\0")
            name = data.rstrip(b"\0").decode("utf-8", "replace")
            handler = self.phone.lookup(name)
            if handler is None:
                self.send(A_CLSE, 0, a0)
                return
            lid, self.next_id = self.next_id, self.next_id + 1
            s = self.streams[lid] = Stream(self, lid, a0)
            self.send(A_OKAY, lid, a0)
            t = asyncio.create_task(self.serve(handler, s, name))
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)
        elif cmd == A_OKAY:  # OKAY(remote id, local id)
            s = self.streams.get(a1)
            if s:
                s.can_send.set()
        elif cmd == A_WRTE:
            s = self.streams.get(a1)
            if s:
                s.inq.put_nowait(data)
        elif cmd == A_CLSE:  # the host closed; it expects no CLSE back
            s = self.streams.pop(a1, None)
            if s:
                s.remote_closed()
        else:
            log.warning("ignoring packet %08x", cmd)

    async def serve(self, handler: Handler, s: Stream, name: str) -> None:
        try:
            await handler(s, name)
        except StreamClosed:
            pass
        except Exception:
            log.exception("service %r failed", name)
        finally:
            s.close()


# ------------------------------------------------------------------------------------ phone
@dataclass
class Faults:
    """Scripted failures: vanish `die_delay` s after the `die_on_count`-th shell matching `die_on`."""

    die_on: str = ""
    die_on_count: int = 1
    die_delay: float = 0.0
    seen: int = 0
    shell_subs: list = field(default_factory=list)  # (regex, replacement) applied to shell commands
    sync_space: int = -1  # bytes that SEND may still write before failing with ENOSPC (-1: no limit)


class EmulatedPhone:
    """The services of a phone: shell, exec and sync over its sandbox."""

    def __init__(self, sandbox: str, profile: PhoneProfile | None = None, faults: Faults | None = None) -> None:
        self.profile = profile or PhoneProfile()
        props = self.profile.props
        #: How binaries of each foreign ABI the phone claims run here (qemu user mode).
        abis = set(props.get("ro.product.cpu.abilist", "").split(",")) | {props.get("ro.product.cpu.abi", "")}
        self.runners = {abi: r for abi, r in foreign_runners().items() if abi in abis}
        abi = props.get("ro.product.cpu.abi", "")
        if abi in ELF_MACHINES.values() and abi != host_abi():
            if abi not in self.runners:
                raise SystemExit(f"an {abi} phone needs qemu-aarch64-static here (apt-get install qemu-user-static)")
            props.setdefault("ro.boot.qemu", "1")  # what the Android emulator says; devprof reads it
        self.fs = Sandbox(sandbox, self.profile)
        self.faults = faults or Faults()
        self.children: set[int] = set()  # process groups of running shell commands
        self.shells = 0  # shell/exec requests served (tests count round trips with it)

    def lookup(self, name: str) -> Handler | None:
        head = name.split(":", 1)[0]
        if head == "shell" or head.startswith("shell,") or name.startswith("exec:"):
            return self.shell
        if name == "sync:":
            return self.sync
        return None

    def vanish(self) -> None:
        """Disappear like an unplugged phone: kill every running command, drop every socket."""
        for pgid in list(self.children):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.warning("emulated phone vanishing")
        os._exit(1)

    # ------------------------------------------------------------------------- shell
    async def shell(self, s: Stream, name: str) -> None:
        head, _, command = name.partition(":")
        v2 = head.startswith("shell") and "v2" in head.split(",")[1:]
        self.shells += 1
        if command:
            command = self.fs.run_foreign(self.fs.rewrite(command), self.runners)
            for pat, repl in self.faults.shell_subs:  # fault injection (tests): e.g. wrap the harness
                command = re.sub(pat, repl, command, flags=re.M)
        argv = ["/bin/sh", "-c", command] if command else ["/bin/sh"]
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=self.fs.root, env=self.fs.env, start_new_session=True,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE if v2 else asyncio.subprocess.STDOUT)
        self.children.add(proc.pid)
        f = self.faults
        if f.die_on and re.search(f.die_on, command):
            f.seen += 1
            if f.seen == f.die_on_count:
                asyncio.get_running_loop().call_later(f.die_delay, self.vanish)
        mp = s.conn.max_payload

        async def pump(src: asyncio.StreamReader, ident: int) -> None:
            while True:
                chunk = await src.read(mp - 5 if v2 else mp)
                if not chunk:
                    return
                await s.write(struct.pack("<BI", ident, len(chunk)) + chunk if v2 else chunk)

        async def stdin_pump() -> None:
            assert proc.stdin is not None
            try:
                while True:
                    if v2:
                        ident, n = struct.unpack("<BI", await s.readexactly(5))
                        data = await s.readexactly(n) if n else b""
                        if ident == 0:
                            proc.stdin.write(data)
                            await proc.stdin.drain()
                        elif ident == 4:
                            proc.stdin.close()
                    else:
                        data = await s.read()
                        if not data:
                            raise StreamClosed()
                        proc.stdin.write(data)
                        await proc.stdin.drain()
            except StreamClosed:  # the host went away: hang up the command, as adbd does
                if proc.returncode is None:
                    try:
                        os.killpg(proc.pid, signal.SIGHUP)
                    except ProcessLookupError:
                        pass
            except (BrokenPipeError, ConnectionResetError):
                pass

        inp = asyncio.create_task(stdin_pump())
        try:
            pumps = [pump(proc.stdout, 1)] + ([pump(proc.stderr, 2)] if v2 else [])  # type: ignore[arg-type]
            await asyncio.gather(*pumps)
            rc = await proc.wait()
            if v2:
                await s.write(struct.pack("<BIB", 3, 1, rc & 0xFF))
        finally:
            inp.cancel()
            if proc.returncode is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await proc.wait()
            self.children.discard(proc.pid)

    # -------------------------------------------------------------------------- sync
    @staticmethod
    def _st_v2(st: os.stat_result | None, err: int = 0) -> bytes:
        # error, dev, ino, mode, nlink, uid, gid, size, atime, mtime, ctime
        if st is None:
            return struct.pack("<IQQIIIIQqqq", err, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        return struct.pack("<IQQIIIIQqqq", 0, st.st_dev, st.st_ino, st.st_mode, st.st_nlink, st.st_uid,
                           st.st_gid, st.st_size, int(st.st_atime), int(st.st_mtime), int(st.st_ctime))

    async def sync(self, s: Stream, name: str) -> None:
        while True:
            ident, n = struct.unpack("<4sI", await s.readexactly(8))
            if ident == b"QUIT":
                return
            if n > 1024:
                return await self._sync_fail(s, "path too long")
            arg = (await s.readexactly(n)).decode("utf-8", "surrogateescape")
            if ident == b"STAT":  # legacy: lstat, zeros on error
                try:
                    st = os.lstat(self.fs.path(arg))
                    out = struct.pack("<III", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))
                except OSError:
                    out = bytes(12)
                await s.write(b"STAT" + out)
            elif ident in (b"STA2", b"LST2"):
                try:
                    fn = os.stat if ident == b"STA2" else os.lstat
                    out = self._st_v2(fn(self.fs.path(arg)))
                except OSError as e:
                    out = self._st_v2(None, e.errno or 0)
                await s.write(ident + out)
            elif ident in (b"LIST", b"LIS2"):
                await self._sync_list(s, arg, v2=ident == b"LIS2")
            elif ident == b"SEND":
                await self._sync_send(s, arg)
            elif ident == b"RECV":
                await self._sync_recv(s, arg)
            else:
                return await self._sync_fail(s, f"unknown sync command {ident!r}")

    @staticmethod
    async def _sync_fail(s: Stream, msg: str) -> None:
        m = msg.encode()
        await s.write(b"FAIL" + struct.pack("<I", len(m)) + m)

    async def _sync_list(self, s: Stream, arg: str, v2: bool) -> None:
        base, out = self.fs.path(arg), bytearray()
        try:
            names = [".", ".."] + sorted(os.listdir(base))
        except OSError:
            names = []
        for nm in names:
            try:
                st = os.lstat(os.path.join(base, nm))
            except OSError:
                continue
            b = nm.encode("utf-8", "surrogateescape")
            if v2:
                out += b"DNT2" + self._st_v2(st) + struct.pack("<I", len(b)) + b
            else:
                out += b"DENT" + struct.pack("<IIII", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime), len(b)) + b
        out += b"DONE" + (bytes(72) if v2 else bytes(16))
        await s.write(bytes(out))

    async def _sync_send(self, s: Stream, arg: str) -> None:
        dev_path, _, mode_s = arg.rpartition(",")
        mode = int(mode_s) if mode_s.isdigit() else 0o100644
        target, err = self.fs.path(dev_path), ""
        chunks: list[bytes] = []
        f = None
        mtime = 0
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not stat.S_ISLNK(mode):
                if os.path.lexists(target) and not os.path.isfile(target):
                    os.unlink(target)
                f = open(target, "wb")
        except OSError as e:
            err = f"{dev_path}: {e.strerror}"
        while True:  # keep consuming DATA until DONE, even after an error
            ident, n = struct.unpack("<4sI", await s.readexactly(8))
            if ident == b"DATA":
                data = await s.readexactly(n)
                if err:
                    continue
                if f and self.faults.sync_space >= 0:  # fault injection: a full /data
                    if len(data) > self.faults.sync_space:
                        self.faults.sync_space = 0
                        err = f"{dev_path}: No space left on device"
                        continue
                    self.faults.sync_space -= len(data)
                if f:
                    f.write(data)
                else:
                    chunks.append(data)
            elif ident == b"DONE":
                mtime = n
                break
            else:
                err = err or f"bad sync id {ident!r} during SEND"
                break
        try:
            if f:
                f.close()
                if not err:
                    os.chmod(target, stat.S_IMODE(mode) or 0o644)
                    os.utime(target, (mtime, mtime))
            elif not err:  # symlink: the payload is the link target
                if os.path.lexists(target):
                    os.unlink(target)
                os.symlink(b"".join(chunks).decode(), target)
        except OSError as e:
            err = err or f"{dev_path}: {e.strerror}"
        if err:
            await self._sync_fail(s, err)
        else:
            await s.write(b"OKAY" + bytes(4))

    async def _sync_recv(self, s: Stream, arg: str) -> None:
        try:
            f = open(self.fs.path(arg), "rb")
        except OSError as e:
            return await self._sync_fail(s, f"{arg}: {e.strerror}")
        with f:
            batch, limit = bytearray(), s.conn.max_payload
            while True:
                chunk = f.read(SYNC_DATA_MAX)
                if not chunk:
                    break
                batch += b"DATA" + struct.pack("<I", len(chunk)) + chunk
                if len(batch) >= limit:  # several DATA records per WRTE
                    await s.write(bytes(batch))
                    batch = bytearray()
            batch += b"DONE" + bytes(4)
            await s.write(bytes(batch))

    # ------------------------------------------------------------------------ server
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen until cancelled; print ``listening on HOST:PORT`` first (port 0 = a free one)."""

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(6, 1, 1)  # TCP_NODELAY: adb is request/response
            await Connection(self, reader, writer).run()

        srv = await asyncio.start_server(on_client, host, port)
        bound = srv.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.vanish)
        print(f"listening on {host}:{bound}", flush=True)
        log.info("emulated %s listening on %s:%d sandbox=%s", self.profile.props.get("ro.product.model"),
                 host, bound, self.fs.root)
        async with srv:
            await srv.serve_forever()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="An emulated Android phone for the real adb server (adb connect HOST:PORT).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0,
                    help="TCP port (0: a free one; avoid 5555-5585, which the adb server scans for emulators)")
    ap.add_argument("--sandbox", required=True, help="folder holding the phone's file system")
    ap.add_argument("--model", help="ro.product.model, e.g. SM-G991U (default SM-G981U, a Galaxy S20 5G); "
                                    f"known models ({', '.join(PRESETS)}) also get their SoC, build and clusters")
    ap.add_argument("--abi", help="ro.product.cpu.abi (default x86_64, so the x86_64 harness runs here); "
                                  f"arm64-v8a: an arm64 phone (default model {ARM64_MODEL}) whose binaries run "
                                  "under qemu-aarch64-static, marked ro.boot.qemu=1")
    ap.add_argument("--cpu-features", metavar="NAMES",
                    help="the Features line of an arm64 phone's /proc/cpuinfo (default: the S20's, with asimddp "
                         "and asimdhp); an x86_64 phone shows this machine's /proc/cpuinfo")
    ap.add_argument("--serialno", help="ro.serialno")
    ap.add_argument("--prop", action="append", default=[], metavar="KEY=VALUE", help="any other property (repeatable)")
    ap.add_argument("--props-json", help="a JSON object of properties (merged over the defaults)")
    ap.add_argument("--clusters", type=parse_clusters, default=DEFAULT_CLUSTERS,
                    help="CPU clusters as COUNTxMAXKHZ,... (default 4x1804800,3x2419200,1x2841600)")
    ap.add_argument("--die-on", default="", metavar="REGEX", help="fault: vanish during a shell command matching REGEX")
    ap.add_argument("--die-on-count", type=int, default=1, help="fault: ...the N-th such command (default 1)")
    ap.add_argument("--die-delay", type=float, default=0.0, help="fault: ...this many seconds after it started")
    ap.add_argument("--shell-sub", nargs=2, action="append", default=[], metavar=("REGEX", "REPL"),
                    help="fault: rewrite shell commands (after path mapping) with re.sub, e.g. to wrap the harness")
    ap.add_argument("--sync-space", type=int, default=-1, metavar="BYTES",
                    help="fault: pushes fail with 'No space left on device' after this many bytes")
    ap.add_argument("-v", "--verbose", action="count", default=0)
    return ap


def profile_from_args(a: argparse.Namespace) -> PhoneProfile:
    props = dict(DEFAULT_PROPS)
    clusters = a.clusters
    if a.abi == "arm64-v8a" and not a.model:
        a.model = ARM64_MODEL
    if a.model in PRESETS:  # a known model: its coherent identity first, explicit options on top
        extra, preset_clusters = PRESETS[a.model]
        props.update(extra)
        if a.clusters == DEFAULT_CLUSTERS:
            clusters = preset_clusters
    if a.props_json:
        props.update({str(k): str(v) for k, v in json.loads(a.props_json).items()})
    for kv in a.prop:
        k, sep, v = kv.partition("=")
        if not sep:
            raise SystemExit(f"--prop needs KEY=VALUE, got {kv!r}")
        props[k] = v
    if a.model:
        props["ro.product.model"] = a.model
    if a.abi == "arm64-v8a":
        props.update(ARM64_ABI_PROPS)
    elif a.abi:
        props["ro.product.cpu.abi"] = a.abi
        props["ro.product.cpu.abilist"] = a.abi
    if a.serialno:
        props["ro.serialno"] = a.serialno
    cpuinfo = None
    if props.get("ro.product.cpu.abi") == "arm64-v8a":
        cpuinfo = arm64_cpuinfo(S20_FEATURES if a.cpu_features is None else a.cpu_features)
    elif a.cpu_features is not None:
        raise SystemExit("--cpu-features describes an arm64 phone (--abi arm64-v8a)")
    return PhoneProfile(props=props, clusters=clusters, cpuinfo=cpuinfo)


def main(argv: list[str] | None = None) -> None:
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(a.verbose, 2)],
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    phone = EmulatedPhone(a.sandbox, profile_from_args(a), Faults(a.die_on, a.die_on_count, a.die_delay,
                                                                  shell_subs=[tuple(x) for x in a.shell_sub],
                                                                  sync_space=a.sync_space))
    try:
        asyncio.run(phone.serve(a.host, a.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
