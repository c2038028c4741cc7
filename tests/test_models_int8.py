"""Whole models in int8: static quantization of built-in models, a user's QDQ model as it is, the
walk of a QDQ model onto the float model's layer keys, pruned layers as generated int8 kernels,
and one-line errors for bad input with nothing measured lost."""
from __future__ import annotations

import onnx
import pytest

from devprof.measure import Protocol
from devprof.model_profiling.profile import profile_model
from devprof.models.quantize import float_view, is_quantized, quantize_static_int8
from devprof.models.sources import resolve_model
from devprof.models.walk import walk
from devprof.store import Dataset

from support.cli import run_cli

MODEL = "espcn@8x12"  # three convs and a depth-to-space: quantized and profiled in seconds


@pytest.fixture(scope="module")
def qdq():
    from devprof.runtimes.hostcpu import x86_without_vnni

    # as a user's quantizer would on this host: 7-bit weights where ORT's u8 x s8 kernels saturate
    return quantize_static_int8(resolve_model(MODEL).onnx, reduce_range=x86_without_vnni())


def test_quantized_walk_keeps_the_float_layer_keys_in_int8(qdq):
    src = resolve_model("mobilenetv2@32")
    q = quantize_static_int8(src.onnx)
    assert is_quantized(q) and not is_quantized(src.onnx)
    for fusion in ("onnxruntime", "litert"):
        f, i = walk(src.onnx, fusion=fusion), walk(q, fusion=fusion)
        assert [l.name for l in i.layers] == [l.name for l in f.layers]
        for a, b in zip(f.layers, i.layers):  # relu6 folded into output ranges comes back
            want = a.spec.replace(dtype="int8") if a.spec.op in ("conv2d", "dwconv2d", "pwconv", "fc") else a.spec
            assert b.spec.replace(dtype=want.dtype).key == want.key, (a.name, a.spec.key, b.spec.key)
            if a.spec.op in ("conv2d", "dwconv2d", "pwconv", "fc"):
                assert b.spec.dtype == "int8"
    fv, int8 = float_view(qdq)
    assert not is_quantized(fv) and int8


def test_model_int8_on_onnxruntime_records_int8_layers(tmp_path, capsys):
    out = tmp_path / "ds"
    runs = profile_model(MODEL, out=out, protocol=Protocol.quick(), runtimes=["onnxruntime", "litert"],
                         dtype="int8")
    ort_run, lite = runs
    assert not ort_run.error and ort_run.e2e
    assert "exporter writes float models" in lite.error and "\n" not in lite.error
    df = Dataset(out).read()
    model = df[df.kind == "model"]
    assert list(model.dtype) == ["int8"]
    convs = df[(df.kind == "layer") & (df.op == "conv2d")]
    assert len(convs) == 3 and set(convs.dtype) == {"int8"}
    assert set(df.checked) == {"numpy reference"}  # ONNX's evaluator on the QDQ graph, int8 tolerance
    # show keeps dtypes apart: a dtype column, and --dtype selects
    import json

    from devprof.cli import run

    assert run(["show", str(out), "--dtype", "int8", "--json", "--limit", "0"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert len(shown) == len(df[df.dtype == "int8"]) and {r["dtype"] for r in shown} == {"int8"}
    assert run(["show", str(out), "--dtype", "fp16"]) == 2
    assert "--dtype fp16" in capsys.readouterr().err
    # the report's per-layer section labels the int8 run as such
    from devprof.report import build_document

    doc, _ = build_document([out], strict=True, figures=False)
    layers = {s.key: s for s in doc.sections}["layers"]
    assert layers.drawn and any(f"{MODEL} · int8 ·" in str(t.rows) + t.caption for t in layers.tables)


def test_user_qdq_model_is_profiled_as_it_is(qdq, tmp_path):
    p = tmp_path / "mine.onnx"
    onnx.save(qdq, p)
    r = run_cli("profile", "--model", str(p), "-r", "onnxruntime", "--quick", "--out", str(tmp_path / "ds"),
                "--json", timeout=120)
    assert r.returncode == 0, r.stderr
    df = Dataset(tmp_path / "ds").read()
    assert set(df[df.op == "conv2d"].dtype) == {"int8"} and list(df[df.kind == "model"].dtype) == ["int8"]


def test_pruned_model_in_int8_uses_generated_int8_kernels(tmp_path):
    from devprof.devices import resolve_device
    from devprof.runtimes import get_runtime

    why = get_runtime("devprof-c").available(resolve_device("local"))
    if why:
        pytest.skip(f"devprof-c not available here: {why}")
    notes: list[str] = []
    runs = profile_model(MODEL, out=tmp_path / "ds", protocol=Protocol.quick().with_cpus("0"), prune="bcr:0.9",
                         dtype="int8", on_note=notes.append)
    dense, sparse = runs  # no one-program runs in int8: said once
    assert not dense.error and not sparse.error, (dense.error, sparse.error)
    assert any("no one-program run in int8" in n for n in notes)
    df = Dataset(tmp_path / "ds").read()
    layers = df[df.kind == "layer"]
    assert len(layers) == 6 and set(layers.dtype) == {"int8"}
    assert set(layers[layers.model_name == sparse.name].scheme) == {"bcr"}
    assert set(df[df.kind == "model"].dtype) == {"int8"}


def test_bad_int8_model_input_one_line_nothing_lost(qdq, tmp_path, capsys):
    from devprof.cli import run

    out = str(tmp_path / "ds")
    assert run(["profile", "--model", MODEL, "--dtype", "int8", "-r", "onnxruntime", "--quick", "--out", out,
                "--json"]) == 0
    capsys.readouterr()
    before = len(Dataset(out).read())
    bad = onnx.ModelProto()
    bad.CopyFrom(qdq)
    for t in bad.graph.initializer:  # every per-tensor activation scale set to zero
        if t.name.endswith("_scale") and not t.dims:
            t.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(t) * 0, t.name))
    p = tmp_path / "zero.onnx"
    onnx.save(bad, p)
    for args in (["--model", MODEL, "--dtype", "int4"], ["--model", str(p)], ["--model", str(p), "--dtype", "int8"],
                 ["--model", MODEL, "--dtype", "fp16"]):
        rc = run(["profile", *args, "--quick", "--out", out])
        err = capsys.readouterr().err
        lines = [x for x in err.splitlines() if x.strip()]
        assert rc == 2 and len(lines) == 1 and lines[0].startswith("error:"), (args, rc, err)
        assert "int4" in lines[0] or "int4" not in args
        assert "scales must be positive" in lines[0] or str(p) not in args
    assert len(Dataset(out).read()) == before
    # the command line a user types: the same one line, exit 2, no traceback
    r = run_cli("profile", "--model", str(p), "--quick", "--out", out, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


@pytest.mark.phone
def test_model_int8_on_the_emulated_phone(make_phone, adb_server, tmp_path, monkeypatch):
    from support import phone_standins

    from devprof.devices import resolve_device

    monkeypatch.setenv("DEVPROF_ORT_PERF_TEST", str(phone_standins.install(tmp_path / "t", "onnxruntime_perf_test")))
    monkeypatch.setenv("DEVPROF_CONFIG", str(tmp_path / "none.toml"))
    make_phone("--abi", "arm64-v8a")
    proto = Protocol.quick()
    (run,) = profile_model(MODEL, resolve_device("S20"), out=tmp_path / "ds", protocol=proto, dtype="int8")
    assert not run.error and run.runtime == "ort-perf-test", run.error
    df = Dataset(tmp_path / "ds").read()
    assert df.emulated.all() and set(df[df.op == "conv2d"].dtype) == {"int8"}
    assert list(df[df.kind == "model"].dtype) == ["int8"] and set(df.checked) == {"numpy reference"}


def test_a_suite_model_entry_says_its_dtype(tmp_path, capsys):
    from devprof.cli import run

    suite = tmp_path / "m.toml"
    suite.write_text('[suite]\nname = "m8"\n[[model]]\nfamily = "espcn"\nres = [8, 12]\ndtype = "int8"\n')
    assert run(["profile", "-s", str(suite), "-r", "onnxruntime", "--quick", "--out", str(tmp_path / "ds"),
                "--json"]) == 0
    df = Dataset(tmp_path / "ds").read()
    assert list(df[df.kind == "model"].dtype) == ["int8"] and set(df[df.op == "conv2d"].dtype) == {"int8"}
    capsys.readouterr()
    suite.write_text(suite.read_text().replace('"int8"', '"int4"'))
    assert run(["profile", "-s", str(suite), "--out", str(tmp_path / "ds2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "model[0] dtype 'int4'" in err
