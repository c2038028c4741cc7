"""C toolchains per target ABI: the host compiler for `local`, static cross builds for phones.

Why static: a static binary needs nothing from the phone's bionic libc, so Debian's
``aarch64-linux-gnu-gcc -static`` output runs from ``/data/local/tmp`` on any arm64 Android, and
``gcc -static`` output on x86_64 emulators. With ``ANDROID_NDK_HOME`` set, the NDK's clang is
used instead (bionic, ``-static`` too). A toolchain also says how to *run* its binaries on this
machine (natively, or under ``qemu-aarch64-static``), so arm64 builds are checked here too.

The harness build (devprof/artifacts/harness_build.py) asks `toolchain_for(device)` which compiler to
use; its cache key includes `Toolchain.key`, so a compiler or flag change rebuilds.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..errors import KernelError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from ..devices.base import Device

ABIS = ("arm64-v8a", "x86_64")
NDK_API = 24  # oldest Android (7.0) whose bionic has everything the harness uses
_TRIPLES = {"arm64-v8a": "aarch64-linux-android", "x86_64": "x86_64-linux-android"}
_GNU_CROSS = {"arm64-v8a": "aarch64-linux-gnu-gcc", "x86_64": "x86_64-linux-gnu-gcc"}
_GNU_TRIPLES = {"arm64-v8a": "aarch64-linux-gnu", "x86_64": "x86_64-linux-gnu"}
_ARCH_FLAGS = {"arm64-v8a": ("-march=armv8-a",),  # NEON is baseline on arm64
               "x86_64": ("-march=x86-64-v2",)}  # Android x86_64 guarantees SSE4.2/POPCNT


def host_abi() -> str:
    m = platform.machine().lower()
    return {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64-v8a", "arm64": "arm64-v8a"}.get(m, m)


@dataclass(frozen=True)
class Toolchain:
    """A C compiler for one ABI with the flags devprof builds with."""

    abi: str
    cc: tuple[str, ...]
    kind: str  # "host" | "gnu-static" | "ndk"
    cflags: tuple[str, ...] = ("-O3", "-std=gnu11", "-ffp-contract=fast")
    ldflags: tuple[str, ...] = ()
    runner: tuple[str, ...] | None = ()  # prefix to run a binary here; None: cannot run here

    def available(self) -> str | None:
        """None when the compiler is installed, else a one-line reason with the fix."""
        if shutil.which(self.cc[0]) or Path(self.cc[0]).is_file():
            return None
        hint = {"arm64-v8a": "apt-get install gcc-aarch64-linux-gnu (or set ANDROID_NDK_HOME)"}.get(
            self.abi, "install a C compiler (gcc) or set CC")
        return f"no C compiler for {self.abi}: {self.cc[0]} not found; {hint}"

    def require(self) -> "Toolchain":
        why = self.available()
        if why:
            raise UsageError(why)
        return self

    @property
    def key(self) -> str:
        """Identity for build caches: compiler version line, kind, ABI and flags."""
        return "|".join([self.abi, self.kind, _compiler_version(self.cc), *self.cflags, *self.ldflags])

    @property
    def can_run_here(self) -> bool:
        return self.runner is not None and (not self.runner or shutil.which(self.runner[0]) is not None)

    def compile(self, sources: Sequence[Path], out: Path, include_dirs: Sequence[Path] = (),
                extra_cflags: Sequence[str] = (), libs: Sequence[str] = ("-lm",), timeout_s: float = 600) -> Path:
        """Compile and link `sources` into the executable `out` (written atomically)."""
        self.require()
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        argv = [*self.cc, *self.cflags, *extra_cflags, *(f"-I{d}" for d in include_dirs),
                *(str(s) for s in sources), "-o", str(tmp), *self.ldflags, *libs]
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise KernelError(f"{self.cc[0]} took over {timeout_s:.0f} s building {out.name}") from None
        if p.returncode != 0:
            first = next((l for l in p.stderr.splitlines() if "error" in l), p.stderr.strip()[:300])
            raise KernelError(f"{self.cc[0]} failed building {out.name} for {self.abi}: {first}")
        os.replace(tmp, out)
        return out

    def run_argv(self, binary: Path, *args: str) -> list[str]:
        """argv that runs `binary` on this machine (under qemu when it is foreign)."""
        if self.runner is None:
            raise UsageError(f"{self.abi} binaries cannot run on this machine")
        return [*self.runner, str(binary), *args]


@lru_cache(maxsize=None)
def _compiler_version(cc: tuple[str, ...]) -> str:
    try:
        p = subprocess.run([*cc, "--version"], capture_output=True, text=True, timeout=30)
        return (p.stdout.splitlines() or ["?"])[0].strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def host_toolchain() -> Toolchain:
    """This machine's compiler ($CC or cc), tuned for this CPU: kernels for `local`."""
    cc = tuple((os.environ.get("CC") or "cc").split())
    return Toolchain(host_abi(), cc, "host", cflags=("-O3", "-std=gnu11", "-ffp-contract=fast", "-march=native"))


def _runner_for(abi: str) -> tuple[str, ...] | None:
    if abi == host_abi():
        return ()
    if abi == "arm64-v8a":
        return ("qemu-aarch64-static",) if shutil.which("qemu-aarch64-static") else None
    return None


def android_toolchain(abi: str) -> Toolchain:
    """A static build for a phone of `abi`: the NDK's clang when ANDROID_NDK_HOME is set,
    else Debian's cross gcc (or the host gcc when the ABI is this machine's)."""
    if abi not in ABIS:
        raise UsageError(f"no toolchain for ABI {abi!r} (supported: {', '.join(ABIS)})")
    ndk = os.environ.get("ANDROID_NDK_HOME") or os.environ.get("ANDROID_NDK_ROOT")
    flags = ("-O3", "-std=gnu11", "-ffp-contract=fast", *_ARCH_FLAGS[abi])
    if ndk:
        clang = Path(ndk) / "toolchains" / "llvm" / "prebuilt" / "linux-x86_64" / "bin" / f"{_TRIPLES[abi]}{NDK_API}-clang"
        return Toolchain(abi, (str(clang),), "ndk", cflags=flags, ldflags=("-static",), runner=_runner_for(abi))
    if abi == host_abi():
        cc: tuple[str, ...] = (shutil.which(_GNU_CROSS[abi]) or os.environ.get("CC") or "gcc",)
    else:
        cc = (_GNU_CROSS[abi],)
    return Toolchain(abi, cc, "gnu-static", cflags=flags, ldflags=("-static",), runner=_runner_for(abi))


def cross_toolchains(abi: str) -> list[Toolchain]:
    """Every static toolchain for `abi` installed here, the default (`android_toolchain`) first:
    Debian's gcc and, when clang and the GNU sysroot are both present, clang targeting it
    (``clang --target=aarch64-linux-gnu``). bench/arm64_codegen.py compares their inner loops."""
    first = android_toolchain(abi)
    out = [first] if first.available() is None else []
    gnu = Toolchain(abi, (_GNU_CROSS[abi],) if abi != host_abi() else (shutil.which(_GNU_CROSS[abi]) or "gcc",),
                    "gnu-static", cflags=first.cflags, ldflags=("-static",), runner=_runner_for(abi))
    clang = shutil.which("clang")
    cl = Toolchain(abi, (clang or "clang", f"--target={_GNU_TRIPLES[abi]}"), "clang-static", cflags=first.cflags,
                   ldflags=("-static",), runner=_runner_for(abi))
    for tc in (gnu, cl):
        if tc.cc != first.cc and tc.available() is None and (tc.kind != "clang-static" or _gnu_sysroot(abi)):
            out.append(tc)
    return out


def _gnu_sysroot(abi: str) -> bool:
    """Debian's cross sysroot for `abi` (headers and static libc that clang links against)."""
    return abi == host_abi() or Path(f"/usr/{_GNU_TRIPLES[abi]}/include/stdio.h").is_file()


def toolchain_for(device: "Device") -> Toolchain:
    """The toolchain for a device: the host compiler for `local`, a static build for its ABI otherwise."""
    if device.kind == "local":
        return host_toolchain()
    return android_toolchain(device.abi)
