"""Fit bundles from datasets: lookup table + per-(op, scheme) regressors + model overhead.

One bundle per (device fingerprint, runtime). For each, the distinct kernel specs form the
lookup table; a seeded 20% of each (op, scheme) group is held out; on the rest the estimator is
chosen by k-fold cross-validation (FLOPs-linear, random forest, gradient boosting), and scored
on the held-out rows — the figures written into the bundle. The published regressors are then
refitted on every row (the held-out figures describe the train-only fit, a conservative
estimate). Groups with fewer than 8 training rows use the all-ops fallback regressor.

Whole-model records (kind "model", with their "layer" records) fit the per-runtime overhead
``total = scale * sum(layers) + per_layer_us * n_layers + intercept_us`` on a seeded 70% of the
models and report model-level accuracy on the other 30% (held-out model variants).

This module imports scikit-learn; the query path never imports it.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from devprof.records import SCHEMES

from . import bundle as bmod
from . import lut as lutmod
from .features import FEATURES
from .metrics import summary
from .predictor import Predictor, group_name
from .spectable import encode_frame

MIN_GROUP_TRAIN = 8
TEST_SHARE = 0.2
MODEL_TEST_SHARE = 0.3


@dataclass
class FittedBundle:
    """Everything a bundle holds, in memory, before it is written."""

    location: tuple[str, str]
    device: dict[str, Any]
    runtime: dict[str, Any]
    lut: Any  # DataFrame
    predictor: dict[str, Any]
    heldout: dict[str, Any]
    metrics: dict[str, Any]
    dataset: dict[str, Any]
    selection: dict[str, Any] = field(default_factory=dict)

    def files(self) -> dict[str, bytes]:
        import io

        import pyarrow as pa
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(self.lut, preserve_index=False), buf, compression="zstd")
        return {"lut.json": bmod.dumps(lutmod.to_json_obj(self.lut)), "lut.parquet": buf.getvalue(),
                "predictor.json": bmod.dumps(self.predictor), "heldout.json": bmod.dumps(self.heldout)}

    def metadata(self) -> dict[str, Any]:
        from devprof import __version__

        return _clean({
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "devprof_version": __version__,
            "location": {"device": self.location[0], "runtime": self.location[1]},
            "device": self.device, "runtime": self.runtime, "dataset": self.dataset,
            "predictor": self.selection, "metrics": self.metrics,
        })

    def write(self, root: str | Path = bmod.DEFAULT_ROOT) -> Path:
        return bmod.write(Path(root) / self.location[0] / self.location[1], self.files(), self.metadata())

    def write_to(self, dest: str | Path) -> Path:
        return bmod.write(Path(dest), self.files(), self.metadata())


def _clean(x: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def read_datasets(paths: Iterable[str | Path]):
    """All records of the given dataset folders as one DataFrame."""
    import pandas as pd

    from devprof.store import Dataset

    frames = [Dataset(p).read() for p in paths]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    return df.drop_duplicates("record_key", keep="first").reset_index(drop=True)


def _split(groups: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Boolean test mask: `share` of each group (groups of < 10 rows stay in training)."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(groups), dtype=bool)
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        if len(idx) < 10:
            continue
        pick = rng.permutation(idx)[: int(round(share * len(idx)))]
        test[pick] = True
    return test


def _stable_share(names: Iterable[str], share: float, seed: int) -> dict[str, bool]:
    """Deterministic held-out choice per name (independent of order and of the other names)."""
    out = {}
    for n in names:
        h = int(hashlib.sha256(f"{seed}:{n}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        out[n] = h < share
    return out


def family_of(model_name: str) -> str:
    """The family part of a model name: ``mobilenetv2-v0.1-128x128-8ebb30`` -> ``mobilenetv2``,
    ``resnet18_2`` -> ``resnet18``."""
    head = re.split(r"[-@ ]", model_name, maxsplit=1)[0]
    return re.sub(r"_\d+$", "", head) or model_name


def fit_kernels(lut, candidates: dict | None = None, seed: int = 0, folds: int = 5,
                log: Callable[[str], None] = lambda s: None):
    """Fit the regressors for one (device, runtime) LUT. Returns (predictor json, heldout, metrics,
    selection)."""
    from sklearn.base import clone

    from .estimators import CANDIDATES, ForestLatency, BoostedLatency, select

    candidates = candidates or CANDIDATES
    T = encode_frame(lut)
    X = T.data
    y = lut["median_us"].to_numpy(dtype=np.float64)
    gnames = np.array([group_name(o, s) for o, s in zip(lut["op"], lut["scheme"])], dtype=object)
    test = _split(gnames, TEST_SHARE, seed)
    train = ~test
    pred = np.full(len(y), np.nan)
    groups_json: dict[str, Any] = {}
    selection: dict[str, Any] = {}
    # the all-ops fallback: trees only (op and scheme are features)
    fb_cands = {k: v for k, v in candidates.items() if k in ("random_forest", "gradient_boosting")} or candidates
    if train.sum() >= 2:
        fb_name, fb_est, fb_cv = select(X[train], y[train], fb_cands, folds, seed)
        log(f"fallback: {fb_name}")
    else:
        fb_name, fb_est, fb_cv = None, None, {}
    for g in sorted(set(gnames)):
        m = gnames == g
        tr, te = m & train, m & test
        if tr.sum() < MIN_GROUP_TRAIN:
            if fb_est is not None and te.any():
                pred[te] = fb_est.predict(X[te])
            selection[g] = {"estimator": "fallback", "n_train": int(tr.sum()), "n_test": int(te.sum())}
            continue
        name, est, cv = select(X[tr], y[tr], candidates, folds, seed)
        if te.any():
            pred[te] = est.predict(X[te])
        final = clone(est).fit(X[m], y[m]) if te.any() else est
        groups_json[g] = final.export()
        selection[g] = {"estimator": name, "n_train": int(tr.sum()), "n_test": int(te.sum()), "cv": cv}
        log(f"{g}: {name} ({int(tr.sum())} train, {int(te.sum())} held out)")
    fallback_json = None
    if fb_est is not None:
        fallback_json = (clone(fb_est).fit(X, y) if test.any() else fb_est).export()
        selection["*"] = {"estimator": fb_name, "n_train": int(train.sum()), "n_test": int(test.sum()),
                          "cv": fb_cv}
    elif len(y):
        from .estimators import FlopsLinear

        fallback_json = FlopsLinear().fit(X, y).export()
        selection["*"] = {"estimator": "flops_linear", "n_train": int(len(y)), "n_test": 0}
    predictor_json = {"format": "devprof-predictor", "version": 1, "features": list(FEATURES),
                      "target": "log_us", "groups": groups_json, "fallback": fallback_json,
                      "model_overhead": {"scale": 1.0, "per_layer_us": 0.0, "intercept_us": 0.0}}
    te_idx = np.flatnonzero(test & np.isfinite(pred))
    heldout = {"format": "devprof-heldout", "version": 1, "kernels": {
        "key": [str(k) for k in lut["key"].to_numpy()[te_idx]],
        "op": [str(o) for o in lut["op"].to_numpy()[te_idx]],
        "scheme": [str(s) for s in lut["scheme"].to_numpy()[te_idx]],
        "group": [str(g) for g in gnames[te_idx]],
        "flops": [int(f) for f in lut["flops"].to_numpy()[te_idx]],
        "measured_us": [float(v) for v in y[te_idx]],
        "predicted_us": [float(v) for v in pred[te_idx]],
    }, "models": None}
    km: dict[str, Any] = {"overall": summary(pred[te_idx], y[te_idx]), "per_op": {}, "per_group": {}}
    # the same figures on held-out kernels whose own measurement was steady (not flagged noisy)
    ops = lut["op"].to_numpy()
    steady = te_idx[~lut["noisy"].to_numpy(dtype=bool)[te_idx]]
    km["overall_steady"] = summary(pred[steady], y[steady])
    km["per_op_steady"] = {o: summary(pred[steady[ops[steady] == o]], y[steady[ops[steady] == o]])
                           for o in sorted(set(ops))}
    # how repeatable the targets are: no predictor can be more accurate than its measurements
    rel_iqr = lut["iqr_us"].to_numpy(dtype=np.float64) / y
    km["noise"] = {"median_rel_iqr": float(np.median(rel_iqr)) if len(y) else None,
                   "noisy_share": float(lut["noisy"].mean()) if len(y) else None,
                   "per_op": {o: {"median_rel_iqr": float(np.median(rel_iqr[lut["op"].to_numpy() == o])),
                                  "noisy_share": float(lut["noisy"].to_numpy()[lut["op"].to_numpy() == o].mean())}
                              for o in sorted(set(lut["op"]))}}
    ops = lut["op"].to_numpy()
    for o in sorted(set(ops)):
        sel = te_idx[ops[te_idx] == o]
        km["per_op"][o] = {**summary(pred[sel], y[sel]), "samples": int((ops == o).sum())}
    for g in sorted(set(gnames)):
        sel = te_idx[gnames[te_idx] == g]
        km["per_group"][g] = {**summary(pred[sel], y[sel]), "samples": int((gnames == g).sum()),
                              "estimator": selection.get(g, {}).get("estimator")}
    del BoostedLatency, ForestLatency
    return predictor_json, heldout, km, selection


def _model_runs(df):
    """(model rows, {model_run_id: layer frame}) for whole-model records."""
    models = df[df["kind"] == "model"]
    # layer_index -1 is the run's measured "(overhead)" row: the overhead term is fitted, not summed
    layers = df[(df["kind"] == "layer") & (df["layer_index"] >= 0)]
    by_run = {k: g.sort_values("layer_index") for k, g in layers.groupby("model_run_id")}
    return models, by_run


def fit_models(df, predictor: Predictor, seed: int = 0) -> tuple[dict[str, float], dict[str, Any], Any]:
    """Fit the per-runtime model overhead on training models; score held-out model variants."""
    from scipy.optimize import nnls

    models, by_run = _model_runs(df)
    rows = []
    for _, m in models.iterrows():
        lay = by_run.get(m["model_run_id"])
        if lay is None or not len(lay):
            continue
        r = predictor.predict_table(encode_frame(lay))
        rows.append((str(m["model_name"] or m["spec_key"]), float(r.latency_us.sum()), len(lay),
                     float(m["median_us"]), float(lay["median_us"].sum())))
    default = {"scale": 1.0, "per_layer_us": 0.0, "intercept_us": 0.0}
    if not rows:
        note = ("no whole-model records in the data" if not len(models) else
                f"{len(models)} whole-model records, none with per-layer records to sum (e.g. LiteRT end to end only)")
        return default, {"overall": None, "note": note}, None
    names = [r[0] for r in rows]
    held = _stable_share(sorted(set(names)), MODEL_TEST_SHARE, seed)
    te = np.array([held[n] for n in names])
    if te.all() or (~te).sum() < 3:
        te = np.zeros(len(rows), dtype=bool)
    S = np.array([r[1] for r in rows])
    L = np.array([r[2] for r in rows], dtype=float)
    Y = np.array([r[3] for r in rows])
    tr = ~te
    A = np.stack([S, L, np.ones_like(S)], axis=1) / Y[:, None]
    coef, _ = nnls(A[tr], np.ones(int(tr.sum())))
    ov = {"scale": float(coef[0]), "per_layer_us": float(coef[1]), "intercept_us": float(coef[2])}
    P = coef[0] * S + coef[1] * L + coef[2]
    fam = np.array([family_of(n) for n in names], dtype=object)
    evalmask = te if te.any() else tr
    out: dict[str, Any] = {
        "overall": summary(P[evalmask], Y[evalmask]),
        "held_out": bool(te.any()),
        "n_train_models": int(tr.sum()), "n_test_models": int(te.sum()),
        "sum_of_layers_only": summary(S[evalmask], Y[evalmask]),
        "per_family": {f: summary(P[evalmask & (fam == f)], Y[evalmask & (fam == f)])
                       for f in sorted(set(fam[evalmask]))},
        "overhead": ov,
    }
    if not te.any():
        out["note"] = "too few models to hold any out: figures are in-sample"
    idx = np.flatnonzero(evalmask)
    held_json = {"model": [names[i] for i in idx], "family": [str(fam[i]) for i in idx],
                 "layers": [int(L[i]) for i in idx], "measured_us": [float(Y[i]) for i in idx],
                 "predicted_us": [float(P[i]) for i in idx], "layers_sum_us": [float(S[i]) for i in idx]}
    return ov, out, held_json


def _dataset_hash(df) -> str:
    h = hashlib.sha256()
    for k, m in sorted(zip(df["record_key"].astype(str), df["median_us"].astype(float))):
        h.update(f"{k}:{m!r}\n".encode())
    return h.hexdigest()


def fit_bundles(df, sources: list[str] | None = None, candidates: dict | None = None, seed: int = 0,
                log: Callable[[str], None] = lambda s: None) -> list[FittedBundle]:
    """One FittedBundle per (device, runtime) found in the records `df`."""
    out = []
    if not len(df):
        return out
    for (dev_id, rt_key), g in df.groupby(["device_id", "runtime_key"], sort=True):
        kern = g[(g["kind"] == "kernel") & (g["op"] != "model")]
        if not len(kern):
            continue
        first = g.iloc[0]
        device = json.loads(first["device_json"])
        device["id"] = dev_id
        runtime = {"name": first["runtime"], "version": first["runtime_version"], "threads": int(first["threads"]),
                   "options": json.loads(first["runtime_options"] or "{}"), "key": rt_key}
        log(f"fitting {device.get('name')} / {rt_key}: {len(kern)} kernel records")
        lut = lutmod.build(kern)
        pj, heldout, km, selection = fit_kernels(lut, candidates, seed, log=log)
        pred = Predictor(Path("<memory>"), {}, lutmod.to_json_obj(lut)["columns"], pj)
        ov, mm, mheld = fit_models(g, pred, seed)
        pj["model_overhead"] = ov
        heldout["models"] = mheld
        metrics = {"kernel": km, "model": mm,
                   "split": {"kernel_test_share": TEST_SHARE, "model_test_share": MODEL_TEST_SHARE, "seed": seed,
                             "refit_on_all": True}}
        dataset = {"sha256": _dataset_hash(g), "records": int(len(g)), "kernel_records": int(len(kern)),
                   "lut_rows": int(len(lut)), "model_records": int((g["kind"] == "model").sum()),
                   "sources": list(sources or []),
                   "runtime_versions": sorted(set(map(str, g["runtime_version"]))),
                   "schemes": sorted(set(map(str, kern["scheme"])), key=SCHEMES.index)}
        loc = (bmod.slug(device.get("name") or "device"),
               bmod.runtime_slug(runtime["name"], runtime["threads"], runtime["options"]))
        out.append(FittedBundle(loc, device, runtime, lut, _clean(pj), _clean(heldout), _clean(metrics),
                                dataset, _clean(selection)))
    return out
