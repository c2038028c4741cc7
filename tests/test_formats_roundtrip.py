"""Exchange formats: export -> import reproduces tables exactly; bad input gives one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from devprof.errors import UsageError
from devprof.formats import flat, nnmeter, ofa
from devprof.formats.records import records_table, table_records
from devprof.formats.table import LatencyTable
from devprof.store import Dataset


KEYS = [
    "Conv-input:224x224x3-output:112x112x32",
    "expanded_conv-input:112x112x24-output:56x56x32-expand:144-kernel:5-stride:2-idskip:0-se:0-hs:0",
    "expanded_conv-input:28x28x40-output:28x28x40-expand:240-kernel:3-stride:1-idskip:1-se:1-hs:1",
    "expanded_conv-input:56x56x24-output:56x56x24-expand:3-kernel:7-stride:1-idskip:1",  # ProxylessNAS dialect
    "Conv_1-input:7x7x160-output:7x7x960",
    "AvgPool2D-input:7x7x960-output:1x1x960",
    "Conv_2-input:1x1x960-output:1x1x1280",
    "Logits-input:1x1x1280-output:1000",
]
finite = st.floats(min_value=0.0, max_value=1e4, allow_nan=False, allow_infinity=False)


def _table(values) -> LatencyTable:
    t = LatencyTable()
    for k, (ms, sd, n) in zip(KEYS, values):
        t.add(k, ms, sd, n)
    return t


@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(st.lists(st.tuples(finite, finite, st.integers(0, 10_000)), min_size=len(KEYS), max_size=len(KEYS)))
def test_ofa_yaml_round_trip_is_exact(values) -> None:
    t = _table(values)
    back = ofa.loads(ofa.dumps(t))
    assert back == t and back.diff(t) == [] and list(back) == list(t)
    # the var dialect keeps keys and means exactly (std goes through a square root)
    v = ofa.loads(ofa.dumps(t, spread="var"))
    assert list(v) == list(t) and all(v[k].ms == t[k].ms and v[k].count == t[k].count for k in t)
    assert all(v[k].spread_ms == pytest.approx(t[k].spread_ms, rel=1e-12, abs=1e-150) for k in t)  # var underflows below 1e-154


@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(st.dictionaries(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30),
                       st.tuples(finite, finite, st.integers(0, 10**6)), max_size=12))
def test_flat_csv_and_json_round_trips_are_exact(rows) -> None:
    t = LatencyTable.from_mapping(rows)
    assert flat.csv_loads(flat.csv_dumps(t)) == t
    assert flat.json_loads(flat.json_dumps(t)) == t


def test_keys_parse_and_format_back_identically() -> None:
    for k in KEYS:
        assert ofa.parse_key(k).key == k
    b = ofa.parse_key(KEYS[1])
    assert (b.mid, b.kernel, b.stride, b.se, b.hs) == (144, 5, 2, 0, 0)
    assert ofa.parse_key(KEYS[3]).mid == 72  # ratio 3 x 24 channels
    for bad in ("Conv-input:224x224x3", "expanded_conv-input:8x8x8-output:8x8x8-expand:24-kernel:3-stride:1",
                "Foo-input:1x1x1-output:1x1x1", "Conv-output:112x112x32-input:224x224x3",
                "expanded_conv-input:8x8x8-output:4x4x8-expand:24-kernel:3-stride:2-idskip:1-se:0-hs:0"):
        with pytest.raises(ValueError):
            ofa.parse_key(bad)


def test_bad_yaml_is_one_line_error_and_never_constructs_objects(tmp_path: Path) -> None:
    cases = {"syntax": "a: [1, 2\n", "list": "- 1\n- 2\n", "nomean": "Conv-input:1x1x1-output:1x1x1: {count: 1}\n",
             "negative": "k: {mean: -1.0}\n",
             "object": "k: !!python/object/apply:os.system ['echo pwned > /tmp/devprof-pwned']\n"}
    for name, text in cases.items():
        p = tmp_path / f"{name}.yaml"
        p.write_text(text)
        with pytest.raises(UsageError) as e:
            ofa.read(p)
        assert "\n" not in str(e.value)
    assert not Path("/tmp/devprof-pwned").exists()


def test_bundle_lut_exports_to_flat_tables(tmp_path: Path) -> None:
    import predictors
    from support import predictors_synth as synth
    from predictors.estimators import FlopsLinear
    from devprof.store import read_datasets
    from predictors.fit import fit_bundles

    ds = Dataset(tmp_path / "ds")
    ds.create()
    ds.append(synth.records(synth.random_specs(40, seed=5, sparse=False)))
    (b,) = fit_bundles(read_datasets([ds.path]), candidates={"flops_linear": FlopsLinear()})
    path = b.write(tmp_path / "bundles")
    p = predictors.load(path)
    t = flat.from_bundle(path)
    assert list(t) == list(p.keys)
    assert all(t[k].ms == m / 1000.0 for k, m in zip(p.keys, p.median_us))
    for ext in ("csv", "json"):
        assert flat.read(flat.write(t, tmp_path / f"t.{ext}")) == t


def test_table_to_records_and_back(tmp_path: Path) -> None:
    t = _table([(1.25, 0.01, 30), (3.5, 0.2, 20), (0.75, 0.0, 1), (2.0, 0.1, 5), (0.5, 0.0, 10), (0.1, 0.0, 10),
                (0.2, 0.0, 10), (0.3, 0.0, 10)])
    t.add("some-other-front-end-key", 4.0, 0.0, 3)
    recs = table_records(t, "Pixel 1", "tflite", "2.1", source="ofa-yaml")
    ds = Dataset(tmp_path / "imported")
    with ds:
        assert ds.append(recs) == len(t)
    back = records_table(ds.read())
    assert sorted(back) == sorted(t)
    for k in t:
        assert back[k].ms == pytest.approx(t[k].ms, rel=1e-12) and back[k].count == max(1, t[k].count)
    assert all(r.spec.op == "other" and r.device.name == "Pixel 1" for r in ds.records())


def _nnmeter_graph(c1: int, k: int) -> dict:
    """A small MobileNet-like graph in nn-Meter's released JSONL layout (TF op names, NHWC)."""
    def node(typ, ins, outs, out_shape, **attr):
        return {"inbounds": ins, "outbounds": outs, "attr": {"name": "", "type": typ, "output_shape": [out_shape],
                                                             "attr": attr}}
    return {
        "input_im_0": node("Placeholder", [], ["conv1"], [1, 32, 32, 3]),
        "conv1": node("Conv2D", ["input_im_0"], ["bn1"], [1, 16, 16, c1], weight_shape=[3, 3, 3, c1],
                      strides=[2, 2], padding="SAME"),
        "bn1": node("FusedBatchNormV3", ["conv1"], ["relu1"], [1, 16, 16, c1]),
        "relu1": node("Relu6", ["bn1"], ["dw1"], [1, 16, 16, c1]),
        "dw1": node("DepthwiseConv2dNative", ["relu1"], ["bn2"], [1, 16, 16, c1], weight_shape=[k, k, c1, 1],
                    strides=[1, 1, 1, 1], padding="SAME"),
        "bn2": node("FusedBatchNormV3", ["dw1"], ["pw1"], [1, 16, 16, c1]),
        "pw1": node("Conv2D", ["bn2"], ["add1"], [1, 16, 16, c1], weight_shape=[1, 1, c1, c1], strides=[1, 1]),
        "add1": node("AddV2", ["pw1", "relu1"], ["mean"], [1, 16, 16, c1]),
        "mean": node("Mean", ["add1"], ["fc"], [1, c1]),
        "fc": node("MatMul", ["mean"], ["bias"], [1, 10]),
        "bias": node("BiasAdd", ["fc"], [], [1, 10]),
        "weird": node("SomethingNew", ["bias"], [], [1, 10]),
    }


def test_nnmeter_jsonl_import(tmp_path: Path) -> None:
    p = tmp_path / "mobilenetv2s.jsonl"
    lines = [{"id": f"mbv2_{i}", "graph": _nnmeter_graph(c, k), "cortexA76cpu_tflite21": 1.5 + i,
              "adreno640gpu_tflite21": 0.5 + i, "myriadvpu_openvino2019r2": None}
             for i, (c, k) in enumerate([(16, 3), (24, 5), (32, 3)])]
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    models = nnmeter.read(p)
    assert [m.id for m in models] == ["mbv2_0", "mbv2_1", "mbv2_2"]
    m = models[1]
    assert m.latency_ms == {"cortexA76cpu_tflite21": 2.5, "adreno640gpu_tflite21": 1.5}
    ops = [s.op for s in m.layers]
    assert ops == ["conv2d", "dwconv2d", "pwconv", "add", "global_avgpool", "fc", "other"]
    conv, dw = m.layers[0], m.layers[1]
    assert (conv.h, conv.cin, conv.cout, conv.kh, conv.stride, conv.out_h, conv.activation) == (32, 3, 24, 3, 2, 16,
                                                                                               "relu6")
    assert (dw.kh, dw.groups, dw.out_h) == (5, 24, 16)
    assert m.unknown == ["SomethingNew"] and m.input_shape == (1, 32, 32, 3)
    recs = nnmeter.to_records(models)
    assert len(recs) == 6 and {r.kind for r in recs} == {"model"}
    assert {r.device.name for r in recs} == {"Pixel4", "Mi9"}
    (ts,) = [t for t in nnmeter.to_timings(models, "cortexA76cpu_tflite21")[:1]]
    assert ts.latency_us == 1500.0 and len(ts.layers) == 7
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "graph": {}}\n{"id": 1}\n')
    with pytest.raises(UsageError, match="bad.jsonl:2"):
        nnmeter.read(bad)


def test_import_table_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from devprof.cli import _register_commands, app

    _register_commands()
    y = tmp_path / "lut.yaml"
    ofa.write(_table([(1.0, 0.1, 5)] * len(KEYS)), y)
    r = CliRunner().invoke(app, ["import-table", str(y), "-o", str(tmp_path / "ds"), "--device", "Pixel 1",
                                 "--runtime", "tflite", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["added"] == len(KEYS)
    r = CliRunner().invoke(app, ["import-table", str(tmp_path / "nope.yaml"), "-o", str(tmp_path / "ds")])
    assert r.exit_code != 0
    np.testing.assert_equal(len(Dataset(tmp_path / "ds").read()), len(KEYS))


def test_devprof_tables_round_trip_through_export_and_import(tmp_path: Path) -> None:
    """export-table then import-table gives back kernel records of the real ops (not op=other),
    which fit-predictor fits again into a table of the same kernels and latencies."""
    import json

    from typer.testing import CliRunner

    import predictors
    from devprof.cli import _register_commands, app
    from support import predictors_synth as synth
    from predictors.estimators import FlopsLinear
    from devprof.store import read_datasets
    from predictors.fit import fit_bundles

    ds = Dataset(tmp_path / "ds")
    ds.create()
    ds.append(synth.records(synth.random_specs(40, seed=8)))
    (b,) = fit_bundles(read_datasets([ds.path]), candidates={"flops_linear": FlopsLinear()})
    bundle = b.write(tmp_path / "bundles")
    _register_commands()
    p = predictors.load(bundle)
    for ext in ("csv", "json"):
        table = tmp_path / f"t.{ext}"
        r = CliRunner().invoke(app, ["export-table", "-b", str(bundle), "-f", ext, "-o", str(table)])
        assert r.exit_code == 0, r.output
        out = tmp_path / f"imported-{ext}"
        r = CliRunner().invoke(app, ["import-table", str(table), "-o", str(out), "--device", "S20",
                                     "--runtime", "onnxruntime"])
        assert r.exit_code == 0, r.output
        df = read_datasets([out])
        from devprof.records import KernelSpec

        assert "other" not in set(df["op"])
        assert sorted(KernelSpec.from_dict(json.loads(j)).key for j in df["spec_json"]) == sorted(p.keys)
        (again,) = fit_bundles(df, candidates={"flops_linear": FlopsLinear()})
        lut = again.lut.set_index("key")
        assert sorted(lut.index) == sorted(p.keys)
        for k, med in zip(p.keys, p.median_us):
            assert lut.loc[k, "median_us"] == pytest.approx(med, rel=1e-12)
    # a row whose spec is another kernel than its key is refused with one line
    text = (tmp_path / "t.csv").read_text().splitlines()
    key, rest = text[1].split(",", 1)
    text[1] = "conv2d-n1-1x1x1-o1-k3x3-s1-p1," + rest
    (tmp_path / "bad.csv").write_text("\n".join(text) + "\n")
    from support.cli import run_cli

    r = run_cli("import-table", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "bad-ds"))
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and "another kernel" in errors[0], r.stderr
    assert json.loads((tmp_path / "t.json").read_text())["rows"][0]["spec"]["op"] in ("conv2d", "dwconv2d", "pwconv", "fc")
