"""The kernel-cost regressor: closed-form kernel structure, its linear terms in the safe format."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from devprof.records import KernelSpec, Sparsity
from devprof.runtimes.harness import variant_for
from devprof.sparse.codegen import generate
from predictors.estimators import BoostedLatency, FlopsLinear
from predictors.features import KERNEL_TERMS, LINEAR_TERMS, kernel_stats
from predictors.spectable import encode_specs
from predictors.trees import ModelFormatError, compile_model, predict_with

from support import predictors_synth as synth  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _generated_counts(spec: KernelSpec) -> dict[str, float]:
    """FMAs and vector loads per output position, register groups and input channels read of the
    kernel devprof generates for `spec` (what `kernel_stats` estimates without running the pruner)."""
    g = generate(spec, variant_for(spec), with_reference=False)
    meta = g.arrays[2].reshape(-1, 4)
    from devprof.sparse.codegen import pruned_weights

    _, _, pr = pruned_weights(spec)
    mask = np.asarray(pr.mask).reshape(spec.cout, -1, spec.cin)  # OHWI
    return {"fma": g.stats["fma_per_position"], "loads": float(meta[:, 0].sum()), "groups": g.stats["groups"],
            "read": float(mask.any(axis=(0, 1)).sum())}


@pytest.mark.parametrize("sparsity,exact", [
    (Sparsity(), ("fma", "loads", "groups", "read")),
    (Sparsity("unstructured", 0.75), ("fma", "loads")),
    (Sparsity("nm", 0.5, {"n": 2, "m": 4}), ("fma", "loads", "groups")),
    (Sparsity("nm", 0.9), ("fma", "loads", "groups")),  # 1:10 over 26 channels: a ragged tail keeps 1 of 6
    (Sparsity("block", 0.9, {"block": [4, 1]}), ("fma", "loads")),  # 18 rows: an edge block of 2
    (Sparsity("bcr", 0.75, {"block": [4, 16]}), ()),
])
def test_kernel_stats_follow_the_generated_code(sparsity: Sparsity, exact: tuple[str, ...]) -> None:
    spec = KernelSpec("pwconv", h=12, w=12, cin=26, cout=18, sparsity=sparsity)
    got = {k: float(v[0]) for k, v in kernel_stats(encode_specs([spec]).data).items()}
    want = _generated_counts(spec)
    for k in ("fma", "loads", "groups", "read"):
        if k in exact:
            assert got[k] == want[k], (k, got, want)
        else:  # an expectation over random masks: close, not equal
            assert abs(got[k] - want[k]) <= max(0.2 * want[k], 2.0), (k, got, want)


def test_kernel_cost_regressor_round_trips_through_the_safe_format() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    specs = [s for s in synth.random_specs(400, seed=5) if s.op in ("pwconv", "conv2d")]
    X = encode_specs(specs).data
    y = np.array([synth.true_latency_us(s) for s in specs])
    est = BoostedLatency(n_estimators=30, max_depth=3, kernel_cost=True).fit(X, y)
    d = json.loads(json.dumps(est.export()))
    assert d["times_linear"]["inputs"] == list(KERNEL_TERMS)
    schema = json.loads((ROOT / "docs" / "bundle.schema.json").read_text())
    jsonschema.Draft202012Validator({"$ref": "#/$defs/model", "$defs": schema["$defs"]}).validate(d)
    np.testing.assert_allclose(predict_with(compile_model(d), X), est.predict(X), rtol=2e-5)
    # it models devprof's generated sparse kernels: never offered where every row is dense
    dense = encode_specs([s for s in specs if s.sparsity.scheme == "dense"]).data
    assert est.applies_to(X) and not est.applies_to(dense)
    assert BoostedLatency().applies_to(dense)


def test_linear_inputs_are_named_terms_and_checked() -> None:
    schema = json.loads((ROOT / "docs" / "bundle.schema.json").read_text())
    assert schema["$defs"]["linear"]["properties"]["inputs"]["items"]["enum"] == list(LINEAR_TERMS)
    specs = synth.random_specs(60, seed=2)
    X = encode_specs(specs).data
    y = np.array([synth.true_latency_us(s) for s in specs])
    lin = FlopsLinear(terms=("eff_flops", "read_elems")).fit(X, y)
    d = lin.export()
    np.testing.assert_allclose(predict_with(compile_model(d), X), lin.predict(X), rtol=1e-12)
    assert compile_model({k: v for k, v in FlopsLinear().fit(X, y).export().items() if k != "inputs"})
    for bad in ({**d, "inputs": ["eff_flops", "os.system"]}, {**d, "inputs": ["eff_flops"]},
                {**d, "inputs": ["read_elems", "read_elems"]}, {**d, "inputs": "eff_flops"}):
        with pytest.raises(ModelFormatError):
            compile_model(bad)


def test_kernel_cost_regressor_exports_to_onnx(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    from devprof.formats import onnx_predictor as op
    from predictors.features import features, linear_features

    specs = [s for s in synth.random_specs(300, seed=6) if s.op in ("pwconv", "conv2d")]
    X = encode_specs(specs).data
    y = np.array([synth.true_latency_us(s) for s in specs])
    d = BoostedLatency(n_estimators=20, max_depth=3, kernel_cost=True).fit(X, y).export()
    path = tmp_path / "k.onnx"
    path.write_bytes(op.regressor_onnx(d).SerializeToString())
    sess = op.ort_session(path)
    feeds = {"features": features(X).astype(np.float32), "linear_features": linear_features(X, LINEAR_TERMS).astype(np.float32)}
    got = sess.run(None, {i.name: feeds[i.name] for i in sess.get_inputs()})[0][:, 0] * 1000.0
    np.testing.assert_allclose(got, predict_with(compile_model(d), X), rtol=2e-5)
