"""What this host's CPU can do, where it decides how an in-process runtime computes int8 and fp16.

Read from /proc/cpuinfo (Linux, x86_64 and arm64); the device fingerprint (`devices.local`)
records the ISA separately. Two facts matter here:

- fp16 arithmetic: XNNPACK computes an fp16 model in fp16 only on ARM cores with the FP16
  arithmetic extension (ARMv8.2 `asimdhp`); everywhere else, x86 with AVX512-FP16 included, it
  computes the same model in fp32 (XNNPACK's `xnn_is_f16_supported_natively`).
- VNNI on x86: without it, ONNX Runtime's u8 x s8 kernels add pairs of products in saturating
  16-bit lanes (pmaddubsw), which overflows with full 8-bit weights; ORT's own quantizer then
  uses 7-bit weights ("reduce_range"), and so does devprof.
"""
from __future__ import annotations

import functools
import platform


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The first CPU's feature flags (x86 ``flags``, arm64 ``Features``); empty when unreadable."""
    from ..artifacts.isa import cpu_flags as read

    return read()


def machine() -> str:
    m = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


def fp16_arithmetic() -> str | None:
    """None when XNNPACK computes fp16 models in fp16 on this CPU, else why not (one line)."""
    if machine() in ("aarch64", "armv8l", "armv7l") and "asimdhp" in cpu_flags():
        return None
    return (f"this {machine()} CPU has no fp16 arithmetic (ARMv8.2 asimdhp): XNNPACK would run the model in fp32 "
            "and devprof-c's fp16 kernels are arm64 code; measure fp16 on an ARMv8.2 phone")


def x86_without_vnni() -> bool:
    """True on x86 CPUs whose u8 x s8 dot products saturate (no AVX512-VNNI / AVX-VNNI)."""
    flags = cpu_flags()
    return machine() in ("x86_64", "i686", "x86") and not ({"avx512_vnni", "avx_vnni"} & flags)
