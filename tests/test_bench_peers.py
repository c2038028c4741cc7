"""bench/sparse_vs_dense.py --peers: the peers' plumbing on one small layer, in this process (figures
not checked: the quickest protocol on a shared machine says nothing about speed)."""
from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "sparse_vs_dense.py"


def run_bench(monkeypatch, *args: str) -> int:
    spec = importlib.util.spec_from_file_location("bench_sparse_vs_dense", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(sys, "argv", [str(BENCH), *args])
    return mod.main()


def test_peers_without_deepsparse_prints_the_skip_note_and_the_torch_rows(tmp_path, toolchain, monkeypatch, capsys):
    pytest.importorskip("torch")
    out_csv = tmp_path / "peers.csv"
    monkeypatch.setenv("DEVPROF_DEEPSPARSE_PYTHON", str(tmp_path / "no-python"))
    assert run_bench(monkeypatch, "--peers", "--smoke", "--shapes", "1", "--ratios", "0.9", "--schemes",
                     "unstructured,bcr", "--threads", "1", "--rounds", "1", "--csv", str(out_csv)) == 0
    out = capsys.readouterr().out
    assert "note: DeepSparse skipped (cannot start" in out and "--deepsparse-python PATH" in out
    rows = list(csv.DictReader(out_csv.open()))
    got = {(r["contender"], r["scheme"]) for r in rows}
    assert {("devprof-c", "dense"), ("ort-dense", "dense"), ("torch-dense", "dense"), ("devprof-c", "unstructured"),
            ("devprof-c", "bcr"), ("torch-csr", "unstructured"), ("torch-csr", "bcr"),
            ("torch-bsr4x4", "bcr")} <= got
    assert not any(r["contender"] == "deepsparse" for r in rows)
    # each row carries both rates under its own name: nonzero FMAs (work done) and dense-equivalent
    for r in rows:
        assert float(r["us"]) > 0
        assert float(r["nnz_gflops"]) <= float(r["dense_equiv_gflops"]) * (1 + 1e-9)
        if r["scheme"] == "dense":
            assert float(r["nnz_gflops"]) == pytest.approx(float(r["dense_equiv_gflops"]))
    assert "Against DeepSparse" in out and "no DeepSparse figures" in out


def test_peers_bad_option_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(SystemExit) as e:
        run_bench(monkeypatch, "--peers", "--ratios", "ninety", "--csv", str(tmp_path / "x.csv"))
    assert str(e.value).startswith("error: --threads / --ratios:") and "\n" not in str(e.value)
    with pytest.raises(SystemExit) as e:
        run_bench(monkeypatch, "--peers", "--match", "no-such-layer", "--csv", str(tmp_path / "x.csv"))
    assert str(e.value) == "error: --match no-such-layer: no --peers layer's key contains it"
