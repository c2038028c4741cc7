"""Generated int8 kernels (devprof-c) equal the integer reference exactly: every scheme x
{3x3 s1, 3x3 s2, 1x1, fc}, on this CPU's path (AVX2 pairs or VNNI quads), the portable C path,
and arm64 under qemu with and without +dotprod; VNNI builds are at least compiled here."""
from __future__ import annotations

import dataclasses
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devprof.artifacts.harness_build import build_batch
from devprof.runtimes.hostcpu import cpu_flags
from devprof.artifacts.toolchains import android_toolchain
from devprof.records import KernelSpec
from devprof.runtimes.harness import DevprofC, parse_harness_output
from devprof.sparse import codegen_int8
from support import kernel_specs
from support.kernel_specs import FAST, OPS

SCHEMES = [
    ("dense", {}),
    ("unstructured", {}),
    ("bcr", {"block": [4, 16]}),
    ("block", {"block": [4, 1]}),
    ("block", {"block": [1, 4]}),
    ("nm", {"n": 2, "m": 4}),
    ("pattern", {"patterns": 8}),
]


def make_spec(*args, **kw) -> KernelSpec:
    return kernel_specs.make_spec(*args, **kw, dtype="int8")


def run_int8(tc, cache: Path, specs, variants=("sparse", "dense"), extra_cflags=()):
    """Build and run the specs' int8 kernels with `tc`; assert every one equals the reference."""
    if extra_cflags:
        tc = dataclasses.replace(tc, cflags=(*tc.cflags, *extra_cflags))
    kernels = {}
    for s in specs:
        for v in variants:
            k = codegen_int8.generate(s, v)
            kernels.setdefault(k.name, k)
    kernels = list(kernels.values())
    batch = build_batch(kernels, tc, cache_dir=cache)
    dump = batch.folder.parent / f"dump-{batch.folder.name}"
    dump.mkdir(exist_ok=True)
    argv = tc.run_argv(batch.binary, *FAST, f"--dump={dump}") if tc.runner else [str(batch.binary), *FAST, f"--dump={dump}"]
    p = subprocess.run(argv, cwd=batch.folder, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = parse_harness_output(p.stdout)
    assert out.started and out.ended and out.rejected == 0
    for k in kernels:
        line = out.lines[k.name]
        assert line.status == "ok", (k.spec.key, k.variant, line.error)
        want = codegen_int8.quantized_layer(k.spec).y_q.ravel()
        got = np.fromfile(dump / f"{k.name}.out", dtype=np.float32)
        np.testing.assert_array_equal(got, want.astype(np.float32), err_msg=f"{k.spec.key} {k.variant}")
    return kernels



shape_st = st.tuples(st.integers(3, 12), st.integers(3, 17), st.integers(1, 19), st.integers(1, 21),
                     st.floats(0.0, 0.95), st.sampled_from(["none", "relu", "relu6"]))


@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shapes=shape_st)
def test_every_scheme_and_op_equals_the_integer_reference(toolchain, cache, shapes):
    h, w, cin, cout, ratio, act = shapes
    specs = [make_spec(op, h, w, cin, cout, 1, sch, ratio, params, act) for op in OPS for sch, params in SCHEMES]
    run_int8(toolchain, cache, specs, variants=("sparse",))  # the dense scheme's kernel is the dense one


def _portable_specs():
    return [make_spec("conv3x3s2", 9, 11, 5, 7, 2, "pattern", 0.7, {"patterns": 8}, "relu6"),
            make_spec("conv3x3s1", 8, 9, 12, 10, 1, "bcr", 0.8, {"block": [4, 16]}, "relu"),
            make_spec("pw1x1", 7, 6, 6, 9, 1, "block", 0.5, {"block": [4, 1]}),
            make_spec("fc", 1, 1, 70, 40, 3, "nm", 0.5, {"n": 2, "m": 4}),
            KernelSpec("dwconv2d", h=10, w=9, cin=8, cout=8, kh=3, kw=3, groups=8, padding=1, dtype="int8"),
            # whole tiles of an unpadded plane: VNNI kernels read the input itself (no copy)
            make_spec("pw1x1", 8, 16, 12, 10, 2, "bcr", 0.5, {"block": [4, 16]}, "relu6")]


def test_portable_path(toolchain, cache):
    """The plain-C path (what targets without a dot-product path run) gives the same integers."""
    run_int8(toolchain, cache, _portable_specs(), variants=("sparse",), extra_cflags=("-DDP8_PORTABLE",))


@pytest.mark.parametrize("flags", [("-mavxvnni",), ("-mavx512f", "-mavx512vl", "-mavx512vnni")],
                         ids=["avx-vnni", "avx512-vnni"])
def test_vnni_builds(toolchain, cache, flags):
    """The vpdpbusd path compiles; it runs (and must be exact) only where the CPU has it."""
    if toolchain.abi != "x86_64":
        pytest.skip("x86 only")
    cpu = cpu_flags()
    need = {"-mavxvnni": "avx_vnni", "-mavx512vnni": "avx512_vnni", "-mavx512vl": "avx512vl", "-mavx512f": "avx512f"}
    spec = make_spec("conv3x3s1", 6, 7, 8, 5, 1, "bcr", 0.5, {"block": [4, 16]}, "relu")
    tc = dataclasses.replace(toolchain, cflags=(*toolchain.cflags, *flags))
    k = codegen_int8.generate(spec, "sparse")
    src = cache / f"vnni-{flags[0]}.c"
    src.write_text(k.source)
    asm = subprocess.run([*tc.cc, *tc.cflags, "-I", str(Path(codegen_int8.__file__).parents[1] / "harness_android"),
                          "-S", "-o", "-", str(src)], capture_output=True, text=True)
    assert asm.returncode == 0, asm.stderr
    assert "vpdpbusd" in asm.stdout
    if all(need[f] in cpu for f in flags):
        run_int8(toolchain, cache, _portable_specs(), variants=("sparse",), extra_cflags=flags)


@pytest.mark.parametrize("flags", [("-march=x86-64-v3",), ("-DDP8_NO_VBMI",), ("-DDP8_NO_LOWW",)],
                         ids=["avx2-fma", "avx512-no-vbmi", "avx512-fused"])
def test_x86_paths_other_than_this_cpus(toolchain, cache, flags):
    """The x86 paths a native build here does not take are exact too, where this CPU runs them:
    AVX2 pairs with the fused product (x86-64-v3), and on AVX-512 the unpacking quads (no VBMI)
    and the fused product with its int32 packs (family 1)."""
    cpu = cpu_flags()
    need = {"avx2", "fma"} if flags[0].startswith("-march") else {"avx512_vnni", "avx512vl", "avx512bw", "fma"}
    if toolchain.abi != "x86_64" or not need <= cpu:
        pytest.skip(f"needs x86 with {', '.join(sorted(need))}")
    run_int8(toolchain, cache, _portable_specs()[:4], variants=("sparse",), extra_cflags=flags)


@pytest.mark.parametrize("march", ["armv8-a", "armv8.2-a+dotprod"])
def test_arm64_under_qemu(cache, march):
    tc = android_toolchain("arm64-v8a")
    if tc.available() or not tc.can_run_here:
        pytest.skip("no arm64 cross compiler or qemu")
    flags = tuple(f for f in tc.cflags if not f.startswith("-march=")) + (f"-march={march}",)
    tc = dataclasses.replace(tc, cflags=flags)
    specs = [*_portable_specs()[1:4], make_spec("conv3x3s1", 5, 6, 7, 5, 1, "dense", 0.0, {}, "relu")]
    kernels = run_int8(tc, cache, specs, variants=("sparse",))
    if "dotprod" in march:
        src = cache / "sdot.c"
        src.write_text(kernels[0].source)
        asm = subprocess.run([*tc.cc, *tc.cflags, "-I", str(Path(codegen_int8.__file__).parents[1] / "harness_android"),
                              "-S", "-o", "-", str(src)], capture_output=True, text=True)
        assert asm.returncode == 0 and "sdot" in asm.stdout


def test_the_built_path_is_what_the_targets_compiler_picks(toolchain):
    """Records name the int8 path a kernel was built with, as the target's preprocessor decides it:
    +dotprod only for arm64 phones whose CPU reports asimddp; -march=native (local) follows this CPU."""
    from devprof.runtimes.harness import kernel_path

    assert codegen_int8.cflags_for("arm64-v8a", False, {"asimd", "asimddp"}) == codegen_int8.DOTPROD_CFLAGS
    assert codegen_int8.cflags_for("arm64-v8a", False, {"asimd"}) == ()
    assert codegen_int8.cflags_for("arm64-v8a", True, {"asimddp"}) == () == codegen_int8.cflags_for("x86_64", False, {"asimddp"})
    k = codegen_int8.generate(make_spec("pw1x1", 4, 4, 8, 4, 1, "dense", 0.0, {}), "sparse", with_reference=False)
    cpu = cpu_flags()
    want = ("avx512-vnni" if {"avx512_vnni", "avx512vl"} <= cpu else "avx-vnni" if "avx_vnni" in cpu
            else "avx2" if "avx2" in cpu else None) if toolchain.abi == "x86_64" else None
    if want:
        assert kernel_path(toolchain, k) == f"int8 {want}"
    arm = android_toolchain("arm64-v8a")
    if arm.available() is None:
        assert kernel_path(arm, k) == "int8 portable"
        k.cflags = codegen_int8.DOTPROD_CFLAGS
        assert kernel_path(arm, k) == "int8 sdot"


def test_runtime_refuses_what_it_cannot_generate():
    rt = DevprofC()
    assert rt.supports(KernelSpec("conv2d", h=8, w=8, cin=4, cout=4, kh=3, kw=3, padding=1, dtype="int8")) is None
    assert "hswish" in rt.supports(KernelSpec("conv2d", h=8, w=8, cin=4, cout=4, kh=3, kw=3, padding=1,
                                              activation="hswish", dtype="int8"))
    assert "maxpool" in rt.supports(KernelSpec("maxpool", h=8, w=8, cin=4, cout=4, kh=2, kw=2, stride=2, dtype="int8"))


def test_float32_multipliers_equal_the_float64_reference_for_every_accumulator():
    """Each float32 form a channel is not flagged for gives the float64 reference's output for
    every accumulator in its range (checked exhaustively here): the rounded product (arm64), the
    fused one (x86 FMA) and the fused one with the zero point inside, within int16 (AVX-512)."""
    rng = np.random.default_rng(3)
    mult = 10 ** rng.uniform(-4.0, 0.5, 48)
    bound = rng.integers(100, 20000, 48)
    mult[:4] = [0.6, 1.1, 1.7, 2.9]
    bound[:4] = np.ceil(33000 / mult[:4])  # these reach beyond int16
    cu = codegen_int8
    for zp, lo, hi in ((0, 0, 255), (131, 131, 255), (77, 0, 200)):
        mf, flags = cu.float_multipliers(mult, bound, zp, lo, hi)
        for bit in (cu.FUSED_BAD, cu.ROUND_BAD, cu.NARROW_BAD):
            assert (flags & bit > 0).sum() < len(mult) // 3
        for c in range(len(mult)):
            acc = np.arange(-bound[c], bound[c] + 1)
            want = np.clip(np.rint(acc * mult[c]) + zp, lo, hi)
            exact = acc.astype(np.float64) * np.float64(mf[c])
            if not flags[c] & cu.ROUND_BAD:
                got = np.clip(np.rint(acc.astype(np.float32) * mf[c]).astype(np.float64) + zp, lo, hi)
                np.testing.assert_array_equal(got, want, err_msg=f"channel {c}")
            if not flags[c] & cu.FUSED_BAD:  # FMA: one rounding
                np.testing.assert_array_equal(np.clip(np.rint(exact) + zp, lo, hi), want, err_msg=f"channel {c}, fused")
            if not flags[c] & cu.NARROW_BAD:  # the zero point inside, exactly (fractions: no float64 rounding)
                v = np.rint(exact + zp)
                near = np.flatnonzero(np.abs(np.abs(exact - np.floor(exact)) - 0.5) < 1e-6)
                v[near] = [round(Fraction(float(e)) + zp) for e in exact[near]]  # round(): half to even
                assert np.abs(v).max() <= 32767, f"channel {c} leaves int16"
                np.testing.assert_array_equal(np.clip(v, lo, hi), want, err_msg=f"channel {c}, narrow")
        assert (flags[:4] & cu.NARROW_BAD).all()
    _, flags = cu.float_multipliers(np.array([1e-3, 0.0]), np.array([2**31 - 1, 10]), 0, 0, 255)
    assert flags.tolist() == [7, 7]  # int32 conversions could overflow; no positive multiplier


def test_near_ties_take_the_float64_path(toolchain, cache):
    """Outputs whose float32 product lies next to a rounding tie are where a channel's float32
    path could differ (float_multipliers sends such channels to float64): a layer with many of
    them still equals the reference everywhere."""
    spec = make_spec("pw1x1", 24, 24, 16, 32, 1, "bcr", 0.5, {"block": [4, 16]})
    layer = codegen_int8.quantized_layer(spec)
    qk = layer.qk
    x = layer.x_q.astype(np.int64).reshape(spec.cin, -1) - qk.x.zero_point
    acc = layer.w_q2.astype(np.int64) @ x + qk.b_q.astype(np.int64)[:, None]
    mult = (np.float64(qk.x.scale) * qk.w_scale.astype(np.float64) / np.float64(qk.out.scale)).astype(np.float32)
    v = acc.astype(np.float32) * mult[:, None]
    assert (np.abs(v - np.rint(v)) > 0.4995).sum() > 0  # the layer has near-ties to get right
    run_int8(toolchain, cache, [spec], variants=("sparse",))
