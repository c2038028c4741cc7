"""A device's fp32 compute ceiling, estimated from its fingerprint (for roofline lines).

Peak = frequency x fp32 FLOPs per cycle per core x cores used. FLOPs per cycle follow from the
widest vector FMA the ISA flags say the core has, with the usual two FMA pipes (AMD Zen 4 runs
512-bit ops on 256-bit pipes, so AVX-512 counts as AVX2 there). This is an upper bound a kernel
can approach, not a measurement; the report says how each figure was obtained.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Peak:
    gflops: float
    freq_ghz: float
    flops_per_cycle: int
    cores: int
    how: str
    mem_gbs: float = math.nan  # memory bandwidth when the fingerprint carries it

    @property
    def ridge(self) -> float:
        """Arithmetic intensity (FLOP/byte) where the memory and compute roofs meet."""
        return self.gflops / self.mem_gbs if self.mem_gbs and math.isfinite(self.mem_gbs) else math.nan


def flops_per_cycle(isa: set[str], cpu: str, abi: str) -> tuple[int, str] | None:
    amd = "amd" in cpu.lower()
    if "avx512f" in isa and not amd:
        return 64, "AVX-512: 2 FMA pipes x 16 fp32 lanes x 2"
    if "avx512f" in isa or ("avx2" in isa and "fma" in isa):
        why = "AVX-512 on 256-bit pipes (Zen 4)" if "avx512f" in isa else "AVX2+FMA"
        return 32, f"{why}: 2 FMA pipes x 8 fp32 lanes x 2"
    if "avx" in isa:
        return 16, "AVX: 8-lane add + 8-lane mul per cycle"
    if "sse4_2" in isa or abi in ("x86_64", "x86"):
        return 8, "SSE: 4-lane add + 4-lane mul per cycle"
    if "asimd" in isa or abi.startswith("arm64"):
        return 16, "NEON: 2 FMA pipes x 4 fp32 lanes x 2 (big-core class)"
    return None


def _freq_from_name(cpu: str) -> float:
    m = re.search(r"@\s*([0-9.]+)\s*GHz", cpu, re.I)
    return float(m.group(1)) if m else math.nan


def _cpu_set(spec: str) -> set[int]:
    out: set[int] = set()
    for part in str(spec).split(","):
        a, _, b = part.strip().partition("-")
        if a.isdigit() and (not b or b.isdigit()):
            out.update(range(int(a), int(b or a) + 1))
    return out


def parse_clusters(v: Any) -> list[tuple[str, set[int], float]]:
    """CPU clusters from a fingerprint's ``extra["clusters"]``: the adb device's string form
    ``little=0-3@1804800;mid=4-6@2419200`` or a list of {"cpus", "max_freq_khz"} dicts."""
    out = []
    if isinstance(v, str):
        for item in v.split(";"):
            name, _, rest = item.partition("=")
            cpus, _, khz = rest.partition("@")
            try:
                out.append((name.strip(), _cpu_set(cpus), float(khz)))
            except ValueError:
                continue
    elif isinstance(v, (list, tuple)):
        for i, c in enumerate(v):
            if isinstance(c, Mapping):
                khz = next((c[k] for k in c if "max" in k and "freq" in k and isinstance(c[k], (int, float))), None)
                if khz is not None:
                    out.append((str(c.get("name", f"cluster{i}")), _cpu_set(c.get("cpus", "")), float(khz)))
    return out


def _extra_max_freq_khz(extra: Mapping[str, Any], cpus: str = "") -> tuple[float, str]:
    """The maximum frequency of the cores used: the pinned cluster when known, else the fastest."""
    clusters = parse_clusters(extra.get("clusters"))
    pinned = _cpu_set(cpus) if cpus else set()
    if clusters:
        used = [c for c in clusters if pinned & c[1]] if pinned else []
        if used:
            return max(c[2] for c in used), f"maximum frequency of the pinned cluster ({'/'.join(c[0] for c in used)})"
        fastest = max(clusters, key=lambda c: c[2])
        return fastest[2], f"maximum frequency of the fastest cluster ({fastest[0]})"
    best = max((float(v) for k, v in extra.items() if "max_freq" in k and isinstance(v, (int, float))), default=-1.0)
    return best, "maximum frequency from cpufreq"


def estimate_peak(device: Mapping[str, Any], threads: int, observed_freq_khz: float = math.nan,
                  cpus: str = "") -> Peak | None:
    """The fp32 compute ceiling of `threads` cores of `device`, or None when it cannot be known."""
    isa = {str(f).lower() for f in device.get("isa") or ()}
    cpu = str(device.get("cpu") or device.get("model") or "")
    extra = device.get("extra") or {}
    fpc = flops_per_cycle(isa, cpu, str(device.get("abi") or ""))
    if fpc is None:
        return None
    khz, how = _extra_max_freq_khz(extra, cpus)
    if khz > 0:
        ghz, src = khz / 1e6, how
    elif math.isfinite(_freq_from_name(cpu)):
        ghz, src = _freq_from_name(cpu), "frequency from the CPU name"
    elif observed_freq_khz and math.isfinite(observed_freq_khz) and observed_freq_khz > 0:
        ghz, src = observed_freq_khz / 1e6, ("frequency read during the measurements; a VM reports its base "
                                              "clock, so turbo can exceed this ceiling")
    else:
        return None
    cores_total = int(device.get("cores") or 0) or threads
    cores = max(1, min(int(threads), cores_total))
    mem = math.nan
    for k in ("mem_bw_gbs", "memory_bandwidth_gbs"):
        if isinstance(extra.get(k), (int, float)):
            mem = float(extra[k])
    return Peak(ghz * fpc[0] * cores, ghz, fpc[0], cores,
                f"{ghz:.2f} GHz ({src}) x {fpc[0]} FLOP/cycle ({fpc[1]}) x {cores} core{'s' if cores > 1 else ''}",
                mem)
