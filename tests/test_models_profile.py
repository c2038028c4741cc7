"""Whole-model profiling into a dataset, and one-line errors for broken model files."""
from __future__ import annotations

import pytest

from support.cli import run_cli
from devprof.errors import DevprofError
from devprof.measure import Protocol
from devprof.models.builders import build
from devprof.model_profiling.profile import OVERHEAD_NAME, ModelSource, profile_model, resolve_model
from devprof.models.tflite_export import onnx_to_tflite
from devprof.models.walk import walk
from devprof.store import Dataset


def test_profile_model_writes_linked_layer_and_model_records(tmp_path):
    src = ModelSource("mnv2-test", onnx=build("mobilenetv2", res=48), family="mobilenetv2")
    runs = profile_model(src, out=tmp_path / "ds", protocol=Protocol.quick())
    ort_run, lite_run = runs
    assert not ort_run.error and not lite_run.error
    ml = walk(src.onnx, fusion="onnxruntime")
    df = Dataset(tmp_path / "ds").read()
    ort_df = df[df.runtime == "onnxruntime"]
    model = ort_df[ort_df.kind == "model"]
    assert len(model) == 1 and model.iloc[0]["op"] == "model"
    run_id = model.iloc[0]["model_run_id"]
    layers = ort_df[(ort_df.kind == "layer") & (ort_df.layer_name != OVERHEAD_NAME)]
    assert set(layers.model_run_id) == {run_id} and set(layers.model_name) == {"mnv2-test"}
    # every layer that ran a kernel has a record; each layer's time is positive
    assert len(layers) == sum(r.measurement is not None for r in ort_run.rows) >= len(ml) - 2
    assert (layers.median_us > 0).all()
    assert sorted(layers.layer_index) == sorted(r.layer.index for r in ort_run.rows if r.measurement)
    over = ort_df[ort_df.layer_name == OVERHEAD_NAME]
    assert len(over) == 1 and over.iloc[0]["layer_index"] == -1
    # the profiled runs: their kernels plus the framework's time make up the run's wall time
    assert ort_run.layer_sum_us > 0 and ort_run.framework_us >= 0
    lite = df[(df.runtime == "litert") & (df.kind == "model")]
    assert len(lite) == 1 and lite.iloc[0]["median_us"] > 0
    # both runtimes' outputs were compared with the numpy reference before timing
    assert set(df.checked) == {"numpy reference"}
    # a rerun without --resume refuses; with --resume adds nothing
    with pytest.raises(DevprofError, match="already holds"):
        profile_model(src, out=tmp_path / "ds", protocol=Protocol.quick(), runtimes=["onnxruntime"])
    again = profile_model(src, out=tmp_path / "ds", protocol=Protocol.quick(), resume=True)
    assert all(r.skipped for r in again)
    assert len(Dataset(tmp_path / "ds").read()) == len(df)


def test_resolve_model_forms(tmp_path):
    assert resolve_model("mobilenetv2@32").name == "mobilenetv2@32"
    assert resolve_model("fsrcnn@12x20").onnx.graph.input[0].type.tensor_type.shape.dim[2].dim_value == 12
    p = tmp_path / "m.tflite"
    p.write_bytes(onnx_to_tflite(build("espcn", res=(12, 20))))
    assert resolve_model(str(p)).tflite is not None
    with pytest.raises(DevprofError, match="not a file, a built-in family"):
        resolve_model("nosuchthing")


TORCH_NET = """
import torch.nn as nn

def tiny():
    return nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU6(),
                         nn.Conv2d(16, 16, 3, 1, 1, groups=16), nn.BatchNorm2d(16), nn.Hardswish(),
                         nn.Conv2d(16, 32, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
"""


def test_torch_factory(tmp_path, monkeypatch):
    """With the torch extra: export package.module:factory and walk it; without: a one-line error."""
    try:
        import torch  # noqa: F401
    except ImportError:
        with pytest.raises(DevprofError, match="needs torch"):
            resolve_model("mypkg.nets:make_net")
        return
    with pytest.raises(DevprofError, match="cannot import"):
        resolve_model("no_such_pkg_xyz.nets:make_net")
    (tmp_path / "devprof_test_nets.py").write_text(TORCH_NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    src = resolve_model("devprof_test_nets:tiny@32")
    ops = [l.spec.op for l in walk(src.onnx).layers]
    assert ops == ["conv2d", "dwconv2d", "pwconv", "global_avgpool", "fc"]
    run = profile_model(src, out=tmp_path / "ds", protocol=Protocol.quick())
    assert not any(r.error for r in run)
    assert all(r.measurement is not None for r in run[0].rows)  # kernels named after tensors map back


@pytest.mark.parametrize("kind", ["onnx-truncated", "onnx-garbage", "tflite-truncated", "tflite-garbage", "empty"])
def test_broken_model_files_give_one_line_errors(tmp_path, kind):
    onnx_bytes = build("mobilenetv1", res=32).SerializeToString()
    tfl = onnx_to_tflite(build("mobilenetv1", res=32))
    data = {"onnx-truncated": onnx_bytes[: len(onnx_bytes) // 3], "onnx-garbage": bytes(range(256)) * 20,
            "tflite-truncated": tfl[: len(tfl) // 4], "tflite-garbage": b"\x00\x00\x00\x00TFL3" + b"\xff" * 300,
            "empty": b""}[kind]
    p = tmp_path / ("m.tflite" if kind.startswith("tflite") else "m.onnx")
    p.write_bytes(data)
    with pytest.raises(DevprofError) as e:
        walk(p)
    assert "\n" not in str(e.value)
    with pytest.raises(DevprofError):
        resolve_model(str(p))
    if kind in ("onnx-truncated", "tflite-garbage"):  # the command line, as a user meets it
        r = run_cli("profile", "--model", str(p), "--out", str(tmp_path / "ds"), "--quick", timeout=120)
        assert r.returncode != 0
        lines = [l for l in r.stderr.splitlines() if l.strip() and not l.startswith("INFO")]
        assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
        assert "Traceback" not in r.stderr


def test_cli_profile_model_prints_the_layer_table(tmp_path):
    r = run_cli("profile", "--model", "mobilenetv2@48", "--out", str(tmp_path / "ds"), "--quick",
                "--runtime", "onnxruntime", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "median µs" in r.stdout and "share" in r.stdout and "blocks.1.expand" in r.stdout
    assert "records saved" in r.stderr
    df = Dataset(tmp_path / "ds").read()
    assert set(df.kind) == {"model", "layer"}


def test_kernels_named_after_tensors_map_back(tmp_path):
    """ORT names NCHWc kernels after their output tensor, not the node (torch exports differ)."""
    m = build("mobilenetv1", res=32)
    for i, n in enumerate(m.graph.node):
        n.name = f"/{i}/{n.op_type}"
    run = profile_model(ModelSource("renamed", onnx=m), out=tmp_path / "ds", protocol=Protocol.quick(),
                        runtimes=["onnxruntime"])[0]
    assert not run.error
    timed = [r for r in run.rows if r.measurement is not None]
    assert len(timed) == len(run.rows)  # every layer of MobileNetV1 runs a kernel
    assert all(r.measurement.median_us > 0 for r in timed)


def test_unnamed_nodes_keep_their_layer_time(tmp_path):
    """A model whose nodes have no name (as `onnx.helper` builds them) still maps the profiler's
    kernels to its layers: the conv's time is its layer's, not 0 µs "fused away"."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 8, 3, 3)).astype(np.float32), "W")
    g = helper.make_graph([helper.make_node("Conv", ["x", "W"], ["y"], pads=[1, 1, 1, 1])], "unnamed",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 32, 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 32, 32])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    assert not m.graph.node[0].name
    (run,) = profile_model(ModelSource("unnamed", onnx=m), out=tmp_path / "ds", protocol=Protocol.quick(),
                           runtimes=["onnxruntime"])
    assert not run.error and not run.unmapped
    (row,) = run.rows
    assert row.measurement is not None and row.layer.name == "Conv_0"
    # the conv is nearly all of the model's time
    assert run.layer_sum_us > 0.5 * run.reference_us
    df = Dataset(tmp_path / "ds").read()
    assert (df[(df.kind == "layer") & (df.layer_name == "Conv_0")].median_us > 0).all()
    assert not m.graph.node[0].name  # the caller's model is left as it was


def test_a_graph_the_numpy_evaluator_cannot_run_is_timed_and_marked_unchecked(tmp_path):
    """ONNX Runtime's contrib ops run in ORT but not in onnx.reference: the model is still
    profiled, and its records say nothing checked its output."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 16)).astype(np.float32), "W")
    node = helper.make_node("FusedMatMul", ["x", "W"], ["y"], domain="com.microsoft", alpha=1.0, name="mm")
    g = helper.make_graph([node], "contrib", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 16])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    (run,) = profile_model(ModelSource("contrib", onnx=m), out=tmp_path / "ds", protocol=Protocol.quick(),
                           runtimes=["onnxruntime"])
    assert not run.error and run.e2e is not None
    df = Dataset(tmp_path / "ds").read()
    assert len(df) and set(df.checked) == {""}
