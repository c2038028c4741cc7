"""Generated sparse kernels compute what numpy computes: every scheme x op kind, ragged shapes,
edge ratios; and the compiled harness refuses a wrong output."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devprof.artifacts.harness_build import build_batch, vector_shape
from devprof.artifacts.toolchains import cross_toolchains
from devprof.records import KernelSpec, Sparsity
from devprof.runtimes.harness import parse_harness_output
from devprof.sparse import codegen, unrolled
from devprof.sparse.codegen import generate, pruned_weights
from devprof.sparse.reference import full_output
from devprof.sparse.weights import input_tensor
from support.kernel_specs import FAST, OPS, make_spec

SCHEMES = [
    ("unstructured", {}),
    ("bcr", {"block": [4, 16]}),
    ("bcr", {"block": [3, 5]}),
    ("block", {"block": [4, 1]}),
    ("block", {"block": [1, 4]}),
    ("block", {"block": [8, 1]}),
    ("nm", {"n": 2, "m": 4}),
    ("nm", {"n": 1, "m": 4}),
    ("pattern", {"patterns": 8}),
]


def run_batch(tc, cache: Path, specs: list[KernelSpec], variants=("sparse", "csr", "dense"), tmp: Path | None = None,
              threads: int = 1):
    vl, regs = vector_shape(tc)
    kernels = []
    for s in specs:
        for v in variants:
            kernels.append(generate(s, v, vector_floats=vl, vector_regs=regs))
    names = {k.name for k in kernels}
    kernels = [k for i, k in enumerate(kernels) if k.name not in {x.name for x in kernels[:i]}]
    assert len(names) == len(kernels)
    batch = build_batch(kernels, tc, cache_dir=cache)
    dump = Path(tmp or batch.folder) / f"dump{threads if threads > 1 else ''}"
    dump.mkdir(exist_ok=True)
    p = subprocess.run(tc.run_argv(batch.binary, *FAST, f"--dump={dump}", f"--threads={threads}", "--oversubscribe"),
                       cwd=batch.folder, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = parse_harness_output(p.stdout)
    assert out.started and out.ended and out.rejected == 0
    return kernels, out, dump


def check_against_numpy(kernels, out, dump: Path) -> None:
    for k in kernels:
        line = out.lines[k.name]
        assert line.status == "ok", (k.spec.key, k.variant, line.error)
        wm, b, _ = pruned_weights(k.spec)
        want = full_output(k.spec, input_tensor(k.spec), wm, b).ravel()
        got = np.fromfile(dump / f"{k.name}.out", dtype=np.float32)
        assert got.shape == want.shape
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale, err_msg=f"{k.spec.key} {k.variant}")


shape_st = st.tuples(st.integers(3, 13), st.integers(3, 19), st.integers(1, 21), st.integers(1, 23),
                     st.integers(1, 3), st.floats(0.0, 0.97), st.sampled_from(["none", "relu", "relu6"]))


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shapes=st.lists(shape_st, min_size=len(SCHEMES) * len(OPS), max_size=len(SCHEMES) * len(OPS)))
def test_every_scheme_and_op_matches_numpy(toolchain, cache, shapes):
    """Random (mostly ragged) shapes for every scheme x {conv 3x3 s1, conv 3x3 s2, 1x1, fc}, each
    kernel in its sparse, CSR and dense variant; one batch per example keeps compiles few."""
    combos = [(op, sc, p) for sc, p in SCHEMES for op in OPS]
    specs = [make_spec(op, h, w, cin, cout, n, sc, ratio, p, act)
             for (op, sc, p), (h, w, cin, cout, n, ratio, act) in zip(combos, shapes)]
    kernels, out, dump = run_batch(toolchain, cache, list(dict.fromkeys(specs)))
    check_against_numpy(kernels, out, dump)


@pytest.mark.parametrize("ratio", [0.0, 0.995])
def test_edge_ratios_every_scheme(toolchain, cache, ratio):
    """Ratio 0 (nothing pruned) and >= 0.99 (rows left empty: output = bias) for every scheme x op."""
    specs = []
    for i, (scheme, params) in enumerate(SCHEMES):
        for op in OPS:
            specs.append(make_spec(op, 7 + i % 3, 9, 13, 11 + i, 2, scheme, ratio, params))
    kernels, out, dump = run_batch(toolchain, cache, list(dict.fromkeys(specs)), variants=("sparse",))
    check_against_numpy(kernels, out, dump)


def test_grouped_depthwise_and_big_shapes(toolchain, cache):
    """Depthwise/grouped convs, 5x5 kernels, fc with one row (GEMV path) and one larger layer whose
    reference is sampled rather than complete."""
    specs = [
        KernelSpec("dwconv2d", h=15, w=17, cin=12, cout=12, groups=12, kh=3, kw=3, stride=2, padding=1,
                   activation="relu6", sparsity=Sparsity("pattern", 0.7)),
        KernelSpec("dwconv2d", h=15, w=17, cin=12, cout=12, groups=12, kh=3, kw=3, stride=1, padding=1,
                   sparsity=Sparsity("unstructured", 0.5)),
        make_spec("conv3x3s1", 9, 10, 4, 6, 1, "bcr", 0.6, {"block": [4, 4]}, groups=3),
        KernelSpec("conv2d", h=12, w=13, cin=3, cout=10, kh=5, kw=5, padding=2, activation="hswish",
                   sparsity=Sparsity("block", 0.5, {"block": [4, 1]})),
        KernelSpec("fc", n=1, cin=301, cout=77, sparsity=Sparsity("bcr", 0.9, {"block": [4, 16]})),
        KernelSpec("fc", n=1, cin=300, cout=70),
        # whole-row tiles stored straight into the output (1x1, and 3x3 without padding), with a tail
        KernelSpec("conv2d", h=20, w=21, cin=5, cout=9, kh=3, kw=3, padding=0, activation="relu6",
                   sparsity=Sparsity("pattern", 0.8)),
        KernelSpec("pwconv", h=24, w=23, cin=16, cout=20, activation="hswish",
                   sparsity=Sparsity("bcr", 0.995, {"block": [4, 16]})),
        KernelSpec("pwconv", h=24, w=23, cin=16, cout=20, activation="relu", sparsity=Sparsity("nm", 0.5)),
    ]
    kernels, out, dump = run_batch(toolchain, cache, specs)
    check_against_numpy(kernels, out, dump)
    big = KernelSpec("conv2d", h=120, w=140, cin=8, cout=16, kh=3, kw=3, padding=1,
                     sparsity=Sparsity("bcr", 0.75, {"block": [4, 16]}))
    kernels, out, _ = run_batch(toolchain, cache, [big], variants=("sparse",))
    assert out.lines[kernels[0].name].status == "ok"


def test_channel_blocked_one_row_kernels_match_numpy(toolchain, cache, monkeypatch):
    """AVX-512's channel-blocked one-row kernels (`codegen.channel_block`; generated for 16-float
    vectors whatever this host is) and pattern kernels: in place and through the tile buffer,
    batched, 3x3 s1 / s2, direct 3x3 tiles, a row's first and last block anywhere, rows pruned
    away, every activation."""
    specs = [KernelSpec("pwconv", n=2, h=14, w=14, cin=256, cout=12, activation="relu6",
                        sparsity=Sparsity("unstructured", 0.5)),
             KernelSpec("pwconv", h=9, w=23, cin=300, cout=7, activation="hswish", sparsity=Sparsity("nm", 0.5)),
             KernelSpec("conv2d", h=10, w=40, cin=64, cout=6, kh=3, kw=3, padding=1, activation="relu",
                        sparsity=Sparsity("block", 0.5, {"block": [1, 4]})),
             KernelSpec("conv2d", h=13, w=30, cin=96, cout=5, kh=3, kw=3, stride=2, padding=1,
                        sparsity=Sparsity("unstructured", 0.6)),
             KernelSpec("pwconv", h=7, w=7, cin=960, cout=9, sparsity=Sparsity("unstructured", 0.9)),
             KernelSpec("conv2d", h=10, w=40, cin=64, cout=6, kh=3, kw=3, padding=1, activation="relu",
                        sparsity=Sparsity("pattern", 0.8, {"patterns": 8})),
             KernelSpec("conv2d", h=18, w=40, cin=48, cout=5, kh=3, kw=3, padding=0, activation="relu6",
                        sparsity=Sparsity("pattern", 0.6, {"patterns": 6}))]
    kernels = [generate(s, "sparse", vector_floats=16, vector_regs=32) for s in specs]
    assert generate(specs[0], "sparse", vector_floats=4, vector_regs=32).stats.get("channel_block") is None
    monkeypatch.setattr(codegen, "KBLOCK_MIN_NNZ", 0)  # blocked however few nonzeros: rows left empty
    monkeypatch.setattr(codegen, "KBLOCK_MIN_NNZ_MANY", 0)
    kernels.append(generate(KernelSpec("pwconv", h=8, w=8, cin=400, cout=10, activation="relu",
                                       sparsity=Sparsity("unstructured", 0.995)), "sparse", vector_floats=16,
                            vector_regs=32))
    assert all(k.stats.get("channel_block") for k in kernels), [k.stats for k in kernels]
    batch = build_batch(kernels, toolchain, cache_dir=cache)
    dump = Path(batch.folder) / "dump_blocked"
    dump.mkdir(exist_ok=True)
    p = subprocess.run(toolchain.run_argv(batch.binary, *FAST, f"--dump={dump}"), cwd=batch.folder,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    check_against_numpy(kernels, parse_harness_output(p.stdout), dump)


def check_on_three_threads(toolchain, cache, kernels, tag: str) -> None:
    """Build `kernels` into one harness, run it on 3 threads and compare every output with numpy."""
    batch = build_batch(kernels, toolchain, cache_dir=cache)
    dump = Path(batch.folder) / f"dump_{tag}"
    dump.mkdir(exist_ok=True)
    p = subprocess.run(toolchain.run_argv(batch.binary, *FAST, f"--dump={dump}", "--threads=3", "--oversubscribe"),
                       cwd=batch.folder, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    check_against_numpy(kernels, parse_harness_output(p.stdout), dump)


def test_aligned_input_layouts_match_numpy(toolchain, cache, monkeypatch):
    """AVX-512's aligned input layouts (generated for 16-float vectors whatever this host is):
    column-shifted copies (`codegen.column_shifted`) for every scheme and the dense kernel, output
    widths of whole vectors (tiles stored straight into the output) and not (junk columns),
    padding 0 / 1 / 2, 3x3 and 5x3 kernels, batched, channel-blocked or not; narrow-output layers
    keep one copy. One-row 1x1 kernels' channels padded to whole vectors (`codegen.channels_padded`),
    CSR too; 4-row blocks keep reading in place. Unrolling is off here (layers whose kept weights
    exceed `unrolled.MAX_FMAS` take these paths)."""
    monkeypatch.setattr(unrolled, "MAX_FMAS", 0)
    specs = [KernelSpec("conv2d", n=2, h=9, w=32, cin=4, cout=12, kh=3, kw=3, padding=1, activation="relu",
                        sparsity=Sparsity(sc, 0.0 if sc == "dense" else 0.7, p))
             for sc, p in (("unstructured", {}), ("bcr", {"block": [4, 16]}), ("block", {"block": [4, 1]}),
                           ("block", {"block": [1, 4]}), ("nm", {}), ("pattern", {"patterns": 8}), ("dense", {}))]
    specs += [KernelSpec("conv2d", h=11, w=21, cin=3, cout=8, kh=3, kw=3, padding=0, activation="relu6",
                         sparsity=Sparsity("unstructured", 0.5)),
              KernelSpec("conv2d", h=7, w=19, cin=5, cout=16, kh=5, kw=3, padding=2, activation="hswish",
                         sparsity=Sparsity("block", 0.5, {"block": [4, 1]})),
              KernelSpec("conv2d", h=10, w=23, cin=6, cout=13, kh=3, kw=3, padding=1,
                         sparsity=Sparsity("pattern", 0.6, {"patterns": 6})),
              KernelSpec("conv2d", h=12, w=40, cin=64, cout=128, kh=3, kw=3, padding=1, activation="relu",
                         sparsity=Sparsity("unstructured", 0.9))]
    kernels = [generate(s, "sparse" if s.sparsity.scheme != "dense" else "dense", vector_floats=16, vector_regs=32)
               for s in specs]
    assert all(codegen.column_shifted(s, 16) for s in specs)
    assert kernels[-1].stats.get("channel_block"), kernels[-1].stats
    assert not codegen.column_shifted(specs[0].replace(cin=12), 16) and not codegen.column_shifted(specs[0], 8)
    pw = [KernelSpec("pwconv", n=2, h=7, w=7, cin=40, cout=48, activation="relu6", sparsity=Sparsity("unstructured", 0.75)),
          KernelSpec("pwconv", h=14, w=14, cin=576, cout=40, sparsity=Sparsity("nm", 0.75)),
          KernelSpec("pwconv", h=5, w=9, cin=33, cout=17, activation="hswish",
                     sparsity=Sparsity("block", 0.5, {"block": [1, 4]}))]
    kernels += [generate(s, "sparse", vector_floats=16, vector_regs=32) for s in pw]
    kernels.append(generate(pw[0], "csr", vector_floats=16, vector_regs=32, name="pw0_csr"))
    assert all(codegen.channels_padded(s, 16, True, k.stats["nnz"]) for s, k in zip(pw, kernels[-4:-1]))
    assert kernels[-3].stats.get("channel_block")
    assert not codegen.channels_padded(pw[0], 16, False, 1000) and not codegen.channels_padded(pw[0], 16, True, 8 * 40 - 1)
    assert not codegen.channels_padded(pw[0].replace(h=8, w=8), 16, True, 1000)
    check_on_three_threads(toolchain, cache, kernels, "shifted")


def test_unrolled_kernels_match_numpy(toolchain, cache):
    """One-row kernels with their kept weights compiled into the code (`devprof.sparse.unrolled`,
    16-float vectors whatever this host is): every one-row scheme, 3x3 and 5x3 kernels, padding
    0 / 1 / 2, batched, one to three blocks of output channels (rows with no kept weight: bias
    only), fewer output than input channels, input channels in several passes (partial sums
    through the output), every activation, 3 threads. Where the rule says no, the other kernels
    run."""
    specs = [KernelSpec("conv2d", n=2, h=6, w=32, cin=3, cout=8, kh=3, kw=3, padding=1, activation="relu",
                        sparsity=Sparsity("unstructured", 0.5)),
             KernelSpec("conv2d", h=5, w=30, cin=4, cout=50, kh=5, kw=3, padding=2, activation="hswish",
                        sparsity=Sparsity("nm", 0.75)),
             KernelSpec("conv2d", h=7, w=18, cin=5, cout=30, kh=3, kw=3, padding=0, activation="relu6",
                        sparsity=Sparsity("pattern", 0.6, {"patterns": 6})),
             KernelSpec("conv2d", n=2, h=4, w=16, cin=4, cout=64, kh=3, kw=3, padding=1,
                        sparsity=Sparsity("block", 0.5, {"block": [1, 4]})),
             KernelSpec("conv2d", h=3, w=16, cin=6, cout=12, kh=3, kw=3, padding=1,
                        sparsity=Sparsity("unstructured", 0.95)),
             KernelSpec("conv2d", h=5, w=16, cin=40, cout=30, kh=3, kw=3, padding=1, activation="relu",
                        sparsity=Sparsity("nm", 0.9)),  # fewer output than input channels
             KernelSpec("conv2d", h=4, w=16, cin=128, cout=6, kh=3, kw=3, padding=1,
                        sparsity=Sparsity("unstructured", 0.9)),  # a large window, one block
             KernelSpec("conv2d", n=2, h=4, w=16, cin=130, cout=30, kh=3, kw=3, padding=1, activation="relu6",
                        sparsity=Sparsity("unstructured", 0.9))]  # ... two blocks: channel passes
    kernels = [generate(s, "sparse", vector_floats=16, vector_regs=32) for s in specs]
    assert all(k.stats["format"] == "unrolled" for k in kernels), [k.stats for k in kernels]
    assert [k.stats["blocks"] for k in kernels] == [1, 3, 2, 3, 1, 2, 1, 2]
    assert [k.stats["channel_passes"] for k in kernels[-3:]] == [1, 1, 3]
    no = [specs[0].replace(w=33),  # output rows not whole vectors
          specs[0].replace(sparsity=Sparsity("bcr", 0.5, {"block": [4, 16]}))]  # 4-row blocks
    others = [generate(s, "sparse", vector_floats=16, vector_regs=32) for s in no]
    others.append(generate(specs[0], "sparse", vector_floats=8, vector_regs=16, name="u8"))
    others.append(generate(specs[0], "csr", vector_floats=16, vector_regs=32))
    assert not any(k.stats.get("format") == "unrolled" for k in others), [k.stats for k in others]
    assert not unrolled.applies(specs[1], "sparse", 16, True, unrolled.MAX_FMAS + 1)
    kernels += others
    check_on_three_threads(toolchain, cache, kernels, "unrolled")


def test_direct_depthwise_kernel_matches_numpy(toolchain, cache):
    """Dense depthwise convs run their own kernel (devprof.sparse.depthwise): strides 1-3, kernels
    3/5/7, padding 0..k//2, odd row and column counts (two-row blocks with a last single row, rows
    narrower than a vector), every activation."""
    specs = [KernelSpec("dwconv2d", h=h, w=w, cin=c, cout=c, groups=c, kh=k, kw=k, stride=s, padding=p, activation=a)
             for h, w, c, k, s, p, a in [(15, 17, 5, 3, 1, 1, "relu6"), (15, 17, 5, 3, 2, 1, "none"),
                                         (9, 5, 3, 5, 1, 2, "hswish"), (11, 23, 4, 5, 2, 2, "relu"),
                                         (13, 14, 2, 7, 1, 3, "none"), (10, 10, 3, 3, 3, 0, "relu6"),
                                         (6, 7, 2, 3, 1, 0, "none")]]
    kernels, out, dump = run_batch(toolchain, cache, specs, variants=("dense",))
    assert all(k.stats.get("format") == "depthwise" for k in kernels)
    check_against_numpy(kernels, out, dump)


ARM64 = cross_toolchains("arm64-v8a")


@pytest.mark.skipif(not ARM64 or not ARM64[0].can_run_here, reason="needs gcc-aarch64-linux-gnu and qemu-user-static")
@pytest.mark.parametrize("which", range(2))
def test_arm64_one_row_column_steps_match_numpy_under_qemu(cache, which):
    """NEON one-row kernels take 4 kept columns per step (`codegen.column_step`) and the last
    nc % 4 one at a time: rows of 0 to ~20 kept columns (every remainder), tiles stored straight
    into the output and through the tile buffer, fc panels; built by gcc and by clang, run under
    qemu, equal to numpy, and 3 threads give the 1-thread output bit for bit."""
    if which >= len(ARM64):
        pytest.skip("one arm64 compiler installed")
    tc = ARM64[which]
    specs = [make_spec("pw1x1", 9, 8, 23, 13, 1, "unstructured", 0.6, {}, "relu"),  # whole-row tiles: direct
             make_spec("pw1x1", 5, 7, 11, 6, 2, "nm", 0.5, {"n": 2, "m": 4}),
             make_spec("pw1x1", 6, 7, 23, 11, 1, "unstructured", 0.9, {}),  # rows of fewer than 4 columns
             make_spec("conv3x3s1", 7, 9, 5, 7, 1, "block", 0.7, {"block": [1, 4]}, "relu6"),  # padded: tile buffer
             make_spec("conv3x3s2", 9, 8, 3, 5, 1, "unstructured", 0.3, {}),
             KernelSpec("conv2d", h=10, w=11, cin=4, cout=6, kh=3, kw=3, sparsity=Sparsity("unstructured", 0.8)),
             make_spec("fc", 1, 1, 37, 9, 19, "unstructured", 0.5, {})]
    kernels, out, dump = run_batch(tc, cache, specs, variants=("sparse", "csr"))
    check_against_numpy(kernels, out, dump)
    _, out3, dump3 = run_batch(tc, cache, specs, variants=("sparse", "csr"), threads=3)
    for k in kernels:
        assert out3.lines[k.name].status == "ok"
        assert (dump3 / f"{k.name}.out").read_bytes() == (dump / f"{k.name}.out").read_bytes(), k.spec.key


def test_harness_refuses_wrong_output(toolchain, cache, tmp_path):
    spec = make_spec("conv3x3s1", 8, 8, 4, 8, 1, "bcr", 0.5, {"block": [4, 4]})
    vl, regs = vector_shape(toolchain)
    k = generate(spec, "sparse", vector_floats=vl, vector_regs=regs)
    good = generate(spec.replace(sparsity=Sparsity()), "dense", vector_floats=vl, vector_regs=regs)
    batch = build_batch([k, good], toolchain, cache_dir=cache)
    work = tmp_path / "batch"
    shutil.copytree(batch.folder, work)
    data = bytearray((work / f"{k.name}.bin").read_bytes())
    # array 1 (reference values) starts after the header and array 0: corrupt its first value
    n0 = int(np.frombuffer(data[16:24], dtype="<u8")[0])
    off = 8 + 16 + 4 * n0 + 16
    ref0 = np.frombuffer(bytes(data[off:off + 4]), dtype="<f4")[0]
    data[off:off + 4] = np.float32(ref0 + 1.0).tobytes()
    (work / f"{k.name}.bin").write_bytes(bytes(data))
    (work / f"{good.name}.bin").write_bytes(b"DPB1garbage")
    p = subprocess.run([str(work / "devprof-harness"), *FAST], cwd=work, capture_output=True, text=True, timeout=60)
    out = parse_harness_output(p.stdout)
    bad = out.lines[k.name]
    assert bad.status == "mismatch" and "mismatch" in bad.error and bad.samples_us == ()
    assert out.lines[good.name].status == "error"
    for line in p.stdout.splitlines():
        d = json.loads(line)
        assert "samples_us" not in d or d["status"] == "ok"


def test_build_is_cached(toolchain, cache):
    spec = make_spec("pw1x1", 5, 5, 7, 9, 1, "nm", 0.5, {"n": 2, "m": 4})
    vl, regs = vector_shape(toolchain)
    ks = [generate(spec, v, vector_floats=vl, vector_regs=regs) for v in ("sparse", "dense")]
    build_batch(ks, toolchain, cache_dir=cache)
    again = build_batch([generate(spec, v, vector_floats=vl, vector_regs=regs) for v in ("sparse", "dense")],
                        toolchain, cache_dir=cache)
    assert not again.built and again.binary.exists()


def test_portable_fallback_without_vector_extensions(toolchain, cache):
    """The plain-C fallback (no GNU vector extensions) computes the same answers."""
    import dataclasses

    tc = dataclasses.replace(toolchain, cflags=(*toolchain.cflags, "-DDP_NO_VECTOR_EXT"))
    specs = [make_spec("conv3x3s2", 9, 11, 5, 7, 1, "pattern", 0.7, {"patterns": 8}, "relu6"),
             make_spec("pw1x1", 17, 16, 6, 9, 1, "bcr", 0.5, {"block": [4, 4]}, "relu"),
             KernelSpec("fc", n=1, cin=70, cout=40, sparsity=Sparsity("block", 0.5, {"block": [4, 1]})),
             KernelSpec("conv2d", h=20, w=19, cin=3, cout=8, kh=3, kw=3, padding=0, activation="hswish")]
    kernels, out, dump = run_batch(tc, cache, specs, variants=("sparse", "dense"))
    check_against_numpy(kernels, out, dump)


def test_rows_per_load_feature_is_the_generated_register_block() -> None:
    """predictors' `rows_per_load` feature restates how the code generator blocks rows (the
    output channels that share each loaded input vector): it must agree with what `generate`
    actually emits, scheme by scheme."""
    from devprof.runtimes.harness import variant_for
    from predictors.features import feature_index, features
    from predictors.spectable import encode

    specs = [make_spec("conv3x3s1", 12, 12, 16, 32, 1, s, 0.5, p) for s, p in SCHEMES if s != "pattern"]
    specs.append(make_spec("conv3x3s1", 12, 12, 16, 32, 1, "dense", 0.0, {}))
    got = features(encode(specs))[:, feature_index("rows_per_load")]
    for s, r in zip(specs, got):
        st_ = generate(s, variant_for(s)).stats
        emitted = max(1, int(np.ceil(st_["mean_rows_per_group"] - 1e-9)))
        assert r == emitted <= st_["rmax"], (s.key, st_)
    pat = make_spec("conv3x3s1", 12, 12, 16, 32, 1, "pattern", 0.5, {"patterns": 8})
    assert features(encode([pat]))[0, feature_index("rows_per_load")] == 1.0  # PatDNN: per row


@pytest.mark.parametrize("vl,regs", [(16, 32), (8, 16), (4, 32), (4, 16)])
def test_tile_features_are_the_generated_loop_tile(vl: int, regs: int) -> None:
    """predictors' loop-tile features restate how the code generator tiles output positions
    (`devprof.sparse.codegen.geometry`: NV x VL positions, NV set by the row block and the
    register count): `kernel_tile` must pick the tile `generate` emits, for every scheme, op and
    every vector shape of the ISA table (but for the AVX-512 layers read from column-shifted
    copies, `codegen.column_shifted`, which the features count with the one-copy tile)."""
    from devprof.runtimes.harness import variant_for
    from predictors.features import feature_index, features, kernel_tile
    from predictors.spectable import encode

    specs = []
    for op, (h, w) in (("conv3x3s1", (13, 11)), ("conv3x3s2", (17, 30)), ("pw1x1", (28, 28)),
                       ("pw1x1", (9, 47)), ("fc", (1, 1))):
        for s, p in [*SCHEMES, ("dense", {})]:
            ratio = 0.0 if s == "dense" else 0.5
            specs += [make_spec(op, h, w, 8, 12, n, s, ratio, p) for n in ((1, 37) if op == "fc" else (1,))]
    specs.append(KernelSpec("dwconv2d", h=19, w=21, cin=8, cout=8, kh=3, kw=3, padding=1, groups=8))
    X = encode(specs)
    t, q = kernel_tile(X, vl, regs)
    F = features(X, vl, regs)
    for s, ti, qi, f in zip(specs, t, q, F):
        st_ = generate(s, variant_for(s), vector_floats=vl, vector_regs=regs).stats
        assert ti == st_["tile"], (s.key, st_)
        if st_["mode"] != "gemv":
            assert f[feature_index("tile_waste")] == np.ceil(qi / ti) * ti / qi
    # the tiles differ by scheme: one-row kernels get 8 vectors a tile, 4-row blocks 5
    assert len(set(t.tolist())) >= 4


@pytest.mark.parametrize("vl,regs", [(16, 32), (4, 32)])
def test_tile_features_follow_the_int8_and_fp16_kernels(vl: int, regs: int) -> None:
    """int8 and fp16 rows get their own kernel's tile whatever fp32 vector shape a bundle records:
    fp16 kernels are the fp32 generator's on 8-half NEON vectors, int8 kernels tile in units of 16
    positions (no matrix-vector or direct depthwise kernel). fp32 rows keep the shape's tile."""
    from devprof.runtimes.harness import variant_for
    from devprof.sparse import codegen_fp16, codegen_int8
    from predictors.features import kernel_tile
    from predictors.spectable import encode

    base = []
    for op, (h, w) in (("conv3x3s1", (13, 11)), ("conv3x3s2", (17, 30)), ("pw1x1", (9, 47)), ("fc", (1, 1))):
        for s, p in (("dense", {}), ("unstructured", {}), ("bcr", {"block": [4, 16]}), ("pattern", {"patterns": 8})):
            if s == "pattern" and op in ("pw1x1", "fc"):
                continue
            base += [make_spec(op, h, w, 8, 12, n, s, 0.0 if s == "dense" else 0.5, p)
                     for n in ((1, 37) if op == "fc" else (1,))]
    base.append(KernelSpec("dwconv2d", h=19, w=21, cin=8, cout=8, kh=3, kw=3, padding=1, groups=8))
    base.append(make_spec("pw1x1", 28, 28, 192, 8, 1, "bcr", 0.5, {"block": [4, 16]}))  # K caps int8's tile
    gen = {"int8": lambda s: codegen_int8.generate(s, variant_for(s), with_reference=False),
           "fp16": lambda s: codegen_fp16.generate(s, variant_for(s), with_reference=False)}
    for dtype, make in gen.items():
        specs = [s.replace(dtype=dtype) for s in base]
        t, _ = kernel_tile(encode(specs), vl, regs)
        assert [int(x) for x in t] == [make(s).stats["tile"] for s in specs], dtype
    t32, _ = kernel_tile(encode(base), vl, regs)
    mixed, _ = kernel_tile(encode([*base, *(s.replace(dtype="int8") for s in base)]), vl, regs)
    assert np.array_equal(mixed[:len(base)], t32)
