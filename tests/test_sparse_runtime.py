"""The devprof-c runtime through the Device seam, and its JSON-line parser on hostile input."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devprof.devices.local import LocalDevice
from devprof.measure import Protocol
from devprof.records import KernelSpec, Sparsity
from devprof.runtimes import get_runtime
from devprof.runtimes.harness import parse_harness_output, parse_line

GOOD = {"v": 1, "harness": "devprof-harness/1.2", "kernel": "kabc_sparse", "spec_id": "abc", "variant": "sparse",
        "status": "ok", "warmups": 3, "number": 10, "checksum": 1.5, "max_abs_err": 1e-7, "checked": 4,
        "samples_us": [10.5, 11.0, 10.7]}


def test_parser_accepts_good_lines_and_rejects_bad_ones():
    text = "\n".join([
        json.dumps({"event": "start", "kernels": 2}),
        json.dumps(GOOD),
        json.dumps({**GOOD, "kernel": "k2", "status": "mismatch", "error": "output mismatch at element 3"}),
        json.dumps(GOOD)[:40],  # truncated
        "garbage {{{", "[1, 2]", "{}",
        json.dumps({**GOOD, "kernel": "k3", "samples_us": [1.0, -2.0]}),
        json.dumps({**GOOD, "kernel": "k4", "samples_us": "1,2"}),
        json.dumps({**GOOD, "kernel": "k5", "number": 0}),
        json.dumps({**GOOD, "kernel": "k6", "samples_us": []}),
        json.dumps({**GOOD, "kernel": "k7", "status": "weird"}),
        json.dumps({**GOOD, "spec_id": 7, "kernel": "k8"}),
        '{"kernel": "k9", "status": "ok", "samples_us": [NaN]}',
    ])
    out = parse_harness_output(text)
    assert out.started and not out.ended
    assert set(out.lines) == {"kabc_sparse", "k2"}
    assert out.lines["kabc_sparse"].samples_us == (10.5, 11.0, 10.7)
    assert out.lines["k2"].status == "mismatch" and out.lines["k2"].samples_us == ()
    assert out.rejected == 11


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                 st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
                              lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=6),
                              max_leaves=20).map(json.dumps),
                 st.dictionaries(st.sampled_from(list(GOOD)), st.sampled_from(list(GOOD.values()) + [None, -1, "x"]))
                 .map(lambda d: json.dumps({**GOOD, **d}))))
def test_parser_never_raises(text):
    out = parse_harness_output(text)
    for line in out.lines.values():
        assert line.status in ("ok", "mismatch", "error")
        if line.status == "ok":
            assert line.samples_us and all(x >= 0 for x in line.samples_us) and line.number >= 1
    parse_line(text)


@pytest.fixture
def device(tmp_path, monkeypatch):
    monkeypatch.setenv("DEVPROF_CACHE", str(tmp_path / "cache"))
    return LocalDevice(cache_dir=tmp_path / "cache")


def test_runtime_measures_through_the_device(device):
    rt = get_runtime("devprof-c")
    assert rt.available(device) is None and rt.batch_size > 1
    specs = [KernelSpec("conv2d", h=10, w=12, cin=8, cout=16, kh=3, kw=3, stride=2, padding=1,
                        sparsity=Sparsity("pattern", 0.8)),
             KernelSpec("pwconv", h=9, w=9, cin=16, cout=8, activation="relu6"),
             KernelSpec("fc", n=1, cin=40, cout=10, sparsity=Sparsity("nm", 0.5, {"n": 2, "m": 4})),
             KernelSpec("fc", n=3, cin=40, cout=10, sparsity=Sparsity("bcr", 0.5), attrs={"kernel": "csr"})]
    specs.append(specs[1])  # a duplicate spec in one batch is measured once, reported twice
    outs = list(rt.measure(device, specs, 1, Protocol.quick()))
    assert sorted(o.spec.id for o in outs) == sorted(s.id for s in specs)
    assert all(o.ok for o in outs), [o.error for o in outs]
    assert all(o.harness_version.startswith("devprof-harness/") for o in outs)
    info = rt.info(device, 1)
    assert info.name == "devprof-c" and info.options
    assert rt.supports(KernelSpec("maxpool", h=4, w=4, cin=2, cout=2, kh=2, kw=2, stride=2))
    assert rt.supports(KernelSpec("pwconv", h=4, w=4, cin=2, cout=2, sparsity=Sparsity("pattern", 0.6)))
    assert rt.supports(KernelSpec("fc", cin=4, cout=4, attrs={"kernel": "blas"}))
