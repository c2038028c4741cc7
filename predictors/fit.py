"""Fit bundles from datasets: lookup table + per-(op, scheme) regressors + model overhead.

One bundle per (device fingerprint, runtime). For each, the distinct kernel specs form the
lookup table; about 20% of each (op, scheme) group, chosen by a seeded hash of each kernel's
spec key (stable as data is added), is held out; on the rest the estimator is
chosen by k-fold cross-validation (FLOPs-linear, random forest, gradient boosting), and scored
on the held-out rows — the figures written into the bundle. The published regressors are then
refitted on every row (the held-out figures describe the train-only fit, a conservative
estimate). Groups with fewer than 8 training rows use the all-ops fallback regressor.

Whole-model records (kind "model", with their "layer" records) give the in-model layer part (a
table of layers timed inside models and regressors fitted on it) and the per-runtime overhead
``total = scale * sum(layers) + per_layer_us * n_layers + intercept_us``, both fitted on a seeded
70% of the models; model-level accuracy is reported on the other 30% (held-out model variants),
then both are refitted on every model for publishing.

This module imports scikit-learn; the query path never imports it.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .spec import SCHEMES

from . import bundle as bmod
from . import lut as lutmod
from .features import FEATURES
from .errors import UserError
from .metrics import summary
from .predictor import Predictor, group_name, model_total
from .spectable import col, encode_frame, str_hash

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
        # one copy of each table: pandas users get the table from `Predictor.lut`
        return {"lut.json": bmod.dumps(lutmod.to_json_obj(self.lut)),
                "predictor.json": bmod.dumps(self.predictor), "heldout.json": bmod.dumps(self.heldout)}

    def metadata(self) -> dict[str, Any]:
        return _clean({
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "devprof_version": _producer_version(),
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


def _bundle_device_name(device: dict) -> str:
    """The name a device's bundle folder is made from: an emulator's bundle never lands in the
    folder of the phone it pretends to be."""
    return (device.get("name") or "device") + (" emulated" if device.get("emulated") else "")


def emulated_mix(df) -> str | None:
    """None when the records are all from real devices or all from emulated ones, else why
    they cannot be fitted together (emulated timings say nothing about a phone)."""
    if not len(df) or "emulated" not in df:
        return None
    emu = df["emulated"].fillna(False).astype(bool)
    if emu.all() or not emu.any():
        return None
    names = ", ".join(sorted(set(map(str, df.loc[emu, "device_name"]))))
    return (f"{int(emu.sum())} records come from emulated devices ({names}: timings under an emulator say "
            f"nothing about a phone) and {int((~emu).sum())} from real ones; fit them apart, or pass "
            "--drop-emulated to fit the real ones")


def _group_names(table) -> np.ndarray:
    """'op/scheme' of each row of a LUT-shaped frame."""
    dtypes = table["dtype"] if "dtype" in table else ["fp32"] * len(table)
    return np.array([group_name(o, s, d) for o, s, d in zip(table["op"], table["scheme"], dtypes)], dtype=object)


def _seeded_hash(seed: int, key: str) -> bytes:
    """sha256 of (seed, key): the held-out draw of kernels and of model variants, stable per item."""
    return hashlib.sha256(f"{seed}:{key}".encode()).digest()


def _split(groups: np.ndarray, keys: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Boolean test mask: each kernel is held out when a hash of (seed, its spec key) falls in the
    first `share` of the range — about `share` of each group (groups of < 10 rows stay in
    training). A kernel's side depends on nothing else, so measuring more shapes (of any op) adds
    kernels on both sides and moves none: figures before and after compare on the same kernels."""
    u = np.array([int.from_bytes(_seeded_hash(seed, k)[:8], "big") / 2.0 ** 64 for k in keys], dtype=np.float64)
    test = u < share
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        if len(idx) < 10:
            test[idx] = False
    return test


def family_of(model_name: str) -> str:
    """The family part of a model name: ``mobilenetv2-v0.1-128x128-8ebb30`` -> ``mobilenetv2``,
    ``resnet18_2`` -> ``resnet18``."""
    head = re.split(r"[-@ ]", model_name, maxsplit=1)[0]
    return re.sub(r"_\d+$", "", head) or model_name


def kernel_geometry(runtime_options: dict[str, Any] | None) -> dict[str, int]:
    """The vector shape devprof's kernels were generated for, from a devprof-c runtime's options:
    the ``isa`` row of `features.ISA_GEOMETRY` when recorded, else ``vector_floats`` with the
    register count older records imply (16 floats: 32 registers, 8: 16), else the features'
    defaults."""
    from .features import ISA_GEOMETRY, kernel_geometry_of

    opts = runtime_options or {}
    isa = opts.get("isa")
    if isinstance(isa, str) and isa in ISA_GEOMETRY:
        floats, regs = ISA_GEOMETRY[isa]
        return {"vector_floats": floats, "vector_regs": regs}
    vl = opts.get("vector_floats")
    if isinstance(vl, int) and not isinstance(vl, bool) and vl > 0:
        return {"vector_floats": vl, "vector_regs": 2 * vl}
    return kernel_geometry_of(None)


def fit_kernels(lut, candidates: dict | None = None, seed: int = 0, folds: int = 5,
                log: Callable[[str], None] = lambda s: None, statistic: str = "median",
                geometry: dict[str, int] | None = None):
    """Fit the regressors for one (device, runtime) LUT to its `statistic` column ("median" or
    "min"); `geometry` is the vector shape of the runtime's generated kernels (`kernel_geometry`),
    which estimators with those parameters get. Returns (predictor json, heldout, metrics,
    selection)."""
    from sklearn.base import clone

    from .estimators import CANDIDATES, select

    geometry = geometry or kernel_geometry(None)
    candidates = {n: (clone(e).set_params(**geometry) if set(geometry) <= set(e.get_params()) else e)
                  for n, e in (candidates or CANDIDATES).items()}
    T = encode_frame(lut)
    X = T.data
    y = lut[f"{statistic}_us"].to_numpy(dtype=np.float64)
    gnames = _group_names(lut)
    test = _split(gnames, lut["key"].to_numpy(), TEST_SHARE, seed)
    train = ~test
    pred = np.full(len(y), np.nan)
    groups_json: dict[str, Any] = {}
    selection: dict[str, Any] = {}
    # the all-ops fallback: trees only (op and scheme are features)
    fb_cands = {k: v for k, v in candidates.items() if k in ("random_forest", "gradient_boosting", "blend")} or candidates
    if train.sum() >= 2:
        fb_name, fb_est, fb_cv = select(X[train], y[train], fb_cands, folds, seed)
        log(f"fallback: {fb_name}")
    else:
        fb_name, fb_est, fb_cv = None, None, {}
    # sparse kernels: one op's schemes share most of their cost structure (the same generated
    # loops over the non-zeros); a regressor pooled over the op's schemes (scheme and its
    # parameters are features) beats per-scheme ones (devprof-c sparse-sweep, 5-fold CV: conv2d
    # 65% -> 88% within ±10%, pwconv 64% -> 82%; with sparse-train's 276 pwconv kernels per
    # scheme still 82% pooled vs 73% per scheme on held-out kernels)
    # pooled per op and dtype: "pwconv", "pwconv/int8"
    ops_of = np.array(["/".join(g.split("/")[:1] + g.split("/")[2:]) for g in gnames], dtype=object)
    pooled: dict[str, tuple[str, Any, dict, dict]] = {}
    stored_under: dict[str, str] = {}  # op -> the group holding its pooled regressor
    for op in sorted(set(ops_of)):
        om = ops_of == op
        if len(set(gnames[om])) > 1 and (om & train).sum() >= MIN_GROUP_TRAIN:
            name, est, cv = select(X[om & train], y[om & train], candidates, folds, seed)
            # published: refitted on every row of the op once, stored once for all its schemes
            final = clone(est).fit(X[om], y[om]) if (om & test).any() else est
            pooled[op] = (name, est, cv, final.export())
            log(f"{op}/*: {name} pooled over {len(set(gnames[om]))} schemes ({int((om & train).sum())} train)")
    for g in sorted(set(gnames)):
        m = gnames == g
        tr, te = m & train, m & test
        op = "/".join(g.split("/")[:1] + g.split("/")[2:])
        if op in pooled:
            name, est, cv, exported = pooled[op]
            om = ops_of == op
            if te.any():
                pred[te] = est.predict(X[te])
            # stored once, under the op's first group; its other groups refer to it
            first = stored_under.setdefault(op, g)
            groups_json[g] = exported if first == g else {"kind": "same_as", "group": first}
            selection[g] = {"estimator": name, "pooled_over": f"{op}/*", "n_train": int((om & train).sum()),
                            "n_test": int(te.sum()), "cv": cv}
            continue
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
                      "kernel_geometry": dict(geometry),
                      "target": "log_us", "statistic": statistic, "groups": groups_json, "fallback": fallback_json,
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
    # per data type: int8 and fp32 kernels' held-out accuracy side by side
    dts = lut["dtype"].to_numpy() if "dtype" in lut else np.full(len(y), "fp32", dtype=object)
    km["per_dtype"] = {str(d): {**summary(pred[te_idx[dts[te_idx] == d]], y[te_idx[dts[te_idx] == d]]),
                                "samples": int((dts == d).sum())} for d in sorted(set(dts))}
    for g in sorted(set(gnames)):
        sel = te_idx[gnames[te_idx] == g]
        km["per_group"][g] = {**summary(pred[sel], y[sel]), "samples": int((gnames == g).sum()),
                              "estimator": selection.get(g, {}).get("estimator")}
    return predictor_json, heldout, km, selection


def _model_runs(df):
    """(model rows, {model_run_id: layer frame}) for whole-model records."""
    models = df[df["kind"] == "model"]
    # a pruned model's "layer chain" (attrs composed=sum-of-layers) is its layers timed one by one,
    # summed: no end-to-end run. Only measured runs teach in-model layer times and the overhead
    # (for devprof-c: the model as one generated program, composed=program)
    chain = models["attrs"].fillna("").str.contains('"composed":"sum-of-layers"', regex=False) \
        if "attrs" in models else models["kind"] != models["kind"]
    dropped = set(models.loc[chain, "model_run_id"])
    models = models[~chain]
    # layer_index -1 is the run's measured "(overhead)" row: the overhead term is fitted, not summed
    layers = df[(df["kind"] == "layer") & (df["layer_index"] >= 0) & ~df["model_run_id"].isin(dropped)]
    by_run = {k: g.sort_values("layer_index") for k, g in layers.groupby("model_run_id")}
    return models, by_run


def fit_layers(layers, candidates: dict | None = None, seed: int = 0, folds: int = 5) -> dict[str, Any] | None:
    """The in-model layer part of a predictor: a table of layer times (every distinct layer spec
    timed inside a measured model: the median over its occurrences of each one's fastest run) and
    per-(op, scheme) regressors fitted on it. Layers run differently inside a model than alone
    (warm caches, the runtime's layout kept between layers), so whole-model predictions start
    from these. None when there are no layer records."""
    from .estimators import CANDIDATES, FlopsLinear, select

    if layers is None or not len(layers):
        return None
    # a layer's time is its fastest profiled run: whole models are timed by the rounds protocol
    # (each round's fastest sample), and the per-layer statistic comparable to that is the
    # fastest of the profiler's single runs, not their median, which carries whatever disturbed
    # each run (ONNX Runtime, 41 models: the sum of layer minima is within 5% of the end-to-end
    # time for 90% of them, the sum of layer medians for 61%)
    table = lutmod.build(layers.assign(median_us=layers["min_us"]))
    T = encode_frame(table)
    y = table["median_us"].to_numpy(dtype=np.float64)
    gnames = _group_names(table)
    groups: dict[str, Any] = {}
    # variants of one op (PReLU vs h-swish, ConvTranspose vs Resize behind "other") differ by
    # orders of magnitude: each variant with data gets its own linear model, tried first
    attrs = np.array([f"{g}#{int(h):012x}" for g, h in zip(gnames, T.data[:, col("attrs")])], dtype=object)
    plain = str_hash("{}")
    for a in sorted(set(attrs)):
        m = attrs == a
        if T.data[np.flatnonzero(m)[0], col("attrs")] != plain:
            groups[a] = FlopsLinear().fit(T.data[m], y[m]).export()
    for g in sorted(set(gnames)):
        m = gnames == g
        if m.sum() < 2:
            continue  # a lone layer: the table has it; others of its kind use the kernel path
        if m.sum() < MIN_GROUP_TRAIN:  # a few layers: latency proportional to work and bytes
            groups[g] = FlopsLinear().fit(T.data[m], y[m]).export()
            continue
        _, est, _ = select(T.data[m], y[m], candidates or CANDIDATES, folds, seed)
        groups[g] = est.export()
    # median_us already holds the fastest runs: the table's own min_us column would only repeat it
    return {"table": lutmod.to_json_obj(table.drop(columns="min_us"))["columns"], "groups": groups,
            "models": int(layers["model_run_id"].nunique())}


def fit_models(df, predictor_json: dict[str, Any], lut_cols: dict[str, list], seed: int = 0,
               candidates: dict | None = None) -> tuple[dict[str, float], dict[str, Any], Any, dict | None]:
    """Fit the in-model layer part and the per-runtime overhead on training models; score
    held-out model variants (their end-to-end time in the predictor's statistic). Returns
    (overhead, metrics, held-out rows, layer part fitted on all models)."""
    models, by_run = _model_runs(df)
    stat = f"{predictor_json.get('statistic', 'median')}_us"
    runs = [(str(m["model_name"] or m["spec_key"]), m["model_run_id"], float(m[stat]))
            for _, m in models.iterrows() if by_run.get(m["model_run_id"]) is not None and len(by_run[m["model_run_id"]])]
    default = {"scale": 1.0, "per_layer_us": 0.0, "intercept_us": 0.0}
    if not runs:
        note = ("no whole-model records in the data" if not len(models) else
                f"{len(models)} whole-model records, none with per-layer records to sum (e.g. LiteRT end to end only)")
        return default, {"overall": None, "note": note}, None, None
    names = [r[0] for r in runs]
    held = _held_out_variants(sorted(set(names)), MODEL_TEST_SHARE, seed)
    te = np.array([held[n] for n in names])
    if te.all() or (~te).sum() < 3:
        te = np.zeros(len(runs), dtype=bool)
    tr = ~te
    train_layers = [by_run[r[1]] for r, t in zip(runs, tr) if t]
    import pandas as pd

    part = fit_layers(pd.concat(train_layers) if train_layers else None, candidates, seed)
    S = _layer_sums(Predictor(Path("<memory>"), {}, lut_cols, {**predictor_json, "layers": part}), runs, by_run)
    L = np.array([len(by_run[r[1]]) for r in runs], dtype=float)
    Y = np.array([r[2] for r in runs])
    ov, ov_scores = _fit_overhead(S[tr], L[tr], Y[tr])
    P = model_total(ov, S, L)
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
        "overhead_selection": ov_scores or None,
        "layers_from": "in-model layer table and regressors of the training models, single-kernel path for the rest",
    }
    if not te.any():
        out["note"] = "too few models to hold any out: figures are in-sample"
    idx = np.flatnonzero(evalmask)
    held_json = {"model": [names[i] for i in idx], "family": [str(fam[i]) for i in idx],
                 "layers": [int(L[i]) for i in idx], "measured_us": [float(Y[i]) for i in idx],
                 "predicted_us": [float(P[i]) for i in idx], "layers_sum_us": [float(S[i]) for i in idx]}
    # publish: layer part from every model, overhead refitted on every model with it
    full = fit_layers(pd.concat([by_run[r[1]] for r in runs]), candidates, seed) if te.any() else part
    if te.any():
        S_all = _layer_sums(Predictor(Path("<memory>"), {}, lut_cols, {**predictor_json, "layers": full}), runs, by_run)
        ov, _ = _fit_overhead(S_all, L, Y)  # predictor.json keeps the chosen form; the scores are in the metrics
    return ov, out, held_json, full


def _layer_sums(pred: Predictor, runs: list, by_run: dict) -> np.ndarray:
    """Predicted sum of each model run's layers (runs: (name, run id, measured µs))."""
    return np.array([float(pred.predict_layers(encode_frame(by_run[run_id])).latency_us.sum())
                     for _, run_id, _ in runs])


def _held_out_variants(names: list[str], share: float, seed: int) -> dict[str, bool]:
    """Hold out about `share` of each family's variants (rounded, at least one), never a family's
    last variant: held-out models are unseen variants of families the predictor knows."""
    out = {n: False for n in names}
    by_family: dict[str, list[str]] = {}
    for n in names:
        by_family.setdefault(family_of(n), []).append(n)
    for members in by_family.values():
        if len(members) < 2:
            continue
        order = sorted(members, key=lambda n: _seeded_hash(seed, n))
        k = min(len(members) - 1, max(1, int(round(share * len(members)))))
        for n in order[:k]:
            out[n] = True
    return out


#: Forms of the whole-model overhead, by the terms they fit (0: scale of the layer sum, 1: per layer,
#: 2: intercept); the one with the best leave-one-out accuracy over training models is published.
OVERHEAD_FORMS: dict[str, tuple[int, ...]] = {
    "scale": (0,), "scale+per_layer": (0, 1), "scale+intercept": (0, 2), "scale+per_layer+intercept": (0, 1, 2)}
#: Fewer training models than this: no leave-one-out choice, the two-term form as before.
MIN_MODELS_SELECT = 8


def _lsq_overhead(A: np.ndarray, terms: tuple[int, ...]) -> np.ndarray | None:
    """Coefficients (3) of one overhead form by least squares on relative error (A: rows of
    (S, L, 1) / Y); None when the fit is unusable (non-positive scale or a non-positive total
    for one of its own models)."""
    coef = np.zeros(3)
    coef[list(terms)] = np.linalg.lstsq(A[:, terms], np.ones(len(A)), rcond=None)[0]
    if coef[0] <= 0 or np.any(A @ coef <= 0):
        return None
    return coef


def _fit_overhead(S: np.ndarray, L: np.ndarray, Y: np.ndarray) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """total = scale*S + per_layer_us*L + intercept_us, least squares on relative error; returns
    (the overhead terms with `form` and `floor_share`, each form's leave-one-out scores).

    Which terms are free is chosen by leave-one-out over the training models (share within ±10%,
    then mean relative error): a per-layer or constant term that only fits noise loses there.
    per_layer_us and intercept_us may come out negative: layer timings from a runtime's profiler
    carry profiling costs the unprofiled run does not pay. ``floor_share`` (the smallest measured /
    layer-sum ratio among the models) bounds a prediction from below, so a model much smaller than
    any fitted one never gets a non-positive total. Falls back to non-negative coefficients when no
    form gives positive totals."""
    from scipy.optimize import nnls

    from .metrics import within

    A = np.stack([S, L, np.ones_like(S)], axis=1) / Y[:, None]
    floor = float(np.min(Y / S)) if len(Y) and np.all(S > 0) else 0.0
    scores: dict[str, dict[str, float]] = {}
    form, coef = None, None
    if len(Y) >= MIN_MODELS_SELECT:
        best = None
        for name, terms in OVERHEAD_FORMS.items():
            c_all = _lsq_overhead(A, terms)
            if c_all is None:
                continue
            loo = np.empty(len(Y))
            for i in range(len(Y)):
                keep = np.arange(len(Y)) != i
                c = _lsq_overhead(A[keep], terms)
                floor_i = float(np.min(Y[keep] / S[keep])) if floor > 0 else 0.0
                loo[i] = max((A[i] @ (c if c is not None else c_all)) * Y[i], floor_i * S[i])
            w, mape = within(loo, Y, 0.10), float(np.mean(np.abs(loo - Y) / Y))
            scores[name] = {"loo_within_10": w, "loo_mape": mape}
            if best is None or (round(w, 6), -mape) > best:
                best, form, coef = (round(w, 6), -mape), name, c_all
    elif len(Y) >= 3:  # scale and per-layer term free, no intercept (too few models to judge one)
        coef = _lsq_overhead(A, (0, 1))
        form = "scale+per_layer" if coef is not None else None
    if coef is None:
        coef, form = nnls(A, np.ones(len(Y)))[0], "non-negative"
    return {"scale": float(coef[0]), "per_layer_us": float(coef[1]), "intercept_us": float(coef[2]),
            "floor_share": floor, "form": form}, scores


def _dataset_hash(df) -> str:
    h = hashlib.sha256()
    for k, m in sorted(zip(df["record_key"].astype(str), df["median_us"].astype(float))):
        h.update(f"{k}:{m!r}\n".encode())
    return h.hexdigest()


class DeviceClash(ValueError):
    """Records of several fingerprints of one device would make one bundle (see `fit_bundles`)."""


def _fingerprint_diff(jsons: list[str]) -> str:
    """'kernel: A vs B' for the fields in which devices' fingerprints differ (the first two)."""
    a, b = (json.loads(j) for j in jsons[:2])
    return "; ".join(f"{k}: {a.get(k)} vs {b.get(k)}" for k in sorted(set(a) | set(b))
                     if k not in ("id", "extra") and a.get(k) != b.get(k)) or "extra"


def fit_bundles(df, sources: list[str] | None = None, candidates: dict | None = None, seed: int = 0,
                log: Callable[[str], None] = lambda s: None, statistic: str = "median",
                pool_devices: bool = False) -> list[FittedBundle]:
    """One FittedBundle per (device, runtime) found in the records `df`, serving `statistic`
    ("median": the median of each kernel's rounds; "min": its fastest round, see predictors.lut).

    A device is its fingerprint (model, SoC, cores, OS build, kernel...): an OS update can move
    timings, so records of two fingerprints are two devices. Two fingerprints of one device *name*
    would write one bundle folder: that is refused (`DeviceClash`) unless `pool_devices`, which fits
    them as one device — for an update checked not to move timings (repeat a campaign of measured
    kernels and compare). The bundle then describes the fingerprint with the most records, and its
    dataset lists every fingerprint pooled (`devices`: id -> records)."""
    if statistic not in lutmod.STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r} (known: {', '.join(lutmod.STATISTICS)})")
    out: list[FittedBundle] = []
    if not len(df):
        return out
    # the bundle folder of each device: the clash check, the pooled grouping and FittedBundle.location use it
    names = {j: bmod.slug(_bundle_device_name(json.loads(j))) for j in df["device_json"].unique()}
    df = df.assign(_device=df["device_json"].map(names))
    fingerprints = df.groupby(["_device", "runtime_key"])["device_id"].nunique()
    if not pool_devices and (fingerprints > 1).any():
        name, rt_key = fingerprints[fingerprints > 1].index[0]
        g = df[(df["_device"] == name) & (df["runtime_key"] == rt_key)]
        ids = sorted(set(g["device_id"]))
        raise DeviceClash(f"records of {len(ids)} fingerprints of device {name!r} ({', '.join(ids)}; "
                          f"{_fingerprint_diff(list(g.drop_duplicates('device_id')['device_json']))}) would make "
                          "one bundle: fit them apart, or pool them with --pool-devices once a repeat campaign "
                          "shows the difference does not move timings")
    for (_, rt_key), g in df.groupby(["_device" if pool_devices else "device_id", "runtime_key"], sort=True):
        kern = g[(g["kind"] == "kernel") & (g["op"] != "model")]
        if not len(kern):
            continue
        counts = g["device_id"].value_counts(sort=False).sort_index()
        dev_id = str(counts.idxmax())
        first = g[g["device_id"] == dev_id].iloc[0]
        device = json.loads(first["device_json"])
        device["id"] = dev_id
        runtime = {"name": first["runtime"], "version": first["runtime_version"], "threads": int(first["threads"]),
                   "options": json.loads(first["runtime_options"] or "{}"), "key": rt_key}
        log(f"fitting {device.get('name')} / {rt_key}: {len(kern)} kernel records")
        lut = lutmod.build(kern)
        _check_enough(lut, f"{device.get('name')} / {rt_key}", log)
        pj, heldout, km, selection = fit_kernels(lut, candidates, seed, log=log, statistic=statistic,
                                                 geometry=kernel_geometry(runtime["options"]))
        km["noise"]["campaigns"] = lutmod.campaign_agreement(kern, statistic)
        ov, mm, mheld, layers = fit_models(g, pj, lutmod.to_json_obj(lut)["columns"], seed, candidates)
        pj["model_overhead"] = ov
        pj["layers"] = layers
        heldout["models"] = mheld
        metrics = {"statistic": statistic, "kernel": km, "model": mm,
                   "split": {"kernel_test_share": TEST_SHARE, "model_test_share": MODEL_TEST_SHARE, "seed": seed,
                             "refit_on_all": True}}
        dataset = {"sha256": _dataset_hash(g), "records": int(len(g)), "kernel_records": int(len(kern)),
                   "lut_rows": int(len(lut)), "model_records": int((g["kind"] == "model").sum()),
                   "sources": list(sources or []),
                   "runtime_versions": sorted(set(map(str, g["runtime_version"]))),
                   "schemes": sorted(set(map(str, kern["scheme"])), key=SCHEMES.index)}
        if len(counts) > 1:
            dataset["devices"] = {str(k): int(v) for k, v in counts.items()}
        loc = (str(first["_device"]),  # the device folder the records were grouped (and checked) by
               bmod.runtime_slug(runtime["name"], runtime["threads"], runtime["options"]))
        out.append(FittedBundle(loc, device, runtime, lut, _clean(pj), _clean(heldout), _clean(metrics),
                                dataset, _clean(selection)))
    locs = [b.location for b in out]
    clash = next((l for l in locs if locs.count(l) > 1), None)
    if clash is not None:
        keys = [b.runtime["key"] for b in out if b.location == clash]
        raise DeviceClash(f"runtimes {' and '.join(keys)} would write one bundle folder {'/'.join(clash)}: fit them "
                          "apart (--runtime, or separate datasets)")
    return out


class TooFewKernels(UserError):
    """A bundle would be fitted on fewer kernels than any regressor needs."""


def _check_enough(lut, what: str, log: Callable[[str], None]) -> None:
    """Refuse a bundle of fewer than MIN_GROUP_TRAIN distinct kernels (a regressor fitted on one
    conv predicted an fc 5,000x too slow), and say which ops get no regressor of their own: their
    table rows are served as measured, their other kernels come from the all-ops fallback and are
    marked outside the training domain."""
    counts = lut["op"].value_counts().sort_index()
    if len(lut) < MIN_GROUP_TRAIN:
        have = ", ".join(f"{op} {n}" for op, n in counts.items()) or "none"
        raise TooFewKernels(f"{what}: {len(lut)} distinct kernel(s) ({have}); a predictor needs at least "
                            f"{MIN_GROUP_TRAIN} per op: measure more (e.g. --suite predictor-train) or query the "
                            "records directly (devprof show)")
    for op, n in counts.items():
        if n < MIN_GROUP_TRAIN:
            log(f"{op}: {n} kernel(s), fewer than {MIN_GROUP_TRAIN}: no regressor of its own; its measured kernels "
                "are served from the table, its other kernels are marked outside the training domain")


def _producer_version() -> str:
    """The installed devprof's version, recorded in each bundle; read from the package metadata so
    that fitting imports nothing from devprof ("unknown" where it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("devprof")
    except PackageNotFoundError:
        return "unknown"
