"""Target instruction sets of the generated kernels: the one table that decides vector width and
register count, so register blocking fits the machine that runs the code.

Why a table: the generated C uses GNU vectors of ``vector_floats`` floats. A vector wider than the
target's registers is split by the compiler into several registers, and once accumulators + inputs
+ weights exceed the register file it keeps them on the stack (an arm64 build with 8-float
vectors spilled 16-43 times per inner-loop iteration; an SSE4.2 build with 8-float vectors passes
them in memory). Blocking (`devprof.sparse.codegen`) is sized from ``vector_regs``, so both numbers
must describe the target, not the build host.

`isa_of(toolchain)` maps a toolchain (ABI + flags, or this CPU for ``-march=native``) to a row.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .toolchains import Toolchain


@dataclass(frozen=True)
class Isa:
    """One target's vector registers as the generated kernels see them."""

    name: str
    abi: str
    vector_floats: int  # floats per register (the generated dp_v)
    vector_regs: int  # architectural vector registers
    fma: bool  # fused multiply-add instruction (SSE4.2 has none: a multiply and an add)
    fma_pipes: int  # vector FMA (or multiply) pipes of a typical big core: the ideal in bench/
    cflags: tuple[str, ...]  # flags that enable it when building for another machine


#: name -> Isa. The x86 rows follow the x86-64 micro-architecture levels (v2 is Android x86_64's
#: baseline, v3 adds AVX2+FMA, v4 AVX-512); NEON is baseline on every arm64 core.
ISAS: dict[str, Isa] = {
    "neon": Isa("neon", "arm64-v8a", 4, 32, True, 2, ("-march=armv8-a",)),
    "sse4.2": Isa("sse4.2", "x86_64", 4, 16, False, 2, ("-march=x86-64-v2",)),
    "avx2": Isa("avx2", "x86_64", 8, 16, True, 2, ("-march=x86-64-v3",)),
    "avx512": Isa("avx512", "x86_64", 16, 32, True, 2, ("-march=x86-64-v4",)),
}

_X86_FLAGS = (  # (compiler flag, ISA it enables), strongest first
    ("-march=x86-64-v4", "avx512"), ("-mavx512f", "avx512"),
    ("-march=x86-64-v3", "avx2"), ("-mavx2", "avx2"),
)


#: CPU features a device fingerprint records (`DeviceInfo.isa`, /proc/cpuinfo names): those that
#: decide which kernels compilers and runtimes use. arm64: ``asimddp`` is the dot product (``sdot``,
#: devprof-c's int8 path), ``asimdhp`` / ``fphp`` fp16 vector / scalar arithmetic (fp16 kernels).
RECORDED_FEATURES = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                     "avx512_bf16", "amx_tile", "asimd", "asimddp", "asimdhp", "sve", "sve2", "i8mm", "bf16", "fphp")


def parse_cpu_features(cpuinfo: str) -> frozenset[str]:
    """The first CPU's feature names in a /proc/cpuinfo text (x86 ``flags``, arm64 ``Features``):
    Linux reports the features every CPU shares, so the first line speaks for all."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def recorded_features(features: frozenset[str] | set[str]) -> tuple[str, ...]:
    """The features of `features` that a fingerprint records, in RECORDED_FEATURES' order."""
    return tuple(f for f in RECORDED_FEATURES if f in features)


def cpu_flags() -> frozenset[str]:
    """This machine's CPU feature flags (/proc/cpuinfo), empty when unreadable."""
    try:
        return parse_cpu_features(Path("/proc/cpuinfo").read_text())
    except OSError:
        return frozenset()


def x86_isa_from_flags(flags: set[str]) -> Isa:
    """The strongest table row a CPU with these /proc/cpuinfo flags runs."""
    if "avx512f" in flags:
        return ISAS["avx512"]
    if "avx2" in flags and "fma" in flags:
        return ISAS["avx2"]
    return ISAS["sse4.2"]


def isa_of(tc: "Toolchain") -> Isa:
    """The ISA `tc` builds for: arm64 -> NEON; x86_64 with ``-march=native`` for this machine ->
    this CPU's strongest row; otherwise the strongest row its flags enable (x86-64-v2: SSE4.2)."""
    from .toolchains import host_abi

    if tc.abi == "arm64-v8a":
        return ISAS["neon"]
    if tc.abi != "x86_64":
        raise ValueError(f"no vector ISA known for ABI {tc.abi!r}")
    if any(f == "-march=native" for f in tc.cflags) and tc.abi == host_abi():
        return x86_isa_from_flags(cpu_flags())
    for flag, name in _X86_FLAGS:
        if flag in tc.cflags:
            return ISAS[name]
    return ISAS["sse4.2"]
