"""`predictors` is a standalone API: it imports nothing from devprof, so search code can load a
bundle and query it on a machine where devprof (and its runtimes, adb, compilers) is absent."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "datasets_latency" / "local" / "onnxruntime-t1"

_SCRIPT = r"""
import sys
sys.modules["devprof"] = None  # any `import devprof...` now raises ImportError
import predictors
from predictors.spec import KernelSpec
p = predictors.load(sys.argv[1])
specs = [KernelSpec("conv2d", h=28, w=28, cin=32, cout=64, kh=3, kw=3, padding=1),
         KernelSpec("pwconv", h=14, w=14, cin=64, cout=128), KernelSpec("fc", n=1, cin=512, cout=1000)]
r = p.predict(specs)
assert len(r.latency_us) == 3 and (r.latency_us > 0).all(), r.latency_us
m = p.predict_model(specs)
assert m.total_us > 0
try:
    p.predict_model(sys.argv[1] + "/metadata.json")  # a file, but no walker without devprof
except predictors.BundleError as e:
    assert "walker" in str(e), e
else:
    raise AssertionError("a model file was walked without devprof")
import predictors.fit, predictors.transfer, predictors.estimators, predictors.trees  # noqa: E401
leaked = sorted(n for n in sys.modules if n == "devprof" or n.startswith("devprof."))
assert leaked == ["devprof"], leaked  # only the blocker itself
print("ok", float(m.total_us))
"""


def test_predictors_imports_nothing_from_devprof() -> None:
    r = subprocess.run([sys.executable, "-c", _SCRIPT, str(BUNDLE)], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("ok ")


def test_no_predictors_module_names_devprof_in_an_import() -> None:
    for f in (ROOT / "predictors").glob("*.py"):
        for line in f.read_text().splitlines():
            s = line.strip()
            assert not (s.startswith(("import devprof", "from devprof"))), f"{f.name}: {s}"


def test_isa_geometry_matches_devprof_isas() -> None:
    from devprof.artifacts.isa import ISAS
    from predictors.features import ISA_GEOMETRY

    assert ISA_GEOMETRY == {k: (v.vector_floats, v.vector_regs) for k, v in ISAS.items()}


def test_int8_and_fp16_tiles_match_devprofs_generators() -> None:
    from devprof.sparse import codegen_fp16, codegen_int8
    from predictors import features as f

    assert f.FP16_GEOMETRY == (codegen_fp16.LANES, codegen_fp16.REGS)
    assert (f.INT8_UNIT, f.INT8_TILE_UNITS, f.INT8_TILE_UNITS_MAX, f.INT8_TILE_BYTES) == (
        codegen_int8.UNIT, codegen_int8.TILE_UNITS, codegen_int8.TILE_UNITS_MAX, codegen_int8.TILE_BYTES)
