"""`openblas`: Debian's static OpenBLAS ``cblas_sgemm`` as a dense baseline, run by the native harness.

The same flow as `devprof-c` (one batch = one static harness binary, staged and run with one
`Device.execute`, outputs checked before timing), with kernels that call a tuned vendor-grade
GEMM instead of devprof's generated code: conv2d as im2col + GEMM, 1x1 conv and fc as one GEMM.
Works on `local` and on phones of either ABI; the library is fetched once per ABI
(devprof/artifacts/openblas.py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import DevprofError
from ..records import KernelSpec, RuntimeInfo
from .harness import DevprofC

if TYPE_CHECKING:  # pragma: no cover
    from ..devices.base import Device


class OpenBLASGemm(DevprofC):
    name = "openblas"
    multithreaded = False  # Debian's libopenblas-serial, called from one thread

    def available(self, device: "Device") -> str | None:
        why = super().available(device)
        if why:
            return why
        from ..artifacts import openblas

        try:
            openblas.fetch(device.abi)
        except DevprofError as e:
            return str(e)
        return None

    def supports(self, spec: KernelSpec) -> str | None:
        from ..artifacts.openblas import unsupported

        return unsupported(spec)

    def toolchain(self, device: "Device"):
        from ..artifacts import openblas
        from ..artifacts.harness_build import toolchain_for

        return openblas.toolchain_with(toolchain_for(device), openblas.fetch(device.abi))

    def generate_kernel(self, spec: KernelSpec, variant: str, vl: int, regs: int, name: str):
        from ..artifacts.openblas import generate

        return generate(spec, name)

    def info(self, device: "Device", threads: int) -> RuntimeInfo:
        from ..artifacts import openblas
        from ..artifacts.toolchains import _compiler_version

        blas = openblas.fetch(device.abi)
        tc = self.toolchain(device)
        return RuntimeInfo(self.name, blas.version, threads,
                           {"cc": _compiler_version(tc.cc), "toolchain": tc.kind, "library": "libopenblas-serial",
                            "layout": "nchw"})
