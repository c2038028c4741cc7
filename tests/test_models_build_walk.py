"""Built-in model families: valid ONNX, every node walked, same answers in ONNX Runtime and LiteRT."""
from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devprof.errors import DevprofError
from devprof.models.builders import FAMILIES, build, reference_config
from devprof.models.tflite_export import onnx_to_tflite
from devprof.models.variants import expand_entry, variants
from devprof.models.walk import FUSIONS, walk
from devprof.records import OPS

SMALL = {"classification": 48, "sr": (12, 20), "transformer": 16}


def small(name: str, seed: int = 0):
    """Each family at a small input; ResNet-50 also at quarter width (its full width is 25M weights),
    BERTs at two layers."""
    res = SMALL[FAMILIES[name].kind]
    if name == "resnet50":
        cfg = reference_config(name, res)
        cfg.update(stem=16, widths=[16, 32, 64, 128])
        return build(name, cfg, seed=seed)
    if FAMILIES[name].kind == "transformer":  # two encoder layers of the family's width
        cfg = reference_config(name, res)
        cfg["layers"] = min(cfg["layers"], 2)
        return build(name, cfg, seed=seed)
    return build(name, res=res, seed=seed)


@pytest.fixture(scope="module")
def models():
    return {name: small(name) for name in FAMILIES}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_builder_passes_checker_and_runs(models, name):
    m = models[name]
    onnx.checker.check_model(m, full_check=True)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    y = sess.run(None, {inp.name: np.random.default_rng(1).random(inp.shape, dtype=np.float32)})[0]
    assert np.isfinite(y).all()
    if FAMILIES[name].kind == "sr":  # x2 super-resolution
        assert y.shape[2:] == (2 * inp.shape[2], 2 * inp.shape[3])


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_walk_covers_every_node(models, name, fusion):
    m = models[name]
    ml = walk(m, fusion=fusion)
    covered = [n for layer in ml.layers for n in layer.nodes]
    assert sorted(covered) == sorted(n.name for n in m.graph.node), "every node is in exactly one layer"
    for layer in ml.layers:
        assert layer.spec.op in OPS
        if layer.spec.op == "other":  # explicit, named, never silently dropped
            assert layer.spec.a.get("onnx_op")
    assert [l.index for l in ml.layers] == list(range(len(ml)))


def test_walk_fuses_like_the_runtimes(models):
    m = models["mobilenetv2"]
    generic, ortf = walk(m), walk(m, fusion="onnxruntime")
    first = generic.layers[0]
    assert first.spec.op == "conv2d" and first.spec.activation == "relu6" and first.spec.bias  # BN folded
    assert first.ops == ["Conv", "BatchNormalization", "Clip"]
    assert any(l.spec.op == "add" for l in generic.layers)
    assert not any(l.spec.op == "add" for l in ortf.layers)  # NCHWc sums into the conv
    assert any(l.spec.a.get("sum") for l in ortf.layers)
    # ShuffleNet's channel shuffle and split are explicit `other` layers
    kinds = {l.spec.a.get("onnx_op") for l in walk(models["shufflenetv2"]).unknown}
    assert {"Transpose", "Split"} <= kinds
    # swish is one activation for ORT (QuickGelu) and folded into the conv generically
    e_ort = walk(models["efficientnet_b0"], fusion="onnxruntime")
    assert any(l.spec.op == "activation" and l.spec.a.get("kind") == "swish" for l in e_ort.layers)
    assert walk(models["efficientnet_b0"]).layers[0].spec.activation == "swish"


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_tflite_export_matches_onnxruntime(models, name):
    from ai_edge_litert.interpreter import Interpreter

    m = models[name]
    tfl = onnx_to_tflite(m)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = np.random.default_rng(2).random(inp.shape, dtype=np.float32)
    y = sess.run(None, {inp.name: x})[0]
    it = Interpreter(model_content=tfl)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], np.ascontiguousarray(x.transpose(0, 2, 3, 1) if x.ndim == 4 else x))
    it.invoke()
    z = it.get_tensor(it.get_output_details()[0]["index"])
    z = z.transpose(0, 3, 1, 2) if z.ndim == 4 else z
    np.testing.assert_allclose(z, y, rtol=1e-4, atol=1e-4 * float(np.abs(y).max()))
    # the .tflite walks too, every operator accounted for
    ml = walk(tfl)
    assert ml.source == "tflite" and len(ml) > 0
    assert all(l.spec.op != "other" or l.spec.a.get("tflite_op") for l in ml.layers)


def test_tflite_walk_agrees_with_onnx_litert_fusion(models):
    for name in ("mobilenetv2", "resnet18", "squeezenet", "espcn", "bert_tiny"):
        a = sorted(l.spec.key for l in walk(models[name], fusion="litert").layers)
        b = sorted(l.spec.key for l in walk(onnx_to_tflite(models[name])).layers)
        assert a == b, name


def test_variants_are_seeded_and_differ():
    a = variants("mobilenetv2", 4, seed=3, res=[64, 96])
    b = variants("mobilenetv2", 4, seed=3, res=[64, 96])
    assert a == b
    assert len({n for n, _ in a}) == 4
    assert variants("mobilenetv2", 4, seed=4, res=[64, 96]) != a
    assert variants("resnet18", 2, seed=0, res=64, reference=True)[0][0].startswith("resnet18-ref-64x64")
    for fam in ("shufflenetv2", "edsr", "mobilenetv3"):
        res = [[12, 20]] if FAMILIES[fam].kind == "sr" else [48]
        for _, m in expand_entry({"family": fam, "variants": 2, "seed": 5, "res": res}):
            onnx.checker.check_model(m)
            assert not [l for l in walk(m).unknown if l.spec.a.get("onnx_op") not in ("Transpose", "Split")]


def test_bad_model_entry_is_one_line_error():
    with pytest.raises(DevprofError, match="unknown key"):
        expand_entry({"family": "mobilenetv2", "widht": 2})
    with pytest.raises(DevprofError, match="unknown model family"):
        expand_entry({"family": "vgg16"})


@pytest.fixture(scope="module")
def model_files():
    m = build("mobilenetv2", res=32)
    return m.SerializeToString(), onnx_to_tflite(m)


@settings(max_examples=int(os.environ.get("DEVPROF_FUZZ_EXAMPLES", 25)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_model_bytes_never_crash_the_walk(model_files, data):
    """Truncated or bit-flipped files: the walk either works or raises devprof's one-line error."""
    for blob in model_files:
        b = bytearray(blob)
        if data.draw(st.booleans(), label="truncate"):
            b = b[: data.draw(st.integers(0, len(b) - 1), label="cut")]
        else:
            for _ in range(data.draw(st.integers(1, 8), label="flips")):
                b[data.draw(st.integers(0, len(b) - 1))] ^= 1 << data.draw(st.integers(0, 7))
        try:
            walk(bytes(b))
        except DevprofError as e:
            assert "\n" not in str(e)
