"""Kernel specs as numeric columns: the one encoding both fitting and querying use.

Search code asks for millions of predictions, so specs are turned into numpy columns once
(`encode`) and everything after that (lookup-table matching, features, tree evaluation) is
vectorised. Identity columns (everything `KernelSpec.key` distinguishes) are hashed into one
uint64 per row; the lookup table is matched by that hash and then verified column by column,
so a hash collision can never return the wrong table entry.

Only numpy and `predictors.spec` (itself numpy-only) are imported here: no pandas, no
scikit-learn, no torch. pandas is used only when the caller hands in a DataFrame.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .spec import ACTIVATIONS, DTYPES, OPS, SCHEMES, KernelSpec, spec_from_user

#: Columns that identify a spec (the same facts as `KernelSpec.key`). String fields are codes
#: (index into the record model's tuples); sparsity params and attrs are 48-bit content hashes.
IDENT = ("op", "n", "h", "w", "cin", "cout", "kh", "kw", "stride", "padding", "groups", "dilation",
         "bias", "activation", "dtype", "scheme", "ratio", "sparsity_params", "attrs")
#: Derived numeric facts carried alongside (taken from the record model, never re-derived).
EXTRA = ("out_h", "out_w", "flops", "params", "p1", "p2")
COLUMNS = IDENT + EXTRA
_CI = {c: i for i, c in enumerate(COLUMNS)}
N_IDENT = len(IDENT)

OP_CODE = {o: i for i, o in enumerate(OPS)}
ACT_CODE = {a: i for i, a in enumerate(ACTIVATIONS)}
DTYPE_CODE = {d: i for i, d in enumerate(DTYPES)}
SCHEME_CODE = {s: i for i, s in enumerate(SCHEMES)}
BYTES_PER_ELEM = np.array([{"fp32": 4, "fp16": 2, "int8": 1}[d] for d in DTYPES], dtype=np.float64)

_MIX = np.uint64(0x9E3779B97F4A7C15)
_STR_HASH: dict[str, float] = {}
_PARAM_CACHE: dict[str, tuple[float, float]] = {}


def col(name: str) -> int:
    """Column index of `name` in an encoded matrix."""
    return _CI[name]


def str_hash(s: str) -> float:
    """A 48-bit content hash of a canonical JSON string, exact in a float64 column."""
    h = _STR_HASH.get(s)
    if h is None:
        h = float(int.from_bytes(hashlib.sha256(s.encode()).digest()[:6], "little"))
        if len(_STR_HASH) < 100_000:
            _STR_HASH[s] = h
    return h


def canon(obj: Any) -> str:
    """Canonical JSON (sorted keys, no spaces), as devprof.records writes sparsity params/attrs."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def scheme_params(scheme: str, params: Mapping[str, Any]) -> tuple[float, float]:
    """The two numbers that shape a sparse kernel: block rows x cols, N:M, or pattern library
    size and connectivity share. Dense and unstructured have none."""
    def num(v: Any, default: float = 0.0) -> float:
        try:
            return float(v)
        except (TypeError, ValueError):
            return default

    if scheme in ("bcr", "block"):
        b = params.get("block")
        if isinstance(b, (list, tuple)) and len(b) == 2:
            return num(b[0]), num(b[1])
        return 0.0, 0.0
    if scheme == "nm":
        return num(params.get("n")), num(params.get("m"))
    if scheme == "pattern":
        return num(params.get("patterns")), num(params.get("connectivity"))
    return 0.0, 0.0


def _params_from_json(scheme: str, s: str) -> tuple[float, float]:
    k = scheme + "|" + s
    v = _PARAM_CACHE.get(k)
    if v is None:
        try:
            d = json.loads(s) if s else {}
        except ValueError:
            d = {}
        v = scheme_params(scheme, d if isinstance(d, dict) else {})
        if len(_PARAM_CACHE) < 100_000:
            _PARAM_CACHE[k] = v
    return v


_ROW_CACHE: dict[KernelSpec, tuple] = {}


def spec_row(s: KernelSpec) -> tuple:
    """One spec as a tuple of COLUMNS values (memoised: search loops repeat the same layers)."""
    r = _ROW_CACHE.get(s)
    if r is not None:
        return r
    sp = s.sparsity
    pj = canon({k: v for k, v in sp.params})
    aj = canon({k: v for k, v in s.attrs})
    p1, p2 = scheme_params(sp.scheme, sp.p)
    r = (OP_CODE[s.op], s.n, s.h, s.w, s.cin, s.cout, s.kh, s.kw, s.stride, s.padding, s.groups,
         s.dilation, float(s.bias), ACT_CODE[s.activation], DTYPE_CODE[s.dtype], SCHEME_CODE[sp.scheme],
         sp.ratio, str_hash(pj), str_hash(aj), s.out_h, s.out_w, float(s.flops), float(s.params_count), p1, p2)
    if len(_ROW_CACHE) < 200_000:
        _ROW_CACHE[s] = r
    return r


@dataclass
class SpecTable:
    """Specs as a float64 matrix (rows x COLUMNS) plus their row hashes; optional keys.

    Build one with `encode(...)`; slice it with `take` (encode a search space's blocks once,
    then take the rows of each candidate).
    """

    data: np.ndarray
    hashes: np.ndarray
    keys: list[str] | None = None
    #: set by `take`: the table rows were taken from and their indices there, so a predictor
    #: can answer for the (smaller) parent once and gather, instead of deduplicating the batch
    parent: "SpecTable | None" = None
    index: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.data[:, _CI[name]]

    def take(self, idx: Any) -> "SpecTable":
        ii = np.arange(len(self))[np.asarray(idx)]
        keys = [self.keys[i] for i in ii.tolist()] if self.keys is not None else None
        parent, index = self, ii
        if self.parent is not None and self.index is not None:
            parent, index = self.parent, self.index[ii]
        return SpecTable(self.data[ii], self.hashes[ii], keys, parent, index)

    @classmethod
    def concat(cls, tables: Sequence["SpecTable"]) -> "SpecTable":
        keys = None
        if all(t.keys is not None for t in tables):
            keys = [k for t in tables for k in t.keys]  # type: ignore[union-attr]
        return cls(np.concatenate([t.data for t in tables]), np.concatenate([t.hashes for t in tables]), keys)


def row_hashes(data: np.ndarray) -> np.ndarray:
    """A uint64 hash per row over the identity columns (FNV-style multiply-xor, vectorised)."""
    ident = np.ascontiguousarray(data[:, :N_IDENT])
    bits = ident.view(np.uint64)
    h = np.full(len(ident), np.uint64(0xCBF29CE484222325), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(N_IDENT):
            h ^= bits[:, j]
            h *= _MIX
            h ^= h >> np.uint64(29)
    return h


def encode_specs(specs: Iterable[KernelSpec], with_keys: bool = False) -> SpecTable:
    specs = list(specs)
    if not specs:
        return SpecTable(np.zeros((0, len(COLUMNS))), np.zeros(0, np.uint64), [] if with_keys else None)
    data = np.array([spec_row(s) for s in specs], dtype=np.float64)
    return SpecTable(data, row_hashes(data), [s.key for s in specs] if with_keys else None)


_FRAME_ALIASES = {"scheme": ("scheme", "sparsity_scheme"), "ratio": ("sparsity_ratio", "ratio"),
                  "sparsity_params": ("sparsity_params",), "attrs": ("attrs",), "params": ("params",)}


def _codes(values: Any, table: Mapping[str, int], what: str) -> np.ndarray:
    import pandas as pd

    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    lut = np.empty(len(uniques), dtype=np.float64)
    for i, u in enumerate(uniques):
        if u not in table:
            raise ValueError(f"unknown {what} {u!r}")
        lut[i] = table[u]
    return lut[codes]


def encode_frame(df: Any, with_keys: bool = False) -> SpecTable:
    """Encode a DataFrame with dataset columns (op, n, h, ..., scheme, sparsity_ratio,
    sparsity_params, attrs, out_h, out_w, flops, params) — e.g. `Dataset.read()` rows."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        df = pd.DataFrame(df)
    n = len(df)
    if n == 0:
        return SpecTable(np.zeros((0, len(COLUMNS))), np.zeros(0, np.uint64), [] if with_keys else None)
    need_derived = not all(c in df.columns for c in ("out_h", "out_w", "flops", "params"))
    if need_derived and "spec_json" in df.columns:
        specs = [KernelSpec.from_dict(json.loads(s)) for s in df["spec_json"]]
        return encode_specs(specs, with_keys)
    if need_derived:
        raise ValueError("a spec frame needs out_h, out_w, flops and params columns (or spec_json)")

    def get(name: str, default: Any) -> Any:
        for alias in _FRAME_ALIASES.get(name, (name,)):
            if alias in df.columns:
                return df[alias].to_numpy()
        return np.full(n, default, dtype=object if isinstance(default, str) else np.float64)

    data = np.empty((n, len(COLUMNS)), dtype=np.float64)
    data[:, _CI["op"]] = _codes(df["op"].to_numpy(), OP_CODE, "op")
    for c, d in (("n", 1), ("h", 1), ("w", 1), ("cin", 1), ("cout", 1), ("kh", 1), ("kw", 1), ("stride", 1),
                 ("padding", 0), ("groups", 1), ("dilation", 1), ("bias", 1.0), ("out_h", 1), ("out_w", 1),
                 ("flops", 0), ("params", 0)):
        data[:, _CI[c]] = np.asarray(get(c, d), dtype=np.float64)
    data[:, _CI["activation"]] = _codes(get("activation", "none"), ACT_CODE, "activation")
    data[:, _CI["dtype"]] = _codes(get("dtype", "fp32"), DTYPE_CODE, "dtype")
    schemes = get("scheme", "dense")
    data[:, _CI["scheme"]] = _codes(schemes, SCHEME_CODE, "sparsity scheme")
    data[:, _CI["ratio"]] = np.round(np.asarray(get("ratio", 0.0), dtype=np.float64), 6)
    pjs = get("sparsity_params", "{}")
    ajs = get("attrs", "{}")
    codes, uniq = pd.factorize(pd.Series(schemes, dtype=object).astype(str) + "\x00" + pd.Series(pjs, dtype=object).astype(str))
    p = np.array([(str_hash(u.split("\x00", 1)[1]), *_params_from_json(*u.split("\x00", 1))) for u in uniq],
                 dtype=np.float64).reshape(-1, 3)
    data[:, _CI["sparsity_params"]] = p[codes, 0]
    data[:, _CI["p1"]] = p[codes, 1]
    data[:, _CI["p2"]] = p[codes, 2]
    codes, uniq = pd.factorize(pd.Series(ajs, dtype=object).astype(str))
    data[:, _CI["attrs"]] = np.array([str_hash(u) for u in uniq], dtype=np.float64)[codes]
    keys = None
    if with_keys:
        kc = "spec_key" if "spec_key" in df.columns else ("key" if "key" in df.columns else None)
        keys = [str(k) for k in df[kc]] if kc else None
    return SpecTable(data, row_hashes(data), keys)


def _codes_py(values: Sequence[Any], table: Mapping[str, int], what: str) -> np.ndarray:
    memo: dict[Any, float] = {}
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        c = memo.get(v)
        if c is None:
            if v not in table:
                raise ValueError(f"unknown {what} {v!r}")
            c = memo[v] = float(table[v])
        out[i] = c
    return out


def encode_columns(cols: Mapping[str, Sequence[Any]], with_keys: bool = False) -> SpecTable:
    """Like `encode_frame` for a mapping of plain lists/arrays, without pandas (bundle loading)."""
    n = len(cols["op"])
    data = np.empty((n, len(COLUMNS)), dtype=np.float64)
    if n == 0:
        return SpecTable(data, np.zeros(0, np.uint64), [] if with_keys else None)

    def get(name: str, default: Any) -> Any:
        for alias in _FRAME_ALIASES.get(name, (name,)):
            if alias in cols:
                return cols[alias]
        return [default] * n

    data[:, _CI["op"]] = _codes_py(list(cols["op"]), OP_CODE, "op")
    for c, d in (("n", 1), ("h", 1), ("w", 1), ("cin", 1), ("cout", 1), ("kh", 1), ("kw", 1), ("stride", 1),
                 ("padding", 0), ("groups", 1), ("dilation", 1), ("bias", 1.0), ("out_h", 1), ("out_w", 1),
                 ("flops", 0), ("params", 0)):
        data[:, _CI[c]] = np.asarray(get(c, d), dtype=np.float64)
    data[:, _CI["activation"]] = _codes_py(list(get("activation", "none")), ACT_CODE, "activation")
    data[:, _CI["dtype"]] = _codes_py(list(get("dtype", "fp32")), DTYPE_CODE, "dtype")
    schemes = list(get("scheme", "dense"))
    data[:, _CI["scheme"]] = _codes_py(schemes, SCHEME_CODE, "sparsity scheme")
    data[:, _CI["ratio"]] = np.round(np.asarray(get("ratio", 0.0), dtype=np.float64), 6)
    pjs = list(get("sparsity_params", "{}"))
    ajs = list(get("attrs", "{}"))
    pm: dict[tuple, tuple] = {}
    prow = np.empty((n, 3))
    for i, (sc, pj) in enumerate(zip(schemes, pjs)):
        v = pm.get((sc, pj))
        if v is None:
            v = pm[(sc, pj)] = (str_hash(str(pj)), *_params_from_json(str(sc), str(pj)))
        prow[i] = v
    data[:, _CI["sparsity_params"]] = prow[:, 0]
    data[:, _CI["p1"]] = prow[:, 1]
    data[:, _CI["p2"]] = prow[:, 2]
    data[:, _CI["attrs"]] = np.array([str_hash(str(a)) for a in ajs], dtype=np.float64)
    keys = None
    if with_keys:
        kc = "spec_key" if "spec_key" in cols else ("key" if "key" in cols else None)
        keys = [str(k) for k in cols[kc]] if kc else None
    return SpecTable(data, row_hashes(data), keys)


def encode(specs: Any, with_keys: bool = False) -> SpecTable:
    """Encode specs given as a SpecTable, a KernelSpec, a list of KernelSpecs or dicts, or a
    DataFrame / mapping of columns."""
    if isinstance(specs, SpecTable):
        return specs
    if isinstance(specs, KernelSpec):
        return encode_specs([specs], with_keys)
    if isinstance(specs, Mapping) and "op" in specs and not isinstance(specs["op"], str):
        if all(c in specs for c in ("out_h", "out_w", "flops", "params")):
            return encode_columns(specs, with_keys)
        return encode_frame(specs, with_keys)
    if hasattr(specs, "columns") and hasattr(specs, "to_numpy"):
        return encode_frame(specs, with_keys)
    if isinstance(specs, Mapping):
        specs = [specs]
    items = list(specs)
    # dicts are written by hand: every dimension the op needs must be there (a missing one would
    # silently be 1 and answer for another layer)
    out = [s if isinstance(s, KernelSpec) else spec_from_user(s) for s in items]
    return encode_specs(out, with_keys)
