"""Accuracy metrics of latency predictions (numpy only).

Search ranks candidates, so next to the usual error figures (share within ±5%/±10%, MAPE,
RMSE) the Spearman rank correlation says whether the predictor orders kernels correctly.
"""
from __future__ import annotations

import numpy as np


def within(pred: np.ndarray, true: np.ndarray, tol: float) -> float:
    """Share of predictions whose relative error |pred - true| / true is at most `tol`."""
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    if not len(true):
        return float("nan")
    return float(np.mean(np.abs(pred - true) <= tol * true + 1e-12))


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks (1-based) with ties given their average rank."""
    x = np.asarray(x, float)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x))
    boundaries = np.flatnonzero(np.diff(xs)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(x)]])
    avg = (starts + ends - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2:
        return float("nan")
    ra, rb = rankdata(a), rankdata(b)
    sa, sb = ra.std(), rb.std()
    if sa == 0 or sb == 0:
        return float("nan")
    # clipped: identical rankings can come out a rounding error above 1 (a schema violation)
    return float(np.clip(np.mean((ra - ra.mean()) * (rb - rb.mean())) / (sa * sb), -1.0, 1.0))


def summary(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """The held-out figures a bundle's metadata carries (NaN becomes None in JSON)."""
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    n = len(true)
    if n == 0:
        return {"n": 0, "within_5": None, "within_10": None, "mape": None, "rmse_us": None, "spearman": None}
    rel = np.abs(pred - true) / true
    sp = spearman(pred, true)
    return {
        "n": int(n),
        "within_5": within(pred, true, 0.05),
        "within_10": within(pred, true, 0.10),
        "mape": float(rel.mean()),
        "rmse_us": float(np.sqrt(np.mean((pred - true) ** 2))),
        "spearman": None if np.isnan(sp) else sp,
    }
