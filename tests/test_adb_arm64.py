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


# ------------------------------------------------------------------ the emulated arm64 S20 over adb
def _elf_machine(path) -> int:
    import struct

    return struct.unpack_from("<H", path.read_bytes()[:20], 18)[0]


@needs_cross
def test_arm64_s20_profiles_smoke_and_a_sparse_suite_through_the_adb_server(make_phone, adb_server, tmp_path):
    import json

    from devprof.store import Dataset

    phone = make_phone("--abi", "arm64-v8a")
    out = tmp_path / "ds"
    # a few kernels of each suite: every one is cross-built, pushed, checked and timed under qemu
    r = run_cli("profile", "--device", "S20", "-r", "devprof-c", "--suite", "smoke", "--quick", "--cores", "big",
                "--where", "op!=add,cout<=32,h<=28", "--out", str(out), "--json", env=adb_server.env)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["measured"] == 4 and s["failed"] == 0, json.dumps(s)
    # a real sparse suite, cut down to one small pointwise layer at 0.9 (one kernel per pointwise scheme)
    r = run_cli("profile", "--device", phone.serial, "-r", "devprof-c", "--suite", "sparse-sweep", "--quick",
                "--where", "op=pwconv,cin<=32,cout<=32,ratio=0.9", "--cores", "big", "--out", str(out), "--json",
                env=adb_server.env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["failed"] == 0
    df = Dataset(out).read()
    assert len(df) == 8 and {"dense", "unstructured", "bcr", "block", "nm"} <= set(df["scheme"])
    assert df["emulated"].all() and set(df["device_model"]) == {"SM-G981N"} and df["device_id"].nunique() == 1
    dev = json.loads(df["device_json"].iloc[0])
    assert dev["abi"] == "arm64-v8a" and dev["emulated"] is True and dev["soc"].startswith("Snapdragon 865")
    assert json.loads(df["runtime_options"].iloc[0])["cc"].startswith("aarch64-linux-gnu-gcc")
    # what ran on the phone is the arm64 harness (under qemu-aarch64-static), checked before timing
    staged = list((phone.sandbox / "data/local/tmp/devprof").glob("*/devprof-harness"))
    assert len(staged) >= 2 and all(_elf_machine(p) == 183 for p in staged)
    # the x86_64 S20 next to it is a different, real-looking device
    make_phone()
    from devprof.devices import adb

    infos = {p.abi: p.info() for p in adb.list_phones(adb_server.address)}
    assert infos["arm64-v8a"].emulated and not infos["x86_64"].emulated
    assert infos["arm64-v8a"].id == df["device_id"].iloc[0] != infos["x86_64"].id


@needs_cross
def test_arm64_s20_runs_a_pruned_model_as_one_program(make_phone, adb_server, tmp_path):
    """The whole pruned model as one generated program, cross-built for arm64, pushed, checked
    against ONNX Runtime on the same weights and timed on the emulated S20 (records emulated)."""
    from devprof.store import Dataset

    make_phone("--abi", "arm64-v8a")
    out = tmp_path / "ds"
    r = run_cli("profile", "--device", "S20", "--model", "espcn@8x12", "--prune", "bcr:0.9", "-r", "devprof-c",
                "--quick", "--out", str(out), env=adb_server.env)
    assert r.returncode == 0, r.stderr
    df = Dataset(out).read()
    prog = df[(df.kind == "model") & df.model_name.str.endswith("|program")]
    assert len(prog) == 2 and prog["emulated"].all()  # dense and pruned programs
    assert set(prog["checked"]) == {"onnxruntime on the same pruned weights"}
    assert set(prog["device_model"]) == {"SM-G981N"}
    assert len(df[(df.kind == "layer") & df.model_name.str.endswith("|program")]) == 8


@pytest.mark.slow  # cross-builds 6 int8 kernels; the int8 walk and phone path are in test_models_int8.py
@needs_cross
def test_arm64_s20_times_a_pruned_model_in_int8(make_phone, adb_server, tmp_path):
    """--prune --dtype int8 on the emulated arm64 S20: every conv dense and pruned as a generated
    int8 kernel, cross-built, checked by the harness against the integer reference, timed."""
    from devprof.store import Dataset

    make_phone("--abi", "arm64-v8a")
    out = tmp_path / "ds"
    r = run_cli("profile", "--device", "S20", "--model", "espcn@8x12", "--prune", "bcr:0.9", "-r", "devprof-c",
                "--dtype", "int8", "--quick", "--out", str(out), env=adb_server.env)
    assert r.returncode == 0, r.stderr
    assert "no one-program run in int8" in r.stderr
    df = Dataset(out).read()
    layers = df[df.kind == "layer"]
    assert len(layers) == 6 and set(layers.dtype) == {"int8"} and df["emulated"].all()
    assert set(layers.scheme) == {"dense", "bcr"}


# ------------------------------------------------------------------ the phone's CPU features decide the build
#: An ARMv8.0 phone's /proc/cpuinfo Features (Cortex-A53/A73 class): no dot product, no fp16 arithmetic.
ARMV80_FEATURES = "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"


def _has_sdot(binary) -> bool:
    from devprof.artifacts.disasm import disassemble

    return any(op == "sdot" for ins in disassemble(binary, "aarch64").values() for _, op, _ in ins)


@needs_cross
def test_int8_on_arm64_phones_uses_sdot_only_where_the_cpu_has_asimddp(make_phone, adb_server, tmp_path):
    """The S20 reports asimddp (and asimdhp) in /proc/cpuinfo: its int8 kernel is built with
    +dotprod and runs sdot; an ARMv8.0 phone gets the portable build, and fp16 is refused there."""
    from devprof.devices import adb
    from devprof.store import Dataset

    s20 = make_phone("--abi", "arm64-v8a")
    v80 = make_phone("--abi", "arm64-v8a", "--model", "SM-G950F", "--serialno", "CE0817V80EMUL",
                     "--cpu-features", ARMV80_FEATURES)
    infos = {p.serial: p.info() for p in adb.list_phones(adb_server.address)}
    assert {"asimddp", "asimdhp", "fphp"} <= set(infos[s20.serial].isa)
    assert not {"asimddp", "asimdhp"} & set(infos[v80.serial].isa) and "asimd" in infos[v80.serial].isa
    import dataclasses

    # the features stay out of a phone's id: phones fingerprinted before they were read keep theirs
    assert infos[s20.serial].id == dataclasses.replace(infos[s20.serial], isa=()).id
    kinds = {}
    for phone in (s20, v80):
        out = tmp_path / phone.serial
        r = run_cli("profile", "--device", phone.serial, "-r", "devprof-c", "--suite", "smoke", "--dtype", "int8",
                    "--quick", "--where", "op=pwconv,h=14,cin=32,cout=64", "--cores", "big", "--out", str(out),
                    env=adb_server.env)
        assert r.returncode == 0, r.stderr
        df = Dataset(out).read()
        assert len(df) == 1 and set(df["dtype"]) == {"int8"} and df["emulated"].all()
        (binary,) = (phone.sandbox / "data/local/tmp/devprof").glob("*/devprof-harness")
        kinds[phone.serial] = (df["kernel"].iloc[0], _has_sdot(binary))
    assert kinds == {s20.serial: ("int8 sdot", True), v80.serial: ("int8 portable", False)}
    r = run_cli("profile", "--device", v80.serial, "-r", "devprof-c", "--suite", "smoke", "--dtype", "fp16",
                "--out", str(tmp_path / "fp16"), env=adb_server.env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("error: --dtype fp16: devprof-c fp16 kernels need fp16 arithmetic") and "asimdhp" in r.stderr
    assert not (tmp_path / "fp16").exists()
