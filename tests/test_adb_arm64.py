"""The phone builds of the harness: arm64-v8a (static, under qemu-aarch64-static) and x86_64 agree."""
from __future__ import annotations

import shutil

import pytest

from devprof.artifacts import android
from devprof.artifacts.toolchains import android_toolchain

from support.cli import run_cli

needs_cross = pytest.mark.skipif(android_toolchain("arm64-v8a").available() is not None
                                 or shutil.which("qemu-aarch64-static") is None,
                                 reason="needs gcc-aarch64-linux-gnu and qemu-user-static (.ci/run installs them)")


@needs_cross
def test_arm64_build_passes_its_checks_under_qemu_and_matches_x86_64():
    arm = android.check_here(android.build_selftest("arm64-v8a"))
    x86 = android.check_here(android.build_selftest("x86_64"))
    assert arm.ok, arm.results
    assert x86.ok, x86.results
    assert (arm.folder / "devprof-harness").read_bytes()[:4] == b"\x7fELF"
    assert arm.toolchain.runner == ("qemu-aarch64-static",) and "-static" in arm.toolchain.ldflags
    assert len(arm.outputs) == len(android.SELFTEST_SPECS) == len(x86.outputs)
    assert android.compare(arm, x86) == []


@needs_cross
def test_a_corrupted_reference_is_refused_on_arm64(tmp_path):
    b = android.build_selftest("arm64-v8a")
    # copy the batch and corrupt one kernel's shipped reference samples: the arm64 harness must refuse it
    import shutil as sh

    work = tmp_path / "batch"
    sh.copytree(b.folder, work)
    k = b.kernels[0]
    data = bytearray((work / f"{k.name}.bin").read_bytes())
    import struct

    # layout: b"DPB1", u32 count, then per array: u32 dtype, u32 reserved, u64 n, data (array 1 = reference)
    off = 8
    _, _, n0 = struct.unpack_from("<IIQ", data, off)
    off += 16 + 4 * n0
    _, _, n1 = struct.unpack_from("<IIQ", data, off)
    first = off + 16
    v = struct.unpack_from("<f", data, first)[0]
    struct.pack_into("<f", data, first, v + 1.0 + abs(v))
    (work / f"{k.name}.bin").write_bytes(bytes(data))
    b.folder = work
    android.check_here(b)
    assert b.results[k.name].startswith("mismatch"), b.results
    assert all(v == "ok" for name, v in b.results.items() if name != k.name)


@needs_cross
def test_build_harness_command(tmp_path):
    r = run_cli("build-harness", "--abi", "arm64-v8a", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "7/7 kernels pass" in r.stdout and (tmp_path / "arm64-v8a" / "devprof-harness").exists()
    r = run_cli("build-harness", "--abi", "mips")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
