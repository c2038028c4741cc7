"""`--threads N` for generated kernels: the harness's pool splits each kernel's chunks by cost and
every split gives the 1-thread output bit for bit; the runtime and the command line pass N through
to the record and refuse more threads than CPUs with one line.

Kept small: one batch per hypothesis example (every scheme once), tiny shapes, the 1-thread and
N-thread runs share the binary."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devprof.artifacts.harness_build import build_batch, vector_shape
from devprof.errors import UsageError
from devprof.measure import Protocol
from devprof.records import KernelSpec, Sparsity
from devprof.runtimes import get_runtime
from devprof.runtimes.harness import parse_harness_output, variant_for
from devprof.sparse.codegen import generate
from support.cli import run_cli
from support.kernel_specs import FAST, OPS

SCHEMES = [("unstructured", {}), ("bcr", {"block": [4, 16]}), ("block", {"block": [4, 1]}),
           ("block", {"block": [1, 4]}), ("nm", {"n": 2, "m": 4}), ("pattern", {"patterns": 8}), ("dense", {})]



def spec_of(op: str, h: int, w: int, cin: int, cout: int, n: int, scheme: str, ratio: float, params: dict,
            act: str) -> KernelSpec:
    if scheme == "pattern" and op in ("pw1x1", "fc"):
        op = "conv3x3s1"
    sp = Sparsity(scheme, 0.0 if scheme == "dense" else ratio, params)
    if op == "fc":
        return KernelSpec("fc", n=n, cin=cin, cout=cout, sparsity=sp, activation=act)
    if op == "pw1x1":
        return KernelSpec("pwconv", n=n, h=h, w=w, cin=cin, cout=cout, sparsity=sp, activation=act)
    return KernelSpec("conv2d", n=n, h=h, w=w, cin=cin, cout=cout, kh=3, kw=3, stride=2 if op == "conv3x3s2" else 1,
                      padding=1, sparsity=sp, activation=act)


def outputs_by_threads(tc, cache: Path, kernels, tmp: Path, threads=(1, 2, 3, 4)) -> dict[int, dict[str, bytes]]:
    """Each kernel's full output at each thread count (the harness checks each against the
    reference samples too: a mismatch fails here)."""
    batch = build_batch(kernels, tc, cache_dir=cache)
    got = {}
    for t in threads:
        dump = tmp / f"t{t}"
        dump.mkdir(parents=True, exist_ok=True)
        p = subprocess.run([str(batch.binary), *FAST, f"--dump={dump}", f"--threads={t}", "--oversubscribe"],
                           cwd=batch.folder, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        out = parse_harness_output(p.stdout)
        assert out.started and out.ended and out.rejected == 0
        bad = {k: (v.status, v.error) for k, v in out.lines.items() if v.status != "ok"}
        assert not bad, (t, bad)
        got[t] = {k.name: (dump / f"{k.name}.out").read_bytes() for k in kernels}
    return got


def assert_same_as_one_thread(got: dict[int, dict[str, bytes]], kernels) -> None:
    for t, outs in got.items():
        for k in kernels:
            assert outs[k.name] == got[1][k.name], (t, k.spec.key, k.variant, k.chunking.nchunks)


shape_st = st.tuples(st.sampled_from(OPS), st.integers(1, 11), st.integers(1, 13), st.integers(1, 12),
                     st.integers(1, 14), st.integers(1, 2), st.floats(0.0, 0.97),
                     st.sampled_from(["none", "relu", "hswish"]))


# one example per run (each compiles a batch); the shapes differ from run to run
@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shapes=st.lists(shape_st, min_size=len(SCHEMES), max_size=len(SCHEMES)))
def test_every_split_gives_the_one_thread_output(toolchain, cache, tmp_path_factory, shapes):
    """Every scheme on a random small shape (ragged chunk counts; often fewer chunks than threads)
    plus one CSR kernel: 2, 3 and 4 threads write exactly what 1 thread writes."""
    vl, regs = vector_shape(toolchain)
    specs = [spec_of(op, max(h, 3), w, cin, cout, n, sc, ratio, p, act)
             for (sc, p), (op, h, w, cin, cout, n, ratio, act) in zip(SCHEMES, shapes)]
    kernels = [generate(s, variant_for(s), vector_floats=vl, vector_regs=regs) for s in dict.fromkeys(specs)]
    kernels.append(generate(specs[0], "csr", vector_floats=vl, vector_regs=regs))
    got = outputs_by_threads(toolchain, cache, kernels, tmp_path_factory.mktemp("t"))
    assert_same_as_one_thread(got, kernels)


def test_special_paths_and_more_threads_than_chunks(toolchain, cache, tmp_path):
    """The paths the random shapes rarely reach: a GEMV (ELL and plain), a depthwise conv, batched
    images with the in-place 1x1 path and a partial tile, every row pruned away, a kernel of one
    chunk run on 4 threads, batched direct tiles then a tile-buffer tile with rows pruned away
    (their empty units written over runs of direct tiles, the last tile priced higher), and the
    same with few tiles (unit-major chunks), alone and across the images of a padded 3x3 conv,
    the channel-blocked one-row and pattern kernels, and unrolled ones."""
    vl, regs = vector_shape(toolchain)
    specs = [KernelSpec("fc", n=1, cin=70, cout=41, sparsity=Sparsity("unstructured", 0.8), activation="relu"),
             KernelSpec("fc", n=1, cin=30, cout=3),
             KernelSpec("dwconv2d", n=2, h=11, w=13, cin=3, cout=3, groups=3, kh=3, kw=3, padding=1, activation="relu6"),
             KernelSpec("pwconv", n=3, h=9, w=23, cin=7, cout=10, sparsity=Sparsity("bcr", 0.5, {"block": [4, 4]})),
             KernelSpec("pwconv", h=8, w=8, cin=8, cout=6, sparsity=Sparsity("unstructured", 0.995), activation="hswish"),
             KernelSpec("fc", n=5, cin=9, cout=1),
             KernelSpec("pwconv", n=3, h=14, w=14, cin=12, cout=20, sparsity=Sparsity("block", 0.9, {"block": [1, 4]}),
                        activation="relu6"),
             KernelSpec("pwconv", n=1, h=14, w=14, cin=12, cout=20, sparsity=Sparsity("block", 0.9, {"block": [1, 4]}),
                        activation="relu6"),
             KernelSpec("conv2d", n=2, h=5, w=6, cin=3, cout=9, kh=3, kw=3, padding=1,
                        sparsity=Sparsity("unstructured", 0.6)),
             KernelSpec("conv2d", h=4, w=5, cin=2, cout=1, kh=3, kw=3, padding=1, activation="relu")]
    kernels = [generate(s, variant_for(s), vector_floats=vl, vector_regs=regs) for s in specs]
    # AVX-512's channel-blocked one-row kernel (whatever this host is): direct tiles in place, then
    # the tile buffer; 3x3 through the tile buffer; pattern, direct
    blocked = [KernelSpec("pwconv", n=2, h=14, w=14, cin=256, cout=21, activation="relu6",
                          sparsity=Sparsity("nm", 0.75)),
               KernelSpec("conv2d", h=10, w=40, cin=64, cout=7, kh=3, kw=3, padding=1,
                          sparsity=Sparsity("unstructured", 0.5)),
               KernelSpec("conv2d", h=18, w=40, cin=48, cout=9, kh=3, kw=3, activation="relu",
                          sparsity=Sparsity("pattern", 0.6, {"patterns": 6}))]
    kernels += [generate(s, "sparse", vector_floats=16, vector_regs=32) for s in blocked]
    assert all(k.stats.get("channel_block") for k in kernels[-3:])
    # unrolled one-row kernels (`devprof.sparse.unrolled`): batched, and 3 chunks on 4 threads
    unroll = [KernelSpec("conv2d", n=2, h=5, w=32, cin=3, cout=30, kh=3, kw=3, padding=1, activation="relu",
                         sparsity=Sparsity("nm", 0.75)),
              KernelSpec("conv2d", h=3, w=16, cin=2, cout=8, kh=3, kw=3, padding=1,
                         sparsity=Sparsity("unstructured", 0.5))]
    kernels += [generate(s, "sparse", vector_floats=16, vector_regs=32) for s in unroll]
    assert all(k.stats["format"] == "unrolled" for k in kernels[-2:]) and kernels[-1].chunking.nchunks == 3
    # staged input (`codegen.staged_input`, one part per thread): a direct and a partial tile, two
    # images unit-major, and one 7x7 tile
    staged = [KernelSpec("pwconv", h=14, w=14, cin=256, cout=24, activation="relu6",
                         sparsity=Sparsity("unstructured", 0.5)),
              KernelSpec("pwconv", n=2, h=14, w=14, cin=200, cout=30, sparsity=Sparsity("nm", 0.5)),
              KernelSpec("pwconv", h=7, w=7, cin=480, cout=40, activation="relu",
                         sparsity=Sparsity("block", 0.75, {"block": [1, 4]}))]
    kernels += [generate(s, "sparse", vector_floats=16, vector_regs=32) for s in staged]
    assert all(k.stats.get("staged_input") and k.chunking.parts == 1 and not k.chunking.nprep for k in kernels[-3:])
    assert kernels[5].chunking.nchunks == 1 and kernels[4].chunking.cost == (kernels[4].spec.cout,)
    last = kernels[6].chunking
    assert not last.unit_major and len(last.cost) == last.nchunks // 3
    assert last.cost[-1] < kernels[6].spec.cout  # some rows empty
    few = kernels[7].chunking
    assert few.unit_major and len(few.cost) == few.nchunks and few.cost[0] < few.cost[1]  # direct, then buffer tile
    assert kernels[8].chunking.unit_major and kernels[8].chunking.nprep
    # threads that split units read all of the input: each copies it privately (no barrier)
    assert few.private_prep and kernels[8].chunking.private_prep and not last.private_prep
    assert kernels[9].chunking.nchunks == 1 and kernels[9].chunking.private_prep  # 4 threads copy, 1 computes
    got = outputs_by_threads(toolchain, cache, kernels, tmp_path)
    assert_same_as_one_thread(got, kernels)


def test_harness_refuses_more_threads_than_cpus(toolchain, cache, tmp_path):
    vl, regs = vector_shape(toolchain)
    k = generate(KernelSpec("fc", n=1, cin=8, cout=4), "dense", vector_floats=vl, vector_regs=regs)
    batch = build_batch([k], toolchain, cache_dir=cache)
    p = subprocess.run([str(batch.binary), *FAST, "--threads=3", "--cpus=0"], cwd=batch.folder,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 3 and p.stdout == "" and len(p.stderr.strip().splitlines()) == 1
    assert "3 threads need 3 CPUs" in p.stderr


@pytest.fixture
def device(tmp_path, monkeypatch):
    from devprof.devices.local import LocalDevice

    monkeypatch.setenv("DEVPROF_CACHE", str(tmp_path / "cache"))
    return LocalDevice(cache_dir=tmp_path / "cache")


def test_runtime_passes_threads_to_the_harness(device):
    rt = get_runtime("devprof-c")
    with pytest.raises(UsageError, match="openblas runs one thread"):
        get_runtime("openblas").thread_args(device, 2, "")
    # more threads than pinned CPUs got past the command line's check only with --oversubscribe
    assert rt.thread_args(device, 2, "0") == ["--threads=2", "--oversubscribe"]
    assert rt.thread_args(device, 1, "0") == []
    specs = [KernelSpec("pwconv", h=9, w=9, cin=16, cout=8, sparsity=Sparsity("nm", 0.5, {"n": 2, "m": 4})),
             KernelSpec("conv2d", h=8, w=9, cin=3, cout=8, kh=3, kw=3, padding=1, sparsity=Sparsity("pattern", 0.6))]
    outs = list(rt.measure(device, specs, 2, Protocol.quick().with_cpus("0")))
    assert [o.ok for o in outs] == [True, True], [o.error for o in outs]
    assert rt.info(device, 2).threads == 2


def test_cli_records_the_thread_count(tmp_path):
    suite = tmp_path / "t.toml"
    suite.write_text("[suite]\nname = 't'\nruntimes = ['devprof-c']\n[[kernels]]\nop = 'pwconv'\nh = 10\nw = 10\n"
                     "cin = 16\ncout = 16\nsparsity = {scheme = 'unstructured', ratio = 0.8}\n")
    env = {"DEVPROF_CACHE": str(tmp_path / "cache")}
    p = run_cli("profile", "--suite", str(suite), "--out", str(tmp_path / "d"), "--quick", "--threads", "2",
                "--cores", "0", "--oversubscribe", "--json", env=env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["measured"] == 1
    from devprof.store import Dataset

    df = Dataset(tmp_path / "d").read()
    assert df["threads"].tolist() == [2] and df["runtime"].tolist() == ["devprof-c"]
    many = run_cli("profile", "--suite", str(suite), "--out", str(tmp_path / "e"), "--quick", "--threads", "3",
                   "--cores", "0", env=env)
    assert many.returncode == 2 and "Traceback" not in many.stderr, many.stderr
    lines = [line for line in many.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "--threads 3" in lines[0], many.stderr


def test_emulated_arm64_phone_runs_two_threads(make_phone, adb_server, tmp_path):
    """On a phone: the arm64 harness (static, pthreads) under qemu through the real adb server,
    pinned to the big cluster, two threads; the record says so and is marked emulated."""
    import shutil

    from devprof.artifacts.toolchains import android_toolchain
    from devprof.store import Dataset

    if android_toolchain("arm64-v8a").available() is not None or shutil.which("qemu-aarch64-static") is None:
        pytest.skip("needs gcc-aarch64-linux-gnu and qemu-user-static")
    make_phone("--abi", "arm64-v8a")
    out = tmp_path / "ds"
    r = run_cli("profile", "--device", "S20", "-r", "devprof-c", "--suite", "sparse-sweep", "--quick", "--threads", "2",
                "--cores", "big", "--where", "op=pwconv,cin<=32,cout<=32,ratio=0.9,scheme=bcr", "--out", str(out),
                "--json", env=adb_server.env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["failed"] == 0
    df = Dataset(out).read()
    assert len(df) >= 1 and df["threads"].eq(2).all() and df["emulated"].all()
