"""Predictors per data type: int8 kernels get int8 regressors (groups ``op/scheme/int8``), a bundle
that never measured int8 answers an int8 query from its fallback and says so, and fit-predictor
reports held-out accuracy per dtype in the same table."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import predictors
from devprof.records import KernelSpec, Measurement, Record
from devprof.store import Dataset, read_datasets
from predictors.domain import OutOfDomain
from predictors.estimators import BoostedLatency, FlopsLinear, ForestLatency
from predictors.fit import fit_bundles

from support import predictors_synth as synth

ROOT = Path(__file__).resolve().parents[1]
FAST = {"flops_linear": FlopsLinear(), "gradient_boosting": BoostedLatency(n_estimators=30, max_depth=3),
        "random_forest": ForestLatency(n_estimators=10)}
INT8_SPEEDUP = 3.0  # the synthetic int8 kernels run this much faster than fp32 ones


def _int8_records(specs, seed=1):
    rng = np.random.default_rng(seed)
    out = []
    for s in specs:
        q = s.replace(dtype="int8")
        t = synth.true_latency_us(s) / INT8_SPEEDUP
        samples = tuple(float(x) for x in t * np.exp(rng.normal(0, 0.01, 7)))
        out.append(Record(spec=q, device=synth.DEVICE, runtime=synth.RUNTIME, measurement=Measurement(samples, 3, 10),
                          started_at=1.7e9, finished_at=1.7e9 + 1, devprof_version="0.1.0"))
    return out


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dt") / "ds"
    ds = Dataset(path)
    ds.create()
    specs = synth.random_specs(160, seed=5, sparse=False)
    ds.append(synth.records(specs) + _int8_records(specs))
    return path


def test_int8_kernels_get_int8_regressors_and_their_own_accuracy(mixed: Path, tmp_path: Path) -> None:
    (b,) = fit_bundles(read_datasets([mixed]), [str(mixed)], candidates=FAST)
    groups = set(b.predictor["groups"])
    assert {"pwconv/dense", "pwconv/dense/int8", "conv2d/dense/int8"} <= groups
    per = b.metrics["kernel"]["per_dtype"]
    assert set(per) == {"fp32", "int8"} and per["int8"]["n"] > 0 and per["fp32"]["n"] > 0
    path = b.write_to(tmp_path / "b")
    jsonschema = pytest.importorskip("jsonschema")  # per-dtype groups and figures are in the format
    schema = json.loads((ROOT / "docs" / "bundle.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(json.loads((path / "metadata.json").read_text()))
    jsonschema.Draft202012Validator({"$ref": "#/$defs/predictor", "$defs": schema["$defs"]}).validate(
        json.loads((path / "predictor.json").read_text()))
    p = predictors.load(path)
    fp32 = KernelSpec("pwconv", h=28, w=28, cin=40, cout=56)  # in no table: the regressors answer
    int8 = fp32.replace(dtype="int8")
    r = p.predict([fp32, int8])
    assert list(r.source) == ["model", "model"] and r.in_domain.all()
    assert r.latency_us[0] / r.latency_us[1] == pytest.approx(INT8_SPEEDUP, rel=0.35)


def test_an_fp32_bundle_never_answers_int8_silently(tmp_path: Path) -> None:
    path = tmp_path / "ds"
    ds = Dataset(path)
    ds.create()
    ds.append(synth.records(synth.random_specs(120, seed=5, sparse=False)))
    (b,) = fit_bundles(read_datasets([path]), [str(path)], candidates=FAST)
    p = predictors.load(b.write_to(tmp_path / "b"))
    q = KernelSpec("pwconv", h=28, w=28, cin=40, cout=56)
    r = p.predict([q, q.replace(dtype="int8")])
    assert list(r.source) == ["model", "fallback"] and list(r.in_domain) == [True, False]
    with pytest.raises(OutOfDomain, match="pwconv/dense/int8 was never measured"):
        p.predict([q.replace(dtype="int8")], strict=True)


def test_fit_predictor_table_has_a_row_per_dtype(mixed: Path, tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "devprof", "fit-predictor", str(mixed), "--out", str(tmp_path / "o"),
                        "--estimator", "flops_linear"], capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env={**__import__("os").environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    text = r.stdout + r.stderr
    assert "int8 kernels" in text and "fp32 kernels" in text and "pwconv/dense/int8" in text
