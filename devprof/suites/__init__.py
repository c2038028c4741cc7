"""Suites: TOML files naming what to measure, expanded into `KernelSpec`s (and model entries).

A suite is either a built-in name (`smoke`, `mobilenetv2`, `sr720p`, ...: the files in
`builtin/`) or a path to a TOML file. Format (docs/suites.md)::

    [suite]
    name = "mine"
    description = "..."
    runtimes = ["onnxruntime", "litert"]      # defaults for `devprof profile`
    dtype = "int8"                             # optional: the default dtype of every kernel (fp32)

    [[kernels]]                                # explicit specs: KernelSpec fields
    op = "conv2d"
    h = 56
    ...

    [[family]]                                 # generated specs
    op = "conv2d"
    sampling = "grid"                          # or "random" (with count, seed)
    shape = { hw = [56, 28], cin = [32], cout = [64], k = [3], stride = [1, 2] }
    sparsity = [ { scheme = "bcr", ratio = [0.5, 0.9], params = { block = [4, 16] } } ]

    [[model]]                                  # whole models, interpreted by devprof.models
    family = "mobilenetv2"

Every error names the suite and the entry, on one line.
"""
from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from ..records import OPS, KernelSpec, Sparsity, expand_shorthand
from .select import check_dtype

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Keys a family's `shape` table may vary. `hw` sets h and w; `k` sets kh and kw.
SHAPE_KEYS = ("n", "h", "w", "hw", "cin", "cout", "c", "k", "kh", "kw", "stride", "padding", "groups",
              "dilation", "activation", "bias", "dtype")
SUITE_KEYS = ("suite", "kernels", "family", "model")
#: A family may expand to at most this many specs (a 300-byte grid could otherwise hang devprof).
MAX_FAMILY_SPECS = 100_000


@dataclass(frozen=True)
class Suite:
    name: str
    description: str = ""
    runtimes: tuple[str, ...] = ()
    specs: tuple[KernelSpec, ...] = ()
    models: tuple[dict, ...] = ()
    source: str = ""
    raw: dict = field(default_factory=dict, compare=False, repr=False)


def builtin_names() -> list[str]:
    d = resources.files(__package__) / "builtin"
    return sorted(p.name[:-5] for p in d.iterdir() if p.name.endswith(".toml"))


def load_suite(name_or_path: str) -> Suite:
    """Load a built-in suite by name or a suite file by path; one-line UsageError when invalid."""
    try:
        return _load_suite(name_or_path)
    except OSError as e:  # e.g. ENAMETOOLONG from a hostile name: still a one-line error
        raise UsageError(f"cannot read suite {name_or_path[:120]!r}: {e.strerror or e}") from None


def _load_suite(name_or_path: str) -> Suite:
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise UsageError(f"suite file {name_or_path} not found")
        try:
            text = p.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"cannot read suite {name_or_path}: {e}") from None
        return parse_suite(text, source=str(p))
    f = resources.files(__package__) / "builtin" / f"{name_or_path}.toml"
    if not f.is_file():
        raise UsageError(f"unknown suite {name_or_path!r} (built-in: {', '.join(builtin_names())}; "
                         "or give a path to a .toml file)")
    return parse_suite(f.read_text(), source=f"builtin:{name_or_path}")


def parse_suite(text: str, source: str = "<string>") -> Suite:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"suite {source}: malformed TOML: {e}") from None
    except RecursionError:
        raise UsageError(f"suite {source}: values nested too deeply to be a suite") from None
    unknown = set(doc) - set(SUITE_KEYS)
    if unknown:
        raise UsageError(f"suite {source}: unknown section(s) {', '.join(sorted(unknown))} "
                         f"(expected {', '.join(SUITE_KEYS)})")
    head = doc.get("suite")
    if not isinstance(head, dict) or not isinstance(head.get("name"), str) or not head["name"]:
        raise UsageError(f"suite {source}: needs a [suite] table with a name")
    name = head["name"]
    where = f"suite {name}" if source.startswith("builtin:") else f"suite {source}"
    runtimes = head.get("runtimes", [])
    if not isinstance(runtimes, list) or not all(isinstance(r, str) for r in runtimes):
        raise UsageError(f"{where}: runtimes must be a list of names")
    dtype = check_dtype(head["dtype"], f"{where}: [suite] dtype") if "dtype" in head else None
    specs: list[KernelSpec] = []
    kernels = _tables(doc, "kernels", where)
    if len(kernels) > MAX_FAMILY_SPECS:
        raise UsageError(f"{where}: {len(kernels)} [[kernels]] entries, more than {MAX_FAMILY_SPECS}; split the suite "
                         "or describe the shapes as a [[family]]")
    for i, k in enumerate(kernels):
        specs.append(_spec(k, f"{where}: kernels[{i}]", dtype))
    for i, fam in enumerate(_tables(doc, "family", where)):
        specs.extend(_family(fam, f"{where}: family[{i}]", dtype))
    models = tuple(_tables(doc, "model", where))
    for i, m in enumerate(models):
        if "family" not in m and "path" not in m:
            raise UsageError(f"{where}: model[{i}] needs a family or a path")
        if m.get("dtype", "fp32") not in ("fp32", "int8"):
            raise UsageError(f"{where}: model[{i}] dtype {m['dtype']!r}: whole models run in fp32 or int8")
    if not specs and not models:
        raise UsageError(f"{where}: no kernels, families or models to measure")
    seen: set[str] = set()
    unique = [s for s in specs if not (s.id in seen or seen.add(s.id))]
    return Suite(name=name, description=str(head.get("description", "")), runtimes=tuple(runtimes),
                 specs=tuple(unique), models=models, source=source, raw=doc)


def _tables(doc: dict, key: str, where: str) -> list[dict]:
    v = doc.get(key, [])
    if not isinstance(v, list) or not all(isinstance(t, dict) for t in v):
        raise UsageError(f"{where}: [[{key}]] must be an array of tables")
    return v


def _spec(d: dict, where: str, dtype: str | None = None) -> KernelSpec:
    """A spec from a table of KernelSpec fields; `dtype`: the suite's default for the dtype field."""
    d = dict(d)
    if dtype is not None:
        d.setdefault("dtype", dtype)
    if "dtype" in d:
        check_dtype(d["dtype"], where)
    if "sparsity" in d and not isinstance(d["sparsity"], dict):
        raise UsageError(f"{where}: sparsity must be a table")
    try:
        expand_shorthand(d)
    except (TypeError, ValueError, OverflowError) as e:  # e.g. kh = [] in the padding default
        raise UsageError(f"{where}: {e}") from None
    if d.get("op") not in OPS:
        raise UsageError(f"{where}: unknown op {d.get('op')!r} (known: {', '.join(OPS)})")
    try:
        return KernelSpec.from_dict(d)
    except (TypeError, ValueError, OverflowError) as e:  # OverflowError: inf
        raise UsageError(f"{where}: {e}") from None


def _family(fam: dict, where: str, dtype: str | None = None) -> list[KernelSpec]:
    fam = dict(fam)
    op = fam.pop("op", None)
    if op not in OPS:
        raise UsageError(f"{where}: unknown op {op!r} (known: {', '.join(OPS)})")
    sampling = fam.pop("sampling", "grid")
    shape = fam.pop("shape", {})
    sparsity = fam.pop("sparsity", [])
    count = fam.pop("count", None)
    seed = fam.pop("seed", 0)
    attrs = fam.pop("attrs", {})
    mult = fam.pop("multiple_of", {})
    if "dtype" in fam:  # the family's dtype (shape.dtype may still vary it)
        dtype = check_dtype(fam.pop("dtype"), where)
    if fam:
        raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(fam))}")
    if not isinstance(shape, dict):
        raise UsageError(f"{where}: shape must be a table")
    bad = set(shape) - set(SHAPE_KEYS)
    if bad:
        raise UsageError(f"{where}: unknown shape key(s) {', '.join(sorted(bad))} (known: {', '.join(SHAPE_KEYS)})")
    variants = _sparsity_variants(sparsity, where)
    out: list[KernelSpec] = []
    if sampling == "grid":
        keys = list(shape)
        lists = []
        for k in keys:
            v = shape[k]
            if isinstance(v, dict):
                raise UsageError(f"{where}: shape.{k}: ranges need sampling = \"random\"")
            lists.append(v if isinstance(v, list) else [v])
        if math.prod(len(x) for x in lists) > MAX_FAMILY_SPECS:
            raise UsageError(f"{where}: the grid has {math.prod(len(x) for x in lists)} points, more than "
                             f"{MAX_FAMILY_SPECS}; split it or use sampling = \"random\"")
        combos = [dict(zip(keys, c)) for c in itertools.product(*lists)]
    elif sampling == "random":
        if not isinstance(count, int) or count < 1 or count > MAX_FAMILY_SPECS:
            raise UsageError(f"{where}: random sampling needs count = N (1 <= N <= {MAX_FAMILY_SPECS})")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise UsageError(f"{where}: seed must be an integer >= 0, not {seed!r}")
        if not isinstance(mult, dict):
            raise UsageError(f"{where}: multiple_of must be a table of shape keys")
        rng = np.random.default_rng(seed)
        combos = [{k: _draw(rng, v, f"{where}: shape.{k}", mult.get(k, 1)) for k, v in shape.items()}
                  for _ in range(count)]
    else:
        raise UsageError(f"{where}: sampling must be \"grid\" or \"random\", not {sampling!r}")
    for c in combos:
        for sp in variants:
            d = {"op": op, **c, "attrs": attrs}
            if sp is not None:
                d["sparsity"] = sp
            out.append(_spec(d, where, dtype))
    return out


def _draw(rng: np.random.Generator, v: Any, where: str, multiple: int) -> Any:
    if isinstance(v, list):
        if not v:
            raise UsageError(f"{where}: empty list")
        return v[int(rng.integers(len(v)))]
    if isinstance(v, dict):
        try:
            lo, hi = int(v["min"]), int(v["max"])
        except (KeyError, TypeError, ValueError):
            raise UsageError(f"{where}: a range needs integer min and max") from None
        if lo < 1 or hi < lo:
            raise UsageError(f"{where}: bad range {lo}..{hi}")
        m = v.get("multiple_of", multiple)
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise UsageError(f"{where}: multiple_of must be an integer >= 1, not {m!r}")
        first, last = -(-lo // m) * m, hi // m * m  # the multiples of m within the range
        if first > last:
            raise UsageError(f"{where}: no multiple of {m} lies in {lo}..{hi}")
        if v.get("log"):
            x = int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))
        else:
            x = int(rng.integers(lo, hi + 1))
        return min(last, max(first, int(round(x / m)) * m)) if m > 1 else x
    return v


def _sparsity_variants(sparsity: Any, where: str) -> list[dict | None]:
    if not sparsity:
        return [None]
    if isinstance(sparsity, dict):
        sparsity = [sparsity]
    if not isinstance(sparsity, list):
        raise UsageError(f"{where}: sparsity must be a list of tables")
    out: list[dict | None] = []
    for s in sparsity:
        if not isinstance(s, dict) or "scheme" not in s:
            raise UsageError(f"{where}: each sparsity entry needs a scheme")
        ratios = s.get("ratio", [0.0])
        ratios = ratios if isinstance(ratios, list) else [ratios]
        params = s.get("params", {})
        for r in ratios:
            try:
                Sparsity(s["scheme"], r, params)
            except (TypeError, ValueError, OverflowError) as e:  # OverflowError: inf
                raise UsageError(f"{where}: {e}") from None
            out.append({"scheme": s["scheme"], "ratio": r, "params": params})
    return out
