"""The query side: a loaded bundle answering latency questions for search code.

    p = predictors.load("datasets_latency/local/onnxruntime-t1")
    r = p.predict(specs)          # r.latency_us (numpy), r.source ("lut" / "model" / "fallback")
    r.in_domain                   # False where the answer extrapolates beyond what was measured
    m = p.predict_model(specs)    # or an ONNX file: sum of layers + fitted overhead
    p.lut                         # the lookup table as a pandas DataFrame

Exact lookup-table hits return the table's value (bit for bit) of the bundle's statistic — the
median of the kernel's rounds, or its fastest round (`Predictor.statistic`); misses go to the
regressor of their (op, scheme) group, or to the bundle's all-ops fallback regressor when the
group had too little data. Answers outside what the bundle measured are marked
(`Predictions.in_domain`, `predictors.domain`); `strict=True` refuses them. Whole models first use the bundle's in-model layer table and
regressors (fitted on layers timed inside measured models, where a layer runs in the context of
its neighbours) and the single-kernel path for layers those do not cover. Everything is numpy; scikit-learn and
torch are never imported.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .spec import DTYPES, OPS, SCHEMES, KernelSpec

from . import lut as lutmod
from .bundle import NPZ, BundleError, parse_json, read_predictor, read_verified
from .domain import Domain, OutOfDomain, regressor_codes, regressor_name
from .features import kernel_geometry_of
from .spectable import SpecTable, col, encode, encode_columns
from .trees import Model, ModelFormatError, compile_model, predict_with, resolve_groups

SOURCES = ("lut", "model", "fallback", "layer-lut", "layer-model")
SRC_LUT, SRC_MODEL, SRC_FALLBACK, SRC_LAYER_LUT, SRC_LAYER_MODEL = 0, 1, 2, 3, 4
_NS = len(SCHEMES)


def group_name(op: str, scheme: str, dtype: str = "fp32") -> str:
    """Regressors are per (op, scheme family, dtype), e.g. ``conv2d/bcr``, ``conv2d/bcr/int8``:
    an int8 kernel is never answered by an fp32 regressor (fp32 names are those of bundles
    fitted before dtypes were told apart)."""
    return f"{op}/{scheme}" + ("" if dtype == "fp32" else f"/{dtype}")


@dataclass
class Predictions:
    """Per-row predictions: latency in µs, where each came from (codes into SOURCES), and whether
    it lies in the bundle's training domain (`in_domain`, computed on first access so that search
    loops that never ask pay nothing)."""

    latency_us: np.ndarray
    source_code: np.ndarray
    _in_domain: Any = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.latency_us)

    @property
    def latency_ms(self) -> np.ndarray:
        return self.latency_us / 1000.0

    @property
    def source(self) -> np.ndarray:
        return np.asarray(SOURCES, dtype=object)[self.source_code]

    @property
    def lut_hits(self) -> int:
        return int(np.count_nonzero(self.source_code == SRC_LUT))

    @property
    def in_domain(self) -> np.ndarray:
        """Per row: a table hit, or a regressor's answer inside the measured ranges of its (op,
        scheme, dtype) — False where the bundle extrapolates (`predictors.domain`)."""
        if callable(self._in_domain):
            self._in_domain = self._in_domain()
        if self._in_domain is None:
            return np.ones(len(self.latency_us), dtype=bool)
        return self._in_domain

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.latency_us if dtype is None else self.latency_us.astype(dtype)


@dataclass
class ModelPrediction:
    """A whole model: layers' predictions, the fitted runtime overhead and their total."""

    total_us: float
    layers_us: np.ndarray
    source: np.ndarray
    overhead_us: float
    specs: list = field(default_factory=list)
    unknown: list = field(default_factory=list)  # layers the graph walk could not map
    in_domain: np.ndarray | None = None  # per layer, as Predictions.in_domain

    @property
    def total_ms(self) -> float:
        return self.total_us / 1000.0

    def _domain_flags(self) -> np.ndarray:
        return np.ones(len(self.layers_us), dtype=bool) if self.in_domain is None else self.in_domain

    def to_dict(self) -> dict[str, Any]:
        return {"total_us": self.total_us, "overhead_us": self.overhead_us,
                "layers": [{"key": s.key if isinstance(s, KernelSpec) else str(s), "latency_us": float(v),
                            "source": str(src), "in_domain": bool(d)}
                           for s, v, src, d in zip(self.specs, self.layers_us, self.source, self._domain_flags())],
                "unknown": list(self.unknown)}


class Predictor:
    """A loaded bundle. Build with `predictors.load(path)`."""

    def __init__(self, path: Path, metadata: dict[str, Any], lut_cols: dict[str, list],
                 predictor: dict[str, Any], strict: bool = False) -> None:
        self.path = path
        self.strict = strict
        """Refuse (`predictors.domain.OutOfDomain`) predictions outside the training domain."""
        self._domain: Domain | None = None
        self.metadata = metadata
        self._lut_cols = lut_cols
        self._lut_df = None
        self.keys: list[str] = list(lut_cols["key"])
        self.statistic: str = predictor.get("statistic", "median")
        """What the table serves and the regressors predict: "median" or "min" (lut.STATISTICS)."""
        if self.statistic not in lutmod.STATISTICS or f"{self.statistic}_us" not in lut_cols:
            raise ValueError(f"statistic {self.statistic!r} is unknown or not in the lookup table")
        self.median_us = np.asarray(lut_cols["median_us"], dtype=np.float64)
        self.table_us = np.asarray(lut_cols[f"{self.statistic}_us"], dtype=np.float64)
        """The served column of the lookup table: `statistic`'s figure per row."""
        self.iqr_us = np.asarray(lut_cols["iqr_us"], dtype=np.float64)
        self._key_index = {k: i for i, k in enumerate(self.keys)}
        self._lut_table = _encode_lut(lut_cols)
        order = np.argsort(self._lut_table.hashes, kind="stable")
        self._lut_order = order
        self._lut_sorted_hashes = self._lut_table.hashes[order]
        self._memo: dict[KernelSpec, tuple[float, int]] = {}
        self._layer_memo: dict[KernelSpec, tuple[float, int]] = {}
        self._layer_hash_memo: dict[int, tuple[float, int]] = {}  # 64-bit spec hash -> (µs, source)
        # regressors per (op code * n_schemes + scheme code)
        self.groups: dict[int, Model] = {}
        self.group_names: dict[str, str] = {}
        compiled: dict[int, Model] = {}  # one object per stored model (pooled ones are shared)
        nf = len(predictor["features"])  # fitted on FEATURES[:nf] (Predictor.load checks)
        self.geometry = kernel_geometry_of(predictor.get("kernel_geometry"))
        """Vector shape of the generated kernels the features describe (`predictors.features.kernel_tile`)."""
        for name, m in resolve_groups(predictor.get("groups") or {}).items():
            if id(m) not in compiled:
                compiled[id(m)] = compile_model(m, nf)
            self.groups[_group_code(path, "predictor group", str(name))] = compiled[id(m)]
            self.group_names[name] = m.get("estimator", m.get("kind", ""))
        # in-model layers (optional): a table of layer times and per-group regressors
        layers = predictor.get("layers") or {}
        self.layer_groups: dict[int, Model] = {}
        self.layer_variants: dict[tuple[int, float], Model] = {}
        for name, m in (layers.get("groups") or {}).items():
            base, _, variant = str(name).partition("#")
            code = _group_code(path, "layer group", base)
            if variant:  # one variant of the op: its attrs' 48-bit content hash, in hex
                self.layer_variants[(code, float(int(variant, 16)))] = compile_model(m, nf)
            else:
                self.layer_groups[code] = compile_model(m, nf)
        lt = layers.get("table") or {"key": [], "median_us": []}
        lcols = lutmod.check_json_obj({"format": "devprof-lut", "rows": len(lt.get("key", [])), "columns": lt}) \
            if lt.get("key") else None
        self._layer_table = _encode_lut(lcols) if lcols else None
        self._layer_median = np.asarray(lcols["median_us"], dtype=np.float64) if lcols else np.zeros(0)
        if self._layer_table is not None:
            self._layer_order = np.argsort(self._layer_table.hashes, kind="stable")
            self._layer_sorted = self._layer_table.hashes[self._layer_order]
        fb = predictor.get("fallback")
        self.fallback: Model | None = compile_model(fb, nf) if fb else None
        ov = predictor.get("model_overhead") or {}
        self.overhead = {k: float(ov.get(k, d)) for k, d in
                         (("scale", 1.0), ("per_layer_us", 0.0), ("intercept_us", 0.0), ("floor_share", 0.0))}
        if not all(np.isfinite(v) for v in self.overhead.values()) or self.overhead["floor_share"] < 0:
            raise ValueError("model_overhead terms must be finite numbers, floor_share >= 0")

    # ---- loading ----------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike, strict: bool = False) -> "Predictor":
        root = Path(path)
        meta, blobs = read_verified(root, ("lut.json", "predictor.json", NPZ))
        lut_obj = parse_json(root, "lut.json", blobs["lut.json"])
        pred_obj = read_predictor(root, meta, blobs)
        try:
            cols = lutmod.check_json_obj(lut_obj)
        except (ValueError, TypeError) as e:
            raise BundleError(f"bundle {root}: lut.json is malformed ({e})") from None
        if not isinstance(pred_obj, dict) or pred_obj.get("format") != "devprof-predictor":
            raise BundleError(f"bundle {root}: predictor.json is not a devprof predictor")
        from .features import FEATURES

        # features are only ever appended: a bundle fitted on a prefix of today's list still loads
        fitted_on = pred_obj.get("features")
        if not isinstance(fitted_on, list) or not fitted_on or fitted_on != list(FEATURES[:len(fitted_on)]):
            raise BundleError(f"bundle {root}: predictor.json was fitted on other features than this "
                              "devprof computes; refit it with `devprof fit-predictor`")
        try:
            return cls(root, meta, cols, pred_obj, strict=strict)
        except (ModelFormatError, ValueError, TypeError, KeyError, AttributeError, OverflowError) as e:  # hostile JSON
            raise BundleError(f"bundle {root}: predictor.json is malformed ({e})") from None

    # ---- tables -----------------------------------------------------------------------------
    @property
    def lut(self):
        """The lookup table as a pandas DataFrame (columns documented in predictors.lut)."""
        if self._lut_df is None:
            import pandas as pd

            self._lut_df = pd.DataFrame({c: self._lut_cols[c] for c in lutmod.COLUMNS if c in self._lut_cols})
        return self._lut_df

    @property
    def metrics(self) -> dict[str, Any]:
        """Held-out accuracy figures recorded when the bundle was fitted."""
        return self.metadata.get("metrics", {})

    @property
    def hand_sealed(self) -> list[dict[str, Any]]:
        """Hand edits re-sealed on purpose (`devprof bundle seal`): who, when, why, which files;
        empty for a bundle exactly as fit-predictor wrote it."""
        return list(self.metadata.get("hand_sealed") or [])

    def __repr__(self) -> str:
        d = self.metadata.get("device", {}).get("name", "?")
        r = self.metadata.get("runtime", {}).get("key", "?")
        edited = ", edited by hand" if self.hand_sealed else ""
        return f"<Predictor {d} / {r}: {len(self.keys)} LUT rows, {len(self.groups)} regressors{edited}>"

    @property
    def domain(self) -> Domain:
        """What the bundle measured (`predictors.domain.Domain`), read from its lookup table."""
        if self._domain is None:
            self._domain = Domain(self._lut_table, set(self.groups))
        return self._domain

    def _domain_flags(self, data: np.ndarray, source_code: np.ndarray) -> np.ndarray:
        inside = self.domain.contains(data)
        inside[(source_code == SRC_LUT) | (source_code == SRC_LAYER_LUT)] = True
        inside[source_code == SRC_FALLBACK] = False
        return inside

    def _with_domain(self, r: Predictions, encoded: Any, strict: bool | None, specs: list | None = None) -> Predictions:
        """Attach the in-domain flags (lazily), or check them now when strict. `encoded`: the
        encoded specs, or a function giving them (a list of KernelSpec is encoded only if asked)."""
        memo: list[SpecTable] = []

        def table() -> SpecTable:
            if not memo:
                memo.append(encoded() if callable(encoded) else encoded)
            return memo[0]

        r._in_domain = lambda: self._domain_flags(table().data, r.source_code)
        if self.strict if strict is None else strict:
            inside = r.in_domain
            if not inside.all():
                t = table()
                bad = np.flatnonzero(~inside)
                first = int(bad[0])
                keys = [s.key for s in specs] if specs else t.keys
                name = keys[first] if keys is not None and first < len(keys) else f"row {first}"
                raise OutOfDomain(f"{len(bad)} of {len(inside)} prediction(s) outside the training domain of "
                                  f"{self.path}; first: {name}: {self.domain.why_not(t.data[first])}")
        return r

    # ---- queries ----------------------------------------------------------------------------
    def lookup(self, keys: Sequence[str]) -> np.ndarray:
        """Table values (the bundle's statistic) for canonical keys (NaN where the table has no such key)."""
        ki, med = self._key_index, self.table_us
        idx = np.fromiter((ki.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
        out = np.where(idx >= 0, med[idx], np.nan)
        return out

    def _lut_match(self, t: SpecTable) -> np.ndarray:
        """Index into the LUT per row, -1 for misses (hash match, then verified column by column)."""
        if not len(self.keys):
            return np.full(len(t), -1, dtype=np.int64)
        return _match(self._lut_table, self._lut_order, self._lut_sorted_hashes, t)

    def predict_table(self, t: SpecTable) -> Predictions:
        """Predict an encoded table. Distinct specs are found first (search batches repeat the
        same layers many times) and each is looked up / evaluated once; within one batch, specs
        are told apart by their 64-bit identity hash (a collision needs ~2^32 distinct specs)."""
        n = len(t)
        if t.parent is not None and t.index is not None and len(t.parent) < n:
            r = self.predict_table(t.parent)
            return Predictions(r.latency_us[t.index], r.source_code[t.index])
        if n > 256:
            uh, first, inv = np.unique(t.hashes, return_index=True, return_inverse=True)
            if len(uh) < n:
                vals, srcs = self._predict_distinct(t.data[first], uh)
                inv = inv.reshape(-1)
                return Predictions(vals[inv], srcs[inv])
        vals, srcs = self._predict_distinct(t.data, t.hashes)
        return Predictions(vals, srcs)

    def _predict_distinct(self, data: np.ndarray, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(data)
        out = np.empty(n, dtype=np.float64)
        src = np.empty(n, dtype=np.int8)
        idx = self._lut_match(SpecTable(data, hashes))
        hit = idx >= 0
        out[hit] = self.table_us[idx[hit]]
        src[hit] = SRC_LUT
        miss = np.flatnonzero(~hit)
        if len(miss):
            sub = data[miss]
            vals = np.empty(len(miss))
            srcs = np.empty(len(miss), dtype=np.int8)
            g = _group_codes(sub)
            for code in np.unique(g):
                sel = g == code
                model = self.groups.get(int(code))
                if model is None:
                    model = self.fallback
                    srcs[sel] = SRC_FALLBACK
                else:
                    srcs[sel] = SRC_MODEL
                if model is None:
                    raise BundleError(f"bundle {self.path} has no regressor for {regressor_name(int(code))} "
                                      "and no fallback")
                vals[sel] = predict_with(model, sub[sel], **self.geometry)
            out[miss] = vals
            src[miss] = srcs
        return out, src

    def predict(self, specs: Any, strict: bool | None = None) -> Predictions:
        """Latency of each spec: exact LUT hits first, the regressors for the rest.

        `specs`: a KernelSpec, a list of them (or of spec dicts), a DataFrame with dataset
        columns, or a `SpecTable` from `predictors.encode` (the fastest path for big batches).
        `strict` (default: the predictor's, set by `load(..., strict=True)`) raises
        `predictors.domain.OutOfDomain` when any answer lies outside the training domain."""
        if isinstance(specs, list) and specs and all(type(s) is KernelSpec for s in specs):
            return self._with_domain(self._predict_spec_list(specs), lambda: encode(specs), strict, specs)
        t = encode(specs)
        return self._with_domain(self.predict_table(t), t, strict)

    def _predict_spec_list(self, specs: list, layers: bool = False) -> Predictions:
        memo = self._layer_memo if layers else self._memo
        got = [memo.get(s) for s in specs]
        if None in got:
            todo = list({s: None for s, v in zip(specs, got) if v is None})
            r = (self.predict_layers if layers else self.predict_table)(encode(todo))
            for s, v, c in zip(todo, r.latency_us.tolist(), r.source_code.tolist()):
                if len(memo) < 500_000:
                    memo[s] = (v, c)
            res = dict(zip(todo, zip(r.latency_us.tolist(), r.source_code.tolist())))
            got = [g if g is not None else res[s] for s, g in zip(specs, got)]
        a = np.array(got, dtype=np.float64).reshape(-1, 2)
        return Predictions(a[:, 0], a[:, 1].astype(np.int8))

    @property
    def has_layer_model(self) -> bool:
        """Whether the bundle carries in-model layer timings (fitted from whole-model runs)."""
        return self._layer_table is not None or bool(self.layer_groups) or bool(self.layer_variants)

    def predict_layers(self, specs: Any, strict: bool | None = None) -> Predictions:
        """Latency of each spec as a layer inside a model: the in-model layer table, then the
        in-model layer regressors, then the single-kernel path (`predict`) for the rest."""
        if isinstance(specs, list) and specs and all(type(s) is KernelSpec for s in specs):
            return self._with_domain(self._predict_spec_list(specs, layers=self.has_layer_model),
                                     lambda: encode(specs), strict, specs)
        t = specs if isinstance(specs, SpecTable) else encode(list(specs) if isinstance(specs, tuple) else specs)
        return self._with_domain(self._predict_layers_any(t), t, strict)

    def _predict_layers_any(self, t: SpecTable) -> Predictions:
        if not self.has_layer_model:
            return self.predict_table(t)
        if len(t) <= 4096:  # model-sized queries repeat: answer known layers from a memo by hash
            memo = self._layer_hash_memo
            got = [memo.get(h) for h in t.hashes.tolist()]
            if None not in got:
                a = np.array(got, dtype=np.float64).reshape(-1, 2)
                return Predictions(a[:, 0], a[:, 1].astype(np.int8))
            r = self._predict_layers_table(t)
            if len(memo) < 500_000:
                memo.update(zip(t.hashes.tolist(), zip(r.latency_us.tolist(), r.source_code.tolist())))
            return r
        return self._predict_layers_table(t)

    def _predict_layers_table(self, t: SpecTable) -> Predictions:
        n = len(t)
        out = np.full(n, np.nan)
        src = np.zeros(n, dtype=np.int8)
        if self._layer_table is not None and n:
            idx = _match(self._layer_table, self._layer_order, self._layer_sorted, t)
            hit = idx >= 0
            out[hit] = self._layer_median[idx[hit]]
            src[hit] = SRC_LAYER_LUT
        todo = np.flatnonzero(np.isnan(out))
        if len(todo) and self.layer_variants:
            codes = _group_codes(t.data[todo])
            attrs = t.data[todo, col("attrs")]
            for key in set(zip(codes.tolist(), attrs.tolist())):
                model = self.layer_variants.get(key)
                if model is not None:
                    sel = todo[(codes == key[0]) & (attrs == key[1])]
                    out[sel] = predict_with(model, t.data[sel], **self.geometry)
                    src[sel] = SRC_LAYER_MODEL
        todo = np.flatnonzero(np.isnan(out))
        if len(todo) and self.layer_groups:
            g = _group_codes(t.data[todo])
            for code in np.unique(g):
                model = self.layer_groups.get(int(code))
                if model is not None:
                    sel = todo[g == code]
                    out[sel] = predict_with(model, t.data[sel], **self.geometry)
                    src[sel] = SRC_LAYER_MODEL
        rest = np.flatnonzero(np.isnan(out))
        if len(rest):
            r = self._predict_distinct(t.data[rest], t.hashes[rest])
            out[rest], src[rest] = r
        return Predictions(out, src)

    def overhead_us(self, n_layers: int, layers_sum_us: float) -> float:
        """The fitted per-model runtime overhead (session/interpreter cost, inter-layer copies,
        less the profiler's own cost that layer timings carry): predicted total minus layer sum."""
        return float(model_total(self.overhead, layers_sum_us, n_layers)) - layers_sum_us

    def predict_model(self, model: Any, strict: bool | None = None) -> ModelPrediction:
        """A whole model: sum of its layers' predictions plus the fitted per-runtime overhead.

        `model`: an ONNX file path (walked into layers with the runtime's fusion by
        devprof.models.walk), or the model's layer specs (list of KernelSpec / SpecTable)."""
        unknown: list = []
        if isinstance(model, (str, os.PathLike)):
            specs, unknown = _walk_model(model, self.metadata.get("runtime", {}).get("name", ""))
        else:
            specs = model
        if isinstance(specs, SpecTable):
            r = self.predict_layers(specs, strict)
            specs_list: list = list(specs.keys or [])
        else:
            specs_list = list(specs)
            r = self.predict_layers(specs_list, strict)
        layers_sum = float(r.latency_us.sum())
        ov = self.overhead_us(len(r), layers_sum)
        return ModelPrediction(layers_sum + ov, r.latency_us, r.source, ov, specs_list, unknown,
                               in_domain=r.in_domain)


def model_total(overhead: dict[str, float], layers_sum_us: Any, n_layers: Any) -> Any:
    """A whole model's predicted time from its layers' sum (scalars or arrays):
    ``max(scale*sum + per_layer_us*n + intercept_us, floor_share*sum)`` — the floor (the smallest
    measured/sum ratio the overhead was fitted on) keeps models far smaller than any fitted one
    from getting a non-positive total when the fitted terms are negative."""
    o = overhead
    t = o["scale"] * layers_sum_us + o["per_layer_us"] * n_layers + o["intercept_us"]
    return np.maximum(t, o.get("floor_share", 0.0) * layers_sum_us)


def _group_code(path: Path, what: str, name: str) -> int:
    """The regressor slot of an 'op/scheme[/dtype]' group name (refused when it names no known
    group)."""
    op, _, rest = name.partition("/")
    scheme, _, dtype = rest.partition("/")
    if op not in OPS or scheme not in SCHEMES or (dtype and dtype not in DTYPES[1:]):
        raise BundleError(f"bundle {path}: {what} {name!r} names an unknown op, scheme or dtype")
    return (DTYPES.index(dtype) if dtype else 0) * len(OPS) * _NS + OPS.index(op) * _NS + SCHEMES.index(scheme)


def _group_codes(data: np.ndarray) -> np.ndarray:
    """The regressor slot of each encoded row (`predictors.domain.regressor_codes`)."""
    return regressor_codes(data)


def _match(table: SpecTable, order: np.ndarray, sorted_hashes: np.ndarray, t: SpecTable) -> np.ndarray:
    """Row of `table` per row of `t`, -1 for misses (hash match, then verified column by column)."""
    if not len(sorted_hashes) or not len(t):
        return np.full(len(t), -1, dtype=np.int64)
    pos = np.searchsorted(sorted_hashes, t.hashes)
    pos = np.minimum(pos, len(sorted_hashes) - 1)
    cand = order[pos]
    hit = sorted_hashes[pos] == t.hashes
    if hit.any():
        from .spectable import N_IDENT

        rows = np.flatnonzero(hit)
        same = (table.data[cand[rows], :N_IDENT] == t.data[rows, :N_IDENT]).all(axis=1)
        hit[rows[~same]] = False
    return np.where(hit, cand, -1)


def _encode_lut(cols: dict[str, list]) -> SpecTable:
    """Encode the LUT's spec columns exactly as query specs are encoded."""
    n = len(cols["key"])
    if n == 0:
        return SpecTable(np.zeros((0, 25)), np.zeros(0, np.uint64))
    frame = {c: cols[c] for c in lutmod.SPEC_COLUMNS}
    try:
        return encode_columns(frame)
    except (ValueError, TypeError) as e:
        raise BundleError(f"lut.json has an invalid spec column ({e})") from None


#: Functions that turn a model file into (layer specs, names of layers they could not read), given
#: the bundle's runtime name. devprof provides one (`devprof.models.walk.walk_for_predictor`) through
#: the ``predictors.model_walkers`` entry point and registers it when imported; a walker here keeps
#: this package free of any devprof import.
_WALKERS: list = []


def register_model_walker(fn) -> None:
    """Make `Predictor.predict_model` accept model files through `fn(path, runtime)`."""
    if fn not in _WALKERS:
        _WALKERS.insert(0, fn)


def _walk_model(path: Any, runtime: str) -> tuple[list[KernelSpec], list]:
    """Layers of an ONNX/TFLite model through the registered walker (devprof's graph walk, found
    lazily: it needs onnx, which plain queries do not)."""
    p = Path(path)
    if not p.is_file():
        raise BundleError(f"model file {p} not found")
    if not _WALKERS:
        from importlib.metadata import entry_points

        for ep in entry_points(group="predictors.model_walkers"):
            try:
                register_model_walker(ep.load())
            except ImportError:
                continue
    if not _WALKERS:
        raise BundleError("predicting a model file needs a model walker (install devprof, which provides one); "
                          "pass the model's layer specs instead")
    return _WALKERS[0](p, runtime)


def load(path: str | os.PathLike, strict: bool = False) -> Predictor:
    """Load a bundle directory (e.g. ``datasets_latency/local/onnxruntime-t1``), verified.
    `strict=True`: every query refuses answers outside the training domain (`OutOfDomain`)."""
    return Predictor.load(path, strict=strict)


def _json_safe(x: Any) -> Any:
    return json.loads(json.dumps(x, default=float))
