"""The arm64 builds' inner loops keep everything in registers (compile only, read the disassembly).

A register blocking that does not fit NEON's 32 q registers shows up as sp-relative loads/stores
inside the FMA loop: the kernels still pass their output checks but run several times slower on a
phone, so only the disassembly can catch it."""
from __future__ import annotations

import shutil

import pytest

from devprof.artifacts.disasm import compile_object, inner_loops
from devprof.artifacts.harness_build import vector_shape
from devprof.artifacts.isa import ISAS, isa_of
from devprof.artifacts.toolchains import Toolchain, android_toolchain, cross_toolchains
from devprof.records import KernelSpec, Sparsity
from devprof.sparse.codegen import generate

needs_cross = pytest.mark.skipif(not shutil.which("aarch64-linux-gnu-gcc") or not shutil.which("aarch64-linux-gnu-objdump"),
                                 reason="aarch64-linux-gnu-gcc / binutils not installed")

PW = KernelSpec("pwconv", h=28, w=28, cin=192, cout=32)
CASES = [  # (spec, rows per register block, FMAs per iteration of the hot loop)
    (PW.replace(sparsity=Sparsity("unstructured", 0.9)), 1, 56),  # 4 kept columns x 14 vectors per step
    (PW.replace(sparsity=Sparsity("bcr", 0.9, {"block": (4, 16)})), 4, 16),
    (KernelSpec("conv2d", h=20, w=24, cin=16, cout=16, kh=3, kw=3, padding=1,
                sparsity=Sparsity("pattern", 0.5, {"patterns": 4})), 1, None),
]


def test_isa_table_shapes() -> None:
    """Vector width and registers come from the target's ISA, not the build host."""
    assert vector_shape(android_toolchain("arm64-v8a")) == (4, 32)
    assert vector_shape(android_toolchain("x86_64")) == (4, 16)  # x86-64-v2: SSE4.2
    assert isa_of(android_toolchain("x86_64")).fma is False
    x86 = android_toolchain("x86_64")
    assert isa_of(Toolchain("x86_64", x86.cc, "host", cflags=("-O3", "-march=x86-64-v3"))) is ISAS["avx2"]
    assert isa_of(Toolchain("x86_64", x86.cc, "host", cflags=("-O3", "-mavx512f"))) is ISAS["avx512"]
    # a predictor fitted on records of a NEON build uses NEON's registers (4 floats alone is ambiguous)
    fit = pytest.importorskip("predictors.fit")
    assert fit.kernel_geometry({"isa": "neon", "vector_floats": 4}) == {"vector_floats": 4, "vector_regs": 32}
    assert fit.kernel_geometry({"isa": "sse4.2", "vector_floats": 4}) == {"vector_floats": 4, "vector_regs": 16}


@needs_cross
@pytest.mark.parametrize("case", range(len(CASES)))
def test_arm64_inner_loops_do_not_touch_the_stack(case: int, tmp_path) -> None:
    spec, rows, fmas = CASES[case]
    tcs = cross_toolchains("arm64-v8a")
    assert tcs and tcs[0].kind in ("gnu-static", "ndk")
    for i, tc in enumerate(tcs):
        vl, regs = vector_shape(tc)
        k = generate(spec, "sparse", vector_floats=vl, vector_regs=regs, name=f"t{case}_{i}", with_reference=False)
        assert k.stats.get("rmax", 1) == rows
        obj, warnings = compile_object(tc, k.source, tmp_path / f"t{case}_{i}.o")
        assert "changes the ABI" not in warnings
        loops = inner_loops(obj, "aarch64")
        assert loops, (tc.cc, "no fmla loop")
        for lp in loops:
            assert lp.stack_accesses == 0, (tc.cc, lp.function, lp.instructions)
        if fmas is not None:
            assert max(lp.fmas for lp in loops) == fmas, tc.cc


def test_x86_64_phone_build_has_no_avx_sized_vectors(tmp_path) -> None:
    """The x86-64-v2 phone build uses SSE-sized vectors: no "AVX vector return without AVX" ABI
    warning, no spills in the multiply loop."""
    tc = android_toolchain("x86_64")
    if tc.available():
        pytest.skip(tc.available())
    vl, regs = vector_shape(tc)
    k = generate(CASES[1][0], "sparse", vector_floats=vl, vector_regs=regs, name="x86v2", with_reference=False)
    obj, warnings = compile_object(tc, k.source, tmp_path / "x86v2.o")
    assert "ABI" not in warnings, warnings
    loops = inner_loops(obj, "x86_64")
    assert loops and all(lp.stack_accesses == 0 for lp in loops)


@needs_cross
@pytest.mark.parametrize("scheme,params", [("unstructured", {}), ("bcr", {"block": (4, 16)})])
def test_arm64_int8_sdot_loops_do_not_touch_the_stack(scheme: str, params: dict, tmp_path) -> None:
    """int8 with +dotprod: the sdot loops keep their accumulators in registers, gcc and clang."""
    import dataclasses

    from devprof.sparse import codegen_int8

    spec = PW.replace(sparsity=Sparsity(scheme, 0.9, params), dtype="int8")
    k = codegen_int8.generate(spec, "sparse", with_reference=False)
    for i, tc in enumerate(cross_toolchains("arm64-v8a")):
        tc = dataclasses.replace(tc, cflags=(*tc.cflags, "-march=armv8.2-a+dotprod"))
        obj, _ = compile_object(tc, k.source, tmp_path / f"i8_{i}.o")
        loops = inner_loops(obj, "aarch64")
        assert loops and max(lp.fmas for lp in loops) == 16, tc.cc  # 16 sdot per step
        assert all(lp.stack_accesses == 0 for lp in loops), (tc.cc, [lp.instructions for lp in loops])
        assert all(op == "sdot" for lp in loops for op, _ in lp.instructions if op in ("sdot", "fmla"))
