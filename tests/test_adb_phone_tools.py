"""Parsers of the phone tools' outputs (samples in tests/data/phone_tools follow the tools'
documented formats), and the full phone flow with stand-ins for the Android binaries."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devprof.devices import resolve_device
from devprof.measure import Protocol
from devprof.records import KernelSpec
from devprof.runtimes import get_runtime
from devprof.runtimes.phone_tools import (ToolOutputError, parse_benchmark_model, parse_ort_profile,
                                          split_reps)

DATA = Path(__file__).parent / "data" / "phone_tools"


def test_benchmark_model_op_profile():
    rep = parse_benchmark_model((DATA / "benchmark_model_op_profiling.txt").read_text())
    assert [o.node_type for o in rep.ops] == ["TfLiteXNNPackDelegate", "ADD"]
    assert rep.ops[0].avg_ms == 1.179 and rep.ops[0].name == "[conv_out]:1" and rep.ops[0].times_called == 1
    assert rep.op_us == pytest.approx(1180.0)
    assert rep.runs.count == 826 and rep.runs.avg_us == 1196.84 and rep.runs.std_us == 38
    assert rep.warmup.count == 412
    assert rep.profiled_runs.count == 826 and rep.count == 826


def test_benchmark_model_without_op_profiling_uses_the_run_line():
    text = "INFO: count=50 first=300 curr=280 min=270 max=320 avg=285.5 std=9\n"
    rep = parse_benchmark_model(text)
    assert not rep.ops and rep.runs.avg_us == 285.5


def test_benchmark_model_garbage_is_a_one_line_error():
    with pytest.raises(ToolOutputError) as e:
        parse_benchmark_model("ERROR: Could not open 'model.tflite'.\nAborted\n")
    assert "Aborted" in str(e.value) and "\n" not in str(e.value)


def test_ort_profile_samples_per_run():
    prof = parse_ort_profile((DATA / "ort_perf_test_profile.json").read_text())
    assert len(prof.run_kernel_us) == 6
    assert set(prof.node_ops.values()) == {"ReorderInput", "Conv", "ReorderOutput"}
    assert all(len(v) == 6 for v in prof.node_us.values())
    runs = [sum(prof.node_us[n][i] for n in prof.node_us) for i in range(6)]
    assert prof.run_kernel_us == runs
    assert all(1100 < r < 1250 for r in prof.run_kernel_us)
    assert len(prof.run_total_us) == 6 and all(t > k for t, k in zip(prof.run_total_us, prof.run_kernel_us))


@pytest.mark.parametrize("bad", ["", "{", "[1, 2]", '{"traceEvents": 3}', '[{"cat": "Node", "name": "x_kernel_time", "dur": "z"}]',
                                 '[{"cat": "Session", "name": "model_run", "ts": 0, "dur": 10}]'])
def test_ort_profile_bad_input(bad):
    with pytest.raises(ToolOutputError):
        parse_ort_profile(bad)


@settings(max_examples=25, deadline=None)
@given(st.text(max_size=400))
def test_parsers_fail_only_with_their_own_error(text):
    for parse in (parse_benchmark_model, parse_ort_profile):
        try:
            parse(text)
        except ToolOutputError:
            pass


def test_split_reps():
    assert split_reps("@@devprof-rep 0\na\n@@devprof-rep 1\nb\n") == ["\na\n", "\nb\n"]
    assert split_reps("plain") == ["plain"]


# ---- the full flow on the emulated phone, with stand-ins for the Android binaries ------------------
# The stand-ins are shell scripts that print what the real tools print (the sample files above);
# everything on devprof's side (host check of the model, push, one shell call, parse) is real.
def _stand_in(tmp_path: Path, name: str, body: str) -> Path:
    p = tmp_path / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return p


SPEC = KernelSpec("conv2d", h=8, w=8, cin=4, cout=8, kh=3, kw=3, padding=1)


def test_tflite_benchmark_runtime_on_the_phone(phone, tmp_path, monkeypatch):
    sample = (DATA / "benchmark_model_op_profiling.txt").read_text()
    args_log = tmp_path / "args"
    tool = _stand_in(tmp_path, "benchmark_model",
                     f'echo "$@" >> {args_log}\ntest -f model.tflite || exit 3\ncat <<\'EOF\'\n{sample}EOF\n')
    monkeypatch.setenv("DEVPROF_BENCHMARK_MODEL", str(tool))
    dev = resolve_device("S20")
    rt = get_runtime("tflite-benchmark")
    assert rt.available(dev) is None
    proto = Protocol.quick().with_cpus(dev.resolve_cores("big"))
    [o] = list(rt.measure(dev, [SPEC], 1, proto))
    assert o.ok, o.error
    assert o.measurement.repeats == rt.repeats(proto) and o.measurement.median_us == pytest.approx(1180.0)
    assert o.measurement.number == 826 and o.conditions.cpus == "4,5,6" and o.conditions.freq_before_khz == 2419200
    assert "--enable_op_profiling=true" in args_log.read_text() and "--num_threads=1" in args_log.read_text()


def test_ort_perf_test_runtime_on_the_phone(phone, tmp_path, monkeypatch):
    prof = DATA / "ort_perf_test_profile.json"
    tool = _stand_in(tmp_path, "onnxruntime_perf_test",
                     f'test -f model.onnx || exit 3\ncat > prof_2026-01-01_00-00-00.json <<\'EOF\'\n{prof.read_text()}\nEOF\n'
                     'echo "Average inference time cost: 1.16 ms"\n')
    monkeypatch.setenv("DEVPROF_ORT_PERF_TEST", str(tool))
    dev = resolve_device("S20")
    [o] = list(get_runtime("ort-perf-test").measure(dev, [SPEC], 1, Protocol.quick()))
    assert o.ok, o.error
    assert o.measurement.repeats == 5 and 1100 < o.measurement.median_us < 1250


def test_phone_tools_need_a_configured_binary(phone, monkeypatch):
    monkeypatch.delenv("DEVPROF_BENCHMARK_MODEL", raising=False)
    why = get_runtime("tflite-benchmark").available(resolve_device("S20"))
    assert why and "benchmark_model" in why
