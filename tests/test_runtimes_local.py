"""ONNX Runtime and LiteRT on `local`: every op's output matches numpy, and wrong kernels are refused."""
import numpy as np
import pytest

from devprof import runtimes
from devprof.devices import LocalDevice
from devprof.measure import Protocol
from devprof.profile import profile
from devprof.records import KernelSpec
from devprof.runtimes.onnxruntime import OnnxRuntime
from devprof.store import Dataset

SPECS = [
    KernelSpec("conv2d", 1, 9, 11, 5, 7, 3, 3, 1, 1, activation="relu"),
    KernelSpec("conv2d", 1, 10, 10, 4, 6, 3, 3, 2, 1, activation="relu6"),  # SAME pads differ from ONNX's
    KernelSpec("conv2d", 1, 9, 9, 4, 6, 5, 5, 2, 2, activation="hswish"),
    KernelSpec("conv2d", 1, 8, 8, 4, 4, 3, 3, 1, 0),
    KernelSpec("dwconv2d", 1, 12, 12, 8, 8, 3, 3, 2, 1, groups=8, activation="relu6"),
    KernelSpec("pwconv", 2, 5, 5, 8, 16),
    KernelSpec("fc", n=3, cin=20, cout=7),
    KernelSpec("maxpool", 1, 9, 9, 4, 4, 3, 3, 2, 1, bias=False),
    KernelSpec("avgpool", 1, 8, 8, 4, 4, 2, 2, 2, 0, bias=False),
    KernelSpec("global_avgpool", 1, 7, 7, 16, 16, bias=False),
    KernelSpec("add", 1, 6, 6, 8, 8, bias=False),
    KernelSpec("depth_to_space", 1, 5, 5, 12, 3, bias=False, attrs={"block": 2}),
]


@pytest.mark.parametrize("name", ["onnxruntime", "litert", "litert-builtin"])
def test_every_op_is_correct_and_timed(name):
    rt = runtimes.get_runtime(name)
    dev = LocalDevice()
    outs = list(rt.measure(dev, SPECS, 1, Protocol.quick()))
    assert [o.spec for o in outs] == SPECS
    for o in outs:
        assert o.ok, f"{o.spec.key}: {o.error}"
        assert o.measurement.median_us > 0 and o.measurement.repeats >= 5


class WrongOnnxRuntime(OnnxRuntime):
    """A real ORT kernel built from wrong weights: what a buggy builder would produce."""

    name = "onnxruntime-wrong"

    def build(self, spec, tensors):
        bad = dict(tensors)
        if "w" in bad:
            bad["w"] = bad["w"] * np.float32(1.01)
        return super().build(spec, bad)


def test_wrong_kernel_is_refused_and_never_recorded(tmp_path, monkeypatch):
    monkeypatch.setitem(runtimes.RUNTIMES, "onnxruntime-wrong", f"{__name__}:WrongOnnxRuntime")
    specs = [KernelSpec("conv2d", 1, 8, 8, 4, 8, 3, 3, 1, 1), KernelSpec("maxpool", 1, 8, 8, 4, 4, 2, 2, 2, 0, bias=False)]
    s = profile(LocalDevice(), specs, ["onnxruntime-wrong"], tmp_path / "d", protocol=Protocol.quick())
    assert s.failed == 1 and s.measured == 1  # the conv is wrong; the weightless pool is right
    ds = Dataset(tmp_path / "d")
    assert list(ds.read()["op"]) == ["maxpool"]
    (fail,) = ds.failures()
    assert fail["spec_key"] == specs[0].key and "wrong output" in fail["error"]
