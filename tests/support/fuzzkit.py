"""Fuzz targets for every parser devprof owns: no input may raise anything but a DevprofError.

Shared by the bounded test (tests/test_fuzz_parsers.py) and the long run (bench/fuzz.py).
Parsers: the native harness's JSON lines, `benchmark_model` op-profiling summaries, ORT profile
JSON, suite TOML, ONNX and TFLite model walking, predictor bundle files. Inputs are hypothesis-
generated: valid documents mutated (truncated, bytes flipped, fields swapped for hostile values,
subtrees replaced), hostile JSON values (huge ints, NaN, deep nesting) and raw text. An input
*fails* when the parser raises an exception that is not devprof's own one-line error, returns an
inconsistent result, or (bundles) executes anything. The test suite runs the same targets with a
bounded number of examples (tests/test_fuzz_parsers.py).
"""
from __future__ import annotations

import atexit
import functools
import json
import math
import os
import shutil
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
for _p in (ROOT / "tests", ROOT):  # support.*, and this checkout's `predictors` whatever the venv says
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from devprof.errors import DevprofError  # noqa: E402

# ---------------------------------------------------------------------------------- values
HUGE_INTS = st.sampled_from([2 ** 63, -(2 ** 63) - 1, 10 ** 400, -1, 0, 2 ** 31, 2 ** 64 + 1])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 40), max_value=2 ** 40), HUGE_INTS,
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
JSON_VALUES = st.recursive(SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                           max_leaves=12)
DEEP = st.integers(min_value=100, max_value=50_000).map(lambda n: "[" * n + "1" + "]" * (n % 3))
NASTY_TEXT = st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                       DEEP, st.sampled_from(["", "\x00", "{", "[", "null", "NaN", "1e999", "{}" * 50, "\ud800x"]))


def dumps(v: Any) -> str:
    """json.dumps that also writes NaN/Infinity and huge ints, as a buggy tool might."""
    return json.dumps(v, allow_nan=True)


@st.composite
def mutated_text(draw, seed_text: str) -> str:
    """A document with a few random edits: cut, delete, insert, replace a number or a line."""
    s = seed_text
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["cut", "del", "ins", "num", "line", "dup"]))
        i = draw(st.integers(0, max(0, len(s))))
        if op == "cut":
            s = s[:i]
        elif op == "del":
            s = s[:i] + s[i + draw(st.integers(1, 50)):]
        elif op == "ins":
            s = s[:i] + draw(st.one_of(st.text(max_size=20), st.sampled_from(["\t", "\n", "=", "count=", "-1", "nan", "inf", "1e400", '"', "]", "}"]))) + s[i:]
        elif op == "num":
            j = i
            while j < len(s) and not s[j].isdigit():
                j += 1
            k = j
            while k < len(s) and (s[k].isdigit() or s[k] in ".-e"):
                k += 1
            s = s[:j] + draw(st.sampled_from(["-1", "nan", "inf", "1e400", "99999999999999999999999", "", "0", "x", "1.2.3", "--5"])) + s[k:]
        elif op == "line":
            lines = s.splitlines()
            if lines:
                lines[draw(st.integers(0, len(lines) - 1))] = draw(st.text(max_size=40))
                s = "\n".join(lines)
        else:
            lines = s.splitlines()
            if lines:
                j = draw(st.integers(0, len(lines) - 1))
                lines.insert(j, lines[j])
                s = "\n".join(lines)
    return s


@st.composite
def mutated_json(draw, doc: Any, max_edits: int = 3) -> Any:
    """A JSON document with random subtrees replaced by hostile values (or removed)."""
    import copy

    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, max_edits))):
        node, parent, key = doc, None, None
        for _depth in range(draw(st.integers(0, 6))):
            if isinstance(node, dict) and node:
                key = draw(st.sampled_from(sorted(node, key=str)))
            elif isinstance(node, list) and node:
                key = draw(st.integers(0, len(node) - 1))
            else:
                break
            parent, node = node, node[key]
        if parent is None:
            continue
        if isinstance(parent, dict) and draw(st.booleans()) and draw(st.booleans()):
            parent.pop(key, None)
        else:
            parent[key] = draw(JSON_VALUES)
    return doc


# --------------------------------------------------------------------------------- targets
@dataclass
class Target:
    name: str
    strategy: Callable[[], st.SearchStrategy]
    check: Callable[[Any], None]  # raises on failure; DevprofError means a clean refusal
    calls: int = 0
    refused: int = 0
    accepted: int = 0
    failures: list[str] = field(default_factory=list)


# ---- harness JSON lines
def _harness_strategy() -> st.SearchStrategy:
    good = st.fixed_dictionaries(
        {"kernel": st.text(max_size=12), "status": st.sampled_from(["ok", "mismatch", "error", "OK", ""])},
        optional={"samples_us": st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), SCALARS), max_size=8),
                  "warmups": SCALARS, "number": SCALARS, "checksum": SCALARS, "max_abs_err": SCALARS,
                  "spec_id": SCALARS, "variant": SCALARS, "harness": SCALARS, "error": SCALARS, "event": SCALARS})
    line = st.one_of(good.map(dumps), good.map(dumps).flatmap(lambda s: st.integers(0, len(s)).map(lambda i: s[:i])),
                     st.dictionaries(st.sampled_from(["kernel", "status", "samples_us", "event", "number", "warmups"]),
                                     JSON_VALUES, max_size=6).map(dumps),
                     st.just('{"event": "start"}'), st.just('{"event": "end"}'), NASTY_TEXT)
    return st.lists(line, max_size=8).map("\n".join)


def _harness_check(text: str) -> None:
    from devprof.records import Measurement
    from devprof.runtimes.harness import parse_harness_output

    out = parse_harness_output(text)
    for ln in out.lines.values():
        assert ln.status in ("ok", "mismatch", "error"), ln.status
        if ln.status == "ok":
            assert ln.samples_us and all(math.isfinite(x) and x >= 0 for x in ln.samples_us)
            m = Measurement(ln.samples_us, warmups=ln.warmups, number=ln.number)
            assert m.median_us >= 0


# ---- benchmark_model summaries
@functools.lru_cache(None)
def _bm_sample() -> str:
    return (ROOT / "tests/data/phone_tools/benchmark_model_op_profiling.txt").read_text()


def _bm_strategy() -> st.SearchStrategy:
    from devprof.runtimes.phone_tools import _REP

    one = st.one_of(mutated_text(_bm_sample()), NASTY_TEXT)
    return st.one_of(one, st.lists(one, min_size=1, max_size=3).map(
        lambda chunks: "".join(f"{_REP} {i}\n{c}\n" for i, c in enumerate(chunks))))


def _bm_check(text: str) -> None:
    from devprof.measure import Protocol
    from devprof.runtimes.phone_tools import TFLiteBenchmark, parse_benchmark_model

    try:
        rep = parse_benchmark_model(text)
        assert rep.ops or rep.runs is not None
    finally:
        m = TFLiteBenchmark().parse(text, Protocol.quick())
        assert m.samples_us and m.median_us == m.median_us


# ---- ORT profile JSON
@functools.lru_cache(None)
def _ort_sample() -> Any:
    return json.loads((ROOT / "tests/data/phone_tools/ort_perf_test_profile.json").read_text())


def _ort_strategy() -> st.SearchStrategy:
    doc = _ort_sample()
    return st.one_of(mutated_json(doc).map(dumps), mutated_text(json.dumps(doc)), NASTY_TEXT,
                     st.lists(st.dictionaries(st.sampled_from(["name", "cat", "ts", "dur", "args", "ph"]), JSON_VALUES),
                              max_size=6).map(dumps),
                     st.binary(max_size=64))


def _ort_check(data: Any) -> None:
    from devprof.measure import Protocol
    from devprof.runtimes.phone_tools import OrtPerfTest, parse_ort_profile

    try:
        prof = parse_ort_profile(data)
        assert all(math.isfinite(x) and x >= 0 for x in prof.run_kernel_us)
    finally:
        if isinstance(data, str):
            OrtPerfTest().parse("@@devprof-profile" + data, Protocol.quick())


# ---- suite TOML
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if not isinstance(v, float) or math.isfinite(v) else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v)  # TOML basic strings accept JSON escapes (mostly: bad ones are bad input)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(x)}" for k, x in v.items()) + " }"
    return '""'


def _suite_strategy() -> st.SearchStrategy:
    small = st.one_of(st.integers(-3, 70), st.floats(-1, 2), st.text(max_size=6), st.booleans(), HUGE_INTS.filter(lambda x: abs(x) < 2 ** 63))
    val = st.one_of(small, st.lists(small, max_size=3), st.dictionaries(st.text(max_size=5), small, max_size=2))
    ops = st.sampled_from(["conv2d", "dwconv2d", "pwconv", "fc", "maxpool", "add", "bogus", "depth_to_space"])
    keys = st.sampled_from(["n", "h", "w", "hw", "cin", "cout", "c", "k", "kh", "kw", "stride", "padding", "groups",
                            "dilation", "activation", "bias", "dtype", "sparsity", "attrs", "zzz"])
    kernel = st.builds(lambda op, d: {"op": op, **d}, ops, st.dictionaries(keys, val, max_size=6))
    sparsity = st.lists(st.fixed_dictionaries({"scheme": st.sampled_from(["bcr", "nm", "block", "pattern", "unstructured", "dense", "x"])},
                                              optional={"ratio": st.one_of(st.lists(st.floats(-0.5, 1.5), max_size=3), small),
                                                        "params": st.dictionaries(st.sampled_from(["block", "n", "m", "patterns"]), val, max_size=2)}),
                        max_size=2)
    shape = st.dictionaries(keys, st.one_of(st.lists(st.integers(-2, 40), max_size=3), small,
                                            st.fixed_dictionaries({"min": small, "max": small})), max_size=5)
    family = st.fixed_dictionaries({"op": ops}, optional={"sampling": st.sampled_from(["grid", "random", "sobol"]),
                                                          "count": st.one_of(st.integers(-1, 6), small), "seed": small,
                                                          "shape": shape, "sparsity": sparsity, "zzz": small})
    doc = st.fixed_dictionaries({"suite": st.fixed_dictionaries({"name": st.one_of(st.text(max_size=8), small)},
                                                                optional={"runtimes": val, "description": val})},
                                optional={"kernels": st.lists(kernel, max_size=3), "family": st.lists(family, max_size=2),
                                          "model": st.lists(st.dictionaries(st.sampled_from(["family", "path", "variants"]), val), max_size=2)})

    def to_toml(d: dict) -> str:
        out = ["[suite]"] + [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in d["suite"].items()]
        for sect in ("kernels", "family", "model"):
            for t in d.get(sect, []):
                out.append(f"[[{sect}]]")
                out += [f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in t.items()]
        return "\n".join(out) + "\n"

    smoke = (ROOT / "devprof/suites/builtin/smoke.toml").read_text()
    return st.one_of(doc.map(to_toml), mutated_text(smoke), NASTY_TEXT)


def _suite_check(text: str) -> None:
    from devprof.suites import parse_suite

    s = parse_suite(text, source="fuzz.toml")
    for spec in s.specs:
        assert spec.key and spec.id and spec.flops >= 0, spec


# ---- ONNX / TFLite model walking
@functools.lru_cache(None)
def _models() -> tuple[bytes, ...]:
    from devprof.models import builders

    mb = {"name": "mobilenetv2", "res": [16, 16], "stem": [8, "relu6"],
          "blocks": [[8, 8, 3, 1, 0, "relu6"], [16, 16, 5, 2, 4, "hswish"], [32, 16, 3, 1, 0, "relu6"]], "head": [32, "relu6"]}
    sr = {"name": "fsrcnn", "res": [8, 8], "scale": 2, "d": 8, "s": 4, "m": 2, "colors": 1}
    return (builders.family("mobilenetv2").net(mb).SerializeToString(),
            builders.family("fsrcnn").net(sr).SerializeToString())


@functools.lru_cache(None)
def _tflite_models() -> tuple[bytes, ...]:
    import onnx

    from devprof.models.tflite_export import onnx_to_tflite

    return tuple(onnx_to_tflite(onnx.load_from_string(b)) for b in _models())


@st.composite
def mutated_bytes(draw, seeds: tuple[bytes, ...]) -> bytes:
    b = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "set", "ins", "del"]))
        i = draw(st.integers(0, max(0, len(b) - 1)))
        if op == "flip" and b:
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del b[i:]
        elif op == "set" and b:
            b[i] = draw(st.integers(0, 255))
        elif op == "ins":
            b[i:i] = draw(st.binary(max_size=8))
        elif op == "del":
            del b[i:i + draw(st.integers(1, 16))]
    return bytes(b)


@st.composite
def mutated_onnx(draw) -> bytes:
    """Structurally valid protobuf with hostile attribute and shape values (the checker's blind spots)."""
    import onnx

    m = onnx.load_from_string(draw(st.sampled_from(_models())))
    nodes = m.graph.node
    for _ in range(draw(st.integers(1, 4))):
        n = nodes[draw(st.integers(0, len(nodes) - 1))]
        what = draw(st.sampled_from(["attr", "drop_input", "op", "dim"]))
        if what == "attr" and n.attribute:
            a = n.attribute[draw(st.integers(0, len(n.attribute) - 1))]
            if a.ints:
                a.ints[draw(st.integers(0, len(a.ints) - 1))] = draw(st.sampled_from([0, -1, 2 ** 40, 7, 1]))
            elif a.type == onnx.AttributeProto.INT:
                a.i = draw(st.sampled_from([0, -1, 2 ** 40, 7]))
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = draw(st.floats(allow_nan=True, allow_infinity=True, width=32))
        elif what == "drop_input" and n.input:
            del n.input[-1]
        elif what == "op":
            n.op_type = draw(st.sampled_from(["Conv", "Gemm", "Relu", "Add", "Weird", "MaxPool", "Concat", "Reshape"]))
        elif what == "dim":
            vi = m.graph.input[0]
            dims = vi.type.tensor_type.shape.dim
            if dims:
                dims[draw(st.integers(0, len(dims) - 1))].dim_value = draw(st.sampled_from([0, 1, 3, 2 ** 31]))
    return m.SerializeToString()


def _onnx_strategy() -> st.SearchStrategy:
    return st.one_of(mutated_bytes(_models()), mutated_onnx(), st.binary(max_size=256))


def _tflite_strategy() -> st.SearchStrategy:
    return st.one_of(mutated_bytes(_tflite_models()),
                     st.binary(max_size=256).map(lambda b: b[:4] + b"TFL3" + b[8:]))


def _walk_check(data: bytes) -> None:
    from devprof.models.walk import walk

    layers = walk(data)
    for l in layers.layers:
        if l.spec is not None:
            assert l.spec.key


def _tflite_check(data: bytes) -> None:
    from devprof.models.tflite_walk import walk_tflite

    layers = walk_tflite(data)
    for l in layers.layers:
        if l.spec is not None:
            assert l.spec.key


# ---- predictor bundles
class _Tripwire(Exception):
    pass


@functools.lru_cache(None)
def _bundle_seed() -> tuple[Path, dict[str, bytes]]:
    """Publish one small bundle from synthetic records (tests/support/predictors_synth.py)."""
    from support import predictors_synth as synth
    from predictors.estimators import FlopsLinear, ForestLatency
    from devprof.store import read_datasets
    from predictors.fit import fit_bundles

    from devprof.store import Dataset

    work = Path(tempfile.mkdtemp(prefix="devprof-fuzz-bundle-"))
    atexit.register(shutil.rmtree, work, True)
    ds = Dataset(work / "ds")
    ds.create()
    ds.append(synth.records(synth.random_specs(120, seed=5)))
    (b,) = fit_bundles(read_datasets([work / "ds"]), [str(work / "ds")],
                       candidates={"flops_linear": FlopsLinear(), "random_forest": ForestLatency(n_estimators=3)})
    path = b.write(work / "bundles")
    return path, {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}


def _bundle_strategy() -> st.SearchStrategy:
    _, files = _bundle_seed()
    jsons = sorted(n for n in files if n.endswith(".json") and n != "metadata.json")

    @st.composite
    def case(draw):
        out = dict(files)
        rehash = draw(st.booleans())  # an attacker who also rewrites the hashes in metadata.json
        kind = draw(st.sampled_from(["json", "bytes", "swap", "meta", "missing"]))
        name = draw(st.sampled_from(jsons))
        if kind == "json":
            out[name] = dumps(draw(mutated_json(json.loads(files[name]), max_edits=4))).encode()
        elif kind == "bytes":
            out[name] = draw(mutated_bytes((files[name],)))
        elif kind == "swap":
            out[name] = files[draw(st.sampled_from(sorted(files)))]
        elif kind == "missing":
            out.pop(name)
        meta = json.loads(files["metadata.json"])
        if rehash:
            import hashlib

            for n, b in out.items():
                if n in meta["files"]:
                    meta["files"][n] = {"sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b)}
        if kind == "meta":
            meta = draw(mutated_json(meta, max_edits=3))
        out["metadata.json"] = dumps(meta).encode() if kind != "meta" or draw(st.booleans()) else draw(
            mutated_bytes((dumps(meta).encode(),)))
        return out
    return case()


_BUNDLE_DIR: list[Path] = []


def _bundle_check(files: dict[str, bytes]) -> None:
    import pickle
    import subprocess

    import predictors
    from support import predictors_synth as synth

    if not _BUNDLE_DIR:
        _BUNDLE_DIR.append(Path(tempfile.mkdtemp(prefix="devprof-fuzz-load-")))
        atexit.register(shutil.rmtree, _BUNDLE_DIR[0], True)
    d = _BUNDLE_DIR[0] / "b"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for n, b in files.items():
        (d / n).write_bytes(b)

    def trip(*a, **k):
        raise _Tripwire("loading a bundle tried to execute something")

    saved = (pickle.loads, pickle.load, os.system, subprocess.Popen.__init__)
    pickle.loads = pickle.load = os.system = trip  # type: ignore[assignment]
    subprocess.Popen.__init__ = trip  # type: ignore[method-assign]
    try:
        p = predictors.load(d)
        res = p.predict(synth.random_specs(4, seed=9))
        assert len(res) == 4
    finally:
        pickle.loads, pickle.load, os.system, subprocess.Popen.__init__ = saved  # type: ignore[method-assign]


TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("harness-json", _harness_strategy, _harness_check),
    Target("benchmark_model", _bm_strategy, _bm_check),
    Target("ort-profile", _ort_strategy, _ort_check),
    Target("suite-toml", _suite_strategy, _suite_check),
    Target("onnx-walk", _onnx_strategy, _walk_check),
    Target("tflite-walk", _tflite_strategy, _tflite_check),
    Target("bundle", _bundle_strategy, _bundle_check),
]}


def run_one(t: Target, data: Any) -> str | None:
    """Run one input; return a failure description, or None when it was accepted or cleanly refused."""
    t.calls += 1
    try:
        t.check(data)
        t.accepted += 1
        return None
    except DevprofError as e:
        msg = str(e)
        if "\n" in msg or not msg:
            return f"DevprofError that is not one line: {msg[:200]!r}"
        t.refused += 1
        return None
    except _Tripwire as e:
        return str(e)
    except BaseException as e:  # noqa: BLE001 - exactly what we are looking for
        if isinstance(e, KeyboardInterrupt):
            raise
        tb = traceback.extract_tb(e.__traceback__)
        where = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(tb)
                      if "/devprof/" in f.filename or "/predictors/" in f.filename), "?")
        return f"{type(e).__name__} at {where}: {str(e)[:160]}"


def fuzz(t: Target, n: int, seed: int | None = None, collect: bool = True) -> Target:
    """Feed `n` hypothesis inputs to target `t`; with `collect`, record failures and keep going."""

    @settings(max_examples=n, deadline=None, database=None, derandomize=seed is not None,
              phases=(Phase.generate,) if collect else (Phase.generate, Phase.shrink),
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def body(data):
        x = data.draw(t.strategy())
        why = run_one(t, x)
        if why:
            if not collect:
                raise AssertionError(f"{t.name}: {why}\ninput: {repr(x)[:400]}")
            if len(t.failures) < 50:
                t.failures.append(f"{why} | input: {repr(x)[:200]}")
    body()
    return t
