"""--prune: parsing, and a small pruned model timed layer by layer with generated kernels."""
from __future__ import annotations

import pytest

from devprof.errors import DevprofError
from devprof.measure import Protocol
from devprof.model_profiling.profile import profile_model
from devprof.model_profiling.prune import parse_prune
from devprof.store import Dataset


def test_parse_prune():
    sp = parse_prune("bcr:0.9")
    assert (sp.scheme, sp.ratio, sp.p["block"]) == ("bcr", 0.9, (4, 16))
    assert parse_prune("block:0.8:block=8x1").p["block"] == (8, 1)
    assert parse_prune("nm:0.5:n=2,m=4").p == {"n": 2, "m": 4}
    for bad in ("bcr", "foo:0.5", "bcr:x", "bcr:1.5", "bcr:0.5:block"):
        with pytest.raises(DevprofError):
            parse_prune(bad)


def test_pruned_model_layers_dense_and_sparse(tmp_path):
    from devprof.devices import resolve_device
    from devprof.runtimes import get_runtime

    dev = resolve_device("local")
    why = get_runtime("devprof-c").available(dev)
    if why:
        pytest.skip(f"devprof-c not available here: {why}")
    runs = profile_model("espcn@8x12", out=tmp_path / "ds", protocol=Protocol.quick().with_cpus("0"),
                         prune="unstructured:0.75")
    dense, sparse, pdense, psparse = runs  # layers alone, then the model as one program each
    assert not dense.error and not sparse.error, (dense.error, sparse.error)
    assert dense.e2e and sparse.e2e
    assert not pdense.error and not psparse.error, (pdense.error, psparse.error)
    assert psparse.name == sparse.name + "|program" and len(psparse.rows) == 4  # 3 convs + depth-to-space
    df = Dataset(tmp_path / "ds").read()
    assert set(df.runtime) == {"devprof-c"}
    prog = df[(df.kind == "model") & (df.model_name == psparse.name)]
    assert len(prog) == 1 and '"composed":"program"' in prog.iloc[0]["attrs"]
    assert prog.iloc[0]["checked"] == "onnxruntime on the same pruned weights"
    inmodel = df[(df.kind == "layer") & (df.model_name == psparse.name)]
    assert len(inmodel) == 4 and all('"in_model":1' in a for a in inmodel.attrs)
    layers = df[(df.kind == "layer") & (df.model_name == sparse.name)]
    assert len(layers) == 3 and set(layers.scheme) == {"unstructured"}
    assert set(df[(df.kind == "layer") & (df.model_name == dense.name)].scheme) == {"dense"}
    model = df[(df.kind == "model") & (df.model_name == sparse.name)]
    assert len(model) == 1 and '"composed":"sum-of-layers"' in model.iloc[0]["attrs"]
    # every layer was checked against the numpy reference by the harness and carries the
    # conditions it was timed under (pinned to CPU 0), as kernels of a suite do
    from support.conditions import assert_full_conditions

    from devprof.runtimes.harness import PROGRAM_CHECKED

    for _, row in df.iterrows():
        prog_row = str(row["model_name"]).endswith("|program")
        assert_full_conditions(row, cpus="0", **({"checked": PROGRAM_CHECKED} if prog_row else {}))
