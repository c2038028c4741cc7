"""Predictions outside what a bundle measured are marked (or refused), and a bundle needs enough
kernels to be fitted at all."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import predictors
from devprof.records import KernelSpec, Sparsity
from devprof.store import Dataset, read_datasets
from predictors.domain import OutOfDomain
from predictors.estimators import BoostedLatency, FlopsLinear, ForestLatency
from predictors.fit import MIN_GROUP_TRAIN, TooFewKernels, fit_bundles

from support import predictors_synth as synth

ROOT = Path(__file__).resolve().parents[1]
FAST = {"flops_linear": FlopsLinear(), "gradient_boosting": BoostedLatency(n_estimators=30, max_depth=3),
        "random_forest": ForestLatency(n_estimators=10)}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dom") / "ds"
    ds = Dataset(path)
    ds.create()
    ds.append(synth.records(synth.random_specs(200, seed=5)))
    (b,) = fit_bundles(read_datasets([path]), [str(path)], candidates=FAST)
    return b.write(tmp_path_factory.mktemp("dom-bundles"))


def _dataset(tmp: Path, specs: list) -> Path:
    ds = Dataset(tmp)
    ds.create()
    ds.append(synth.records(specs))
    return tmp


def test_a_bundle_of_fewer_kernels_than_a_regressor_needs_is_refused(tmp_path: Path) -> None:
    """One measured conv once made a bundle that predicted an fc 5,000x too slow."""
    one = [KernelSpec("conv2d", h=56, w=56, cin=32, cout=64, kh=3, kw=3, padding=1)]
    ds = _dataset(tmp_path / "ds", one)
    with pytest.raises(TooFewKernels, match=rf"1 distinct kernel\(s\) \(conv2d 1\); .*at least {MIN_GROUP_TRAIN}"):
        fit_bundles(read_datasets([ds]), candidates=FAST)
    p = subprocess.run([sys.executable, "-m", "devprof", "fit-predictor", str(ds), "--out", str(tmp_path / "out"),
                        "--estimator", "flops_linear"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert p.returncode == 2 and len(errors) == 1 and "at least 8" in errors[0], p.stderr
    assert not (tmp_path / "out").exists()


def test_predictions_outside_the_training_domain_are_marked(bundle: Path) -> None:
    p = predictors.load(bundle)
    hit = KernelSpec.from_dict(json.loads(p.lut["spec_json"][0]))
    inside = KernelSpec("pwconv", h=28, w=28, cin=48, cout=64)  # every dimension within the measured ranges
    too_big = KernelSpec("pwconv", h=200, w=200, cin=48, cout=64)  # h and w beyond the measured 7..56
    scheme = KernelSpec("conv2d", h=28, w=28, cin=32, cout=32, kh=3, kw=3, padding=1,
                        sparsity=Sparsity("pattern", 0.75, {"patterns": 8}))  # a scheme never measured
    dtype = KernelSpec("pwconv", h=28, w=28, cin=48, cout=64, dtype="int8")  # a dtype never measured
    r = p.predict([hit, inside, too_big, scheme, dtype])
    assert list(r.in_domain) == [True, True, False, False, False]
    assert r.source[0] == "lut" and np.isfinite(r.latency_us).all()
    t = predictors.encode([too_big, scheme, dtype])
    assert "h = 200 outside the measured 7..56" in p.domain.why_not(t.data[0])
    assert "conv2d/pattern/fp32 was never measured" in p.domain.why_not(t.data[1])
    assert "pwconv/dense/int8 was never measured" in p.domain.why_not(t.data[2])
    # strict refuses, naming the first spec outside and why; in-domain queries still answer
    with pytest.raises(OutOfDomain, match=r"3 of 5 prediction\(s\) outside .*first: pwconv-n1-200x200.*h = 200"):
        p.predict([hit, inside, too_big, scheme, dtype], strict=True)
    strict = predictors.load(bundle, strict=True)
    assert strict.predict([hit, inside]).in_domain.all()
    with pytest.raises(OutOfDomain):
        strict.predict(predictors.encode([scheme]))
    # whole models carry the flag per layer
    m = p.predict_model([inside, too_big])
    assert list(m.in_domain) == [True, False]
    assert [layer["in_domain"] for layer in m.to_dict()["layers"]] == [True, False]


def test_predict_cli_warns_and_strict_refuses(bundle: Path) -> None:
    specs = json.dumps([{"op": "pwconv", "h": 28, "w": 28, "cin": 48, "cout": 64},
                        {"op": "pwconv", "h": 200, "w": 200, "cin": 48, "cout": 64}])

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "devprof", "predict", "-b", str(bundle), "--spec", specs, *extra],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)

    r = run("--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["predictions"]
    assert [row["in_domain"] for row in rows] == [True, False]
    warn = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warn) == 1 and "1 of 2" in warn[0] and "h = 200" in warn[0]
    r = run()
    assert r.returncode == 0 and "outside the training domain" in r.stdout.splitlines()[1]
    r = run("--strict")
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and "outside the training domain" in errors[0], r.stderr
    assert "Traceback" not in r.stderr


def test_a_hand_edited_bundle_is_refused_until_sealed_and_then_says_so(bundle: Path, tmp_path: Path) -> None:
    import shutil

    import jsonschema

    from predictors.bundle import BundleError

    b = tmp_path / "edited"
    shutil.copytree(bundle, b)
    meta = json.loads((b / "metadata.json").read_text())
    lut_name = "lut.json" if (b / "lut.json").exists() else "lut.json.gz"
    assert lut_name == "lut.json"  # fit-predictor writes plain files
    lut = json.loads((b / "lut.json").read_text())
    lut["columns"]["median_us"][0] *= 2  # the edit
    (b / "lut.json").write_text(json.dumps(lut))
    with pytest.raises(BundleError, match="refusing to load"):
        predictors.load(b)

    def seal(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "devprof", "bundle", "seal", str(b), *extra],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)

    r = seal()  # a note is required
    assert r.returncode == 2 and "--note" in r.stderr
    broken = b / "predictor.json"
    good = broken.read_bytes()
    broken.write_text("{not json")
    r = seal("--note", "doubled row 0")
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode != 0 and len(errors) == 1 and "nothing sealed" in errors[0], r.stderr
    assert json.loads((b / "metadata.json").read_text()) == meta  # nothing written
    broken.write_bytes(good)
    r = seal("--note", "doubled row 0", "--by", "alice")
    assert r.returncode == 0 and "lut.json" in r.stdout, r.stderr
    p = predictors.load(b)
    (entry,) = p.hand_sealed
    assert entry["by"] == "alice" and entry["note"] == "doubled row 0" and entry["files_changed"] == ["lut.json"]
    assert "edited by hand" in repr(p) and p.median_us[0] == lut["columns"]["median_us"][0]
    schema = json.loads((ROOT / "docs" / "bundle.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(json.loads((b / "metadata.json").read_text()))
    r = subprocess.run([sys.executable, "-m", "devprof", "predict", "-b", str(b), "--spec",
                        json.dumps({"op": "pwconv", "h": 28, "w": 28, "cin": 48, "cout": 64})],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and "edited by hand and re-sealed" in r.stderr and "alice: doubled row 0" in r.stderr
