"""Latency regressors (fit side; imports scikit-learn) and their export to the safe JSON format.

Every estimator follows scikit-learn's contract: hyper-parameters in ``__init__`` (stored as
given, no work), ``fit(X, y)`` returns self, ``predict(X)``; so `clone`, `cross_val_score` and
grid searches work. ``X`` is an encoded spec matrix (`SpecTable.data`), ``y`` latency in µs;
each estimator derives its own inputs from ``X`` (FLOPs/bytes for the baseline, the full
feature set for trees). Trees learn log-latency, so their errors are relative, which is what
"within ±10%" measures. ``export()`` turns a fitted estimator into the JSON that
`predictors.trees` evaluates without scikit-learn.

With ``input_kind="features"`` an estimator takes a plain numeric feature matrix instead (any
number of columns; the spec encoding is then a separate step): trees split on its columns and
the linear baseline combines them. That is what scikit-learn's `check_estimator` exercises; the
spec-matrix default is what `fit-predictor` uses, and its results are unchanged by it.

The query path (`predictors.load`) never imports this module.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
from typing import Any, Iterator

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.model_selection import KFold

from .features import (KERNEL_TERMS, LINEAR_FEATURES, VECTOR_FLOATS, VECTOR_REGS, feature_index, features,
                       generic_features, linear_features)
from .spectable import COLUMNS as SPEC_COLUMNS
from .spectable import SCHEME_CODE, col
from .trees import encode_array
from .metrics import within

try:
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError:  # scikit-learn < 1.6
    from sklearn.utils.validation import check_is_fitted

    def validate_data(est, X="no_validation", y="no_validation", reset=True, **kw):  # type: ignore[misc]
        return est._validate_data(X, y, reset=reset, **kw)

INPUT_KINDS = ("spec", "features")


class _Latency(RegressorMixin, BaseEstimator):
    """What every latency regressor shares: input checks (scikit-learn's), strictly positive
    targets (latencies; trees learn their logarithm), and the choice of input: an encoded spec
    matrix (`SpecTable.data`) or a plain feature matrix (``input_kind="features"``)."""

    input_kind: str = "spec"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"requires_positive_y": True}

    def _spec(self) -> bool:
        if self.input_kind not in INPUT_KINDS:
            raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {self.input_kind!r}")
        return self.input_kind == "spec"

    def _fit_data(self, X: Any, y: Any, min_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        spec = self._spec()
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True, ensure_all_finite=not spec,
                             ensure_min_samples=min_samples)
        if spec and X.shape[1] != len(SPEC_COLUMNS):
            raise ValueError(f"X has {X.shape[1]} columns: not an encoded spec matrix (SpecTable.data); "
                             "give input_kind='features' for a plain feature matrix")
        y = np.asarray(y, dtype=np.float64)
        if not (y > 0).all():
            raise ValueError("latencies (y) must be positive")
        return X, y

    def _predict_data(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return validate_data(self, X, dtype=np.float64, reset=False, ensure_all_finite=not self._spec())

    def _linear(self, X: np.ndarray) -> np.ndarray:
        return X if not self._spec() else linear_features(X, self.terms)  # type: ignore[attr-defined]


class FlopsLinear(_Latency):
    """Baseline: latency = c + a * effective FLOPs + b * bytes, non-negative, fitted to minimise
    relative error (each row weighted by 1/latency). `terms` names other `LINEAR_TERMS` to
    combine instead (the generated kernels' cost terms: `KERNEL_TERMS`)."""

    def __init__(self, fit_intercept: bool = True, terms: tuple[str, ...] = LINEAR_FEATURES,
                 input_kind: str = "spec") -> None:
        self.fit_intercept = fit_intercept
        self.terms = terms
        self.input_kind = input_kind

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # non-negative coefficients (time only grows with work) fit arbitrary data poorly
        tags.regressor_tags.poor_score = True
        return tags

    def _more_tags(self) -> dict[str, Any]:
        return {"requires_positive_y": True, "poor_score": True}

    def fit(self, X: np.ndarray, y: np.ndarray) -> "FlopsLinear":
        from scipy.optimize import nnls

        X, y = self._fit_data(X, y)
        L = self._linear(X)
        scale = np.maximum(L.max(axis=0), 1.0)
        cols = [L / scale]
        if self.fit_intercept:
            cols.append(np.ones((len(L), 1)))
        A = np.hstack(cols) / y[:, None]
        coef, _ = nnls(A, np.ones(len(y)))
        k = L.shape[1]
        self.coef_ = coef[:k] / scale
        self.intercept_ = float(coef[k]) if self.fit_intercept else 0.0
        self.floor_us_ = float(np.min(y) * 0.5)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        L = self._linear(self._predict_data(X))
        return np.maximum(self.intercept_ + L @ self.coef_, self.floor_us_)

    def export(self) -> dict[str, Any]:
        return {"kind": "linear", "estimator": "flops_linear", "inputs": list(self.terms),
                "coef": [float(c) for c in self.coef_], "intercept": self.intercept_, "floor_us": self.floor_us_}


def _log_offset(linear: "FlopsLinear | None", X: np.ndarray) -> np.ndarray | float:
    """Trees fitted on top of the FLOPs-linear model learn log(latency / linear estimate): a
    bounded efficiency that trees capture well, while the linear part extrapolates in size."""
    return np.log(linear.predict(X)) if linear is not None else 0.0


def _export_trees(trees: list, base: float, scale: float, estimator: str,
                  linear: "FlopsLinear | None" = None, weights: list[float] | None = None) -> dict[str, Any]:
    """Flat node arrays of `trees`; `weights` (one per tree) scale each tree's leaf values, so a
    weighted blend of ensembles is again one ensemble (with scale 1)."""
    feature, threshold, left, right, value, roots = [], [], [], [], [], []
    depth = 0
    off = 0
    for i, t in enumerate(trees):
        tr = t.tree_
        m = tr.node_count
        idx = np.arange(m)
        leaf = tr.children_left < 0
        roots.append(off)
        feature.append(np.where(leaf, 0, tr.feature))
        threshold.append(np.where(leaf, 0.0, tr.threshold))
        left.append(np.where(leaf, idx, tr.children_left) + off)
        right.append(np.where(leaf, idx, tr.children_right) + off)
        value.append(tr.value[:, 0, 0] * (weights[i] if weights is not None else 1.0))
        depth = max(depth, int(tr.max_depth))
        off += m
    cat = lambda xs: np.concatenate(xs)  # noqa: E731
    thr = cat(threshold)
    # float32 thresholds rounded down keep every decision exact for float32 inputs (x <= t iff
    # x <= the largest float32 <= t); node arrays are stored as base64 binary (fast to load)
    t32 = thr.astype(np.float32)
    t32 = np.where(t32.astype(np.float64) > thr, np.nextafter(t32, np.float32(-np.inf)), t32)
    return {"kind": "tree_ensemble", "estimator": estimator, "target": "log_us", "base": float(base),
            "scale": float(scale), "depth": depth, "roots": [int(r) for r in roots],
            "feature": encode_array(cat(feature), "<i4"), "threshold": encode_array(t32, "<f4"),
            "left": encode_array(cat(left), "<i4"), "right": encode_array(cat(right), "<i4"),
            "value": encode_array(cat(value), "<f4"), "times_linear": linear.export() if linear is not None else None}


class ForestLatency(_Latency):
    """Random forest on log-latency (nn-Meter's choice); the spread of its trees is the
    uncertainty adaptive sampling uses."""

    def __init__(self, n_estimators: int = 40, min_samples_leaf: int = 2, max_features: float = 0.6,
                 max_depth: int | None = 16, on_linear: bool = True, random_state: int = 0,
                 input_kind: str = "spec") -> None:
        self.n_estimators = n_estimators
        self.input_kind = input_kind
        self.on_linear = on_linear
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.max_depth = max_depth
        self.random_state = random_state

    def _features(self, X: np.ndarray) -> np.ndarray:
        return generic_features(X) if self._spec() else X

    def fit(self, X: np.ndarray, y: np.ndarray) -> "ForestLatency":
        X, y = self._fit_data(X, y)
        self.linear_ = FlopsLinear(input_kind=self.input_kind).fit(X, y) if self.on_linear else None
        self.model_ = RandomForestRegressor(
            n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features, max_depth=self.max_depth, random_state=self.random_state,
            n_jobs=1).fit(self._features(X), np.log(y) - _log_offset(self.linear_, X))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = self._predict_data(X)
        return np.exp(self.model_.predict(self._features(X)) + _log_offset(self.linear_, X))

    def uncertainty(self, X: np.ndarray) -> np.ndarray:
        """Std of the trees' log-latency predictions: ~ relative uncertainty of each row."""
        F = self._features(self._predict_data(X))
        per_tree = np.stack([t.predict(F) for t in self.model_.estimators_], axis=1)
        return per_tree.std(axis=1)

    def export(self) -> dict[str, Any]:
        ts = list(self.model_.estimators_)
        return _export_trees(ts, 0.0, 1.0 / len(ts), "random_forest", self.linear_)


_SHARED_FITS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("shared_boosting_fits", default=None)


@contextlib.contextmanager
def shared_boosting_fits() -> Iterator[dict]:
    """Within this block, boosted ensembles fitted on the same rows with the same parameters and
    seed are fitted once. Model selection fits several candidates that contain each other: bag 0
    of `gradient_boosting_bagged` is `gradient_boosting`, and the pooled part of
    `gradient_boosting_switch` is `gradient_boosting_bagged` (ORT dwconv2d, 5-fold CV: 149 s ->
    ~110 s). A fit is deterministic in its rows and parameters, so results are identical."""
    token = _SHARED_FITS.set({})
    try:
        yield _SHARED_FITS.get()
    finally:
        _SHARED_FITS.reset(token)


def _boosting_fit(F: np.ndarray, target: np.ndarray, **params: Any) -> GradientBoostingRegressor:
    cache = _SHARED_FITS.get()
    if cache is None:
        return GradientBoostingRegressor(**params).fit(F, target)
    h = hashlib.sha1(np.ascontiguousarray(F).tobytes())
    h.update(np.ascontiguousarray(target).tobytes())
    key = (h.hexdigest(), F.shape, tuple(sorted(params.items())))
    if key not in cache:
        cache[key] = GradientBoostingRegressor(**params).fit(F, target)
    return cache[key]


class BoostedLatency(_Latency):
    """Gradient-boosted trees on log-latency. With ``n_bags > 1``, the mean (in log-latency) of
    that many boosted ensembles that differ only in their row subsamples' seeds: one ensemble's
    held-out accuracy moves with its seed alone, and their mean sits at the top of that range
    (docs/predictors.md, "Measured reasons"). Exported as one ensemble.

    With ``kernel_cost=True`` the trees refine a linear model of the generated kernels' cost terms
    (`KERNEL_TERMS`: FMAs, vector loads, output and input elements, input read, streams) instead
    of FLOPs and bytes, and also see the read-bytes features: for devprof's sparse kernels, whose
    time follows what the generated loop executes and reads rather than the nominal ratio. It
    applies only to rows with sparse schemes. `vector_floats` / `vector_regs`: the vector shape
    the kernels were generated for (their loop tiles are features; the kernel-cost variant only)."""

    def __init__(self, n_estimators: int = 150, learning_rate: float = 0.1, max_depth: int = 4,
                 subsample: float = 0.9, on_linear: bool = True, random_state: int = 0, n_bags: int = 1,
                 kernel_cost: bool = False, vector_floats: int = VECTOR_FLOATS, vector_regs: int = VECTOR_REGS,
                 input_kind: str = "spec") -> None:
        self.n_estimators = n_estimators
        self.input_kind = input_kind
        self.on_linear = on_linear
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.subsample = subsample
        self.random_state = random_state
        self.n_bags = n_bags
        self.kernel_cost = kernel_cost
        self.vector_floats = vector_floats
        self.vector_regs = vector_regs

    def applies_to(self, X: np.ndarray) -> bool:
        """The kernel-cost variant models devprof's generated sparse kernels: rows with a sparse scheme."""
        return (not self.kernel_cost or not self._spec()
                or bool((np.asarray(X)[:, col("scheme")] != SCHEME_CODE["dense"]).any()))

    def _features(self, X: np.ndarray) -> np.ndarray:
        if not self._spec():
            return X
        return features(X, self.vector_floats, self.vector_regs) if self.kernel_cost else generic_features(X)

    def fit(self, X: np.ndarray, y: np.ndarray) -> "BoostedLatency":
        X, y = self._fit_data(X, y, min_samples=2)
        terms = KERNEL_TERMS if self.kernel_cost else LINEAR_FEATURES
        self.linear_ = FlopsLinear(terms=terms, input_kind=self.input_kind).fit(X, y) if self.on_linear else None
        F = self._features(X)
        target = np.log(y) - _log_offset(self.linear_, X)
        self.models_, self.bases_ = [], []
        for i in range(max(1, self.n_bags)):
            m = _boosting_fit(F, target, n_estimators=self.n_estimators, learning_rate=self.learning_rate,
                              max_depth=self.max_depth, subsample=self.subsample, random_state=self.random_state + i)
            sums = np.sum([e[0].predict(F[:1]) for e in m.estimators_], axis=0)
            self.models_.append(m)
            self.bases_.append(float(m.predict(F[:1])[0] - self.learning_rate * sums[0]))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = self._predict_data(X)
        F = self._features(X)
        return np.exp(np.mean([m.predict(F) for m in self.models_], axis=0) + _log_offset(self.linear_, X))

    def tree_parts(self, weight: float = 1.0) -> tuple[list, list[float], float]:
        """(trees, per-tree leaf weights, base) of this model scaled by `weight` in log-latency."""
        k = len(self.models_)
        trees = [e[0] for m in self.models_ for e in m.estimators_]
        return trees, [weight * self.learning_rate / k] * len(trees), weight * float(np.mean(self.bases_))

    def export(self) -> dict[str, Any]:
        if len(self.models_) == 1:
            return _export_trees([e[0] for e in self.models_[0].estimators_], self.bases_[0], self.learning_rate,
                                 "gradient_boosting", self.linear_)
        trees, weights, base = self.tree_parts()
        return _export_trees(trees, base, 1.0, "gradient_boosting_bagged", self.linear_, weights)


class BlendLatency(_Latency):
    """The mean, in log-latency, of a random forest and gradient boosting fitted on the same rows:
    the forest's averaging and boosting's fine corrections err in different places, and their
    blend beats either on most op groups. Exported as one tree ensemble (leaf values weighted)."""

    def __init__(self, forest_weight: float = 0.5, random_state: int = 0, input_kind: str = "spec") -> None:
        self.forest_weight = forest_weight
        self.random_state = random_state
        self.input_kind = input_kind

    def fit(self, X: np.ndarray, y: np.ndarray) -> "BlendLatency":
        X, y = self._fit_data(X, y, min_samples=2)
        self.forest_ = ForestLatency(random_state=self.random_state, input_kind=self.input_kind).fit(X, y)
        self.boost_ = BoostedLatency(random_state=self.random_state, input_kind=self.input_kind).fit(X, y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = self._predict_data(X)
        return self.combine(self.forest_.predict(X), self.boost_.predict(X))

    def combine(self, forest_us: np.ndarray, boost_us: np.ndarray) -> np.ndarray:
        """The blend of the two parts' predictions (µs): their weighted mean in log-latency."""
        w = self.forest_weight
        return np.exp(w * np.log(forest_us) + (1.0 - w) * np.log(boost_us))

    def export(self) -> dict[str, Any]:
        # both parts share the FlopsLinear offset (fitted on the same rows, deterministic)
        w = self.forest_weight
        rf = list(self.forest_.model_.estimators_)
        gb, gb_weights, gb_base = self.boost_.tree_parts(1.0 - w)
        return _export_trees(rf + gb, gb_base, 1.0, "blend", self.forest_.linear_, [w / len(rf)] * len(rf) + gb_weights)


class SwitchLatency(_Latency):
    """Gradient boosting pooled over all rows, and boosting of its own for the rows whose
    `feature` is above `threshold`: a regime with a cost structure of its own. ONNX Runtime runs
    convolutions whose channel count is not a multiple of 4 (``cin_pad4 > 1``) off its vectorised
    paths (depthwise ~10x slower); one ensemble over both regimes fits the minority one poorly,
    while the aligned kernels are predicted best by the pooled model (it learns from the
    regime's rows too). Exported as a ``switch`` (`predictors.trees.Switch`); with fewer than
    `min_rows` rows in the regime it is the pooled model alone.

    `regime` is the regime's estimator (None: shallow, subsampled, slow-learning boosting — the
    regime has a few hundred rows, where depth-4 trees overfit). Figures: docs/predictors.md,
    "Measured reasons". With ``input_kind="features"``, `feature` is a column index of X."""

    def __init__(self, feature: str | int = "cin_pad4", threshold: float = 1.0, min_rows: int = 40,
                 n_bags: int = 1, regime: BaseEstimator | None = None, random_state: int = 0,
                 input_kind: str = "spec") -> None:
        self.feature = feature
        self.input_kind = input_kind
        self.threshold = threshold
        self.min_rows = min_rows
        self.n_bags = n_bags
        self.regime = regime
        self.random_state = random_state

    def _le(self, X: np.ndarray) -> np.ndarray:
        # the query side's rule (predictors.trees.Switch.route), float32 as tree splits are
        if self._spec():
            x = features(X)[:, feature_index(self.feature)]
        elif isinstance(self.feature, (int, np.integer)) and 0 <= self.feature < X.shape[1]:
            x = X[:, int(self.feature)]
        else:
            raise ValueError(f"feature must be a column index of X (0..{X.shape[1] - 1}), got {self.feature!r}")
        return x.astype(np.float32) <= np.float32(self.threshold)

    def applies_to(self, X: np.ndarray) -> bool:
        """Whether X has enough rows in the regime for a regressor of their own."""
        return int((~self._le(np.asarray(X, dtype=np.float64))).sum()) >= self.min_rows

    def fit(self, X: np.ndarray, y: np.ndarray) -> "SwitchLatency":
        X, y = self._fit_data(X, y, min_samples=2)
        gt = ~self._le(X)
        self.pooled_ = BoostedLatency(random_state=self.random_state, n_bags=self.n_bags,
                                      input_kind=self.input_kind).fit(X, y)
        regime = (clone(self.regime) if self.regime is not None else
                  BoostedLatency(n_estimators=300, learning_rate=0.05, max_depth=3, subsample=0.7,
                                 n_bags=self.n_bags, random_state=self.random_state, input_kind=self.input_kind))
        self.regime_ = regime.fit(X[gt], y[gt]) if gt.sum() >= self.min_rows else None
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = self._predict_data(X)
        if self.regime_ is None:
            return self.pooled_.predict(X)
        le = self._le(X)
        out = np.empty(len(X), dtype=np.float64)
        for model, rows in ((self.pooled_, le), (self.regime_, ~le)):
            if rows.any():
                out[rows] = model.predict(X[rows])
        return out

    def export(self) -> dict[str, Any]:
        if self.regime_ is None:
            return self.pooled_.export()
        return {"kind": "switch", "estimator": "gradient_boosting_switch", "feature": self.feature,
                "threshold": float(np.float32(self.threshold)), "le": self.pooled_.export(),
                "gt": self.regime_.export()}


CANDIDATES: dict[str, BaseEstimator] = {
    "flops_linear": FlopsLinear(),
    "random_forest": ForestLatency(),
    "gradient_boosting": BoostedLatency(),
    "blend": BlendLatency(),
    "gradient_boosting_large": BoostedLatency(n_estimators=400, max_depth=6, learning_rate=0.05),
    "gradient_boosting_deep": BoostedLatency(n_estimators=600, max_depth=7, learning_rate=0.05, subsample=0.8),
    "gradient_boosting_bagged": BoostedLatency(n_bags=5),
    "gradient_boosting_switch": SwitchLatency(n_bags=5),
    "gradient_boosting_kernel": BoostedLatency(n_estimators=600, max_depth=7, learning_rate=0.05, subsample=0.8,
                                               kernel_cost=True),
}
#: Candidates tried only on groups with at least this many training rows: a bigger model pays off
#: where data supports it (the sparse kernels pooled per op) and would only cost fitting time on small groups.
MIN_ROWS = {"gradient_boosting_large": 400, "gradient_boosting_deep": 400, "gradient_boosting_kernel": 400}


def cv_predictions(est: BaseEstimator, X: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Each row's prediction by the estimator fitted on the other folds (k-fold, shuffled)."""
    kf = KFold(n_splits=folds, shuffle=True, random_state=seed)
    pred = np.empty_like(y, dtype=np.float64)
    for tr, te in kf.split(X):
        pred[te] = clone(est).fit(X[tr], y[tr]).predict(X[te])
    return pred


def cv_scores(est: BaseEstimator, X: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0
              ) -> tuple[float, float]:
    """(share within ±10%, MAPE) over k-fold cross-validation predictions."""
    pred = cv_predictions(est, X, y, folds, seed)
    return within(pred, y, 0.10), float(np.mean(np.abs(pred - y) / y))


def _is_default_blend(est: BaseEstimator, candidates: dict[str, BaseEstimator]) -> bool:
    """A blend whose parts are the candidates' forest and boosting with their parameters: its
    cross-validated predictions follow from theirs (same folds, same seeds), no refit needed."""
    rf, gb = candidates.get("random_forest"), candidates.get("gradient_boosting")
    return (isinstance(est, BlendLatency) and rf is not None and gb is not None
            and rf.get_params() == ForestLatency(random_state=est.random_state).get_params()
            and gb.get_params() == BoostedLatency(random_state=est.random_state).get_params())


def select(X: np.ndarray, y: np.ndarray, candidates: dict[str, BaseEstimator] | None = None,
           folds: int = 5, seed: int = 0) -> tuple[str, BaseEstimator, dict[str, dict[str, float]]]:
    """Pick the estimator with the best cross-validated ±10% share (MAPE breaks ties) and fit
    it on all of X, y. Tiny groups (< 8 rows) get the FLOPs-linear baseline."""
    candidates = candidates or CANDIDATES
    if len(y) < 8:
        name = "flops_linear" if "flops_linear" in candidates else next(iter(candidates))
        return name, clone(candidates[name]).fit(X, y), {}
    candidates = {n: e for n, e in candidates.items() if len(y) >= MIN_ROWS.get(n, 0)
                  and (not hasattr(e, "applies_to") or e.applies_to(X))}
    k = min(folds, len(y) // 2)
    preds: dict[str, np.ndarray] = {}
    with shared_boosting_fits():
        for n, e in candidates.items():
            if not _is_default_blend(e, candidates):
                preds[n] = cv_predictions(e, X, y, k, seed)
    for n, e in candidates.items():
        if n not in preds:
            preds[n] = e.combine(preds["random_forest"], preds["gradient_boosting"])
    scores = {n: (within(p, y, 0.10), float(np.mean(np.abs(p - y) / y))) for n, p in preds.items()}
    best = max(scores, key=lambda n: (round(scores[n][0], 6), -scores[n][1]))
    table = {n: {"cv_within_10": s[0], "cv_mape": s[1]} for n, s in scores.items()}
    return best, clone(candidates[best]).fit(X, y), table
