"""fp16 generated kernels on arm64 (ARMv8.2-A +fp16, 8 halves per NEON register, fp16 accumulation):
every scheme and op under qemu-aarch64-static against the float64 reference on fp16-rounded
tensors within the stated tolerance, inner loops without spills for gcc and clang, the emulated
arm64 S20 profiling fp16 through the adb server, and the one-line refusal on x86."""
from __future__ import annotations

import dataclasses
import json
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devprof.artifacts.disasm import compile_object, inner_loops
from devprof.artifacts.harness_build import build_batch
from devprof.artifacts.toolchains import android_toolchain, cross_toolchains
from devprof.records import KernelSpec, Sparsity
from devprof.runtimes import hostcpu
from devprof.runtimes.harness import DevprofC, parse_harness_output
from devprof.sparse import codegen_fp16
from devprof.sparse.reference import full_output

from support import kernel_specs
from support.cli import run_cli
from support.kernel_specs import FAST, OPS

ARM = android_toolchain("arm64-v8a")
needs_qemu = pytest.mark.skipif(ARM.available() is not None or not ARM.can_run_here,
                                reason="needs gcc-aarch64-linux-gnu and qemu-user-static (.ci/run installs them)")
SCHEMES = [("dense", {}), ("unstructured", {}), ("bcr", {"block": [4, 16]}), ("block", {"block": [4, 1]}),
           ("block", {"block": [1, 4]}), ("block", {"block": [4, 4]}), ("nm", {"n": 2, "m": 4}),
           ("pattern", {"patterns": 8})]


def make_spec(*args, **kw) -> KernelSpec:
    return kernel_specs.make_spec(*args, **kw, dtype="fp16")


def run_fp16(cache, specs, variants=("sparse",), threads=1):
    """Build the specs' fp16 kernels for arm64, run them under qemu (the harness checks each with
    its stated tolerance) and compare every output value with the reference here as well."""
    kernels = {}
    for s in specs:
        for v in variants:
            k = codegen_fp16.generate(s, v)
            kernels.setdefault(k.name, k)
    kernels = list(kernels.values())
    batch = build_batch(kernels, ARM, cache_dir=cache)
    dump = batch.folder.parent / f"dump16-{batch.folder.name}"
    dump.mkdir(exist_ok=True)
    p = subprocess.run(ARM.run_argv(batch.binary, *FAST, f"--dump={dump}", f"--threads={threads}", "--oversubscribe"),
                       cwd=batch.folder, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = parse_harness_output(p.stdout)
    for k in kernels:
        line = out.lines[k.name]
        assert line.status == "ok", (k.spec.key, k.variant, line.error)
        got = np.fromfile(dump / f"{k.name}.out", dtype=np.float32)
        assert np.array_equal(got, got.astype(np.float16).astype(np.float32)), "outputs are fp16 values"
        want = full_output(k.spec, *codegen_fp16.half_inputs(k.spec)).ravel()
        rtol, atol = k.tolerance
        rms = float(np.sqrt(np.mean(want ** 2))) if want.size else 0.0
        lim = atol + rtol * np.maximum(np.abs(want), rms)
        assert np.all(np.abs(got - want) <= lim), (k.spec.key, k.variant, float(np.max(np.abs(got - want) - lim)))
    return kernels


shape_st = st.tuples(st.integers(3, 12), st.integers(3, 17), st.integers(1, 19), st.integers(1, 21),
                     st.floats(0.0, 0.95), st.sampled_from(["none", "relu", "relu6", "hswish"]))


@needs_qemu
@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shapes=shape_st)
def test_every_scheme_and_op_matches_the_reference_within_the_stated_tolerance(cache, shapes):
    h, w, cin, cout, ratio, act = shapes
    specs = [make_spec(op, h, w, cin, cout, 1, sch, ratio, params, act) for op in OPS for sch, params in SCHEMES]
    specs += [make_spec("fc", 1, 1, cin, cout, 1, "unstructured", ratio, {}, act),  # one row: the ELL gemv
              make_spec("fc", 1, 1, cin, cout, 1, "dense", 0.0, {}, act),
              KernelSpec("dwconv2d", h=h, w=w, cin=8, cout=8, kh=3, kw=3, groups=8, padding=1, activation=act,
                         dtype="fp16")]
    run_fp16(cache, specs)


@needs_qemu
def test_csr_and_dense_variants_two_images_and_threads(cache):
    specs = [make_spec("conv3x3s1", 9, 10, 6, 12, 2, "bcr", 0.7, {"block": [4, 16]}, "relu"),
             make_spec("pw1x1", 14, 14, 24, 16, 1, "unstructured", 0.8, {})]
    run_fp16(cache, specs, variants=("sparse", "csr", "dense"), threads=3)


def test_fp16_is_arm64_only_and_states_its_tolerance():
    assert codegen_fp16.unsupported_on("arm64-v8a") is None
    assert codegen_fp16.unsupported_on("arm64-v8a", {"asimd", "fphp", "asimdhp"}) is None
    why = codegen_fp16.unsupported_on("x86_64")
    assert "fp16" in why and "\n" not in why
    why = codegen_fp16.unsupported_on("arm64-v8a", {"fp", "asimd"})  # an ARMv8.0 CPU
    assert "asimdhp" in why and "\n" not in why
    spec = make_spec("pw1x1", 4, 4, 64, 8, 1, "dense", 0.0, {})
    rtol, atol = codegen_fp16.tolerance(spec)
    assert rtol == 2.0**-11 + 2.0**-9 * 8 and atol == 1e-3  # K = 64
    assert DevprofC().supports(spec) is None
    assert "conv and fc" in DevprofC().supports(KernelSpec("add", h=4, w=4, cin=4, cout=4, dtype="fp16"))


@pytest.mark.skipif(not cross_toolchains("arm64-v8a"), reason="no arm64 cross compiler")
@pytest.mark.parametrize("scheme,params,fmas", [("unstructured", {}, 7), ("bcr", {"block": [4, 16]}, 20)])
def test_arm64_fp16_inner_loops_keep_everything_in_registers(tmp_path, scheme, params, fmas):
    spec = KernelSpec("pwconv", h=28, w=28, cin=192, cout=32, sparsity=Sparsity(scheme, 0.9, params), dtype="fp16")
    k = codegen_fp16.generate(spec, "sparse", with_reference=False)
    for i, tc in enumerate(cross_toolchains("arm64-v8a")):
        tc = dataclasses.replace(tc, cflags=(*tc.cflags, *k.cflags))
        obj, _ = compile_object(tc, k.source, tmp_path / f"h{i}.o")
        loops = inner_loops(obj, "aarch64")
        assert loops, tc.cc
        assert all(lp.stack_accesses == 0 for lp in loops), (tc.cc, [lp.instructions for lp in loops])
        hot = max(loops, key=lambda lp: lp.fmas)
        assert hot.fmas == fmas and all(".8h" in a for op, a in hot.instructions if op == "fmla"), tc.cc


@needs_qemu
def test_arm64_s20_profiles_fp16_through_the_adb_server(make_phone, adb_server, tmp_path):
    from devprof.store import Dataset

    make_phone("--abi", "arm64-v8a")
    out = tmp_path / "ds"
    r = run_cli("profile", "--device", "S20", "-r", "devprof-c", "--suite", "sparse-sweep", "--quick", "--dtype", "fp16",
                "--where", "op=pwconv,cin<=32,cout<=32,ratio=0.9", "--cores", "big", "--out", str(out), "--json",
                env=adb_server.env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["failed"] == 0
    df = Dataset(out).read()
    assert len(df) >= 4 and set(df["dtype"]) == {"fp16"} and df["emulated"].all()


def test_x86_refuses_fp16_with_one_line(tmp_path):
    if hostcpu.fp16_arithmetic() is None:
        pytest.skip("this CPU has fp16 arithmetic")
    r = run_cli("profile", "--suite", "smoke", "-r", "devprof-c", "--dtype", "fp16", "--out", str(tmp_path / "ds"))
    assert r.returncode == 2 and r.stderr.startswith("error: --dtype fp16: ") and r.stderr.count("\n") == 1
    assert "devprof-c" in r.stderr and not (tmp_path / "ds").exists()


def test_an_x86_64_phone_refuses_devprof_c_fp16_with_one_line(make_phone, adb_server, tmp_path):
    make_phone()
    r = run_cli("profile", "--device", "S20", "-r", "devprof-c", "--suite", "smoke", "--dtype", "fp16", "--out",
                str(tmp_path / "ds"), env=adb_server.env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("error: --dtype fp16: devprof-c fp16 kernels need arm64") and "x86_64" in r.stderr
