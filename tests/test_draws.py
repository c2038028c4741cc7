"""`profile --where` / `--draw`: part of a suite, pruned from another weight draw, and the lookup
table's median over a spec's draws."""
from __future__ import annotations

import json

import numpy as np
import pytest

from support.cli import run_cli
from devprof.errors import UsageError
from devprof.records import KernelSpec, Sparsity
from devprof.sparse.codegen import generate
from devprof.sparse.weights import dense_seed
from devprof.suites.select import parse_where, with_draw, without_draw
from predictors import lut
from devprof.store import read_datasets

BCR = KernelSpec("pwconv", h=8, w=8, cin=16, cout=8, sparsity=Sparsity("bcr", 0.75, {"block": [4, 4]}))
DENSE = KernelSpec("pwconv", h=8, w=8, cin=16, cout=8)


def test_where_selects_by_field_and_refuses_what_it_cannot_read() -> None:
    specs = [BCR, DENSE, BCR.replace(cout=64), KernelSpec("conv2d", h=8, w=8, cin=4, cout=8, kh=3, kw=3, padding=1)]
    keep = parse_where("op=pwconv, scheme!=dense, cout<=32")
    assert [s for s in specs if keep(s)] == [BCR]
    assert [s for s in specs if parse_where("ratio>=0.5")(s)] == [BCR, BCR.replace(cout=64)]
    for bad, text in (("cout<<3", "cannot read"), ("colour=red", "unknown field"), ("op<pwconv", "= or !="),
                      ("cout<=many", "needs a number"), (" , ", "no condition")):
        with pytest.raises(UsageError, match=text):
            parse_where(bad)


def test_a_draw_is_another_pruned_tensor_and_draw_0_is_the_spec_as_before() -> None:
    d1 = with_draw(BCR, 1)
    assert d1.key == BCR.key + "-draw=1" and without_draw(d1) == BCR == with_draw(d1, 0)
    assert with_draw(DENSE, 3) == DENSE  # a dense kernel's time does not depend on its values
    assert dense_seed(d1) != dense_seed(BCR)
    a, b = generate(BCR), generate(d1)
    assert any(x.tobytes() != y.tobytes() for x, y in zip(a.arrays, b.arrays))


def test_profiled_draws_merge_into_one_table_row(tmp_path) -> None:
    suite = tmp_path / "s.toml"
    suite.write_text('[suite]\nname = "draws"\nruntimes = ["devprof-c"]\n\n'
                     '[[kernels]]\nop = "pwconv"\nh = 8\nw = 8\ncin = 16\ncout = 8\n'
                     'sparsity = { scheme = "bcr", ratio = 0.75, params = { block = [4, 4] } }\n\n'
                     '[[kernels]]\nop = "pwconv"\nh = 8\nw = 8\ncin = 16\ncout = 8\n\n'
                     '[[kernels]]\nop = "pwconv"\nh = 8\nw = 8\ncin = 16\ncout = 64\n'
                     'sparsity = { scheme = "bcr", ratio = 0.75, params = { block = [4, 4] } }\n')
    outs = []
    for draw in (0, 1, 2):
        out = tmp_path / f"d{draw}"
        p = run_cli("profile", "-s", str(suite), "-r", "devprof-c", "--quick", "--json", "--out", str(out),
                    "--where", "cout<=32", "--draw", str(draw))
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["measured"] == 2  # the cout=64 kernel is left out
        outs.append(out)
    df = read_datasets(outs)
    assert sorted(set(df["spec_key"])) == sorted({DENSE.key, BCR.key, BCR.key + "-draw=1", BCR.key + "-draw=2"})
    table = lut.build(df).set_index("key")
    assert sorted(table.index) == sorted([BCR.key, DENSE.key])
    row = table.loc[BCR.key]
    per_draw = df[df["scheme"] == "bcr"]["min_us"].to_numpy()
    assert row["records"] == 3 and row["draws"] == 3 and row["min_us"] == np.median(per_draw)
    assert json.loads(row["spec_json"])["attrs"] == {} and row["attrs"] == "{}"
    # the dense kernel was measured alike in each campaign: one draw, made of its three records less
    # any a busy host flagged noisy (the table drops those while a steady one is left)
    dense = df[df["scheme"] == "dense"]
    steady = int((~dense["noisy"].astype(bool)).sum())
    assert len(dense) == 3 and table.loc[DENSE.key, "draws"] == 1
    assert table.loc[DENSE.key, "records"] == (steady or 3)
    # a campaign's agreement compares campaigns of one draw, never one draw with another
    assert lut.campaign_agreement(df[df["scheme"] == "bcr"], "min")["kernels"] == 0

    bad = run_cli("profile", "-s", str(suite), "-r", "devprof-c", "--quick", "--out", str(tmp_path / "x"),
                  "--where", "cout>1000")
    assert bad.returncode == 2 and "none of the 3 kernels" in bad.stderr and "Traceback" not in bad.stderr
