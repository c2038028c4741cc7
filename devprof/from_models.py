"""Learn a per-layer latency table from whole-model (end-to-end) timings.

NPUs, DSPs and closed runtimes often report only how long a whole network took. Given many
networks described as layer lists (or as one choice per position of a search space) and their
end-to-end latencies, this module fits

    latency(model) ~= overhead + sum_layers t[layer] + sum_adjacent_pairs g[pair]

1. **Additive part** — non-negative least squares (`scipy.optimize.nnls`) on relative errors
   (each model's row divided by its latency, since search cares about ±x%), with a constant
   per-model overhead column and a tiny ridge that makes the solution unique. Note: per-layer
   values are identifiable only up to shifts between positions that are always present (a
   constant can move from one always-present position to another without changing any total);
   totals — what search uses — are unique.
2. **Non-additive correction** — ridge regression of the remaining relative residuals on
   adjacent-layer pair features (cache reuse between neighbours, fused boundaries), its strength
   chosen by k-fold cross-validation among a grid that includes "no correction".

Accuracy is reported on held-out models (seeded split); the published bundle is refitted on all
models (as `predictors.fit` does), with the held-out figures of the train-only fit in its
metadata. The bundle is a normal devprof bundle: its lookup table holds the learned per-layer
latencies (so `predictors.load(b).predict_model(layer_specs)` gives the additive estimate),
and ``from_models.json`` in it holds the layer ids, the pair correction and the figures
(`load_model(b).predict(layers)` applies both parts).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .errors import UsageError
from .models.layers import ModelTiming
from .records import KernelSpec

TEST_SHARE = 0.2
RIDGE_EPS = 1e-8
ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
#: What the pair correction must gain in cross-validated mean |relative error| to be kept.
MIN_PAIR_GAIN = 1e-3
FLOOR_US = 1e-3  # lookup tables need positive medians; layers NNLS sets to 0 get this
FORMAT = "devprof-from-models"


@dataclass
class LayerModel:
    """The fitted model: per-layer latencies, overhead and adjacent-pair corrections (µs)."""

    keys: list[str]
    latency_us: np.ndarray
    overhead_us: float
    pairs: list[tuple[str, str]] = field(default_factory=list)
    pair_rel: np.ndarray = field(default_factory=lambda: np.zeros(0))  # relative corrections
    alpha: float | None = None
    unseen_us: float = 0.0  # what a layer never seen in training is assumed to cost

    def __post_init__(self) -> None:
        self._ki = {k: i for i, k in enumerate(self.keys)}
        self._pi = {p: i for i, p in enumerate(self.pairs)}

    def table(self) -> dict[str, float]:
        return dict(zip(self.keys, self.latency_us.tolist()))

    def additive_us(self, layers: Sequence[str]) -> float:
        ki, t = self._ki, self.latency_us
        return self.overhead_us + sum(float(t[ki[k]]) if k in ki else self.unseen_us for k in layers)

    def predict_one(self, layers: Sequence[str]) -> float:
        base = self.additive_us(layers)
        if not len(self.pairs):
            return base
        corr = 0.0
        for a, b in zip(layers[:-1], layers[1:]):
            j = self._pi.get((a, b))
            if j is not None:
                corr += float(self.pair_rel[j])
        return base * (1.0 + corr)

    def predict(self, models: Iterable[Sequence[str]]) -> np.ndarray:
        return np.array([self.predict_one(list(m)) for m in models], dtype=np.float64)

    def unseen(self, layers: Sequence[str]) -> int:
        return sum(1 for k in layers if k not in self._ki)

    def to_json(self) -> dict[str, Any]:
        return {"keys": list(self.keys), "latency_us": [float(v) for v in self.latency_us],
                "overhead_us": float(self.overhead_us), "pairs": [list(p) for p in self.pairs],
                "pair_rel": [float(v) for v in self.pair_rel], "alpha": self.alpha,
                "unseen_us": float(self.unseen_us)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "LayerModel":
        try:
            keys = [str(k) for k in d["keys"]]
            lat = np.asarray(d["latency_us"], dtype=np.float64)
            pairs = [(str(a), str(b)) for a, b in d.get("pairs", [])]
            rel = np.asarray(d.get("pair_rel", []), dtype=np.float64)
            if len(lat) != len(keys) or len(rel) != len(pairs) or not np.isfinite(lat).all() \
                    or not np.isfinite(rel).all():
                raise ValueError("array lengths or values do not match")
            return cls(keys, lat, float(d["overhead_us"]), pairs, rel, d.get("alpha"), float(d.get("unseen_us", 0.0)))
        except (KeyError, TypeError, ValueError) as e:
            raise UsageError(f"from_models.json is malformed ({e})") from None


# ---- fitting ---------------------------------------------------------------------------------------
def _design(models: Sequence[ModelTiming], keys: list[str]) -> np.ndarray:
    ki = {k: i for i, k in enumerate(keys)}
    A = np.zeros((len(models), len(keys)))
    for r, m in enumerate(models):
        for k in m.layers:
            j = ki.get(k)
            if j is not None:
                A[r, j] += 1.0
    return A


def fit_additive(models: Sequence[ModelTiming], overhead: bool = True, ridge: float = RIDGE_EPS) -> LayerModel:
    """NNLS on relative errors: min sum_i ((A_i . t + o) / y_i - 1)^2 + ridge * |t/s|^2, t, o >= 0."""
    from scipy.optimize import nnls

    if not models:
        raise UsageError("no models to fit")
    keys = sorted({k for m in models for k in m.layers})
    y = np.array([m.latency_us for m in models], dtype=np.float64)
    if not (np.isfinite(y).all() and (y > 0).all()):
        raise UsageError("every model latency must be positive and finite")
    A = _design(models, keys)
    if overhead:
        A = np.hstack([A, np.ones((len(models), 1))])
    s = float(np.median(y))  # unknowns in units of the median model latency: well conditioned
    M = A * (s / y[:, None])
    rhs = np.ones(len(models))
    if ridge > 0:
        M = np.vstack([M, math.sqrt(ridge * len(models)) * np.eye(A.shape[1])])
        rhs = np.concatenate([rhs, np.zeros(A.shape[1])])
    theta, _ = nnls(M, rhs, maxiter=50 * A.shape[1] + 1000)
    t = theta * s
    ov = float(t[-1]) if overhead else 0.0
    lat = t[:-1] if overhead else t
    unseen = float(np.median(lat)) if len(lat) else 0.0
    return LayerModel(keys, lat, ov, unseen_us=unseen)


def _pair_design(models: Sequence[ModelTiming], pairs: list[tuple[str, str]]) -> np.ndarray:
    pi = {p: i for i, p in enumerate(pairs)}
    F = np.zeros((len(models), len(pairs)))
    for r, m in enumerate(models):
        for a, b in zip(m.layers[:-1], m.layers[1:]):
            j = pi.get((a, b))
            if j is not None:
                F[r, j] += 1.0
    return F


def _ridge(F: np.ndarray, r: np.ndarray, alpha: float) -> np.ndarray:
    n = F.shape[1]
    return np.linalg.solve(F.T @ F + alpha * np.eye(n), F.T @ r)


def fit(models: Sequence[ModelTiming], overhead: bool = True, interactions: bool = True, folds: int = 5,
        seed: int = 0, min_pair_count: int = 3) -> LayerModel:
    """Additive NNLS fit, then the cross-validated ridge correction on adjacent pairs."""
    lm = fit_additive(models, overhead)
    if not interactions or len(models) < 2 * folds:
        return lm
    counts: dict[tuple[str, str], int] = {}
    for m in models:
        for p in zip(m.layers[:-1], m.layers[1:]):
            counts[p] = counts.get(p, 0) + 1
    pairs = sorted(p for p, c in counts.items() if c >= min_pair_count)
    if not pairs:
        return lm
    y = np.array([m.latency_us for m in models])
    F = _pair_design(models, pairs)
    rng = np.random.default_rng(seed)
    fold = rng.permutation(len(models)) % folds
    # the choice is made on folds the additive table never saw: a table fitted on every model
    # already absorbs part of the held-out residual, which made the pairs look useful (and chose
    # them on a phone where they then lost held-out accuracy)
    base_cv = np.empty(len(models))
    r_tr: list[np.ndarray] = []
    for k in range(folds):
        tr = fold != k
        lk = fit_additive([m for m, t in zip(models, tr) if t], overhead)
        b = np.array([lk.additive_us(m.layers) for m in models])
        base_cv[~tr] = b[~tr]
        r_tr.append(y / b - 1.0)
    add_err = float(np.mean(np.abs(base_cv / y - 1.0)))
    best_alpha, best_err = None, add_err
    for alpha in ALPHAS:
        pred = np.empty(len(models))
        for k in range(folds):
            tr, te = fold != k, fold == k
            g = _ridge(F[tr], r_tr[k][tr], alpha * tr.sum())
            pred[te] = base_cv[te] * (1.0 + F[te] @ g)
        err = float(np.mean(np.abs(pred / y - 1.0)))
        # the correction must earn its keep: 0.5% better relatively AND a tenth of a percentage
        # point of mean error absolutely (on exactly additive data it only fits rounding noise)
        if err < best_err * 0.995 and best_err - err >= MIN_PAIR_GAIN:
            best_alpha, best_err = alpha, err
    if best_alpha is None:
        return lm
    base = np.array([lm.additive_us(m.layers) for m in models])
    g = _ridge(F, y / base - 1.0, best_alpha * len(models))
    return LayerModel(lm.keys, lm.latency_us, lm.overhead_us, pairs, g, best_alpha, lm.unseen_us)


def split(models: Sequence[ModelTiming], test_share: float = TEST_SHARE, seed: int = 0
          ) -> tuple[list[ModelTiming], list[ModelTiming]]:
    """Seeded held-out split by model name (stable: independent of the input order)."""
    import hashlib

    tr, te = [], []
    for m in models:
        h = int(hashlib.sha256(f"{seed}:{m.name}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (te if h < test_share else tr).append(m)
    return tr, te


def evaluate(lm: LayerModel, models: Sequence[ModelTiming]) -> dict[str, Any]:
    from predictors.metrics import summary

    y = np.array([m.latency_us for m in models])
    p = lm.predict([m.layers for m in models])
    a = np.array([lm.additive_us(m.layers) for m in models])
    out = summary(p, y)
    if out["n"]:  # at small n the share is uncertain: its 95% (Wilson) interval goes with it
        out["within_10_ci"] = wilson_interval(round(out["within_10"] * out["n"]), out["n"])
    out["additive_only"] = summary(a, y)
    out["models_with_unseen_layers"] = int(sum(1 for m in models if lm.unseen(m.layers)))
    return out


def wilson_interval(k: int, n: int, z: float = 1.96) -> list[float]:
    """95% Wilson score interval of a share k/n: honest at small n, where k/n alone misleads
    (0.500 held out from 20% of 300 networks, 0.737 on 1,000 others)."""
    if n <= 0:
        return [0.0, 1.0]
    p = k / n
    d = 1.0 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [max(0.0, c - h), min(1.0, c + h)]


@dataclass
class FitReport:
    model: LayerModel  # refitted on every model (what is published)
    heldout: dict[str, Any]  # figures of the train-only fit on the held-out models
    n_train: int
    n_test: int
    train: dict[str, Any]
    predictions: dict[str, list]  # held-out: name, measured, predicted


def fit_and_score(models: Sequence[ModelTiming], seed: int = 0, overhead: bool = True,
                  interactions: bool = True, test_share: float = TEST_SHARE) -> FitReport:
    seen: dict[str, int] = {}
    for m in models:
        seen[m.name] = seen.get(m.name, 0) + 1
    dup = [n for n, c in seen.items() if c > 1]
    if dup:  # the split is by name: duplicates all land on one side (once, every model was "train")
        raise UsageError(f"{len(dup)} model name(s) occur more than once ({', '.join(repr(n) for n in dup[:3])}"
                         f"{' ...' if len(dup) > 3 else ''}); every model needs its own name")
    tr, te = split(models, test_share, seed)
    if len(tr) < 2:
        raise UsageError(f"need at least 2 training models, got {len(tr)}")
    lm_tr = fit(tr, overhead, interactions, seed=seed)
    held = evaluate(lm_tr, te) if te else {"n": 0}
    final = fit(models, overhead, interactions, seed=seed) if te else lm_tr
    preds = {"model": [m.name for m in te], "measured_us": [float(m.latency_us) for m in te],
             "predicted_us": [float(v) for v in lm_tr.predict([m.layers for m in te])]}
    return FitReport(final, held, len(tr), len(te), evaluate(lm_tr, tr), preds)


# ---- bundles ---------------------------------------------------------------------------------------
def layer_spec(layer_id: str, specs: dict[str, KernelSpec]) -> KernelSpec:
    """The KernelSpec a layer id stands for in the bundle's lookup table (opaque ids: op "other")."""
    s = specs.get(layer_id)
    if s is not None:
        return s
    return KernelSpec("other", bias=False, attrs={"layer": layer_id})


def _lut_frame(lm: LayerModel, specs: dict[str, KernelSpec], counts: dict[str, int]):
    import pandas as pd

    from predictors.lut import INT_COLUMNS
    from .records import _canon

    rows = []
    seen: dict[str, str] = {}
    for k, v in zip(lm.keys, lm.latency_us):
        s = layer_spec(k, specs)
        if s.key in seen:
            raise UsageError(f"layer ids {seen[s.key]!r} and {k!r} map to the same spec {s.key}: give them "
                             "different specs, or one id")
        seen[s.key] = k
        d = s.to_dict()
        rows.append({"key": s.key, "median_us": max(float(v), FLOOR_US), "iqr_us": 0.0, "mad_us": 0.0, "cv": 0.0,
                     "repeats": int(counts.get(k, 0)), "records": int(counts.get(k, 0)), "noisy": False,
                     "op": s.op, "n": s.n, "h": s.h, "w": s.w, "cin": s.cin, "cout": s.cout, "kh": s.kh, "kw": s.kw,
                     "stride": s.stride, "padding": s.padding, "groups": s.groups, "dilation": s.dilation,
                     "bias": s.bias, "activation": s.activation, "dtype": s.dtype, "scheme": s.sparsity.scheme,
                     "sparsity_ratio": s.sparsity.ratio, "sparsity_params": _canon(d["sparsity"]["params"]),
                     "attrs": _canon(d["attrs"]), "out_h": s.out_h, "out_w": s.out_w, "flops": s.flops,
                     "params": s.params_count, "spec_json": s.to_json()})
    df = pd.DataFrame(rows)
    for c in INT_COLUMNS:
        if c in df:
            df[c] = df[c].astype(np.int64)
    return df


def make_bundle(models: Sequence[ModelTiming], device: dict[str, Any], runtime: dict[str, Any],
                report: FitReport | None = None, seed: int = 0, source: str = "",
                log: Callable[[str], None] = lambda s: None):
    """A `predictors.fit.FittedBundle` (plus from_models.json) from whole-model timings."""
    from predictors import bundle as bmod
    from predictors.estimators import FlopsLinear
    from predictors.features import FEATURES
    from predictors.fit import FittedBundle, _clean
    from predictors.spectable import encode_frame

    from .records import RuntimeInfo, content_id

    rep = report or fit_and_score(models, seed=seed)
    lm = rep.model
    device = dict(device)
    device.setdefault("name", "device")
    device.setdefault("kind", "imported")
    device.setdefault("id", content_id(["from-models", device["name"]]))
    runtime = dict(runtime)
    runtime.setdefault("name", "runtime")
    runtime.setdefault("version", "")
    runtime.setdefault("threads", 1)
    runtime.setdefault("options", {})
    runtime.setdefault("key", RuntimeInfo(str(runtime["name"]), str(runtime["version"]), int(runtime["threads"]),
                                          runtime["options"] or {}).key)
    specs: dict[str, KernelSpec] = {}
    counts: dict[str, int] = {}
    for m in models:
        specs.update(m.specs)
        for k in m.layers:
            counts[k] = counts.get(k, 0) + 1
    lut = _lut_frame(lm, specs, counts)
    y = lut["median_us"].to_numpy(dtype=np.float64)
    fallback = FlopsLinear().fit(encode_frame(lut).data, y).export() if len(lut) >= 2 else None
    pj = {"format": "devprof-predictor", "version": 1, "features": list(FEATURES), "target": "log_us",
          "groups": {}, "fallback": fallback,
          "model_overhead": {"scale": 1.0, "per_layer_us": 0.0, "intercept_us": float(lm.overhead_us)}}
    fm = {"format": FORMAT, "version": 1, "model": lm.to_json(),
          "layer_spec_keys": [layer_spec(k, specs).key for k in lm.keys],
          "heldout": rep.heldout, "n_train_models": rep.n_train, "n_test_models": rep.n_test}
    heldout = {"format": "devprof-heldout", "version": 1,
               "kernels": {"key": [], "op": [], "scheme": [], "group": [], "flops": [], "measured_us": [],
                           "predicted_us": []},
               "models": {"model": rep.predictions["model"], "family": ["from-models"] * rep.n_test,
                          "layers": [0] * rep.n_test, "measured_us": rep.predictions["measured_us"],
                          "predicted_us": rep.predictions["predicted_us"],
                          "layers_sum_us": rep.predictions["predicted_us"]}}
    from predictors.metrics import summary

    metrics = {"kernel": {"overall": summary(np.zeros(0), np.zeros(0)), "per_op": {}, "per_group": {},
                          "note": "learned from whole-model timings: no per-layer measurements to score"},
               "model": {"overall": rep.heldout if rep.n_test else None, "held_out": bool(rep.n_test),
                         "n_train_models": rep.n_train, "n_test_models": rep.n_test,
                         "additive_only": rep.heldout.get("additive_only"), "method": "nnls+pair-ridge",
                         "overhead": pj["model_overhead"]},
               "split": {"model_test_share": TEST_SHARE, "seed": seed, "refit_on_all": True}}
    dataset = {"sha256": _timings_hash(models), "records": len(models), "kernel_records": 0,
               "lut_rows": int(len(lut)), "model_records": len(models), "sources": [source] if source else [],
               "runtime_versions": [str(runtime.get("version", ""))], "schemes": ["dense"],
               "from_models": True}
    loc = (bmod.slug(device.get("name") or "device"),
           bmod.runtime_slug(str(runtime.get("name", "runtime")), int(runtime.get("threads", 1)),
                             runtime.get("options") or {}) + "-from-models")
    extra = bmod.dumps(_clean(fm))
    log(f"{len(lut)} layers learned from {len(models)} models; held-out within ±10%: "
        f"{_pct(rep.heldout.get('within_10'))}")

    class _Bundle(FittedBundle):
        def files(self) -> dict[str, bytes]:
            f = super().files()
            f["from_models.json"] = extra
            return f

    return _Bundle(loc, _clean(device), _clean(runtime), lut, _clean(pj), _clean(heldout), _clean(metrics),
                   dataset, {"*": {"estimator": "nnls+pair-ridge", "n_train": rep.n_train, "n_test": rep.n_test}})


def _pct(v: Any) -> str:
    return "-" if v is None else f"{v:.1%}"


def _timings_hash(models: Sequence[ModelTiming]) -> str:
    import hashlib

    h = hashlib.sha256()
    for m in sorted(models, key=lambda m: m.name):
        h.update(json.dumps([m.name, m.layers, repr(float(m.latency_us))]).encode())
    return h.hexdigest()


def load_model(bundle: str | Path) -> LayerModel:
    """The full learned model (additive table + pair correction) of a from-models bundle,
    hash-verified like every bundle file."""
    from predictors.bundle import parse_json, read_verified

    meta, blobs = read_verified(bundle, ("from_models.json",))
    obj = parse_json(bundle, "from_models.json", blobs["from_models.json"])
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise UsageError(f"{bundle}: from_models.json is not a {FORMAT} file")
    return LayerModel.from_json(obj.get("model") or {})


# ---- inputs ----------------------------------------------------------------------------------------
TIMINGS_FORMAT = "devprof-model-timings"


@dataclass
class TimingSet:
    """Whole-model timings of one (device, runtime)."""

    device: dict[str, Any]
    runtime: dict[str, Any]
    models: list[ModelTiming]
    source: str = ""


def write_timings(path: str | Path, ts: TimingSet) -> Path:
    """JSONL: a header line {format, version, device, runtime, specs}, then one line per model
    {"name", "layers": [...], "latency_us"}."""
    p = Path(path)
    specs: dict[str, Any] = {}
    for m in ts.models:
        for k, s in m.specs.items():
            specs[k] = s.to_dict()
    lines = [json.dumps({"format": TIMINGS_FORMAT, "version": 1, "device": ts.device, "runtime": ts.runtime,
                         "specs": specs}, sort_keys=True)]
    lines += [json.dumps({"name": m.name, "layers": m.layers, "latency_us": m.latency_us}) for m in ts.models]
    from .formats.ofa import _atomic_write

    _atomic_write(p, "\n".join(lines) + "\n")
    return p


def read_timings(path: str | Path, device: str | None = None) -> list[TimingSet]:
    """Whole-model timings from: a devprof model-timings JSONL file, an nn-Meter JSONL file (one
    set per device, or only `device`), or a devprof dataset folder holding model records with
    their layer records (`devprof profile --model`)."""
    p = Path(path)
    if p.is_dir():
        return _from_dataset(p)
    if not p.is_file():
        raise UsageError(f"{p} not found")
    with open(p, encoding="utf-8", errors="replace") as f:
        first = f.readline()
    try:
        head = json.loads(first) if first.strip() else None
    except ValueError:
        raise UsageError(f"{p}: first line is not JSON (expected a model-timings or nn-Meter JSONL file)") from None
    if isinstance(head, dict) and head.get("format") == TIMINGS_FORMAT:
        return [_read_devprof_timings(p)]
    if isinstance(head, dict) and "graph" in head:
        from .formats import nnmeter

        models = nnmeter.read(p)
        devs = [device] if device else nnmeter.devices_of(models)
        out = []
        for d in devs:
            ms = nnmeter.to_timings(models, d)
            if not ms:
                raise UsageError(f"{p}: no model has a latency for device {d!r}")
            out.append(TimingSet(nnmeter.device_info(d).to_dict() | {"id": nnmeter.device_info(d).id},
                                 nnmeter.runtime_info(d).to_dict() | {"key": nnmeter.runtime_info(d).key}, ms, str(p)))
        return out
    raise UsageError(f"{p} is neither a devprof model-timings file nor an nn-Meter dataset")


def _read_devprof_timings(p: Path) -> TimingSet:
    models: list[ModelTiming] = []
    with open(p, encoding="utf-8") as f:
        head = json.loads(f.readline())
        v = head.get("version")
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UsageError(f"{p}: the header needs \"version\": 1 (got {v!r})")
        if v > 1:
            raise UsageError(f"{p}: model-timings version {v} is newer than this devprof reads (1); upgrade devprof")
        try:
            from predictors.spec import spec_from_user

            specs = {}
            for k, v in (head.get("specs") or {}).items():
                try:
                    specs[k] = spec_from_user(v)
                except (TypeError, ValueError, AttributeError) as e:
                    raise ValueError(f"layer id {k!r}: {e}") from None
        except (TypeError, ValueError, AttributeError) as e:
            raise UsageError(f"{p}: bad spec in the header ({e})") from None
        for i, line in enumerate(f, start=2):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                if not isinstance(d, dict):
                    raise ValueError("expected an object {\"name\", \"layers\": [...], \"latency_us\"}")
                missing = [k for k in ("layers", "latency_us") if k not in d]
                if missing:
                    other = [k for k in d if k.startswith("latency_")]
                    hint = f" (found {', '.join(other)}: give the latency in microseconds as latency_us)" if other else ""
                    raise ValueError(f"needs {' and '.join(missing)}{hint}")
                lat = float(d["latency_us"])
                layers = [str(x) for x in d["layers"]]
                if not (math.isfinite(lat) and lat > 0):
                    raise ValueError("latency_us must be positive")
            except (ValueError, KeyError, TypeError) as e:
                raise UsageError(f"{p}:{i}: bad model line: {e}") from None
            models.append(ModelTiming(str(d.get("name", f"model{i}")), layers, lat,
                                      {k: specs[k] for k in layers if k in specs}))
    return TimingSet(head.get("device") or {"name": "unknown"}, _runtime_with_key(head.get("runtime")),
                     models, str(p))


def _runtime_with_key(rt: Any) -> dict[str, Any]:
    """A header's runtime completed with devprof's runtime key (a header may give only its name)."""
    from .records import RuntimeInfo

    rt = dict(rt) if isinstance(rt, dict) else {"name": "unknown"}
    rt.setdefault("name", "unknown")
    rt.setdefault("version", "")
    rt.setdefault("threads", 1)
    rt.setdefault("options", {})
    try:
        rt.setdefault("key", RuntimeInfo(str(rt["name"]), str(rt["version"]), int(rt["threads"]),
                                         dict(rt["options"] or {})).key)
    except (TypeError, ValueError) as e:
        raise UsageError(f"the header's runtime is malformed ({e})") from None
    return rt


def _from_dataset(p: Path) -> list[TimingSet]:
    import pandas as pd

    from .store import Dataset

    df = Dataset(p).read()
    if not len(df):
        raise UsageError(f"{p}: the dataset is empty")
    out = []
    for (dev_id, rt_key), g in df.groupby(["device_id", "runtime_key"], sort=True):
        mods = g[g["kind"] == "model"]
        lay = g[g["kind"] == "layer"]
        if not len(mods) or not len(lay):
            continue
        by_run = {k: v.sort_values("layer_index") for k, v in lay.groupby("model_run_id")}
        models = []
        for _, m in mods.iterrows():
            ls = by_run.get(m["model_run_id"])
            if ls is None or not len(ls):
                continue
            specs = {k: KernelSpec.from_dict(json.loads(s)) for k, s in zip(ls["spec_key"], ls["spec_json"])}
            models.append(ModelTiming(str(m["model_name"] or m["spec_key"]) + f"@{m['model_run_id']}",
                                      [str(k) for k in ls["spec_key"]], float(m["median_us"]), specs))
        if models:
            first = g.iloc[0]
            dev = json.loads(first["device_json"])
            dev["id"] = dev_id
            rt = {"name": first["runtime"], "version": first["runtime_version"], "threads": int(first["threads"]),
                  "options": json.loads(first["runtime_options"] or "{}"), "key": rt_key}
            out.append(TimingSet(dev, rt, models, str(p)))
    if not out:
        raise UsageError(f"{p} holds no whole-model records with their layers (profile with --model first)")
    del pd
    return out
