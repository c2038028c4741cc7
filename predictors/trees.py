"""Evaluate published regressors with numpy alone — the query side of the safe format.

A regressor in a bundle is plain JSON data (never code): either a linear model over named
linear terms (`predictors.features.LINEAR_TERMS`: effective FLOPs and bytes, or the generated
kernels' cost terms) or a tree ensemble stored as flat node arrays, which this module
evaluates level by level for all rows and all trees at once. scikit-learn is never imported:
search code queries bundles on machines without it.

Tree ensemble JSON (all trees' nodes concatenated; a leaf points to itself on both sides; each
node array is a JSON list or, as written by devprof, ``{"dtype": "<i4"|"<f4", "b64": ...}``)::

    {"kind": "tree_ensemble", "target": "log_us", "base": b, "scale": s, "depth": D,
     "roots": [...], "feature": [...], "threshold": [...], "left": [...], "right": [...],
     "value": [...]}

    prediction = exp(b + s * sum over trees of value[leaf reached])   (target "log_us")
                 * linear(x)       when "times_linear" holds a linear model (else 1)

Switch JSON (one level: its two branches are tree ensembles or linear models)::

    {"kind": "switch", "feature": "cin_pad4", "threshold": 1.0, "le": {model}, "gt": {model}}

    a row whose float32(feature) <= threshold is predicted by "le", any other by "gt" — a
    regime with its own cost structure (ONNX Runtime's depthwise convs whose channels are not a
    multiple of 4 run on a ~10x slower path) gets a regressor of its own.

Published bundles (format 4) keep the node arrays out of the JSON: an ensemble there has
``"nodes": "n3"`` instead of the five arrays, and predictor.npz holds them compactly
(`pack_predictor` / `unpack_predictor`): ``n3.left`` and ``n3.right`` as offsets from the node's
own index (0 on a leaf, 1 for every left child), ``n3.feature`` and ``n3.threshold`` for the
split nodes only, ``n3.value`` for the leaves only (a row always stops on a leaf, so no
prediction reads a split node's value), each in the smallest dtype that holds it exactly.

Split rule as scikit-learn's: go left when float32(x[feature]) <= threshold. Thresholds are
stored as float32 values (rounded down from scikit-learn's float64 midpoints, which keeps every
decision identical for float32 inputs); values are stored to float32 precision.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .features import FEATURES, LINEAR_FEATURES, LINEAR_TERMS, VECTOR_FLOATS, VECTOR_REGS, features, linear_features
from .spectable import SpecTable


class ModelFormatError(ValueError):
    """A regressor's JSON does not describe a valid model (a bundle refuses to load)."""


_B64_DTYPES = {"<f4": np.float32, "<f8": np.float64, "<i4": np.int32, "<i8": np.int64}


def decode_array(v: Any, dtype: Any) -> np.ndarray:
    """A JSON list of numbers, or ``{"dtype": "<f4", "b64": "..."}``: little-endian binary in
    base64 (how big node arrays are stored: ~3x smaller and ~20x faster to parse than lists)."""
    if isinstance(v, Mapping):
        import base64
        import binascii

        dt = _B64_DTYPES.get(v.get("dtype"))  # type: ignore[arg-type]
        b = v.get("b64")
        if dt is None or not isinstance(b, str):
            raise ValueError("an encoded array needs dtype (<f4, <f8, <i4, <i8) and b64")
        try:
            raw = base64.b64decode(b, validate=True)
        except (binascii.Error, ValueError) as e:
            raise ValueError(f"bad base64: {e}") from None
        if len(raw) % np.dtype(dt).itemsize:
            raise ValueError("encoded array length is not a multiple of its item size")
        return np.frombuffer(raw, dtype=np.dtype(v["dtype"])).astype(dtype)
    return np.asarray(v, dtype=dtype)


def encode_array(a: np.ndarray, dtype: str) -> dict[str, str]:
    import base64

    return {"dtype": dtype, "b64": base64.b64encode(np.ascontiguousarray(a, dtype=np.dtype(dtype)).tobytes()).decode()}


NODE_ARRAYS = ("feature", "threshold", "left", "right", "value")


def _smallest_int(a: np.ndarray) -> np.ndarray:
    for dt in ("<i1", "<i2", "<i4"):
        info = np.iinfo(np.dtype(dt))
        if not len(a) or (a.min() >= info.min and a.max() <= info.max):
            return a.astype(dt)
    return a.astype("<i8")


def _smallest_float(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    a32 = a.astype("<f4")
    return a32 if np.array_equal(a32.astype(np.float64), a) else a.astype("<f8")


def pack_predictor(obj: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """predictor.json's content split into a skeleton (each tree ensemble's node arrays replaced
    by ``"nodes": key``) and the compact arrays for predictor.npz (module docstring). Ensembles
    whose arrays are not in the usual layout are left in the JSON unchanged."""
    arrays: dict[str, np.ndarray] = {}

    def walk(o: Any) -> Any:
        if isinstance(o, list):
            return [walk(v) for v in o]
        if not isinstance(o, Mapping):
            return o
        if o.get("kind") == "tree_ensemble" and all(k in o for k in NODE_ARRAYS) and "nodes" not in o:
            packed = _pack_nodes(o)
            if packed is not None:
                key = f"n{len(arrays) // len(NODE_ARRAYS)}"
                arrays.update({f"{key}.{k}": v for k, v in packed.items()})
                out = {k: walk(v) for k, v in o.items() if k not in NODE_ARRAYS}
                out["nodes"] = key
                return out
        return {k: walk(v) for k, v in o.items()}

    return walk(obj), arrays


def _pack_nodes(d: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
    try:
        feature, left, right = (decode_array(d[k], np.int64) for k in ("feature", "left", "right"))
        threshold, value = (decode_array(d[k], np.float64) for k in ("threshold", "value"))
    except (TypeError, ValueError):
        return None
    m = len(feature)
    idx = np.arange(m)
    if not m or any(len(a) != m for a in (threshold, left, right, value)):
        return None
    leaf = (left == idx) & (right == idx)
    # the layout unpacking assumes: a split node's left child follows it, a leaf has feature 0
    # and threshold 0 (as devprof writes them); anything else stays in the JSON
    if (left[~leaf] != idx[~leaf] + 1).any() or feature[leaf].any() or threshold[leaf].any():
        return None
    return {"left": _smallest_int(left - idx), "right": _smallest_int(right - idx),
            "feature": _smallest_int(feature[~leaf]), "threshold": _smallest_float(threshold[~leaf]),
            "value": _smallest_float(value[leaf])}


def unpack_predictor(obj: Any, arrays: Mapping[str, np.ndarray], encoded: bool = False) -> Any:
    """The inverse of `pack_predictor`: each ``"nodes": key`` replaced by the five node arrays
    (numpy, which `compile_model` then validates like any other; `encoded`: as JSON-ready
    base64 arrays, for code that rewrites the predictor's JSON)."""

    def walk(o: Any) -> Any:
        if isinstance(o, list):
            return [walk(v) for v in o]
        if not isinstance(o, Mapping):
            return o
        out = {k: walk(v) for k, v in o.items() if k != "nodes"}
        if o.get("kind") == "tree_ensemble" and "nodes" in o:
            nodes = _unpack_nodes(o["nodes"], arrays)
            if encoded:
                nodes = {k: encode_array(v, "<i4" if v.dtype.kind == "i" else _smallest_float(v).dtype.str)
                         for k, v in nodes.items()}
            out.update(nodes)
        return out

    return walk(obj)


def _unpack_nodes(key: Any, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not isinstance(key, str) or any(f"{key}.{k}" not in arrays for k in NODE_ARRAYS):
        raise ModelFormatError(f"node arrays {key!r} are not in predictor.npz")
    a = {k: arrays[f"{key}.{k}"] for k in NODE_ARRAYS}
    if any(a[k].dtype.kind not in "iu" for k in ("left", "right", "feature")):
        raise ModelFormatError(f"node arrays {key!r}: indices must be integers")
    m = len(a["left"])
    if len(a["right"]) != m:
        raise ModelFormatError(f"node arrays {key!r}: left and right differ in length")
    idx = np.arange(m, dtype=np.int64)
    left = idx + a["left"]
    right = idx + a["right"]
    leaf = (left == idx) & (right == idx)
    n_split = int(m - leaf.sum())
    if len(a["feature"]) != n_split or len(a["threshold"]) != n_split or len(a["value"]) != m - n_split:
        raise ModelFormatError(f"node arrays {key!r}: lengths do not match the tree layout")
    feature = np.zeros(m, dtype=np.int64)
    feature[~leaf] = a["feature"]
    threshold = np.zeros(m, dtype=np.float64)
    threshold[~leaf] = a["threshold"]
    value = np.zeros(m, dtype=np.float64)
    value[leaf] = a["value"]
    return {"feature": feature, "threshold": threshold, "left": left, "right": right, "value": value}


def _arr(d: Mapping[str, Any], name: str, dtype: Any) -> np.ndarray:
    try:
        a = decode_array(d[name], dtype)
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFormatError(f"field {name!r}: {e}") from None
    if a.ndim != 1:
        raise ModelFormatError(f"field {name!r} must be a flat list")
    return a


class TreeEnsemble:
    """A compiled tree ensemble (RF mean or boosted sum), evaluated in numpy."""

    def __init__(self, d: Mapping[str, Any], n_features: int = len(FEATURES)) -> None:
        self.feature = _arr(d, "feature", np.int64)
        self.threshold = _arr(d, "threshold", np.float64).astype(np.float32)
        self.left = _arr(d, "left", np.int64)
        self.right = _arr(d, "right", np.int64)
        self.value = _arr(d, "value", np.float64)
        self.roots = _arr(d, "roots", np.int64)
        m = len(self.feature)
        if not m or any(len(a) != m for a in (self.threshold, self.left, self.right, self.value)):
            raise ModelFormatError("node arrays must be non-empty and of equal length")
        for a in (self.left, self.right, self.roots):
            if a.min() < 0 or a.max() >= m:
                raise ModelFormatError("node index out of range")
        if self.feature.min() < 0 or self.feature.max() >= n_features:
            raise ModelFormatError("feature index out of range")
        if not (np.isfinite(self.threshold).all() and np.isfinite(self.value).all()):
            raise ModelFormatError("non-finite threshold or value")
        try:
            self.base = float(d["base"])
            self.scale = float(d["scale"])
            self.depth = int(d["depth"])
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFormatError(f"bad ensemble header: {e}") from None
        if not (0 <= self.depth <= 64):
            raise ModelFormatError("depth out of range")
        # a leaf points to itself, so after `depth` steps every row sits on a leaf; check it
        leaf = (self.left == np.arange(m)) & (self.right == np.arange(m))
        frontier = np.zeros(m, dtype=bool)
        frontier[self.roots] = True
        for _ in range(self.depth):
            nxt = np.zeros(m, dtype=bool)
            nxt[self.left[frontier]] = True
            nxt[self.right[frontier]] = True
            frontier = nxt
        if not leaf[frontier].all():
            raise ModelFormatError("trees deeper than their declared depth")
        lin = d.get("times_linear")
        self.times_linear = Linear(lin) if lin else None
        self.target = d.get("target", "log_us")
        if self.target not in ("log_us", "us"):
            raise ModelFormatError(f"unknown target {self.target!r}")

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    def leaf_values(self, X: np.ndarray) -> np.ndarray:
        """Per-tree raw outputs, shape (rows, trees)."""
        n, f = X.shape
        if n == 0:
            return np.zeros((0, self.n_trees))
        Xf = X.astype(np.float32).ravel()
        off = (np.arange(n, dtype=np.int64) * f)[:, None]
        node = np.broadcast_to(self.roots, (n, self.n_trees)).copy()
        for _ in range(self.depth):
            go_left = Xf[off + self.feature[node]] <= self.threshold[node]
            node = np.where(go_left, self.left[node], self.right[node])
        return self.value[node]

    def raw(self, X: np.ndarray) -> np.ndarray:
        return self.base + self.scale * self.leaf_values(X).sum(axis=1)

    def predict_us(self, X: np.ndarray) -> np.ndarray:
        r = self.raw(X)
        return np.exp(r) if self.target == "log_us" else r


class Linear:
    """latency_us = intercept + coef . (its `inputs`, named linear terms), floored at `floor_us`."""

    def __init__(self, d: Mapping[str, Any]) -> None:
        self.coef = _arr(d, "coef", np.float64)
        inputs = d.get("inputs", list(LINEAR_FEATURES))
        if (not isinstance(inputs, list) or not inputs or len(set(map(str, inputs))) != len(inputs)
                or not all(isinstance(t, str) and t in LINEAR_TERMS for t in inputs)):
            raise ModelFormatError(f"linear model inputs must be distinct names among {', '.join(LINEAR_TERMS)}")
        self.inputs = tuple(inputs)
        if len(self.coef) != len(self.inputs):
            raise ModelFormatError(f"linear model needs {len(self.inputs)} coefficients ({', '.join(self.inputs)})")
        try:
            self.intercept = float(d["intercept"])
            self.floor_us = float(d.get("floor_us", 0.0))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFormatError(f"bad linear model: {e}") from None

    def predict_us(self, L: np.ndarray) -> np.ndarray:
        return np.maximum(self.intercept + L @ self.coef, self.floor_us)

    def predict_rows(self, data: np.ndarray) -> np.ndarray:
        """On encoded spec rows: its inputs computed, then `predict_us`."""
        return self.predict_us(linear_features(data, self.inputs))


def resolve_groups(groups: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Group name -> its model's JSON, following ``{"kind": "same_as", "group": G}`` entries: a
    regressor pooled over an op's sparsity schemes is stored once, under its first group, and the
    op's other groups name that group (a reference to a reference, or to a missing group, is an
    error)."""
    out: dict[str, Mapping[str, Any]] = {}
    for name, d in groups.items():
        if isinstance(d, Mapping) and d.get("kind") == "same_as":
            ref = d.get("group")
            target = groups.get(ref) if isinstance(ref, str) else None
            if not isinstance(target, Mapping) or target.get("kind") == "same_as":
                raise ModelFormatError(f"group {name!r} refers to {d.get('group')!r}, which holds no model")
            out[str(name)] = target
        else:
            out[str(name)] = d
    return out


class Switch:
    """Two regressors and the feature threshold that routes each row to one of them."""

    def __init__(self, d: Mapping[str, Any], n_features: int = len(FEATURES)) -> None:
        name = d.get("feature")
        if name not in _FEATURE_INDEX or _FEATURE_INDEX[name] >= n_features:
            raise ModelFormatError(f"switch on unknown feature {name!r}")
        self.feature_name = str(name)
        self.feature = _FEATURE_INDEX[self.feature_name]
        try:
            t = float(d["threshold"])
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFormatError(f"bad switch threshold: {e}") from None
        if not abs(t) <= float(np.finfo(np.float32).max):
            raise ModelFormatError("switch threshold out of float32 range")
        self.threshold = np.float32(t)
        branches = []
        for side in ("le", "gt"):
            b = d.get(side)
            if isinstance(b, Mapping) and b.get("kind") == "switch":
                raise ModelFormatError("a switch's branches must be tree ensembles or linear models")
            branches.append(compile_model(b, n_features))
        self.le, self.gt = branches

    def route(self, X: np.ndarray) -> np.ndarray:
        """True where a row (a feature matrix row) goes to the "le" branch."""
        return X[:, self.feature].astype(np.float32) <= self.threshold


_FEATURE_INDEX = {f: i for i, f in enumerate(FEATURES)}
Model = TreeEnsemble | Linear | Switch
"""A compiled regressor."""


def compile_model(d: Mapping[str, Any], n_features: int = len(FEATURES)) -> Model:
    """The regressor a model's JSON describes, validated; its trees may use the first
    `n_features` features (those its predictor was fitted on)."""
    if not isinstance(d, Mapping):
        raise ModelFormatError("a model must be a JSON object")
    kind = d.get("kind")
    if kind == "tree_ensemble":
        return TreeEnsemble(d, n_features)
    if kind == "linear":
        return Linear(d)
    if kind == "switch":
        return Switch(d, n_features)
    raise ModelFormatError(f"unknown model kind {kind!r}")


def predict_with(model: Model, table: SpecTable | np.ndarray, vector_floats: int = VECTOR_FLOATS,
                 vector_regs: int = VECTOR_REGS) -> np.ndarray:
    """Latency (µs) of encoded spec rows by `model`; the vector shape is that of the target the
    predictor's kernels were generated for (predictor.json's ``kernel_geometry``)."""
    data = table.data if isinstance(table, SpecTable) else np.asarray(table)
    if isinstance(model, Linear):
        return model.predict_rows(data)
    F = features(data, vector_floats, vector_regs)
    if not isinstance(model, Switch):
        return _predict_rows(model, F, data)
    # the feature matrix is computed once: it routes the rows and feeds both branches
    le = model.route(F)
    out = np.empty(len(data), dtype=np.float64)
    for branch, rows in ((model.le, le), (model.gt, ~le)):
        if rows.any():
            out[rows] = _predict_rows(branch, F[rows], data[rows])
    return out


def _predict_rows(model: "TreeEnsemble | Linear", F: np.ndarray, data: np.ndarray) -> np.ndarray:
    """A tree ensemble or linear model on encoded rows `data` whose features `F` are computed."""
    if isinstance(model, Linear):
        return model.predict_rows(data)
    out = model.predict_us(F)
    if model.times_linear is not None:
        out = out * model.times_linear.predict_rows(data)
    return out
