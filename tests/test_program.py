"""A whole model as one generated program: planned, checked against ONNX Runtime on the same
(pruned) weights, and timed with its layers timed inside the same calls."""
from __future__ import annotations

import numpy as np
import pytest

from devprof.errors import UsageError
from devprof.measure import Protocol
from devprof.models.builders import build
from devprof.model_profiling.program import plan
from devprof.model_profiling.prune import parse_prune

PROTO = Protocol.quick().with_cpus("0")


@pytest.fixture(scope="module")
def local():
    from devprof.devices import resolve_device
    from devprof.runtimes import get_runtime

    dev = resolve_device("local")
    rt = get_runtime("devprof-c")
    why = rt.available(dev)
    if why:
        pytest.skip(f"devprof-c not available here: {why}")
    return dev, rt


@pytest.mark.parametrize("family,res,prune", [
    ("mobilenetv2", 32, "bcr:0.9"),  # conv/dw/pw with relu6, residual adds, global pool, fc
    ("resnet18", 32, "unstructured:0.75"),  # max pool, add+relu
    ("wdsr", (12, 20), None),  # SR: depth-to-space, a skip branch
])
def test_program_matches_onnxruntime_and_times_every_layer(local, family, res, prune):
    from devprof.runtimes.harness import measure_program

    dev, rt = local
    o, layers, prog = measure_program(rt, dev, build(family, res=res), parse_prune(prune) if prune else None, PROTO,
                                      name=f"t_{family}")
    assert o.ok, o.error
    assert o.checked == "onnxruntime on the same pruned weights"
    assert len(layers) == len(prog.steps) and all(m.median_us > 0 for m in layers)
    # per-layer times come from the same rounds as the end-to-end samples (no timing asserted)
    assert all(m.repeats == o.measurement.repeats for m in layers)
    if prune:  # prunable layers run pruned, depthwise ones stay dense
        schemes = {s.spec.op: s.spec.sparsity.scheme for s in prog.steps}
        assert schemes.get("pwconv", schemes.get("conv2d")) == prune.split(":")[0]
        assert schemes.get("dwconv2d", "dense") == "dense"
    # buffers are reused by liveness: far fewer than layers
    assert len(prog.buffers) < len(prog.steps) / 2


def test_a_wrong_program_is_refused_not_timed(local):
    from devprof.artifacts.harness_build import build_batch, host_toolchain, vector_shape
    from devprof.runtimes.harness import PROGRAM_RTOL, parse_harness_output
    import subprocess

    tc = host_toolchain()
    vl, regs = vector_shape(tc)
    prog = plan(build("espcn", res=(8, 12)), None, name="t_wrong", vector_floats=vl, vector_regs=regs)
    prog.arrays[1] = (prog.arrays[1] + np.float32(1.0)).astype(np.float32)  # the reference says otherwise
    b = build_batch([prog], tc)
    p = subprocess.run([str(b.binary), *PROTO.harness_args(), f"--rtol={PROGRAM_RTOL}"], cwd=b.folder,
                       capture_output=True, text=True, timeout=120)
    line = parse_harness_output(p.stdout).lines["t_wrong"]
    assert line.status == "mismatch" and not line.samples_us


def test_a_layer_the_program_cannot_run_is_one_line():
    with pytest.raises(UsageError) as e:
        plan(build("fsrcnn", res=(8, 12)))  # PReLU activations (and a ConvTranspose tail)
    msg = str(e.value)
    assert "prelu" in msg and "onnxruntime, litert" in msg and "\n" not in msg


def test_report_sets_the_pruned_program_against_the_dense_runtimes(local, tmp_path):
    """`devprof report`'s program section: the pruned program end to end next to the dense model
    in ORT on the same device, the speedup, Σ in program vs Σ alone, and the dominant layers."""
    from devprof.model_profiling.profile import profile_model
    from devprof.report import build_document

    runs = profile_model("espcn@8x12", runtimes=["devprof-c", "onnxruntime"], out=tmp_path / "ds", protocol=PROTO,
                         prune="bcr:0.9")
    assert all(not r.error for r in runs), [r.error for r in runs]
    doc, _ = build_document([tmp_path / "ds"], strict=True, figures=False)
    sec = next(s for s in doc.sections if s.key == "programs")
    assert not sec.missing, sec.missing
    main, top = sec.tables
    (row,) = main.rows
    assert row[0].startswith("espcn") and "bcr(block=4x16)@0.9" in row[0]
    assert row[3] != "-" and row[5].split(" / ")[0].endswith("x")  # ORT dense time and the speedup over it
    assert len(top.rows) == 4  # espcn's 4 layers, slowest first


def test_fit_predictor_learns_the_model_correction_from_program_runs(local, tmp_path):
    """A devprof-c bundle's whole-model part (in-model layer table + overhead) is fitted from the
    end-to-end program runs; the pruned layer chains (layers timed alone, summed) are not runs."""
    import json

    from support.cli import run_cli

    ds = tmp_path / "ds"
    for argv in (["--suite", "smoke", "--where", "op=pwconv"], ["--model", "espcn@8x12", "--prune", "bcr:0.9", "--resume"]):
        r = run_cli("profile", *argv, "-r", "devprof-c", "--quick", "--cores", "0", "--out", str(ds))
        assert r.returncode == 0, r.stderr
    r = run_cli("fit-predictor", str(ds), "-o", str(tmp_path / "b"), "--estimator", "flops_linear", "--json")
    assert r.returncode == 0, r.stderr
    (b,) = json.loads(r.stdout)
    mm = b["metrics"]["model"]
    assert mm["n_train_models"] + mm["n_test_models"] == 2  # the dense and the pruned program, not the chains
    assert "overhead" in mm
