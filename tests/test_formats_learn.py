"""Learning per-layer tables from whole-model timings, publishing them, and the ONNX predictors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from devprof import from_models as fm
from predictors.bundle import BundleError

from devprof.errors import UsageError
from devprof.formats import onnx_predictor as op
from devprof.space import mbconv_space

ROOT = Path(__file__).resolve().parents[1]


def _space_timings(n: int, seed: int = 0, overhead: float = 40.0, pair_effect: float = 0.0, noise: float = 0.0):
    """Synthetic end-to-end timings of an MBConv space from a known per-(position, block) table."""
    space = mbconv_space(res=32, stages=[(16, 2, 2), (24, 2, 2)], expand=(3, 6), kernel=(3, 5))
    rng = np.random.default_rng(seed)
    ids = sorted({i for p in space.positions for b in p.choices if b.type != "skip"
                  for i in [f"{p.name}/{b.key}"]})
    true = {k: float(rng.uniform(20, 200)) for k in ids}
    models, seen = [], set()
    while len(models) < n:
        a = space.sample(rng)
        if a in seen:
            continue
        seen.add(a)
        layers = space.layer_ids(a)
        y = overhead + sum(true[k] for k in layers)
        if pair_effect:  # neighbours with the same kernel size run faster together (a made-up cache effect)
            y *= 1.0 - pair_effect * sum(x.split("kernel:")[1][:1] == z.split("kernel:")[1][:1]
                                         for x, z in zip(layers[1:-1], layers[2:]))
        y *= float(np.exp(rng.normal(0, noise))) if noise else 1.0
        models.append(fm.ModelTiming(f"m{len(models):04d}", layers, y, {k: space.layer_spec(k) for k in layers}))
    return space, true, models


def test_nnls_recovers_a_known_per_layer_table() -> None:
    # layers that come and go independently (as kernels across nn-Meter's model variants): identifiable
    rng = np.random.default_rng(1)
    true = {f"layer{i:02d}": float(rng.uniform(5, 500)) for i in range(30)}
    names = list(true)
    models = []
    for i in range(200):
        layers = [k for k in names if rng.random() < 0.4] * int(rng.integers(1, 3))
        models.append(fm.ModelTiming(f"m{i}", layers, 40.0 + sum(true[k] for k in layers)))
    lm = fm.fit_additive(models)
    est = lm.table()
    assert set(est) == set(true)
    assert max(abs(est[k] - v) / v for k, v in true.items()) < 1e-4
    assert lm.overhead_us == pytest.approx(40.0, rel=1e-3)


def test_space_table_reproduces_every_identifiable_quantity() -> None:
    # per (position, block): within-position differences and whole-network totals are unique; the level
    # of an always-present position is not (it trades off against the overhead and other such positions)
    space, true, models = _space_timings(300, seed=1)
    lm = fm.fit_additive(models)
    est = lm.table()
    assert set(est) == set(true)
    for p in space.positions:
        ids = [f"{p.name}/{b.key}" for b in p.choices if b.type != "skip"]
        for a, b in zip(ids, ids[1:]):
            assert est[a] - est[b] == pytest.approx(true[a] - true[b], rel=1e-3, abs=1e-2)
    rep = fm.fit_and_score(models)
    assert rep.heldout["within_5"] == 1.0 and rep.heldout["mape"] < 1e-4 and rep.n_test > 30


def test_pair_correction_learns_a_non_additive_effect() -> None:
    _, _, models = _space_timings(400, seed=2, pair_effect=0.04, noise=0.005)
    tr, te = fm.split(models)
    add = fm.evaluate(fm.fit(tr, interactions=False), te)
    full_model = fm.fit(tr)
    full = fm.evaluate(full_model, te)
    assert full_model.alpha is not None and len(full_model.pairs) > 0
    assert full["mape"] < 0.7 * add["mape"], (full["mape"], add["mape"])


def test_bundle_round_trip_and_onnx_layer_table(tmp_path: Path) -> None:
    import predictors
    from devprof.devices import LocalDevice

    _, _, models = _space_timings(200, seed=3, pair_effect=0.03, noise=0.003)
    dev = LocalDevice().info()
    b = fm.make_bundle(models, dev.to_dict() | {"id": dev.id},
                       {"name": "onnxruntime", "version": "1.32", "threads": 1, "options": {}, "key": "ort/t1"})
    path = b.write(tmp_path / "bundles")
    assert path.name.endswith("-from-models")
    p = predictors.load(path)  # a normal, hash-verified bundle
    lm = fm.load_model(path)
    m = models[0]
    specs = [m.specs[k] for k in m.layers]
    assert p.predict_model(specs).total_us == pytest.approx(lm.additive_us(m.layers), rel=1e-12)
    assert (p.predict(specs).source == "lut").all()
    # the ONNX graph predicts what the Python model predicts, in double precision
    onnx_path = op.write_layer_model(lm, tmp_path / "lt.onnx")
    sidecar = json.loads(onnx_path.with_suffix(".features.json").read_text())
    X = op.layer_features([x.layers for x in models], sidecar["layer_ids"], sidecar["pairs"])
    got = op.ort_session(onnx_path).run(None, {"features": X})[0][:, 0]
    want = lm.predict([x.layers for x in models]) / 1000.0
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert list(np.argsort(got, kind="stable")) == list(np.argsort(want, kind="stable"))
    # tampering with the learned model is refused before anything is parsed
    (path / "from_models.json").write_text((path / "from_models.json").read_text().replace("1", "2", 1))
    with pytest.raises(BundleError, match="tampered"):
        fm.load_model(path)


def test_kernel_regressors_export_to_onnx(tmp_path: Path) -> None:
    from support import predictors_synth as synth
    from predictors.estimators import BoostedLatency, FlopsLinear, ForestLatency
    from predictors.features import LINEAR_TERMS, features, linear_features
    from devprof.store import read_datasets
    from predictors.fit import fit_bundles
    from predictors.spectable import encode
    from predictors.trees import compile_model, predict_with, resolve_groups

    from devprof.store import Dataset

    ds = Dataset(tmp_path / "ds")
    ds.create()
    ds.append(synth.records(synth.random_specs(120, seed=4)))
    cands = {"flops_linear": FlopsLinear(), "gradient_boosting": BoostedLatency(n_estimators=20, max_depth=3),
             "random_forest": ForestLatency(n_estimators=8)}
    (b,) = fit_bundles(read_datasets([ds.path]), candidates=cands)
    path = b.write(tmp_path / "bundles")
    files = op.export_bundle(path, tmp_path / "onnx")
    index = json.loads((tmp_path / "onnx" / "index.json").read_text())
    # a regressor pooled over an op's schemes is one file that each of its groups names
    assert len(files) == 2 * len({g["file"] for g in index["groups"].values()}) + 1 and "*" in index["groups"]
    assert any(d.get("kind") == "same_as" for d in b.predictor["groups"].values())
    T = encode(synth.random_specs(150, seed=9))
    feeds = {"features": features(T).astype(np.float32), "linear_features": linear_features(T, LINEAR_TERMS).astype(np.float32)}
    kinds = set()
    for group, d in list(resolve_groups(b.predictor["groups"]).items()) + [("*", b.predictor["fallback"])]:
        kinds.add(d["kind"])
        sess = op.ort_session(tmp_path / "onnx" / index["groups"][group]["file"])
        got = sess.run(None, {i.name: feeds[i.name] for i in sess.get_inputs()})[0][:, 0] * 1000.0
        want = predict_with(compile_model(d), T)
        np.testing.assert_allclose(got, want, rtol=2e-5)
        # the same regressor fed with the spec columns: the features are computed inside the graph
        spec = op.ort_session(tmp_path / "onnx" / index["groups"][group]["spec_file"])
        got_spec = spec.run(None, {"spec": T.data})[0][:, 0] * 1000.0
        np.testing.assert_allclose(got_spec, want, rtol=2e-5)
    assert "tree_ensemble" in kinds
    # features.onnx alone reproduces predictors.features exactly (after the float32 cast)
    fx, lx = op.ort_session(tmp_path / "onnx" / "features.onnx").run(None, {"spec": T.data})
    np.testing.assert_array_equal(fx, feeds["features"])
    np.testing.assert_array_equal(lx, feeds["linear_features"])
    # int8 and fp16 rows take their own kernels' tiles in the graph too
    Tq = encode([s.replace(dtype=d) for s in synth.random_specs(60, seed=9) for d in ("int8", "fp16")])
    fx, _ = op.ort_session(tmp_path / "onnx" / "features.onnx").run(None, {"spec": Tq.data})
    np.testing.assert_array_equal(fx, features(Tq).astype(np.float32))
    from predictors.spec import OPS

    assert index["spec_columns"][0] == "op" and index["spec_codes"]["op"] == {o: i for i, o in enumerate(OPS)}
    # a switch: both branches in the graph, each row takes its own (Where on the feature)
    from predictors.estimators import SwitchLatency

    specs = synth.random_specs(150, seed=5)
    y = np.array([synth.true_latency_us(s) for s in specs])
    sw = SwitchLatency(feature="cin_pad16", min_rows=10).fit(encode(specs).data, y).export()
    assert sw["kind"] == "switch"
    sess = op.ort_session(op.regressor_onnx(sw))
    got = sess.run(None, {i.name: feeds[i.name] for i in sess.get_inputs()})[0][:, 0] * 1000.0
    np.testing.assert_allclose(got, predict_with(compile_model(sw), T), rtol=2e-5)


def test_fit_predictor_from_models_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from devprof.cli import _register_commands, app

    _register_commands()
    _, _, models = _space_timings(80, seed=5)
    tpath = fm.write_timings(tmp_path / "timings.jsonl", fm.TimingSet({"name": "Edge NPU", "id": "npu1"},
                                                                      {"name": "vendor-rt", "version": "3",
                                                                       "threads": 1, "options": {}}, models))
    r = CliRunner().invoke(app, ["fit-predictor", "--from-models", str(tpath), "-o", str(tmp_path / "b"), "--json"])
    assert r.exit_code == 0, r.output
    (rep,) = json.loads(r.stdout)
    assert rep["models"] == 80 and rep["heldout"]["within_10"] == 1.0
    assert Path(rep["bundle"], "from_models.json").is_file()
    r = CliRunner().invoke(app, ["export-table", "-b", rep["bundle"], "-f", "onnx", "-o", str(tmp_path / "x.onnx")])
    assert r.exit_code == 0 and (tmp_path / "x.onnx").is_file()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    r = CliRunner().invoke(app, ["fit-predictor", "--from-models", str(bad)])
    assert isinstance(r.exception, UsageError) and "first line is not JSON" in str(r.exception)


def test_example_search_loop_onnx_matches_python_predictor(tmp_path: Path) -> None:
    """The example's space, synthetic whole-model timings -> bundle -> ONNX; the search loop ranks
    its top candidates identically with the ONNX graph and with devprof's Python predictor."""
    ex = ROOT / "examples" / "evolution_search.py"
    py = sys.executable
    subprocess.run([py, str(ex), "--write-space", str(tmp_path / "space.toml")], check=True, capture_output=True)
    from devprof.space import load_space

    space = load_space(tmp_path / "space.toml")
    rng = np.random.default_rng(0)
    cost = {b.key: 10.0 + (b.mid if b.type == "expanded_conv" else 8) * (b.kernel or 3) ** 2 / 20.0
            for b in space.blocks()}
    models, seen = [], set()
    while len(models) < 150:
        a = space.sample(rng)
        if a not in seen:
            seen.add(a)
            ids = space.layer_ids(a)
            y = 25.0 + sum(cost[k.split("/", 1)[1]] for k in ids)
            models.append(fm.ModelTiming(f"m{len(models)}", ids, y * float(np.exp(rng.normal(0, 0.01)))))
    b = fm.make_bundle(models, {"name": "local", "id": "x"}, {"name": "onnxruntime", "version": "1", "threads": 1,
                                                              "options": {}})
    bundle = b.write(tmp_path / "bundles")
    onnx_path = op.write_layer_model(fm.load_model(bundle), tmp_path / "lt.onnx")
    r = subprocess.run([py, str(ex), "--onnx", str(onnx_path), "--compare-bundle", str(bundle), "--generations", "8"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "same top candidates and ranking (ONNX vs Python predictor): yes" in r.stdout


def test_from_models_reads_nnmeter_and_model_run_datasets(tmp_path: Path) -> None:
    """nn-Meter JSONL (one timing set per device) and a dataset of whole-model runs (model records
    with their layer records) both feed the same fit."""
    from support import predictors_synth as synth
    from test_formats_roundtrip import _nnmeter_graph

    from devprof.formats import nnmeter
    from devprof.store import Dataset

    rng = np.random.default_rng(7)
    lines = []
    for i in range(40):
        c, k = int(rng.choice([16, 24, 32, 48])), int(rng.choice([3, 5, 7]))
        lines.append({"id": f"net{i}", "graph": _nnmeter_graph(c, k), "cortexA76cpu_tflite21": 0.2 + c * k / 300.0,
                      "adreno640gpu_tflite21": 0.1 + c / 200.0})
    p = tmp_path / "nets.jsonl"
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    sets = fm.read_timings(p)
    assert [s.device["model"] for s in sets] == ["adreno640gpu_tflite21", "cortexA76cpu_tflite21"]
    assert all(len(s.models) == 40 for s in sets)
    (cpu,) = fm.read_timings(p, device="cortexA76cpu_tflite21")
    m0 = cpu.models[0]
    assert m0.layers == [s.key for s in nnmeter.read(p)[0].layers] and m0.specs[m0.layers[0]].op == "conv2d"
    rep = fm.fit_and_score(cpu.models)
    assert rep.n_test > 0 and len(rep.model.keys) > 5

    ds = Dataset(tmp_path / "runs")
    ds.create()
    ds.append(synth.model_records(10, seed=2))
    (runs,) = fm.read_timings(ds.path)
    assert len(runs.models) == 10 and all(m.layers and m.latency_us > 0 for m in runs.models)
    assert all(set(m.layers) <= set(m.specs) for m in runs.models)


def test_from_models_bundle_validates_against_the_bundle_schema(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    _, _, models = _space_timings(60, seed=8)
    path = fm.make_bundle(models, {"name": "npu", "id": "n"}, {"name": "rt", "version": "1", "threads": 1,
                                                                "options": {}}).write(tmp_path / "b")
    schema = json.loads((ROOT / "docs" / "bundle.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(json.loads((path / "metadata.json").read_text()))
    for name, ref in (("lut.json", "lut"), ("predictor.json", "predictor"), ("heldout.json", "heldout")):
        jsonschema.Draft202012Validator({"$ref": f"#/$defs/{ref}", "$defs": schema["$defs"]}).validate(
            json.loads((path / name).read_text()))


def test_from_models_details_a_newcomer_hit(tmp_path: Path, capsys) -> None:
    """Each of these misled silently: a runtime without a key, duplicate names, an unchecked
    version, pairs kept on exactly additive data, latency_ms, colliding specs, --json errors."""
    from devprof.cli import run

    def run_cli(*args):  # the CLI's own entry point, in process (exit codes and error lines as users see them)
        capsys.readouterr()
        code = run(list(args))
        got = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, got.out, got.err)

    _, _, models = _space_timings(60, seed=6)

    def timings(name, runtime=None, version=1, ms=None, edit=None):
        p = tmp_path / name
        fm.write_timings(p, fm.TimingSet({"name": "Edge NPU"}, runtime or {"name": "vendor-rt"}, ms or models))
        lines = p.read_text().splitlines()
        head = json.loads(lines[0])
        if version != 1:
            head["version"] = version
        lines[0] = json.dumps(head)
        if edit:
            lines = edit(lines)
        p.write_text("\n".join(lines) + "\n")
        return p

    def fit(path, *extra):
        return run_cli("fit-predictor", "--from-models", str(path), "-o", str(tmp_path / "out" / path.stem), *extra)

    # a header runtime without a key: the key is derived, never null / "None"
    r = fit(timings("nokey.jsonl"), "--json")
    assert r.returncode == 0, r.stderr
    (rep,) = json.loads(r.stdout)
    assert rep["runtime"] and rep["runtime"] != "None" and "vendor-rt" in rep["runtime"]
    # exactly additive data: the pair correction earns nothing and is not kept
    assert rep["pairs"] == 0 and rep["alpha"] is None
    # the held-out ±10% share comes with its count and 95% interval
    assert rep["n_test"] > 0 and len(rep["heldout"]["within_10_ci"]) == 2
    r = fit(timings("nokey2.jsonl"))
    assert r.returncode == 0 and "held out:" in r.stdout and "(" in r.stdout

    def one_line(r, text):
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert r.returncode == 2 and len(errors) == 1 and text in errors[0], r.stderr

    # duplicate model names: refused, named (they emptied the held-out set: n_test 0, exit 0)
    dup = [fm.ModelTiming("same", m.layers, m.latency_us, m.specs) for m in models]
    one_line(fit(timings("dup.jsonl", ms=dup)), "'same'")
    # the header version is checked
    one_line(fit(timings("v2.jsonl", version=2)), "version 2 is newer")
    one_line(fit(timings("v0.jsonl", version=None)), "needs \"version\": 1")
    # latency_ms instead of latency_us says what is expected
    ms = timings("ms.jsonl", edit=lambda ls: [ls[0]] + [l.replace('"latency_us"', '"latency_ms"') for l in ls[1:]])
    one_line(fit(ms), "found latency_ms: give the latency in microseconds as latency_us")
    # --json: the error is a JSON object on stdout too
    r = fit(ms, "--json")
    assert json.loads(r.stdout) == {"error": json.loads(r.stdout)["error"], "exit_code": 2}
    assert "latency_us" in json.loads(r.stdout)["error"]
    # two layer ids with the same spec: both ids named
    def collide(lines):
        head = json.loads(lines[0])
        a, b = sorted(head["specs"])[:2]
        head["specs"][b] = head["specs"][a]
        return [json.dumps(head)] + lines[1:]

    r = fit(timings("collide.jsonl", edit=collide))
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and errors[0].count("'") >= 4 and "map to the same spec" in errors[0]
