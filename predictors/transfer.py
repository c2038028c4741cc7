"""Transfer: a new device's latency predictor from a few measurements on it plus what other
(source) devices' predictors already know. Numpy only; no devprof import.

Two settings share one idea — the sources give a *prior*, the few target samples decide how far
to trust it, and leave-one-out (LOO) on those samples decides the shrinkage:

**Per-layer tables from whole-model timings** (`fit_table`). The target's table is modelled as

    t = c · m  +  m ⊙ (G γ)  +  m ⊙ d              (overhead: one more "layer" present in every model)

fitted to minimise a Huber loss of the relative errors (`ROBUST`), where `m` is the prior
table: each source's table rescaled to the target by one constant, averaged with weights from
how well each rescaled source explains the target samples (a posterior over
"which source does this device resemble", Gaussian in the LOO errors); `c` is a free scale, `γ`
one relative correction per layer group (the op: a device's convolutions may be relatively faster
than another's pooling) and `d` one per layer. `γ` and `d` are ridge-penalised toward zero, so the
fit starts at the prior and leaves it only as far as the samples demand; both penalties are chosen
by LOO (closed form: the fit is linear in the samples) over a grid that includes "prior only",
preferring the stronger penalty unless a weaker one's LOO error is clearly lower, and never
spending more than a third of the samples on effective parameters (few samples give noisy LOO
figures). The prior is that mixture, or the best single rescaled source alone, whichever LOO
prefers (the mixture on ties). All errors are relative (search cares about ±x%). When the samples
contradict every source the chosen penalties fall and the per-layer part carries the fit:
`TableTransfer.prior_shrunk_away` says so. Because that fit picks its penalties by LOO, its LOO
figure flatters it next to a fixed one-constant model; `fit_table` therefore makes the last choice
— the penalised fit, the mixture of rescaled sources without corrections, or a blend — by
cross-validating the whole procedure (every fold refits penalties and source weights) on the target
samples alone, keeping the simplest candidate whose loss is within half a standard error of the
lowest (`CHOICE_SE`): a few folds' losses are noisy, and following their noise keeps the fit where
the mixture ranks the rest better. The simple end is the mixture, not the best single source: when
the samples cannot tell the sources apart, betting on the one that happens to explain them best
ranks the rest worse on average than hedging between them.

**Kernel predictors** (`fit_kernels`). Each source bundle predicts the target's sampled kernels;
the target is modelled in log space as a per-(op, scheme)-group rescaling of one source or of the
LOO-weighted geometric mixture of all of them, plus an optional ridge residual on a few kernel
features; the candidate with the lowest LOO error on the target samples is kept.

`choose_informative` picks which candidates to measure first: where the (rescaled) sources
disagree most, spread over the prior's feature space.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .metrics import summary

PENALTIES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4)
"""Ridge penalties tried for the group and per-layer corrections, in units of the (normalised)
sum of squares of one sample; plus "off" (the correction is not used)."""
OFF = float("inf")
EARN = 0.05
"""A weaker penalty (a fit further from the prior) must lower the LOO mean squared relative
error by this share to be chosen."""


DF_SHARE = 1.0 / 3.0
"""A fit may spend at most this share of the target samples on effective degrees of freedom
(the trace of its hat matrix; three samples per parameter): with a handful of samples,
leave-one-out cannot tell a correction that generalises from one that fits noise."""


ROBUST = 0.10
"""Whole-model fits weigh a sample's relative error quadratically up to this size and linearly
beyond (Huber, by iteratively reweighted ridge): phones' timings carry outliers (and whole-ms
rounding) that squared error lets pull the table, while search asks for most networks within
±10%. Penalties are chosen on the same loss of the leave-one-out residuals."""
IRLS_ITERS = 6


class TransferError(ValueError):
    """Bad input to a transfer fit (no sources, mismatched names, too few samples...). One line."""


# ---- shared pieces -----------------------------------------------------------------------------------
def _check_names(names: Sequence[str], what: str) -> None:
    if not len(names):
        raise TransferError(f"no {what} given: transfer needs at least one")
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise TransferError(f"duplicate {what} name {n!r}")
        seen.add(n)


def _scales_loo(P: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column s: the constant c_s minimising sum((c P_s / y - 1)^2), and the LOO mean squared
    relative error of that one-constant fit."""
    R = P / y[:, None]
    ss = (R * R).sum(axis=0)
    ss = np.where(ss > 0, ss, np.inf)
    c = R.sum(axis=0) / ss
    h = (R * R) / ss
    res = (1.0 - c * R) / np.maximum(1.0 - h, 1e-9)
    return c, (res * res).mean(axis=0)


def _mixture_weights(loo: np.ndarray, k: int) -> np.ndarray:
    """Posterior-like weights over sources from their LOO errors (Gaussian likelihood with the
    best source's error as the noise variance)."""
    best = float(np.min(loo))
    z = -(loo - best) * k / (2.0 * max(best, 1e-12))
    w = np.exp(z - z.max())
    return w / w.sum()


def _ridge_loo(X: np.ndarray, r: np.ndarray, pen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ridge with per-column penalties (0 = free); coefficients and exact LOO residuals."""
    G = X.T @ X + np.diag(pen) + 1e-10 * np.eye(X.shape[1])
    try:  # a solve is several times cheaper than the SVD behind pinv, and G is positive definite
        Gi = np.linalg.solve(G, np.eye(len(G)))
        if not np.isfinite(Gi).all():
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        Gi = np.linalg.pinv(G)
    beta = Gi @ (X.T @ r)
    h = np.einsum("ij,jk,ik->i", X, Gi, X)
    _ridge_loo.df = float(h.sum())  # effective degrees of freedom of the last fit
    return beta, (r - X @ beta) / np.maximum(1.0 - h, 1e-9)


def _select(cands: list[tuple[float, tuple, Any]]) -> tuple[float, tuple, Any]:
    """cands: (loo_mse, preference, payload), preference a tuple ordered so larger is simpler (or
    preferred on ties). The most preferred candidate whose LOO error is within EARN of the best."""
    best = min(c[0] for c in cands)
    ok = [c for c in cands if c[0] <= best * (1.0 + EARN) + 1e-15]
    return max(ok, key=lambda c: c[1])


def nnls(M: np.ndarray, b: np.ndarray, max_iter: int | None = None) -> np.ndarray:
    """min ||M x - b|| subject to x >= 0 (Lawson-Hanson active set), numpy only."""
    m, n = M.shape
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    w = M.T @ (b - M @ x)
    tol = 10 * np.finfo(float).eps * np.linalg.norm(M, 1) * max(m, n)
    for _ in range(max_iter or 3 * n + 50):
        if passive.all() or not (w[~passive] > tol).any():
            break
        j = int(np.argmax(np.where(~passive, w, -np.inf)))
        passive[j] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(M[:, passive], b, rcond=None)[0]
            if (z[passive] > 0).all():
                x = z
                break
            neg = passive & (z <= 0)
            alpha = np.min(x[neg] / np.maximum(x[neg] - z[neg], 1e-300))
            x = x + alpha * (z - x)
            passive &= x > tol
            x[~passive] = 0.0
        w = M.T @ (b - M @ x)
    return x


def best_single_source(P: np.ndarray, y: np.ndarray) -> tuple[int, float]:
    """The source (column of P, its predictions of the samples) that, rescaled by one constant,
    best explains y (LOO relative error), and that constant."""
    P, y = np.asarray(P, float), np.asarray(y, float)
    c, loo = _scales_loo(P, y)
    s = int(np.argmin(loo))
    return s, float(c[s])


# ---- per-layer tables (whole-model timings) -----------------------------------------------------------
@dataclass
class TableSource:
    """A source device's per-layer table: layer id -> µs, and its per-model overhead (µs)."""

    name: str
    table: dict[str, float]
    overhead_us: float = 0.0


@dataclass
class TableTransfer:
    keys: list[str]
    latency_us: np.ndarray
    overhead_us: float
    sources: list[str]
    source_weights: dict[str, float]  # mixture weight of each rescaled source in the prior
    source_scales: dict[str, float]  # the constant each source was rescaled by
    prior_kind: str  # "mixture" (LOO-weighted rescaled sources) or "best-single"
    prior: np.ndarray  # the prior table (same keys), before the scale and corrections
    prior_overhead_us: float
    scale: float  # c
    group_penalty: float  # inf: no group corrections
    layer_penalty: float  # inf: no per-layer corrections
    n_samples: int
    loo: dict[str, Any]  # LOO figures of the chosen fit on the target samples
    loo_prior_only: dict[str, Any]  # LOO figures of the rescaled prior alone
    best_single: dict[str, Any]  # the best single source rescaled by one constant (its LOO figures)
    deviation: float  # median relative distance of the fitted table from the rescaled prior
    unseen_us: float = 0.0
    groups: dict[str, str] = field(default_factory=dict)
    loo_table: dict[str, Any] = field(default_factory=dict)  # closed-form LOO of the penalised table fit
    transfer_weight: float = 1.0  # the table is this x the penalised fit + the rest x the averaged sources
    choice: dict[str, Any] = field(default_factory=dict)  # the cross-validated choice (see `fit_table`)

    @property
    def prior_shrunk_away(self) -> bool:
        """The samples contradict the sources: the fit left the prior (weak per-layer penalty and
        a table far from it, or a prior whose LOO error is several times the fit's) and the
        cross-validated choice kept that fit (not the rescaled best source alone)."""
        lo = (self.loo_table or self.loo).get("mse") or 0.0
        po = self.loo_prior_only.get("mse") or 0.0
        away = (self.layer_penalty <= 1e-2 and self.deviation > 0.25) or (po > 4.0 * lo and self.deviation > 0.25)
        return bool(away and self.transfer_weight > 0.0)

    def table(self) -> dict[str, float]:
        return dict(zip(self.keys, self.latency_us.tolist()))

    def predict(self, models: Sequence[Sequence[str]]) -> np.ndarray:
        ki = {k: i for i, k in enumerate(self.keys)}
        t = self.latency_us
        return np.array([self.overhead_us + sum(float(t[ki[k]]) if k in ki else self.unseen_us for k in m)
                         for m in models], dtype=np.float64)

    def info(self) -> dict[str, Any]:
        """What a bundle's metadata records about the transfer."""
        return {"method": "table-prior-ridge", "sources": list(self.sources), "n_target_samples": self.n_samples,
                "prior": self.prior_kind, "source_weights": self.source_weights, "source_scales": self.source_scales,
                "scale": self.scale, "group_penalty": None if np.isinf(self.group_penalty) else self.group_penalty,
                "layer_penalty": None if np.isinf(self.layer_penalty) else self.layer_penalty,
                "loo": self.loo, "loo_prior_only": self.loo_prior_only, "best_single_source": self.best_single,
                "deviation_from_prior": self.deviation, "prior_shrunk_away": self.prior_shrunk_away,
                "groups": sorted(set(self.groups.values())), "loo_table_fit": self.loo_table,
                "transfer_weight": self.transfer_weight, "choice": self.choice}


def default_group(layer_id: str) -> str:
    """A layer id's group when no spec says its op: the text after the last ':' ("e3:nor_conv_3x3")."""
    return layer_id.rsplit(":", 1)[-1]


def _loo_figures(y: np.ndarray, rel_res: np.ndarray) -> dict[str, Any]:
    """LOO predictions are y·(1 - rel_res) (relative residuals of the normalised fit)."""
    pred = y * (1.0 - rel_res)
    s = summary(pred, y)
    s["mse"] = float(np.mean(rel_res ** 2))
    return s


def _layer_scale(m: np.ndarray, nk: int) -> np.ndarray:
    """The unit of each per-layer correction: the prior's value, but at least a tenth of the mean
    layer's (a layer some source fitted at zero can still move)."""
    floor = 0.1 * float(np.mean(m[:nk])) if nk else 0.0
    return np.maximum(m, max(floor, 1e-12))


def _losses(res: np.ndarray, robust: float | None) -> np.ndarray:
    """Each sample's squared relative error, or its Huber loss at `robust`."""
    if not robust:
        return res ** 2
    a = np.abs(res)
    return np.where(a <= robust, 0.5 * a * a, robust * (a - 0.5 * robust))


def _loss(res: np.ndarray, robust: float | None) -> float:
    """Mean squared relative error, or mean Huber loss at `robust`."""
    return float(np.mean(_losses(res, robust)))


def _fit_table_penalised(models: Sequence[tuple[Sequence[str], float]], sources: Sequence[TableSource],
                         group_of: Callable[[str], str] = default_group, min_samples: int = 2,
                         robust: float | None = ROBUST) -> TableTransfer:
    """The penalised table fit alone (prior x scale + group and per-layer corrections)."""
    _check_names([s.name for s in sources], "source")
    if len(models) < min_samples:
        raise TransferError(f"{len(models)} target sample(s): transfer needs at least {min_samples}")
    y = np.array([float(v) for _, v in models], dtype=np.float64)
    if not (np.isfinite(y).all() and (y > 0).all()):
        raise TransferError("every target latency must be positive and finite")
    keys = sorted({k for s in sources for k in s.table} | {k for m, _ in models for k in m})
    ki = {k: i for i, k in enumerate(keys)}
    nk = len(keys)
    sampled = {k for m, _ in models for k in m}
    covered = [s for s in sources if sampled & set(s.table)]
    if not covered:
        raise TransferError("no source table knows any layer of the target samples (another search space?)")
    # design: counts of each layer per model, plus the overhead column
    A = np.zeros((len(models), nk + 1))
    for r, (m, _) in enumerate(models):
        for k in m:
            A[r, ki[k]] += 1.0
    A[:, nk] = 1.0
    # source tables aligned on keys (a layer a source lacks: that source's median layer)
    B = np.zeros((nk + 1, len(sources)))
    for j, s in enumerate(sources):
        vals = np.array([float(v) for v in s.table.values()]) if s.table else np.zeros(1)
        fill = float(np.median(vals))
        B[:nk, j] = [float(s.table.get(k, fill)) for k in keys]
        B[nk, j] = float(s.overhead_us)
    if not np.isfinite(B).all() or (B < 0).any():
        raise TransferError("a source table holds negative or non-finite latencies")
    ys = float(np.median(y))
    yn = y / ys
    P = A @ B / ys
    ok = (P > 0).all(axis=0)
    if not ok.any():
        raise TransferError("no source predicts a positive latency for every target sample")
    c_s, loo_s = _scales_loo(P[:, ok], yn)
    idx = np.flatnonzero(ok)
    w = _mixture_weights(loo_s, len(y))
    wfull = np.zeros(len(sources))
    wfull[idx] = w
    cfull = np.zeros(len(sources))
    cfull[idx] = c_s
    best = int(idx[np.argmin(loo_s)])
    one = np.zeros(len(sources))
    one[best] = 1.0
    # the regression in relative-error form
    gnames = sorted({group_of(k) for k in keys})
    gi = {g: i for i, g in enumerate(gnames)}
    G = np.zeros((nk + 1, len(gnames) + 1))
    for k, i in ki.items():
        G[i, gi[group_of(k)]] = 1.0
    G[nk, len(gnames)] = 1.0  # the overhead is a group of its own
    ng = G.shape[1]
    r = np.ones(len(y))
    cands = []
    grid = (OFF,) + PENALTIES
    scale_of: dict[str, float] = {}
    priors = {"mixture": wfull, "best-single": one} if len(idx) > 1 else {"best-single": one}
    for pname, wts in priors.items():
        m = (B * cfull) @ wts  # prior table in target-normalised units (x ys = µs)
        Am = A * m[None, :]
        Xr = np.hstack([(A @ m)[:, None], Am @ G, A * _layer_scale(m, nk)[None, :]]) / yn[:, None]
        scale_ss = float((Xr * Xr).sum() / max(Xr.shape[1], 1))
        scale_of[pname] = scale_ss
        for lg in grid:
            for ld in grid:
                cols = [0] + ([1 + i for i in range(ng)] if lg != OFF else []) + \
                       ([1 + ng + i for i in range(nk + 1)] if ld != OFF else [])
                pen = np.array([0.0] + [lg * scale_ss] * (ng if lg != OFF else 0)
                               + [ld * scale_ss] * (nk + 1 if ld != OFF else 0))
                Xc = Xr[:, cols]
                sw = np.ones(len(y))
                for _ in range(IRLS_ITERS if robust else 1):
                    beta_c, res = _ridge_loo(Xc * sw[:, None], r * sw, pen)
                    res = res / sw  # LOO residuals, unweighted
                    df = _ridge_loo.df
                    if robust:  # Huber weights from the in-sample residuals
                        sw_new = np.sqrt(_huber_weights(r - Xc @ beta_c, robust))
                        if np.array_equal(sw_new, sw):  # converged: another pass would repeat this one
                            break
                        sw = sw_new
                beta = np.zeros(Xr.shape[1])
                beta[cols] = beta_c
                if df <= max(1.0 + 1e-9, DF_SHARE * len(y)):
                    cands.append((_loss(res, robust), (ld, lg, pname == "mixture"), (beta, res, m, pname)))
    mse, (ld, lg, _), (beta, res, m, pname) = _select(cands)
    prior_only = next(c for c in cands if c[1][:2] == (OFF, OFF) and c[2][3] == pname)
    n0 = 1
    sl = _layer_scale(m, nk)
    t_n = beta[0] * m + m * (G @ beta[n0:n0 + ng]) + sl * beta[n0 + ng:]
    if (t_n < 0).any():
        # latencies cannot be negative: refit the table itself, non-negative, with the chosen
        # per-layer penalty pulling it toward the group-level fit (itself clipped at zero)
        t_g = np.maximum(beta[0] * m + m * (G @ beta[n0:n0 + ng]), 0.0)
        lam = (ld if ld != OFF else 1e6) * scale_of[pname]
        wts = np.sqrt(lam) / sl
        M = np.vstack([A / yn[:, None], np.diag(wts)])
        t_n = nnls(M, np.concatenate([np.ones(len(y)), wts * t_g]))
    t = t_n * ys
    cm = beta[0] * m * ys
    denom = np.maximum(np.maximum(np.abs(t), np.abs(cm)), 1e-12)
    dev = float(np.median(np.abs(t - cm)[:nk] / denom[:nk])) if nk else 0.0
    cb = P[:, best]
    cbest = float(cfull[best])
    rb = (1.0 - cbest * cb / yn) / np.maximum(1.0 - (cb / yn) ** 2 / np.sum((cb / yn) ** 2), 1e-9)
    lat = t[:nk]
    return TableTransfer(
        keys=keys, latency_us=lat, overhead_us=float(t[nk]), sources=[s.name for s in sources],
        prior_kind=pname,
        source_weights={s.name: float((wfull if pname == "mixture" else one)[j]) for j, s in enumerate(sources)},
        source_scales={s.name: float(cfull[j]) for j, s in enumerate(sources)},
        prior=m[:nk] * ys, prior_overhead_us=float(m[nk] * ys), scale=float(beta[0]),
        group_penalty=float(lg), layer_penalty=float(ld), n_samples=len(y),
        loo=_loo_figures(y, res), loo_prior_only=_loo_figures(y, prior_only[2][1]),
        best_single={"source": sources[best].name, "scale": cbest, **_loo_figures(y, rb)},
        deviation=dev, unseen_us=float(np.median(lat)) if nk else 0.0,
        groups={k: group_of(k) for k in keys})


BLEND = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Weights of the penalised table fit tried against the averaged rescaled sources
(`source_average`; 0: the average alone; 1: the fit alone)."""
CV_FOLDS = 5
CHOICE_SE = 0.5
"""A heavier candidate of the final choice (more weight on the penalised fit) is kept only when its
cross-validated loss beats a simpler one's by more than this many standard errors of their paired
per-sample loss difference (a one-standard-error rule, halved): with 5-50 timings the folds' losses
are noisy, and a choice that follows the noise keeps the fit where the averaged sources would rank
the rest better."""


def _source_predictions(models: Sequence[tuple[Sequence[str], float]], sources: Sequence[TableSource]) -> np.ndarray:
    """(models x sources) each source table's prediction (a layer it lacks: its median layer)."""
    P = np.zeros((len(models), len(sources)))
    for j, s in enumerate(sources):
        fill = float(np.median([float(v) for v in s.table.values()])) if s.table else 0.0
        for r, (m, _) in enumerate(models):
            P[r, j] = float(s.overhead_us) + sum(float(s.table.get(k, fill)) for k in m)
    return P


def _huber_weights(r: np.ndarray, robust: float) -> np.ndarray:
    """IRLS weights of residuals r under the Huber loss at `robust`: 1 inside, robust / |r| beyond."""
    return np.minimum(1.0, robust / np.maximum(np.abs(r), 1e-12))


def _robust_scale(x: np.ndarray, robust: float | None) -> float:
    """The constant c minimising the mean Huber loss (at `robust`; None: squares) of the relative
    errors 1 - c·x (x = prediction / target), by the iteratively reweighted least squares the
    penalised fit uses."""
    w = np.ones(len(x))
    c = 0.0
    for _ in range(IRLS_ITERS if robust else 1):
        ss = float((w * x * x).sum())
        c = float((w * x).sum()) / ss if ss > 0 else 0.0
        if robust:
            w_new = _huber_weights(1.0 - c * x, robust)
            if np.array_equal(w_new, w):
                break
            w = w_new
    return c


def source_average(P: np.ndarray, y: np.ndarray, robust: float | None = ROBUST) -> np.ndarray:
    """Column weights w (scale included: the table is P @ w) of the sources averaged as the
    penalised fit's mixture prior is — each rescaled by one constant, weighted by how well it
    explains y (`_mixture_weights` of their LOO errors) — and rescaled once more to y on the same
    Huber loss as the fit (`robust`; None: squares): a few slow timings (phones' runs carry
    right-tail outliers) would otherwise lift the whole table. Where the samples cannot tell the
    sources apart this hedges between them (a model average) instead of betting on one; where one
    source is clearly best it carries (almost) all the weight."""
    P, y = np.asarray(P, float), np.asarray(y, float)
    ys = float(np.median(y))
    c, loo = _scales_loo(P / ys, y / ys)
    wc = _mixture_weights(loo, len(y)) * c
    return wc * _robust_scale(P @ wc / y, robust)


def _choose_blend(y: np.ndarray, pred_fit: np.ndarray, pred_avg: np.ndarray,
                  robust: float | None) -> tuple[float, dict[float, float]]:
    """The `BLEND` weight of the penalised fit chosen from out-of-fold predictions, and each
    candidate's cross-validated loss: the simplest candidate (the average first) whose loss exceeds
    the lowest by at most `CHOICE_SE` standard errors of their paired per-sample difference."""
    per = {a: _losses(1.0 - (a * pred_fit + (1.0 - a) * pred_avg) / y, robust) for a in BLEND}
    cands = {a: float(v.mean()) for a, v in per.items()}
    best = min(cands, key=lambda a: (cands[a], a))
    for a in sorted(BLEND):
        d = per[a] - per[best]
        se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
        if d.mean() <= CHOICE_SE * se + 1e-15:
            return a, cands
    return best, cands


def fit_table(models: Sequence[tuple[Sequence[str], float]], sources: Sequence[TableSource],
              group_of: Callable[[str], str] = default_group, min_samples: int = 2,
              robust: float | None = ROBUST, folds: int = CV_FOLDS) -> TableTransfer:
    """The target's per-layer table from `models` ((layer ids, end-to-end µs) each, the few target
    timings) and the sources' tables: see the module docstring.

    The penalised fit chooses its own penalties by leave-one-out, which makes its LOO figure
    optimistic next to a fixed simple model's. So the final choice — that fit, the rescaled sources
    averaged without corrections (`source_average`), or a blend of the two (`BLEND`) — is made on
    out-of-fold predictions of the whole procedure (each fold refits both from scratch, penalty
    search and source weights included): leave-one-out up to `folds` samples, `folds`-fold beyond
    (sample i in fold i mod folds). The simplest candidate (the average first) whose cross-validated
    loss is within `CHOICE_SE` standard errors of the lowest is kept (`_choose_blend`)."""
    fit = _fit_table_penalised(models, sources, group_of, min_samples, robust)
    y = np.array([float(v) for _, v in models], dtype=np.float64)
    n = len(y)
    P = _source_predictions(models, sources)
    ok = np.flatnonzero((P > 0).all(axis=0))
    avg = np.zeros(len(fit.keys))  # the averaged sources' table (and overhead)
    avg_ov = 0.0
    wa = source_average(P[:, ok], y, robust) if len(ok) else np.zeros(0)
    for j, wj in zip(ok, wa):
        if wj:
            src = sources[j]
            fill = float(np.median([float(v) for v in src.table.values()])) if src.table else 0.0
            avg += wj * np.array([float(src.table.get(k, fill)) for k in fit.keys])
            avg_ov += wj * float(src.overhead_us)
    fit.loo_table = fit.loo
    K = min(n, folds)
    inner_min = max(2, min_samples - 1)
    if n - -(-n // K) < inner_min or len(ok) == 0:  # too few samples to refit without a fold
        fit.choice = {"chosen": "penalised fit", "cv": None, "note": "too few samples to cross-validate"}
        return fit
    fold = np.arange(n) % K
    pred_fit = np.zeros(n)
    pred_avg = np.zeros(n)
    try:
        for f in range(K):
            tr, te = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            sub = _fit_table_penalised([models[i] for i in tr], sources, group_of, inner_min, robust)
            pred_fit[te] = sub.predict([models[i][0] for i in te])
            pred_avg[te] = P[np.ix_(te, ok)] @ source_average(P[np.ix_(tr, ok)], y[tr], robust)
    except TransferError as e:  # a fold the sources cannot fit: keep the penalised fit
        fit.choice = {"chosen": "penalised fit", "cv": None, "note": f"cross-validation skipped: {e}"}
        return fit
    a, cands = _choose_blend(y, pred_fit, pred_avg, robust)
    p = a * pred_fit + (1.0 - a) * pred_avg
    label = "penalised fit" if a == 1.0 else "averaged sources" if a == 0.0 else "blend"
    cv = "leave-one-out" if K == n else f"{K}-fold"
    fit.choice = {"chosen": label, "transfer_weight": a, "cv": cv, "folds": K,
                  "loss": "huber@%g" % robust if robust else "mse", "within_se": CHOICE_SE,
                  "candidates": {f"{w:g}": float(v) for w, v in cands.items()},
                  "source_average": {sources[j].name: float(wj) for j, wj in zip(ok, wa)}}
    fit.transfer_weight = float(a)
    fit.loo = _loo_figures(y, 1.0 - p / y)
    fit.loo["cv"] = cv
    if a < 1.0:
        fit.latency_us = a * fit.latency_us + (1.0 - a) * avg
        fit.overhead_us = float(a * fit.overhead_us + (1.0 - a) * avg_ov)
        fit.unseen_us = float(np.median(fit.latency_us)) if len(fit.keys) else 0.0
    return fit


# ---- kernel predictors ---------------------------------------------------------------------------------
@dataclass
class KernelTransfer:
    """log y = log(Σ_s w_s ŷ_s) [mixture] or log ŷ_best [single], + per-group offset + ridge residual on F."""

    sources: list[str]
    mode: str  # "single" or "mixture"
    weights: np.ndarray  # per source (one-hot for "single")
    group_offset: dict[str, float]  # log-scale per group; missing groups use `offset`
    offset: float
    coef: np.ndarray  # residual ridge coefficients on standardised features (empty: none)
    f_mean: np.ndarray
    f_std: np.ndarray
    penalty: float
    n_samples: int
    loo: dict[str, Any]
    best_single: dict[str, Any]
    candidates: dict[str, float] = field(default_factory=dict)  # candidate -> LOO mse of log ratio

    def scale_of(self, group: str) -> float:
        return float(np.exp(self.group_offset.get(group, self.offset)))

    def predict(self, P: np.ndarray, groups: Sequence[str], F: np.ndarray | None = None) -> np.ndarray:
        P = np.asarray(P, float)
        base = np.log(np.maximum(P @ self.weights, 1e-12))
        off = np.array([self.group_offset.get(g, self.offset) for g in groups], dtype=np.float64)
        out = base + off
        if len(self.coef) and F is not None:
            out = out + ((np.asarray(F, float) - self.f_mean) / self.f_std) @ self.coef
        return np.exp(out)

    def info(self) -> dict[str, Any]:
        return {"method": f"kernel-{self.mode}-group-scale" + ("+residual" if len(self.coef) else ""),
                "sources": list(self.sources), "n_target_samples": self.n_samples,
                "source_weights": {s: float(w) for s, w in zip(self.sources, self.weights)},
                "group_scales": {g: float(np.exp(v)) for g, v in self.group_offset.items()},
                "scale": float(np.exp(self.offset)), "residual_penalty": None if not len(self.coef) else self.penalty,
                "loo": self.loo, "best_single_source": self.best_single, "candidates_loo_mse": self.candidates}


def _group_offsets(lr: np.ndarray, groups: np.ndarray, shrink: float = 0.5) -> tuple[np.ndarray, dict[str, float], float]:
    """Per-group mean of the log ratio, shrunk toward the overall mean by `shrink` pseudo-samples;
    with LOO fitted values (each sample's own group mean computed without it)."""
    mu = float(lr.mean())
    n = len(lr)
    loo_fit = np.empty(n)
    offs: dict[str, float] = {}
    for g in np.unique(groups):
        sel = groups == g
        ng, sg = int(sel.sum()), float(lr[sel].sum())
        offs[str(g)] = (sg + shrink * mu) / (ng + shrink)
        mu_wo = (lr.sum() - lr[sel]) / max(n - 1, 1)  # overall mean without the left-out sample
        loo_fit[sel] = (sg - lr[sel] + shrink * mu_wo) / (ng - 1 + shrink)
    return loo_fit, offs, mu


def fit_kernels(P: np.ndarray, y: np.ndarray, groups: Sequence[str], source_names: Sequence[str],
                F: np.ndarray | None = None, min_samples: int = 3) -> KernelTransfer:
    """P: (samples x sources) the sources' predictions of the target's sampled kernels; y: their
    measured µs on the target; groups: each kernel's (op/scheme) group; F: optional kernel
    features for the residual ridge."""
    _check_names(list(source_names), "source")
    P, y = np.asarray(P, float), np.asarray(y, float)
    if P.ndim != 2 or P.shape[1] != len(source_names) or P.shape[0] != len(y):
        raise TransferError("source predictions do not match the samples and sources")
    if len(y) < min_samples:
        raise TransferError(f"{len(y)} target sample(s): transfer needs at least {min_samples}")
    if not (np.isfinite(y).all() and (y > 0).all()) or not (np.isfinite(P).all() and (P > 0).all()):
        raise TransferError("latencies must be positive and finite")
    g = np.asarray([str(x) for x in groups])
    n, S = P.shape
    logy = np.log(y)
    # single sources: LOO of per-group shrunk log scale
    best = None
    loo_single = np.zeros(S)
    for s in range(S):
        lr = logy - np.log(P[:, s])
        fit, offs, mu = _group_offsets(lr, g)
        loo_single[s] = float(np.mean((lr - fit) ** 2))
        if best is None or loo_single[s] < best[0]:
            best = (loo_single[s], s, offs, mu)
    cands: dict[str, tuple[float, np.ndarray]] = {}
    one = np.zeros(S)
    one[best[1]] = 1.0
    cands["single"] = (best[0], one)
    if S > 1:
        # mixture: weights from the single sources' LOO errors, each source rescaled by its overall constant
        w = _mixture_weights(loo_single, n)
        cs = np.exp(np.array([float(np.mean(logy - np.log(P[:, s]))) for s in range(S)]))
        wm = w * cs
        lr = logy - np.log(P @ wm)
        fit, _, _ = _group_offsets(lr, g)
        cands["mixture"] = (float(np.mean((lr - fit) ** 2)), wm)
    mode = min(cands, key=lambda k: cands[k][0] * (1.0 if k == "single" else 1.0 + EARN))
    wv = cands[mode][1]
    lr = logy - np.log(P @ wv)
    fit, offs, mu = _group_offsets(lr, g)
    loo_res = lr - fit  # LOO residuals (log) of the group-scaled model
    coef, fm, fsd, pen_used = np.zeros(0), np.zeros(0), np.zeros(0), OFF
    if F is not None and n >= 8:
        F = np.asarray(F, float)
        fm, fsd = F.mean(axis=0), F.std(axis=0) + 1e-9
        Z = (F - fm) / fsd
        r_in = lr - np.array([offs[str(x)] for x in g])
        best_mse = float(np.mean(loo_res ** 2))
        for pen in PENALTIES[3:]:
            beta, res = _ridge_loo(Z, r_in, np.full(Z.shape[1], pen * n))
            mse = float(np.mean(res ** 2))
            if mse < best_mse * (1.0 - EARN):
                best_mse, coef, pen_used, loo_res = mse, beta, pen, res
        if len(coef):
            cands[mode + "+residual"] = (best_mse, wv)
        else:
            fm = fsd = np.zeros(0)
    loo_pred = np.exp(logy - loo_res)
    s0 = best[1]
    sfit, _, _ = _group_offsets(logy - np.log(P[:, s0]), g)
    return KernelTransfer(
        sources=list(source_names), mode=mode, weights=wv, group_offset=offs, offset=mu, coef=coef,
        f_mean=fm, f_std=fsd, penalty=pen_used, n_samples=n, loo=summary(loo_pred, y),
        best_single={"source": str(source_names[s0]),
                     **summary(np.exp(np.log(P[:, s0]) + sfit), y)},
        candidates={k: v[0] for k, v in cands.items()})


# ---- what to measure first -----------------------------------------------------------------------------
def choose_informative(P: np.ndarray, k: int, X: np.ndarray | None = None, exclude: Sequence[int] = ()) -> np.ndarray:
    """k row indices of candidates (P: candidates x sources, the sources' predictions) to measure
    first: greedy, each pick maximising (how much the sources disagree on it, after rescaling each
    source to a common median) x (its distance to the picks so far, in X — default the sources'
    normalised log predictions). Deterministic."""
    P = np.asarray(P, float)
    if k < 1:
        raise TransferError("k must be at least 1")
    if P.ndim != 2 or not len(P):
        raise TransferError("no candidates to choose from")
    L = np.log(np.maximum(P, 1e-12))
    L = L - np.median(L, axis=0, keepdims=True)
    dis = L.std(axis=1) if P.shape[1] > 1 else np.ones(len(P))
    dis = dis / (dis.max() + 1e-12) + 0.05
    Z = np.asarray(X, float) if X is not None else L
    Z = (Z - Z.mean(axis=0)) / (Z.std(axis=0) + 1e-9)
    avail = np.ones(len(P), dtype=bool)
    avail[list(exclude)] = False
    picks: list[int] = []
    dmin = np.full(len(P), np.inf)
    for _ in range(min(k, int(avail.sum()))):
        spread = np.where(np.isfinite(dmin), dmin / (np.max(dmin[avail & np.isfinite(dmin)], initial=0) + 1e-12), 1.0)
        score = np.where(avail, dis * (0.2 + spread), -np.inf)
        j = int(np.argmax(score))
        picks.append(j)
        avail[j] = False
        dmin = np.minimum(dmin, ((Z - Z[j]) ** 2).sum(axis=1))
    return np.array(picks, dtype=np.int64)


def scale_model(d: dict[str, Any], s: float) -> dict[str, Any]:
    """A bundle regressor's JSON whose predictions are `s` times the original's (a tree ensemble's
    log base moves by log s; a linear model's coefficients, intercept and floor scale)."""
    if not (np.isfinite(s) and s > 0):
        raise TransferError(f"scale must be positive and finite, got {s}")
    kind = d.get("kind")
    out = dict(d)
    if kind == "tree_ensemble":
        out["base"] = float(d.get("base", 0.0)) + float(np.log(s))
    elif kind == "linear":
        out["coef"] = [float(c) * s for c in d.get("coef", [])]
        out["intercept"] = float(d.get("intercept", 0.0)) * s
        if "floor_us" in d:
            out["floor_us"] = float(d["floor_us"]) * s
    elif kind == "switch":
        out["le"] = scale_model(d["le"], s)
        out["gt"] = scale_model(d["gt"], s)
    else:
        raise TransferError(f"cannot rescale a model of kind {kind!r}")
    return out
