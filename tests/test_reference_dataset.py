"""A device's campaign folders merged into one reference dataset read exactly as the folders did:
repeat measurements from different campaigns are kept (the table's median is over them), exact
duplicates dropped, and the published `local` tables rebuild from the reference unchanged."""
from __future__ import annotations

import ast
import dataclasses
import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import predictors_synth as synth
from support.cli import run_cli

from devprof.errors import DatasetError
from devprof.store import Dataset, read_datasets, read_reference, write_reference
from predictors import lut as lutmod

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "datasets_latency" / "local" / "reference.parquet"


def _campaign(path: Path, specs, seed: int, t0: float) -> Path:
    ds = Dataset(path)
    ds.create()
    ds.append([dataclasses.replace(r, started_at=t0 + i, finished_at=t0 + i + 1)
               for i, r in enumerate(synth.records(specs, seed=seed, noise=0.05))])
    return path


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["record_key", "started_at"]).reset_index(drop=True)


def test_merge_keeps_repeat_campaigns_and_drops_exact_duplicates(tmp_path: Path) -> None:
    specs = synth.random_specs(40, seed=1, sparse=False)
    a = _campaign(tmp_path / "train", specs, 0, 1.7e9)
    b = _campaign(tmp_path / "train-r2", specs[:25], 1, 1.8e9)  # the same kernels, hours later
    copy = tmp_path / "train-copy"
    shutil.copytree(a, copy)  # the same measurements again: duplicates
    ref = tmp_path / "ref.parquet"
    assert write_reference([a, b, copy], ref) == {"campaigns": 3, "records": 65, "duplicates_dropped": 40}
    old, new = read_datasets([a, b]), read_datasets([ref])
    assert _sorted(old).equals(_sorted(new))
    assert lutmod.build(old).equals(lutmod.build(new))
    agree = lutmod.campaign_agreement(new, "median")
    assert agree == lutmod.campaign_agreement(old, "median") and agree["kernels"] >= 20
    assert len(read_reference(ref, ["train-r2"])) == 25 and len(read_datasets([f"{ref}@train"])) == 40
    # a later merge takes the reference along with a new campaign
    c = _campaign(tmp_path / "train-r3", specs[:5], 2, 1.9e9)
    r = run_cli("dataset", "merge", str(tmp_path / "ref2.parquet"), str(ref), str(c))
    assert r.returncode == 0, r.stderr
    assert "70 records from 3 campaign(s)" in r.stdout
    with pytest.raises(DatasetError, match="given twice"):
        write_reference([ref, a], tmp_path / "ref3.parquet")
    with pytest.raises(DatasetError, match="no campaign"):
        read_datasets([f"{ref}@nope"])
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    r = run_cli("fit-predictor", str(tmp_path / "x.parquet"), "--out", str(tmp_path / "b"))
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0 and "reference dataset" in r.stderr


def test_published_tables_rebuild_from_the_reference_unchanged() -> None:
    """litert-xnnpack-t1's lookup table, rebuilt from the reference's records of the campaigns
    its metadata names, has exactly the published medians and fastest rounds, and the same
    campaign agreement."""
    bundle = ROOT / "datasets_latency" / "local" / "litert-xnnpack-t1"
    meta = json.loads((bundle / "metadata.json").read_text())
    sources = meta["dataset"]["sources"]
    names = [Path(s).name for s in (ast.literal_eval(sources) if isinstance(sources, str) else sources)]
    df = read_datasets([f"{REFERENCE}@{','.join(names)}"])
    kernels = df[(df["kind"] == "kernel") & (df["runtime_key"] == meta["runtime"]["key"])]
    rebuilt = lutmod.build(kernels)
    pub = pd.DataFrame(json.loads(gzip.decompress((bundle / "lut.json.gz").read_bytes()))["columns"])
    j = pub.merge(rebuilt, on="key", suffixes=("_pub", "_new"))
    assert len(j) == len(pub) == len(rebuilt)
    for c in ("median_us", "min_us"):
        assert np.array_equal(j[f"{c}_pub"].to_numpy(float), j[f"{c}_new"].to_numpy(float)), c
    # and the campaign agreement the fit recorded in the bundle's metrics
    assert lutmod.campaign_agreement(kernels, meta["metrics"]["statistic"]) == meta["metrics"]["kernel"]["noise"]["campaigns"]


def test_show_and_report_read_a_reference_dataset(tmp_path: Path) -> None:
    """The published data is one reference file now: `show` and `report` take it (whole or some
    campaigns) as they take a dataset folder."""
    specs = synth.random_specs(12, seed=4, sparse=False)
    ref = tmp_path / "ref.parquet"
    write_reference([_campaign(tmp_path / "a", specs, 0, 1.7e9), _campaign(tmp_path / "b", specs[:5], 1, 1.8e9)], ref)
    r = run_cli("show", f"{ref}@b", "--json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)) == 5
    r = run_cli("report", str(ref), "-o", str(tmp_path / "r.md"))
    assert r.returncode == 0 and (tmp_path / "r.md").is_file(), r.stderr
