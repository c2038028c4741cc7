"""fp16 C code generation for arm64: dense and every sparsity scheme as half-precision kernels.

An fp16 kernel is the fp32 generator's kernel (`codegen`: same grouping, register blocking,
tiling, threads' chunks) written over ARMv8.2-A half vectors: 8 lanes per 128-bit NEON register
instead of 4, so the same blocking does twice the FMAs per instruction. The element type
``dp_f`` is IEEE half everywhere: the input the harness hands over, the padded copy, weights,
bias, accumulators, the tile buffer and the output (``dp_harness.h`` under ``DP_F16``, ACLE
intrinsics: ``fmla v.8h``, by-element ``fmla v.8h, v.8h, v.h[i]``).

Accumulation is in fp16, as XNNPACK's fp16 GEMMs do (TFLite's ``fp16accfp16``): accumulating in
fp32 would need a widening step per FMA (or FMLAL pairs) and halve the throughput that is fp16's
reason to exist. The price is error that grows with the reduction length K, which is what the
stated tolerance allows (`devprof.runtimes.reference.TOLERANCES["fp16"]`): against the float64
reference on the fp16-rounded input, weights and bias,
|got - want| <= atol + (2^-11 + 2^-9 sqrt(K)) * max(|want|, RMS(want)). The harness checks every
kernel with exactly that (the kernel's own ``rtol``/``atol``) before timing it.

Only this kernel's object is built with ``-march=armv8.2-a+fp16`` (the harness itself stays
ARMv8.0), and only arm64 targets generate them: x86 has no fp16 vector arithmetic that phones
share, so fp16 on x86 is refused (`unsupported_on`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..records import KernelSpec
from ..runtimes.reference import TOLERANCES, reduction_length
from . import codegen
from .codegen_int8 import _bytes_as_i32
from .reference import reference_samples
from .weights import input_tensor

LANES = 8  # halves per 128-bit NEON register
REGS = 32
CFLAGS = ("-march=armv8.2-a+fp16",)
#: What records of fp16 kernels carry as the kernel that ran (`Record.kernel`).
PATH = "fp16 fmla.8h"


def unsupported(spec: KernelSpec) -> str | None:
    """None when devprof-c generates an fp16 kernel for `spec` (on arm64), else why not."""
    return codegen.unsupported(spec, ("fp16",))


def unsupported_on(abi: str, features: frozenset[str] | set[str] | None = None) -> str | None:
    """None when devprof-c's fp16 kernels build for `abi` and run on a CPU with `features` (its
    /proc/cpuinfo names, `Device.cpu_features`; None: a build alone, no CPU to run on), else why
    not (one line). They need the vector fp16 arithmetic that Linux calls ``asimdhp``."""
    if abi != "arm64-v8a":
        return (f"devprof-c fp16 kernels need arm64 with fp16 arithmetic (ARMv8.2-A +fp16); this {abi} target has "
                "none: measure fp16 on an arm64 phone")
    if features is not None and "asimdhp" not in features:
        return ("devprof-c fp16 kernels need fp16 arithmetic (ARMv8.2-A, /proc/cpuinfo asimdhp); this arm64 CPU "
                "reports none (an ARMv8.0 core): measure fp16 on an ARMv8.2 phone")
    return None


def tolerance(spec: KernelSpec) -> tuple[float, float]:
    """(rtol, atol) of the harness's check for `spec`: TOLERANCES["fp16"] at its reduction length."""
    t = TOLERANCES["fp16"]
    return t["rtol"] + t["rtol_per_sqrt_k"] * float(np.sqrt(reduction_length(spec))), t["atol"]


@dataclass
class HalfKernel(codegen.GeneratedKernel):
    """A generated fp16 kernel: the harness hands it half input, reads half output, checks it with
    `tolerance` and builds it with `cflags`."""

    half: bool = True
    tolerance: tuple[float, float] = (0.0, 0.0)
    cflags: tuple[str, ...] = CFLAGS


def _to_half(src: str) -> str:
    """The fp32 kernel's C with every float as ``dp_f`` (IEEE half under DP_F16)."""
    head, sep, body = src.partition('#include "dp_harness.h"\n')
    assert sep, "generated source has no harness include"
    return head + "#define DP_F16 1\n" + sep + re.sub(r"\bfloat\b", "dp_f", body)


def _half_array(a: np.ndarray) -> np.ndarray:
    """A float array as the harness ships it to an fp16 kernel: halves packed in int32 words."""
    return _bytes_as_i32(np.asarray(a, np.float32).astype("<f2")) if a.dtype.kind == "f" else a


def half_inputs(spec: KernelSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input, pruned weights, bias) rounded to fp16, as float32: what the kernel computes with."""
    wm, b, _ = codegen.pruned_weights(spec)
    r = lambda a: np.asarray(a, np.float32).astype(np.float16).astype(np.float32)  # noqa: E731
    return r(input_tensor(spec)), r(wm), r(b)


def generate(spec: KernelSpec, variant: str = "sparse", name: str | None = None,
             with_reference: bool = True) -> HalfKernel:
    """The fp16 kernel of `spec` (dtype fp16) for arm64, checked against the float64 reference on
    the fp16-rounded tensors."""
    if spec.dtype != "fp16":
        raise ValueError(f"an fp16 kernel needs an fp16 spec, not {spec.dtype}")
    k = codegen.generate(spec, variant, vector_floats=LANES, vector_regs=REGS, name=name, with_reference=False,
                         dtypes=("fp16",))
    if with_reference:
        idx, ref = reference_samples(spec, *half_inputs(spec))
    else:
        idx, ref = np.zeros(0, np.int32), np.zeros(0, np.float32)
    arrays = [idx, ref, *(_half_array(a) for a in k.arrays[2:])]
    return HalfKernel(name=k.name, spec=spec, variant=variant, source=_to_half(k.source), arrays=arrays,
                      in_elems=k.in_elems, out_elems=k.out_elems, ws_floats=k.ws_floats, seed=k.seed,
                      stats={**k.stats, "dtype": "fp16", "accumulate": "fp16"}, chunking=k.chunking,
                      tolerance=tolerance(spec))
