"""The optional OpenBLAS dense GEMM baseline: Debian's static libopenblas linked into the harness,
checked under qemu for arm64 and run on the emulated phone next to devprof-c."""
from __future__ import annotations

import json
import subprocess

import pytest

from devprof.artifacts import openblas
from devprof.artifacts.android import CHECK_ARGS
from devprof.artifacts.harness_build import build_batch
from devprof.artifacts.toolchains import android_toolchain
from devprof.errors import UsageError
from devprof.records import KernelSpec
from devprof.runtimes.harness import parse_harness_output
from devprof.store import Dataset

from support.cli import run_cli

SPECS = [KernelSpec("fc", n=3, cin=40, cout=24, activation="relu"), KernelSpec("pwconv", h=9, w=9, cin=16, cout=24),
         KernelSpec("conv2d", h=11, w=13, cin=8, cout=16, kh=3, kw=3, stride=2, padding=1, activation="relu6")]

SUITE = """
[suite]
name = "gemm"
description = "dense GEMM-shaped kernels"
runtimes = ["openblas", "devprof-c"]

[[kernels]]
op = "fc"
n = 2
cin = 64
cout = 32

[[kernels]]
op = "pwconv"
h = 10
w = 10
cin = 16
cout = 32

[[kernels]]
op = "conv2d"
h = 12
w = 12
cin = 8
cout = 16
kh = 3
kw = 3
padding = 1
"""


@pytest.fixture(autouse=True)
def _shared_openblas(monkeypatch):
    """The extracted packages are kept across test sessions (fetching costs ~15 s per ABI)."""
    import tempfile
    from pathlib import Path

    monkeypatch.setenv("DEVPROF_OPENBLAS_DIR", str(Path(tempfile.gettempdir()) / "devprof-test-openblas"))


def _blas(abi: str) -> openblas.OpenBLAS:
    try:
        return openblas.fetch(abi)
    except UsageError as e:  # no Debian apt or no network to its mirror
        pytest.skip(f"cannot fetch Debian's static OpenBLAS: {e}")


@pytest.mark.parametrize("abi", ["arm64-v8a", "x86_64"])
def test_openblas_kernels_pass_the_harness_check(abi):
    tc = android_toolchain(abi)
    if tc.available() or not tc.can_run_here:
        pytest.skip(f"no {abi} toolchain/runner here")
    tc = openblas.toolchain_with(tc, _blas(abi))
    b = build_batch([openblas.generate(s, f"ob{i}") for i, s in enumerate(SPECS)], tc)
    p = subprocess.run(tc.run_argv(b.binary, *CHECK_ARGS), cwd=b.folder, capture_output=True, text=True, timeout=300)
    lines = parse_harness_output(p.stdout).lines
    assert {k: v.status for k, v in lines.items()} == {f"ob{i}": "ok" for i in range(len(SPECS))}, p.stdout


def test_openblas_refuses_what_is_not_a_gemm():
    assert openblas.unsupported(KernelSpec("dwconv2d", h=8, w=8, cin=8, cout=8, groups=8, kh=3, kw=3, padding=1))
    assert openblas.unsupported(KernelSpec("fc", cin=8, cout=8, sparsity={"scheme": "unstructured", "ratio": 0.5}))
    assert openblas.unsupported(SPECS[0]) is None


def test_openblas_next_to_devprof_c_on_the_phone(phone, adb_server, tmp_path):
    _blas("x86_64")
    suite = tmp_path / "gemm.toml"
    suite.write_text(SUITE)
    out = tmp_path / "ds"
    r = run_cli("profile", "--device", "S20", "--suite", str(suite), "--quick", "--out", str(out), "--json",
                env=adb_server.env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["measured"] == 6
    df = Dataset(out).read()
    assert sorted(df["runtime"].unique()) == ["devprof-c", "openblas"]
    assert df.groupby("spec_id")["runtime"].nunique().eq(2).all()
    assert set(df["device_name"]) == {"Galaxy S20 5G"}
