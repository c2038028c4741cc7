"""int8 and fp16 single-op models: ORT (QDQ) and LiteRT (full-integer, fp16 weights) against the
integer / fp16 reference, the kernels each runtime ran, refusals, and the suite/CLI dtype paths."""
import dataclasses
import json

import numpy as np
import pytest

from devprof import runtimes
from devprof.artifacts import onnx_ops, tflite_ops
from devprof.devices import LocalDevice
from devprof.errors import UsageError
from devprof.measure import Protocol
from devprof.profile import profile
from devprof.records import KernelSpec
from devprof.runtimes import hostcpu
from devprof.runtimes.litert import LiteRT, computed_in_fp16, ran_kernels
from devprof.runtimes.onnxruntime import OnnxRuntime
from devprof.runtimes.quantize import QParams, quantize_kernel, reference_q
from devprof.runtimes.reference import TOLERANCES, check_output, fp16_tensors, make_tensors, reference
from devprof.store import Dataset
from devprof.suites import parse_suite
from devprof.suites.select import with_dtype
from support.cli import run_cli

INT8 = [
    KernelSpec("conv2d", 1, 9, 11, 5, 7, 3, 3, 1, 1, activation="relu", dtype="int8"),
    KernelSpec("conv2d", 1, 10, 10, 4, 6, 3, 3, 2, 1, activation="relu6", dtype="int8"),
    KernelSpec("conv2d", 1, 9, 9, 4, 6, 5, 5, 1, 1, dtype="int8"),  # explicit PAD before a VALID conv in TFLite
    KernelSpec("dwconv2d", 1, 12, 12, 8, 8, 3, 3, 2, 1, groups=8, activation="relu6", dtype="int8"),
    KernelSpec("pwconv", 2, 5, 5, 24, 16, dtype="int8"),
    KernelSpec("fc", n=3, cin=40, cout=7, activation="relu", dtype="int8"),
    KernelSpec("maxpool", 1, 9, 9, 4, 4, 3, 3, 2, 1, bias=False, dtype="int8"),
    KernelSpec("avgpool", 1, 8, 8, 4, 4, 2, 2, 2, 0, bias=False, dtype="int8"),
    KernelSpec("global_avgpool", 1, 7, 7, 16, 16, bias=False, dtype="int8"),
    KernelSpec("add", 1, 6, 6, 8, 8, bias=False, dtype="int8"),
    KernelSpec("mul", 1, 6, 6, 8, 8, bias=False, activation="relu", dtype="int8"),
]
#: The integer kernel ORT must have fused each op's QDQ group into (read from its profile).
ORT_KERNEL = {"conv2d": "QLinearConv", "dwconv2d": "QLinearConv", "pwconv": "QLinearConv", "fc": "QGemm",
              "maxpool": "MaxPool", "avgpool": "QLinearAveragePool", "global_avgpool": "QLinearGlobalAveragePool",
              "add": "QLinearAdd", "mul": "QLinearMul"}


@pytest.mark.parametrize("name", ["onnxruntime", "litert", "litert-builtin"])
def test_int8_models_match_the_integer_reference(name):
    rt = runtimes.get_runtime(name)
    for spec in INT8:
        call, kernels, bad = rt.checked(spec, 1)
        assert call is not None, f"{spec.key}: {bad}"
        if name == "onnxruntime":
            assert ORT_KERNEL[spec.op] in kernels.split(",") and "DequantizeLinear" not in kernels, kernels
        elif spec.op in ("conv2d", "dwconv2d", "pwconv", "fc"):  # XNNPACK's QS8 kernels, or the builtins
            assert all(k.endswith(":xnnpack" if name == "litert" else ":builtin") for k in kernels.split(",")), kernels


def _tie_kernel(spec, act_dtype):
    """Quantized tensors whose requantization hits exact halves: scales are powers of two, so
    acc * x_scale * w_scale / y_scale = acc / 4 and a quarter of the outputs are ties."""
    rng = np.random.default_rng(7)
    qk = quantize_kernel(spec, make_tensors(spec), act_dtype, 63)
    zp = 128 if act_dtype == "uint8" else 0
    qk.in_params["x"] = QParams(2.0**-4, zp, act_dtype)
    qk.inputs["x"] = rng.integers(zp - 20, zp + 21, size=qk.inputs["x"].shape).astype(qk.x.np_dtype)
    qk.w_q = rng.integers(-8, 9, size=qk.w_q.shape).astype(np.int8)
    qk.w_scale = np.full(spec.cout, 2.0**-5, np.float32)
    qk.b_scale = np.full(spec.cout, 2.0**-9, np.float32)
    qk.b_q = rng.integers(-50, 50, size=spec.cout).astype(np.int32)
    qk.out = QParams(2.0**-7, zp, act_dtype)
    return qk


@pytest.mark.parametrize("op", ["conv2d", "pwconv", "fc"])
def test_ort_and_xnnpack_requantize_half_to_even_exactly(op):
    spec = {"conv2d": KernelSpec("conv2d", 1, 6, 6, 8, 16, 3, 3, 1, 1, dtype="int8"),
            "pwconv": KernelSpec("pwconv", 1, 8, 8, 16, 32, dtype="int8"),
            "fc": KernelSpec("fc", n=16, cin=64, cout=32, dtype="int8")}[op]
    qk = _tie_kernel(spec, "uint8")
    model, feeds = onnx_ops.build_qdq_model(spec, qk)
    y = OnnxRuntime().session(model.SerializeToString(), 1).run(None, feeds)[0]
    got = onnx_ops.output_to_nhwc(spec, y).astype(np.int64)
    assert np.array_equal(got, reference_q(qk, rounding="half_even"))  # MLAS: fp32 requantization, ties to even
    assert not np.array_equal(got, reference_q(qk, rounding="half_away"))
    qk = _tie_kernel(spec, "int8")
    data, feeds, pads = tflite_ops.build_int8_model(spec, qk)
    it = LiteRT().interpreter(data, 1)
    for d, a in zip(it.get_input_details(), feeds.values()):
        it.set_tensor(d["index"], a)
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"]).astype(np.int64)
    assert np.array_equal(got, reference_q(qk, pads, "half_even"))  # XNNPACK QS8: the same
    assert not np.array_equal(got, reference_q(qk, pads, "half_away"))


class WrongInt8OnnxRuntime(OnnxRuntime):
    """ORT running a QDQ model built from wrong integer weights: what a buggy quantizer would produce."""

    def build_int8(self, spec, tensors):
        model, feeds, qk = super().build_int8(spec, tensors)
        bad = dataclasses.replace(qk, w_q=np.clip(qk.w_q.astype(np.int16) + 3, -127, 127).astype(np.int8))
        model, _ = onnx_ops.build_qdq_model(spec, bad)
        return model, feeds, qk


class Int8ActivationsOnnxRuntime(OnnxRuntime):
    """int8 (not uint8) activations: ORT's x86 QDQ fusion leaves Conv in float between DQ and Q."""

    act_dtype = "int8"


class FullRangeOnnxRuntime(OnnxRuntime):
    """8-bit weights whatever the CPU: on x86 without VNNI, MLAS's u8 x s8 products saturate."""

    def weight_qmax(self):
        return 127


@pytest.mark.skipif(not hostcpu.x86_without_vnni(), reason="the saturation is specific to x86 without VNNI")
def test_full_range_weights_saturate_ort_u8s8_without_vnni_and_the_check_sees_it():
    spec = KernelSpec("conv2d", 1, 16, 16, 32, 64, 3, 3, 1, 1, dtype="int8")
    call, kernels, bad = FullRangeOnnxRuntime().checked(spec, 1)
    assert call is None and "QLinearConv" in kernels and "LSB" in bad
    assert OnnxRuntime().checked(spec, 1)[0] is not None  # 7-bit weights: exact


def test_wrong_or_unfused_int8_models_are_refused():
    spec = INT8[0]
    call, _, bad = WrongInt8OnnxRuntime().checked(spec, 1)
    assert call is None and "wrong output" in bad and "LSB" in bad
    if hostcpu.machine() == "x86_64":  # on x86, ORT fuses QDQ Conv with uint8 activations only
        call, kernels, bad = Int8ActivationsOnnxRuntime().checked(spec, 1)
        assert call is None and "did not fuse" in bad and "Conv" in kernels


def test_int8_kernels_are_timed_and_recorded_as_int8(tmp_path):
    specs = [INT8[0], INT8[5]]
    s = profile(LocalDevice(), specs, ["onnxruntime", "litert"], tmp_path / "d", protocol=Protocol.quick())
    assert (s.measured, s.failed, s.skipped) == (4, 0, 0)
    df = Dataset(tmp_path / "d").read()
    assert set(df["dtype"]) == {"int8"} and len(df) == 4


def test_litert_reports_which_ops_xnnpack_took():
    spec = INT8[2]  # PAD + CONV_2D: both go to XNNPACK
    qk = quantize_kernel(spec, make_tensors(spec), "int8")
    data, _, _ = tflite_ops.build_int8_model(spec, qk)
    assert ran_kernels(LiteRT().interpreter(data, 1)) == [("PAD", True), ("CONV_2D", True)]
    assert ran_kernels(runtimes.get_runtime("litert-builtin").interpreter(data, 1)) == [("PAD", False),
                                                                                       ("CONV_2D", False)]


def test_fp16_model_holds_fp16_weights_and_the_reduced_precision_metadata():
    from ai_edge_litert import schema_py_generated as sch

    spec = KernelSpec("conv2d", 1, 8, 8, 4, 8, 3, 3, 1, 1, activation="relu", dtype="fp16")
    t = fp16_tensors(make_tensors(spec))
    data, feeds, pads = tflite_ops.build_model(spec, t)
    m = sch.ModelT.InitFromPackedBuf(data, 0)
    types = {bytes(x.name).decode(): x.type for x in m.subgraphs[0].tensors}
    assert types["w_fp16"] == sch.TensorType.FLOAT16 and types["b_fp16"] == sch.TensorType.FLOAT16
    meta = {bytes(e.name).decode(): bytes(m.buffers[e.buffer].data) for e in m.metadata}
    assert meta == {"reduced_precision_support": b"fp16accfp16"}
    it = runtimes.get_runtime("litert-builtin").interpreter(data, 1)  # computes in fp32: the model is right
    it.set_tensor(it.get_input_details()[0]["index"], feeds["x"])
    it.invoke()
    y = it.get_tensor(it.get_output_details()[0]["index"])
    assert check_output(spec.replace(dtype="fp32"), y, reference(spec, t, pads)) is None
    assert not computed_in_fp16(y)  # fp32 arithmetic leaves values fp16 cannot hold
    assert computed_in_fp16(y.astype(np.float16).astype(np.float32))


def test_fp16_refusals_say_why_in_one_line():
    spec = KernelSpec("pwconv", 1, 8, 8, 16, 16, dtype="fp16")
    assert "casts fp16" in runtimes.get_runtime("onnxruntime").supports(spec)
    assert "builtin kernels compute fp16" in runtimes.get_runtime("litert-builtin").supports(spec)
    assert runtimes.get_runtime("devprof-c").supports(spec) is None  # arm64 devices (refused on x86 per device)
    assert "fp32 models only" in runtimes.get_runtime("tflite-benchmark").supports(spec)
    why = runtimes.get_runtime("litert").supports(spec)
    if hostcpu.fp16_arithmetic() is None:
        assert why is None
    else:
        assert why.startswith("fp16: ") and "\n" not in why and "asimdhp" in why


def test_tolerances_are_stated_per_dtype():
    assert set(TOLERANCES) == {"fp32", "fp16", "int8"} and TOLERANCES["int8"]["lsb"] == 1
    spec = INT8[4]
    want = np.array([[3, -4]])
    assert check_output(spec, np.array([[4, -5]]), want) is None
    assert "off by more than 1 LSB" in check_output(spec, np.array([[5, -4]]), want)


SUITE = """
[suite]
name = "q"
dtype = "int8"
[[kernels]]
op = "fc"
cin = 16
cout = 8
[[kernels]]
op = "fc"
cin = 16
cout = 8
dtype = "fp32"
[[family]]
op = "pwconv"
dtype = "fp16"
shape = { hw = [4], cin = [8], cout = [8, 16] }
[[family]]
op = "add"
shape = { hw = [4], cin = [8], dtype = ["fp32", "int8"] }
"""


def test_suite_dtype_default_family_and_kernel_overrides():
    s = parse_suite(SUITE)
    assert [(x.op, x.dtype) for x in s.specs] == [("fc", "int8"), ("fc", "fp32"), ("pwconv", "fp16"),
                                                  ("pwconv", "fp16"), ("add", "fp32"), ("add", "int8")]
    all8 = with_dtype(s.specs, "int8")  # the two fc and the two add collapse into one int8 spec each
    assert [(x.op, x.dtype) for x in all8] == [("fc", "int8"), ("pwconv", "int8"), ("pwconv", "int8"), ("add", "int8")]


@pytest.mark.parametrize("where, text", [
    ("[suite] dtype", SUITE.replace('dtype = "int8"', 'dtype = "int4"', 1)),
    ("kernels[1]", SUITE.replace('dtype = "fp32"', 'dtype = "int4"')),
    ("family[0]", SUITE.replace('dtype = "fp16"', 'dtype = "bf16"')),
    ("family[1]", SUITE.replace('["fp32", "int8"]', '["int4"]')),
])
def test_unknown_dtypes_are_one_line_errors_listing_the_dtypes(where, text):
    with pytest.raises(UsageError) as e:
        parse_suite(text)
    assert where in str(e.value) and "known: fp32, fp16, int8" in str(e.value)
    with pytest.raises(UsageError, match="--dtype: unknown dtype 'int4' .known: fp32, fp16, int8."):
        with_dtype(parse_suite(SUITE).specs, "int4")


def test_cli_profiles_a_suite_in_int8(tiny_suite, tmp_path):
    out = tmp_path / "d"
    p = run_cli("profile", "--suite", str(tiny_suite), "--dtype", "int8", "--out", str(out), "--quick", "--json")
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["measured"] == 18 and summary["failed"] == 0  # 9 kernels x ORT and LiteRT
    assert set(Dataset(out).read()["dtype"]) == {"int8"}


def test_cli_dtype_bad_input(tiny_suite, tmp_path):
    out = str(tmp_path / "d")
    r = run_cli("profile", "--suite", str(tiny_suite), "--dtype", "int4", "--out", out)
    assert r.returncode == 2 and r.stderr.strip() == "error: --dtype: unknown dtype 'int4' (known: fp32, fp16, int8)"
    r = run_cli("profile", "--model", "mobilenetv2", "--dtype", "fp16", "--out", out)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "run in fp32 or int8" in r.stderr
    if hostcpu.fp16_arithmetic() is not None:
        r = run_cli("profile", "--suite", str(tiny_suite), "--dtype", "fp16", "--out", out)
        assert r.returncode == 2 and r.stderr.startswith("error: --dtype fp16: ") and r.stderr.count("\n") == 1
    assert not (tmp_path / "d").exists()  # nothing was started


def test_qdq_model_with_zero_scale_is_a_one_line_error(tmp_path):
    import onnx

    from devprof.models.walk import walk

    spec = KernelSpec("conv2d", 1, 8, 8, 4, 8, 3, 3, 1, 1, dtype="int8")
    model, _ = onnx_ops.build_qdq_model(spec, quantize_kernel(spec, make_tensors(spec), "uint8"))
    assert onnx_ops.qdq_scale_problem(model) is None
    for t in model.graph.initializer:
        if t.name == "x_q_scale":
            t.CopyFrom(onnx.numpy_helper.from_array(np.float32(0), "x_q_scale"))
    path = tmp_path / "zero.onnx"
    onnx.save(model, path)
    with pytest.raises(UsageError, match="per-tensor scale 0 .tensor 'x_q_scale'."):
        walk(path)
    r = run_cli("profile", "--model", str(path), "--out", str(tmp_path / "d"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "scales must be positive" in r.stderr
