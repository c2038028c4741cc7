"""Whole models on the emulated phone through the phone's runtimes (`--model` with onnxruntime /
litert on a phone: onnxruntime_perf_test and benchmark_model).

The real tools are Android binaries that cannot run here, not even on the emulated phone, so these
tests configure the stand-ins of tests/support/phone_standins.py instead: launchers that take the
real tools' arguments and print the real tools' output formats (real samples are in
tests/data/phone_tools/). They are the only stand-ins: the host check, the push through the real
adb server, the one shell call on the phone, the parsing and the records are devprof's own.
"""
from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from devprof.measure import Protocol
from devprof.models.builders import build
from devprof.model_profiling.phone import _round_layers, parse_ort_run, parse_tflite_run, rounds
from devprof.model_profiling.profile import OVERHEAD_NAME, ModelSource, named_nodes
from devprof.models.tflite_export import onnx_to_tflite
from devprof.models.walk import walk
from devprof.runtimes.phone_tools import ToolOutputError, parse_benchmark_model
from devprof.store import Dataset

from support import phone_standins
from support.cli import run_cli

PROTO = dataclasses.replace(Protocol.quick(), min_repeats=3)  # 3 rounds: each is two tool launches


@pytest.fixture
def tools(tmp_path, monkeypatch) -> dict[str, str]:
    env = {"DEVPROF_ORT_PERF_TEST": str(phone_standins.install(tmp_path / "tools", "onnxruntime_perf_test")),
           "DEVPROF_BENCHMARK_MODEL": str(phone_standins.install(tmp_path / "tools", "benchmark_model")),
           "DEVPROF_CONFIG": str(tmp_path / "none.toml")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def _src() -> ModelSource:
    m = build("mobilenetv2", res=32)
    for n in m.graph.node:  # exporters may leave nodes unnamed: their time must still reach their layer
        if not n.name.startswith("stem"):
            n.name = ""
    return ModelSource("mnv2-phone", onnx=m)  # as a file of that name is


def test_models_on_the_emulated_arm64_phone_through_its_runtimes(make_phone, adb_server, tools, tmp_path):
    from devprof.devices import resolve_device
    from devprof.errors import DeviceError
    from devprof.model_profiling.profile import profile_model

    src = _src()
    out = tmp_path / "ds"
    rts = ["onnxruntime", "litert-builtin"]
    # the phone vanishes half a second into benchmark_model, after ONNX Runtime's run was saved
    phone = make_phone("--abi", "arm64-v8a", "--die-on", "benchmark_model", "--die-delay", "0.5")
    with pytest.raises(DeviceError, match="stopped answering"):
        profile_model(src, resolve_device("S20"), rts, out=out, protocol=PROTO.with_cpus("4,5,6"))
    df = Dataset(out).read()
    assert set(df.runtime) == {"ort-perf-test"} and df["emulated"].all() and set(df["device_model"]) == {"SM-G981N"}
    # ONNX Runtime: the same layers as local's walk (ORT fusion), one sample per profiled run
    ml = walk(src.onnx, fusion="onnxruntime")
    model = df[df.kind == "model"]
    assert len(model) == 1 and model.iloc[0]["repeats"] == rounds(PROTO) and model.iloc[0]["cpus"] == "4,5,6"
    layers = df[(df.kind == "layer") & (df.layer_name != OVERHEAD_NAME)]
    assert set(layers.layer_name) <= {l.name for l in ml.layers} and len(layers) >= len(ml) - 2
    assert (layers.median_us > 0).all() and set(layers.model_run_id) == set(model.model_run_id)
    assert {l.spec.id for l in ml.layers if l.name in set(layers.layer_name)} == set(layers.spec_id)
    assert len(df[df.layer_name == OVERHEAD_NAME]) == 1
    assert ml.layers[1].name.startswith("Conv_") and ml.layers[1].name in set(layers.layer_name)
    # plugged back in: --resume skips what is saved and runs the rest
    phone.args = ["--abi", "arm64-v8a"]
    phone.start()
    dev = resolve_device("S20")
    with pytest.raises(Exception, match="already holds"):
        profile_model(src, dev, rts, out=out, protocol=PROTO)
    ort, lite = profile_model(src, dev, rts, out=out, protocol=PROTO, resume=True)
    assert ort.skipped and not lite.error and not lite.skipped, lite.error
    df = Dataset(out).read()
    assert df["device_id"].nunique() == 1 and df["emulated"].all() and df["record_key"].is_unique
    assert (df["checked"] == "numpy reference").all()  # on this host, before the push
    # LiteRT without XNNPACK: one row per operator, mapped onto the .tflite walk
    tml = walk(onnx_to_tflite(src.onnx))
    t = df[(df.runtime == "tflite-benchmark") & (df.kind == "layer") & (df.layer_name != OVERHEAD_NAME)]
    assert set(t.layer_name) == {l.name for l in tml.layers} and (t.median_us > 0).all()
    assert json.loads(t.iloc[0]["runtime_options"]) == {"xnnpack": False}
    assert len(df[(df.runtime == "tflite-benchmark") & (df.kind == "model")]) == 1
    # the command line: the same model, everything already there (the table it prints is local's)
    p = tmp_path / "mnv2-phone.onnx"
    p.write_bytes(src.onnx.SerializeToString())
    r = run_cli("profile", "--device", "S20", "--model", str(p), "-r", "onnxruntime", "-r", "litert-builtin",
                "--quick", "--out", str(out), "--resume", env={**adb_server.env, **tools})
    assert r.returncode == 0, r.stderr
    assert "ort-perf-test: already in dataset" in r.stderr and "(builtin ops): already in dataset" in r.stderr


def test_xnnpack_delegate_row_is_one_record_over_the_layers_it_ran():
    src = _src()
    tfl = onnx_to_tflite(src.onnx)
    ml = walk(tfl)
    last = ml.layers[-1].output or ml.layers[-1].name
    row = (f"\t   TfLiteXNNPackDelegate\t            1.189\t            1.179\t         99.916%\t         99.916%\t"
           f"             0.000\t              1\t[{last}]:{len(ml)}\n")
    sample = ("INFO: count=50 first=1 curr=1 min=1 max=1 avg=1200 std=1\n"
              "Operator-wise Profiling Info for Regular Benchmark Runs:\n"
              "============================== Run Order ==============================\n" + row)
    rep = parse_benchmark_model(sample)
    per = _round_layers(rep.ops, ml, ml.by_node(), set())
    assert per == {("D", 0, len(ml) - 1, "TfLiteXNNPackDelegate"): pytest.approx(1179.0)}
    # builds that also list the delegate's own operators: their time is inside the delegate's row
    inner = row.replace("TfLiteXNNPackDelegate", "Convolution (NHWC, F32) IGEMM").replace(
        f"[{last}]:{len(ml)}", "Delegate/Convolution (NHWC, F32) IGEMM:0")
    rep = parse_benchmark_model(sample + inner)
    unmapped: set = set()
    assert _round_layers(rep.ops, ml, ml.by_node(), unmapped) == per and len(unmapped) == 1
    clean = "INFO: count=50 first=1 curr=1 min=1 max=1 avg=1190 std=1\n"
    out = "".join(f"@@devprof-rep {i}\n@@devprof-clean\n{clean}@@devprof-profile\n{sample}" for i in range(3))
    got, delegates = parse_tflite_run(out, ml)
    assert got.rows == [] and len(delegates) == 1 and delegates[0].samples == [pytest.approx(1179.0)] * 3
    assert got.e2e.median_us == 1190 and got.framework == pytest.approx((21.0,) * 3)


def test_unconfigured_tools_and_unsupported_runtimes_are_one_line(phone, tmp_path, monkeypatch):
    from devprof.devices import resolve_device
    from devprof.errors import UsageError
    from devprof.model_profiling.profile import profile_model

    monkeypatch.delenv("DEVPROF_ORT_PERF_TEST", raising=False)
    monkeypatch.delenv("DEVPROF_BENCHMARK_MODEL", raising=False)
    monkeypatch.setenv("DEVPROF_CONFIG", str(tmp_path / "none.toml"))
    dev = resolve_device("S20")
    for rts, words in ((["onnxruntime"], ["onnxruntime_perf_test", "$DEVPROF_ORT_PERF_TEST", "[tools]"]),
                       (["litert"], ["benchmark_model", "$DEVPROF_BENCHMARK_MODEL"]),
                       (None, ["onnxruntime_perf_test", "benchmark_model"]),
                       (["devprof-c"], ["--prune"]), (["openblas"], ["openblas"])):
        with pytest.raises(UsageError) as e:
            profile_model(_src(), dev, rts, out=tmp_path / "ds", protocol=PROTO)
        assert "\n" not in str(e.value) and all(w in str(e.value) for w in words), str(e.value)


_ML = {}


def _walks():
    if not _ML:
        src = _src()
        _ML["onnx"] = (named_nodes(src.onnx), walk(src.onnx, fusion="onnxruntime"))
        _ML["tflite"] = walk(onnx_to_tflite(src.onnx))
    return _ML


_PIECES = ["@@devprof-rep 0\n", "@@devprof-clean\n", "@@devprof-profile\n", "Average inference time cost: 1.5 ms\n",
           "INFO: count=5 avg=12 std=1\n", "Operator-wise Profiling Info for Regular Benchmark Runs:\n",
           "============================== Run Order ==============================\n",
           "\tCONV_2D\t1\t0.5\t1%\t1%\t0\t1\t[x]:0\n", '[{"cat": "Node", "name": "a_kernel_time", "ts": 1, "dur": 2}]',
           '[{"cat": "Session", "name": "model_run", "ts": 0, "dur": -5}]', "{", "nan", "\n"]


@settings(max_examples=40, deadline=None)
@example(["@@devprof-rep 0\n@@devprof-clean\nAverage inference time cost: 1.5 ms\n@@devprof-profile\n",
          '[{"cat": "Session", "name": "model_run", "ts": "0", "dur": 9}, '
          '{"cat": "Node", "name": "zz_kernel_time", "ts": 1, "dur": 2}]'])
@example(["@@devprof-rep 0\n@@devprof-clean\nINFO: count=5 avg=12 std=1\n@@devprof-profile\n",
          "INFO: count=5 avg=12 std=1\n", _PIECES[5], _PIECES[6], _PIECES[7]])
@given(st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=30)), max_size=12))
def test_phone_model_output_fails_only_with_a_tool_output_error(parts):
    text = "".join(parts)
    w = _walks()
    for parse in (lambda: parse_ort_run(text, *w["onnx"]), lambda: parse_tflite_run(text, w["tflite"])):
        try:
            parse()
        except ToolOutputError as e:
            assert "\n" not in str(e)


def test_a_failing_tool_is_a_failed_run_and_nothing_is_saved(phone, tmp_path, monkeypatch):
    from devprof.devices import resolve_device
    from devprof.model_profiling.profile import profile_model

    monkeypatch.setenv("DEVPROF_BENCHMARK_MODEL", "/bin/false")  # a real binary that exits 1 at once
    monkeypatch.setenv("DEVPROF_CONFIG", str(tmp_path / "none.toml"))
    out = tmp_path / "ds"
    [run] = profile_model(_src(), resolve_device("S20"), ["litert"], out=out, protocol=PROTO)
    assert run.error.startswith("benchmark_model exited 1") and not run.records
    ds = Dataset(out)
    assert not len(ds.read()) and "benchmark_model exited 1" in (out / "failures.jsonl").read_text()
