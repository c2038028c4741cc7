"""Predictor bundles: publish -> load -> predict, exact LUT hits, tamper refusal, schema, imports."""
from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import predictors
from devprof.records import KernelSpec, Measurement, Sparsity
from devprof.store import Dataset
from predictors import bundle as bmod
from predictors.estimators import BlendLatency, BoostedLatency, FlopsLinear, ForestLatency, SwitchLatency
from devprof.store import read_datasets
from predictors.fit import fit_bundles

from support import predictors_synth as synth  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAST = {"flops_linear": FlopsLinear(), "gradient_boosting": BoostedLatency(n_estimators=40, max_depth=3),
        "random_forest": ForestLatency(n_estimators=12)}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pred") / "ds"
    ds = Dataset(path)
    ds.create()
    ds.append(synth.records(synth.random_specs(260, seed=3)))
    ds.append(synth.model_records(12, seed=1))
    return path


@pytest.fixture(scope="module")
def published(dataset, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bundles")
    (b,) = fit_bundles(read_datasets([dataset]), [str(dataset)], candidates=FAST)
    return b.write(root)


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _rewrite_predictor(d: Path, raw: bytes) -> None:
    """Replace a bundle's predictor.json and re-sign it in metadata.json (as an attacker who also
    rewrites the hashes would): what loading refuses then is the content itself."""
    (d / "predictor.json").write_bytes(raw)
    _rehash(d)


def test_round_trip_and_exact_lut_hits(published: Path, dataset: Path) -> None:
    assert published.parts[-2:] == ("local", "onnxruntime-t1")
    p = predictors.load(published)
    lut = p.lut
    assert len(lut) == 260 and lut["key"].is_unique
    specs = [KernelSpec.from_dict(json.loads(s)) for s in lut["spec_json"]]
    r = p.predict(specs)
    assert (r.source == "lut").all()
    assert np.array_equal(r.latency_us, lut["median_us"].to_numpy())  # bit for bit
    # the same through the array fast path (a DataFrame with dataset columns) and through keys
    r2 = p.predict(predictors.encode(lut))
    assert np.array_equal(r2.latency_us, lut["median_us"].to_numpy())
    # a big batch taken from an encoded pool, and the same rows without provenance (dedup path)
    pool = predictors.encode(specs)
    pick = np.random.default_rng(0).integers(0, len(specs), 3000)
    batch = pool.take(pick)
    rb = p.predict(batch)
    rp = p.predict(predictors.SpecTable(batch.data, batch.hashes))
    assert np.array_equal(rb.latency_us, lut["median_us"].to_numpy()[pick])
    assert np.array_equal(rp.latency_us, rb.latency_us) and (rp.source == "lut").all()
    assert np.array_equal(p.lookup(list(lut["key"])), lut["median_us"].to_numpy())
    # and the table medians are the dataset's medians
    df = Dataset(dataset).read()
    kern = df[df["kind"] == "kernel"].set_index("spec_key")["median_us"]
    assert np.array_equal(kern.loc[lut["key"]].to_numpy(), lut["median_us"].to_numpy())


def test_misses_use_regressors_and_are_sane(published: Path) -> None:
    p = predictors.load(published)
    new = [s for s in synth.random_specs(400, seed=77) if s.key not in set(p.keys)][:100]
    r = p.predict(new)
    assert set(r.source) <= {"model", "fallback"} and len(r) == len(new)
    true = np.array([synth.true_latency_us(s) for s in new])
    assert np.isfinite(r.latency_us).all() and (r.latency_us > 0).all()
    assert np.median(np.abs(r.latency_us / true - 1)) < 0.15
    # mixing hits and misses keeps row order
    mixed = [new[0], KernelSpec.from_dict(json.loads(p.lut["spec_json"][0])), new[1]]
    rm = p.predict(mixed)
    assert list(rm.source) == [r.source[0], "lut", r.source[1]]
    assert rm.latency_us[1] == p.median_us[0]


def test_exported_trees_match_sklearn() -> None:
    specs = synth.random_specs(150, seed=5)
    t = predictors.encode(specs)
    y = np.array([synth.true_latency_us(s) for s in specs]) * np.exp(np.random.default_rng(0).normal(0, .05, len(specs)))
    from predictors.trees import compile_model, predict_with

    # (the synthetic channel counts are multiples of 8: the switch splits on 16-alignment here)
    switch = SwitchLatency(feature="cin_pad16", min_rows=10)
    for est in (ForestLatency(n_estimators=8), BoostedLatency(n_estimators=30), FlopsLinear(), BlendLatency(), switch):
        est.fit(t.data, y)
        ours = predict_with(compile_model(json.loads(json.dumps(est.export()))), t)
        np.testing.assert_allclose(ours, est.predict(t.data), rtol=1e-5)
    assert switch.export()["kind"] == "switch" and switch.regime_ is not None
    # too few rows in the regime: the pooled model alone, exported as a plain ensemble
    alone = SwitchLatency(feature="cin_pad16", min_rows=10_000).fit(t.data, y)
    assert not alone.applies_to(t.data) and alone.export()["kind"] == "tree_ensemble"


def test_switch_routes_rows_by_feature_and_malformed_switches_are_refused(published: Path, tmp_path: Path) -> None:
    obj = json.loads((published / "predictor.json").read_text())
    group = "dwconv2d/dense"
    base = obj["groups"][group]
    const = {"kind": "linear", "coef": [0.0, 0.0], "intercept": 1234.5, "floor_us": 0.0}
    obj["groups"][group] = {"kind": "switch", "feature": "cin_pad16", "threshold": 1.0, "le": base, "gt": const}
    d = _copy(published, tmp_path / "switch")
    _rewrite_predictor(d, bmod.dumps(obj))
    before, after = predictors.load(published), predictors.load(d)
    new = [s for s in synth.random_specs(600, seed=78) if s.op == "dwconv2d" and s.key not in set(before.keys)]
    aligned = np.array([s.cin % 16 == 0 for s in new])
    assert aligned.any() and (~aligned).any()
    r0, r1 = before.predict(new), after.predict(new)
    assert (r1.source == "model").all()
    np.testing.assert_array_equal(r1.latency_us[aligned], r0.latency_us[aligned])
    assert (r1.latency_us[~aligned] == 1234.5).all()
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "docs" / "bundle.schema.json").read_text())
    jsonschema.Draft202012Validator({"$ref": "#/$defs/predictor", "$defs": schema["$defs"]}).validate(obj)
    for i, (bad, why) in enumerate([({"feature": "no_such_feature"}, "unknown feature"),
                                    ({"threshold": "high"}, "threshold"),
                                    ({"threshold": 1e39}, "threshold"),  # beyond float32
                                    ({"gt": dict(obj["groups"][group])}, "branches"),
                                    ({"le": None}, "JSON object")]):
        o = json.loads(json.dumps(obj))
        o["groups"][group].update(bad)
        dd = _copy(published, tmp_path / f"bad-switch-{i}")
        _rewrite_predictor(dd, bmod.dumps(o))
        with pytest.raises(predictors.BundleError, match=f"malformed.*{why}"):
            predictors.load(dd)


def test_blend_cross_validation_shortcut_equals_refitting() -> None:
    """select() derives the blend's cross-validated predictions from the forest's and boosting's;
    they must be what cross-validating the blend itself gives."""
    from predictors.estimators import CANDIDATES, cv_predictions, select

    specs = synth.random_specs(60, seed=7)
    X = predictors.encode(specs).data
    y = np.array([synth.true_latency_us(s) for s in specs]) * np.exp(np.random.default_rng(1).normal(0, .05, len(specs)))
    _, _, table = select(X, y, CANDIDATES, folds=5, seed=0)
    p = cv_predictions(BlendLatency(), X, y, 5, 0)
    assert np.isclose(table["blend"]["cv_mape"], float(np.mean(np.abs(p - y) / y)), rtol=1e-9)


def test_shared_boosting_fits_equal_refitting() -> None:
    """Inside shared_boosting_fits() an ensemble fitted on the same rows with the same parameters
    is fitted once (bag 0 of the bagged candidate is plain boosting, the switch's pooled part is
    the bagged candidate); the predictions are exactly those of fitting each anew."""
    from predictors.estimators import cv_predictions, shared_boosting_fits

    specs = synth.random_specs(80, seed=8)
    X = predictors.encode(specs).data
    y = np.array([synth.true_latency_us(s) for s in specs]) * np.exp(np.random.default_rng(2).normal(0, .05, len(specs)))
    ests = [BoostedLatency(), BoostedLatency(n_bags=3),
            SwitchLatency(feature="cin_pad16", min_rows=5, n_bags=3,
                          regime=BoostedLatency(n_estimators=10, max_depth=2))]
    alone = [cv_predictions(e, X, y, 4, 0) for e in ests]
    with shared_boosting_fits() as fits:
        shared = [cv_predictions(e, X, y, 4, 0) for e in ests]
    for a, b in zip(alone, shared):
        np.testing.assert_array_equal(a, b)
    pooled = [k for k in fits if dict(k[2])["max_depth"] == 4]
    assert len(pooled) == 4 * 3  # per fold: three bags, bag 0 the plain ensemble; the switch's fitted no more


def test_model_prediction_sums_layers_plus_overhead(published: Path) -> None:
    p = predictors.load(published)
    specs = [KernelSpec.from_dict(json.loads(s)) for s in p.lut["spec_json"][:10]]
    m = p.predict_model(specs)
    assert p.has_layer_model  # the synthetic models carry per-layer records
    layers = float(p.predict_layers(specs).latency_us.sum())
    assert m.total_us == pytest.approx(layers + p.overhead_us(10, layers))
    np.testing.assert_array_equal(m.layers_us, p.predict_layers(specs).latency_us)
    o = p.overhead
    total = max(o["scale"] * layers + o["per_layer_us"] * 10 + o["intercept_us"], o["floor_share"] * layers)
    assert m.overhead_us == pytest.approx(total - layers)
    meta = p.metadata
    assert meta["metrics"]["model"]["overall"]["n"] >= 1


def test_overhead_form_is_chosen_by_leave_one_out_and_floored() -> None:
    from predictors.fit import _fit_overhead
    from predictors.predictor import model_total

    rng = np.random.default_rng(0)
    S = rng.uniform(1000, 50000, 30)
    L = rng.integers(10, 150, 30).astype(float)
    Y = (1.04 * S - 300.0) * np.exp(rng.normal(0, 0.01, 30))  # a constant the profiled layers overcount
    ov, sel = _fit_overhead(S, L, Y)
    assert ov["form"] in ("scale+intercept", "scale+per_layer+intercept") and ov["intercept_us"] < 0
    assert set(sel) == {"scale", "scale+per_layer", "scale+intercept", "scale+per_layer+intercept"}
    assert sel[ov["form"]]["loo_mape"] <= sel["scale"]["loo_mape"]
    assert 0 < ov["floor_share"] <= float(np.min(Y / S))
    # a model far smaller than any fitted one: the negative terms would make it negative; floored
    assert model_total(ov, 100.0, 3) == pytest.approx(ov["floor_share"] * 100.0)
    np.testing.assert_allclose(model_total(ov, S, L), np.maximum(
        ov["scale"] * S + ov["per_layer_us"] * L + ov["intercept_us"], ov["floor_share"] * S))
    # too few models to judge a form: the two-term fit, no selection
    few, few_sel = _fit_overhead(S[:5], L[:5], Y[:5])
    assert few["form"] == "scale+per_layer" and not few_sel


def test_layers_timed_inside_models_come_first(published: Path, dataset: Path) -> None:
    """A layer measured inside a model is predicted as its in-model time (bit for bit: the median
    over its occurrences of each one's fastest profiled run); a layer no model had goes to the
    in-model regressors, and predict() keeps the kernel path."""
    p = predictors.load(published)
    df = read_datasets([dataset])
    lay = df[(df["kind"] == "layer") & (df["layer_index"] >= 0)]
    first = lay.groupby("spec_key")["min_us"].median()
    specs = [KernelSpec.from_dict(json.loads(j)) for j in lay.drop_duplicates("spec_key")["spec_json"][:5]]
    r = p.predict_layers(specs)
    assert list(r.source) == ["layer-lut"] * 5
    assert list(r.latency_us) == [first[s.key] for s in specs]
    assert "layer-lut" not in set(p.predict(specs).source)  # single kernels never use in-model timings
    new = [KernelSpec("conv2d", h=13, w=13, cin=24, cout=40, kh=3, kw=3, padding=1)]
    assert p.predict_layers(new).source[0] in ("layer-model", "lut", "model", "fallback")


def test_predict_model_from_onnx_file(published: Path, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from devprof.models import builders

    cfg = builders.reference_config("mobilenetv2")
    path = tmp_path / "m.onnx"
    onnx.save(builders.build("mobilenetv2", cfg), str(path))
    p = predictors.load(published)
    m = p.predict_model(path)
    assert len(m.layers_us) > 30 and m.total_us > m.layers_us.max() > 0


def _tamper_cases(published: Path, tmp: Path):
    cases = {}
    d = _copy(published, tmp / "flip")
    b = bytearray((d / "predictor.json").read_bytes())
    b[len(b) // 2] ^= 0x01
    (d / "predictor.json").write_bytes(bytes(b))
    cases["flip"] = (d, "sha256")
    d = _copy(published, tmp / "trunc")
    (d / "lut.json").write_bytes((d / "lut.json").read_bytes()[:1000])
    cases["trunc"] = (d, "truncated")
    d = _copy(published, tmp / "missing")
    (d / "lut.json").unlink()
    cases["missing"] = (d, "missing")
    d = _copy(published, tmp / "swap")
    (d / "lut.json").write_bytes((d / "heldout.json").read_bytes())
    cases["swap"] = (d, "lut.json")
    d = _copy(published, tmp / "newer")
    meta = json.loads((d / "metadata.json").read_text())
    meta["format_version"] = bmod.FORMAT_VERSION + 1
    (d / "metadata.json").write_text(json.dumps(meta))
    cases["newer"] = (d, "newer")
    d = _copy(published, tmp / "badmeta")
    (d / "metadata.json").write_text("{not json")
    cases["badmeta"] = (d, "not valid JSON")
    return cases


class _Payload:
    """Unpickling this would create a marker file: proof that loading executed something."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_tampered_or_truncated_bundle_is_refused(published: Path, tmp_path: Path) -> None:
    for name, (d, words) in _tamper_cases(published, tmp_path).items():
        with pytest.raises(predictors.BundleError) as e:
            predictors.load(d)
        msg = str(e.value)
        assert "\n" not in msg and words in msg, (name, msg)


def test_pickle_payload_is_never_executed(published: Path, tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    evil = pickle.dumps(_Payload(str(marker)))
    # 1: swapped in without touching metadata: refused by hash before any parsing
    d = _copy(published, tmp_path / "evil1")
    (d / "predictor.json").write_bytes(evil)
    with pytest.raises(predictors.BundleError, match="predictor.json"):
        predictors.load(d)
    # 2: an attacker who also rewrites the hashes: refused as not-JSON, still nothing executed
    d = _copy(published, tmp_path / "evil2")
    _rewrite_predictor(d, evil)
    with pytest.raises(predictors.BundleError, match="not valid JSON"):
        predictors.load(d)
    assert not marker.exists()


def test_structurally_bad_predictor_is_refused(published: Path, tmp_path: Path) -> None:
    d = _copy(published, tmp_path / "bad")
    obj = json.loads((d / "predictor.json").read_text())
    g = next(k for k, v in obj["groups"].items() if v["kind"] == "tree_ensemble") if any(
        v["kind"] == "tree_ensemble" for v in obj["groups"].values()) else None
    target = obj["groups"][g] if g else obj["fallback"]
    from predictors.trees import decode_array, encode_array

    left = decode_array(target["left"], np.int64)
    left[0] = 10 ** 9  # out-of-range node index
    target["left"] = encode_array(left, "<i8")
    _rewrite_predictor(d, bmod.dumps(obj))
    with pytest.raises(predictors.BundleError, match="malformed"):
        predictors.load(d)


def _set_tree_features(obj: object, fn) -> None:
    """Apply fn to the feature-index array of every tree ensemble inside a predictor JSON."""
    from predictors.trees import decode_array, encode_array

    if isinstance(obj, dict):
        if obj.get("kind") == "tree_ensemble":
            obj["feature"] = encode_array(fn(decode_array(obj["feature"], np.int64)), "<i4")
        for v in obj.values():
            _set_tree_features(v, fn)
    elif isinstance(obj, list):
        for v in obj:
            _set_tree_features(v, fn)


def test_bundle_fitted_on_a_prefix_of_the_features_loads(published: Path, tmp_path: Path) -> None:
    """Features are only appended: a bundle fitted before the last one was added still loads and
    predicts, but its trees may not use a feature it was not fitted on, nor may a switch."""
    from predictors.features import FEATURES

    nf = len(FEATURES) - 1
    obj = json.loads((published / "predictor.json").read_text())
    obj["features"] = list(FEATURES[:nf])
    _set_tree_features(obj, lambda f: np.minimum(f, nf - 1))
    d = _copy(published, tmp_path / "prefix")
    _rewrite_predictor(d, bmod.dumps(obj))
    assert np.isfinite(predictors.load(d).predict(synth.random_specs(200, seed=91)).latency_us).all()
    g = next(k for k, v in obj["groups"].items() if v["kind"] == "tree_ensemble")
    bad_tree = json.loads(json.dumps(obj))
    _set_tree_features(bad_tree["groups"][g], lambda f: np.where(np.arange(len(f)) == 0, nf, f))
    bad_switch = json.loads(json.dumps(obj))
    bad_switch["groups"][g] = {"kind": "switch", "feature": FEATURES[nf], "threshold": 1.0,
                               "le": obj["groups"][g], "gt": obj["groups"][g]}
    reordered = json.loads(json.dumps(obj))
    reordered["features"] = [FEATURES[1], FEATURES[0], *FEATURES[2:nf]]
    for name, o, why in (("tree", bad_tree, "malformed.*feature index"),
                         ("switch", bad_switch, "malformed.*unknown feature"), ("order", reordered, "other features")):
        dd = _copy(published, tmp_path / f"prefix-{name}")
        _rewrite_predictor(dd, bmod.dumps(o))
        with pytest.raises(predictors.BundleError, match=why):
            predictors.load(dd)


def test_pooled_regressor_is_stored_once_and_references_are_checked(published: Path, tmp_path: Path) -> None:
    obj = json.loads((published / "predictor.json").read_text())
    refs = {k: v["group"] for k, v in obj["groups"].items() if v["kind"] == "same_as"}
    assert refs and all(obj["groups"][t]["kind"] != "same_as" for t in refs.values())
    p = predictors.load(published)
    from predictors.predictor import _group_code

    for name, target in refs.items():  # the same compiled regressor serves the op's every scheme
        assert p.groups[_group_code(published, "", name)] is p.groups[_group_code(published, "", target)]
    for bad in ("conv2d/nosuch", next(iter(refs))):  # a missing group; a reference to a reference
        d = _copy(published, tmp_path / f"ref-{bad.replace('/', '-')}")
        o = json.loads((d / "predictor.json").read_text())
        o["groups"][next(iter(refs.values()))] = {"kind": "same_as", "group": bad}
        _rewrite_predictor(d, bmod.dumps(o))
        with pytest.raises(predictors.BundleError, match="malformed.*holds no model"):
            predictors.load(d)


def test_every_published_file_validates_against_the_schema(published: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "docs" / "bundle.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)

    def validate(obj, ref):
        jsonschema.Draft202012Validator({"$ref": f"#/$defs/{ref}", "$defs": schema["$defs"]}).validate(obj)

    meta = json.loads((published / "metadata.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(meta)
    for name, ref in (("lut.json", "lut"), ("predictor.json", "predictor"), ("heldout.json", "heldout")):
        assert name in meta["files"]
        validate(json.loads((published / name).read_text()), ref)
    assert "lut.parquet" not in meta["files"] and not (published / "lut.parquet").exists()  # one copy per table


def test_query_imports_neither_torch_nor_sklearn(published: Path) -> None:
    code = f"""
import sys, json
import predictors
from devprof.records import KernelSpec, Measurement, Sparsity
p = predictors.load({str(published)!r})
specs = [KernelSpec('conv2d', h=30, w=30, cin=24, cout=40, kh=3, kw=3, padding=1),
         KernelSpec('fc', cin=300, cout=200)]
r = p.predict(specs)
m = p.predict_model(specs)
heavy = [m for m in ('torch', 'sklearn', 'scipy', 'onnxruntime', 'tensorflow') if m in sys.modules]
print(json.dumps({{"heavy": heavy, "n": len(r), "total": m.total_us}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["heavy"] == [] and res["n"] == 2 and res["total"] > 0


def test_install_refuses_other_device_and_verifies(published: Path, tmp_path: Path) -> None:
    dest = bmod.install(published, tmp_path / "pub")
    assert dest == tmp_path / "pub" / "local" / "onnxruntime-t1"
    assert predictors.load(dest).keys == predictors.load(published).keys
    other = _copy(published, tmp_path / "other")
    meta = json.loads((other / "metadata.json").read_text())
    meta["device"]["id"] = "0000000000000000"
    (other / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(predictors.BundleError, match="another device"):
        bmod.install(other, tmp_path / "pub")
    bmod.install(other, tmp_path / "pub", force=True)


def test_small_sparse_groups_share_their_op_regressor(published: Path) -> None:
    """Sparse scheme groups with few kernels use one regressor pooled over their op's schemes
    (scheme and its parameters are features), recorded in the selection metadata."""
    sel = predictors.load(published).metadata["predictor"]
    pooled = {g: v["pooled_over"] for g, v in sel.items() if "pooled_over" in v}
    assert pooled and all(v == g.split("/")[0] + "/*" for g, v in pooled.items())


def test_repeat_campaigns_merge_and_the_same_records_count_once(tmp_path: Path) -> None:
    """The same specs profiled in two campaigns (two folders) are both kept and merged in the
    LUT (median of the records' medians); one campaign read twice counts once."""
    from predictors import lut as lutmod

    specs = synth.random_specs(20, seed=5, sparse=False)
    paths = []
    for i, scale in enumerate((1.0, 1.2)):
        recs = [dataclasses.replace(r, started_at=1.7e9 + 3600 * i, finished_at=1.7e9 + 3600 * i + 1,
                                    measurement=Measurement(tuple(s * scale for s in r.measurement.samples_us)))
                for r in synth.records(specs, seed=1)]
        if i == 1:  # the second campaign caught the first spec in a noisy phase
            m = recs[0].measurement.median_us
            recs[0] = dataclasses.replace(recs[0], measurement=Measurement((m, 1.5 * m, 2 * m, 0.9 * m, 1.2 * m)))
            assert recs[0].measurement.noisy
        ds = Dataset(tmp_path / f"campaign{i}")
        ds.create()
        ds.append(recs)
        paths.append(ds.path)
    once = read_datasets([paths[0], paths[0]])
    assert len(once) == 20
    both = read_datasets(paths)
    assert len(both) == 40
    lut = lutmod.build(both).set_index("key")
    one = lutmod.build(once).set_index("key")
    first = specs[0].key
    assert (lut["records"].drop(first) == 2).all() and (one["records"] == 1).all()
    np.testing.assert_allclose(lut["median_us"].drop(first), one.loc[lut.index.drop(first), "median_us"] * 1.1,
                               rtol=1e-9)
    # a steady record outweighs a noisy one: the noisy measurement is left out of the row
    assert lut.loc[first, "records"] == 1 and not lut.loc[first, "noisy"]
    assert lut.loc[first, "median_us"] == one.loc[first, "median_us"]
    # one campaign reproduces the other: 1.2x apart everywhere -> outside ±10%; the noisy record of
    # the first spec is left out, so that spec has one record and does not count
    agree = lutmod.campaign_agreement(both, "median")
    assert (agree["kernels"], agree["records"], agree["within_10"]) == (19, 38, 0.0)
    assert sum(v["records"] for v in agree["per_op"].values()) == 38
    assert lutmod.campaign_agreement(both, "median", tol=0.25)["within_25"] == 1.0
    assert lutmod.campaign_agreement(once, "median")["within_10"] is None


def test_min_statistic_bundle_serves_fastest_rounds(dataset: Path, tmp_path: Path) -> None:
    """`fit-predictor --statistic min`: the table's min_us column is served bit for bit, the
    regressors and whole models are fitted to fastest rounds, and the choice is recorded; a
    format-1 table (no min_us) still loads and serves medians; a bundle claiming 'min' without
    the column is refused."""
    (b,) = fit_bundles(read_datasets([dataset]), [str(dataset)], candidates=FAST, statistic="min")
    path = b.write(tmp_path / "min")
    p = predictors.load(path)
    lut = p.lut
    assert p.statistic == "min" and p.metadata["metrics"]["statistic"] == "min"
    df = Dataset(dataset).read()
    kern = df[df["kind"] == "kernel"].set_index("spec_key")
    assert np.array_equal(kern.loc[lut["key"], "min_us"].to_numpy(), lut["min_us"].to_numpy())
    assert (lut["min_us"] < lut["median_us"]).all()
    specs = [KernelSpec.from_dict(json.loads(s)) for s in lut["spec_json"]]
    r = p.predict(specs)
    assert (r.source == "lut").all() and np.array_equal(r.latency_us, lut["min_us"].to_numpy())
    assert np.array_equal(p.lookup(list(lut["key"])), lut["min_us"].to_numpy())
    assert p.metrics["model"]["overall"]["n"] > 0
    with pytest.raises(ValueError, match="statistic"):
        fit_bundles(read_datasets([dataset]), statistic="mean")
    # the column gone (a format-1 table): refused while the predictor asks for 'min'...
    lj = json.loads((path / "lut.json").read_text())
    del lj["columns"]["min_us"]
    pj = json.loads((path / "predictor.json").read_text())
    bad = _copy(path, tmp_path / "no-min")
    for name, obj in (("lut.json", lj), ("predictor.json", pj)):
        (bad / name).write_text(json.dumps(obj))
    _rehash(bad)
    with pytest.raises(bmod.BundleError, match="statistic 'min'"):
        predictors.load(bad)
    # ...and read as medians once the predictor says nothing of a statistic (format 1)
    del pj["statistic"]
    (bad / "predictor.json").write_text(json.dumps(pj))
    _rehash(bad)
    old = predictors.load(bad)
    assert old.statistic == "median" and "min_us" not in old.lut
    assert np.array_equal(old.predict(specs).latency_us, lut["median_us"].to_numpy())


def _rehash(root: Path) -> None:
    """Re-sign a hand-edited bundle (as a careful editor would), so the test reaches the parser."""
    meta = json.loads((root / "metadata.json").read_text())
    for name in meta["files"]:
        data = (root / name).read_bytes()
        meta["files"][name] = {"sha256": bmod.sha256_bytes(data), "bytes": len(data)}
    (root / "metadata.json").write_text(json.dumps(meta))


def test_spearman_of_identical_rankings_is_exactly_one() -> None:
    from predictors.metrics import spearman

    # nine kernels ranked alike: the plain formula gives 1.0000000000000002, which the schema refuses
    a = np.arange(9, dtype=float)
    assert spearman(a, a * 3.0) == 1.0 and spearman(a, -a) == -1.0


def test_kernel_geometry_is_recorded_used_and_checked(published: Path, tmp_path: Path) -> None:
    """predictor.json names the vector shape its tile features were computed with; a bundle
    without it means the defaults, a malformed one is refused, and another shape changes what
    the tile features say (so the predictor must pass it on)."""
    from predictors.features import VECTOR_FLOATS, VECTOR_REGS, feature_index, features
    from predictors.fit import kernel_geometry
    from predictors.spectable import encode_specs

    obj = json.loads((published / "predictor.json").read_text())
    assert obj["kernel_geometry"] == {"vector_floats": VECTOR_FLOATS, "vector_regs": VECTOR_REGS}
    assert predictors.load(published).geometry == obj["kernel_geometry"]
    assert kernel_geometry({"vector_floats": 8, "cc": "gcc"}) == {"vector_floats": 8, "vector_regs": 16}
    assert kernel_geometry({"layout": "nchw"}) == kernel_geometry(None) == obj["kernel_geometry"]
    d = _copy(published, tmp_path / "old")
    del obj["kernel_geometry"]
    _rewrite_predictor(d, bmod.dumps(obj))
    assert predictors.load(d).geometry == {"vector_floats": VECTOR_FLOATS, "vector_regs": VECTOR_REGS}
    for bad in ({"vector_floats": 0, "vector_regs": 32}, {"vector_floats": "16", "vector_regs": 32},
                {"vector_floats": 16}, [16, 32]):
        obj["kernel_geometry"] = bad
        _rewrite_predictor(d, bmod.dumps(obj))
        with pytest.raises(predictors.BundleError, match="kernel_geometry"):
            predictors.load(d)
    spec = KernelSpec("pwconv", h=40, w=40, cin=16, cout=16, sparsity=Sparsity("nm", 0.5, {"n": 2, "m": 4}))
    t = feature_index("tile_positions")
    X = encode_specs([spec]).data
    assert features(X, 16, 32)[0, t] == 96 and features(X, 8, 16)[0, t] == 40  # 1,600 positions


def test_two_fingerprints_of_one_device_are_refused_or_pooled_on_request(dataset, tmp_path) -> None:
    """An OS / kernel update changes a device's fingerprint. Its records would write the same bundle
    folder as the old ones: refused (a one-line error naming what differs) unless --pool-devices."""
    updated = dataclasses.replace(synth.DEVICE, kernel="6.1-update")
    extra = tmp_path / "after-update"
    ds = Dataset(extra)
    ds.create()
    ds.append([dataclasses.replace(r, device=updated)
               for r in synth.records(synth.random_specs(60, seed=11), seed=5)])
    df = read_datasets([dataset, extra])
    assert df["device_id"].nunique() == 2
    with pytest.raises(ValueError, match=r"2 fingerprints of device 'local' .*kernel: 6\.1 vs 6\.1-update"):
        fit_bundles(df, candidates=FAST)
    (b,) = fit_bundles(df, candidates=FAST, pool_devices=True)
    old_id = synth.DEVICE.id
    assert b.device["id"] == old_id and b.device["kernel"] == "6.1"  # the fingerprint with the most records
    assert b.dataset["devices"] == {old_id: int((df["device_id"] == old_id).sum()), updated.id: 60}
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "docs" / "bundle.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(json.loads((b.write(tmp_path / "pooled") / "metadata.json").read_text()))

    p = subprocess.run([sys.executable, "-m", "devprof", "fit-predictor", str(dataset), str(extra), "--out",
                        str(tmp_path / "out"), "--estimator", "flops_linear"], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().startswith("error:") and "--pool-devices" in p.stderr
    assert not (tmp_path / "out").exists()  # nothing written
