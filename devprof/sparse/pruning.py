"""Pruning masks for every sparsity scheme, in numpy.

A layer's weight is viewed as a matrix W (cout x K) with K = kh*kw*cin/groups flattened in OHWI
order (consecutive columns are input channels of one kernel tap), the view every scheme and the
code generator share. Each function returns a boolean mask of W's shape; `prune` dispatches on a
`Sparsity` and reports the ratio actually achieved (schemes with fixed granularity cannot always
hit the target exactly: N:M fixes it, pattern has a floor of 5/9, blocks round to whole blocks).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from ..records import KernelSpec, Sparsity

#: BCR prunes rows more gently than columns: keeping rows of a block row-block together is what
#: lets the generated code share one column list across several output channels.
BCR_ROW_EXPONENT = 0.1


@dataclass
class PruneResult:
    mask: np.ndarray  # bool, same shape as the weight (OHWI or (cout, cin))
    achieved: float  # share of zeros actually produced
    info: dict = field(default_factory=dict)  # pattern: library (P x 9 bool), assign (cout x cin_g, -1 dropped)


def _keep_top(scores: np.ndarray, keep: int) -> np.ndarray:
    """Boolean mask keeping exactly `keep` largest scores (stable tie-break by index)."""
    flat = scores.ravel()
    keep = int(min(max(keep, 0), flat.size))
    m = np.zeros(flat.size, bool)
    if keep:
        order = np.argsort(-flat, kind="stable")
        m[order[:keep]] = True
    return m.reshape(scores.shape)


def unstructured_mask(w2: np.ndarray, ratio: float) -> np.ndarray:
    """Magnitude pruning: keep exactly round((1 - ratio) * size) largest |w|."""
    return _keep_top(np.abs(w2), round((1.0 - ratio) * w2.size))


def block_mask(w2: np.ndarray, ratio: float, block: tuple[int, int]) -> np.ndarray:
    """Keep the r x c blocks with the largest L2 norm (edge blocks may be smaller)."""
    r, c = block
    rows, cols = w2.shape
    nbr, nbc = -(-rows // r), -(-cols // c)
    padded = np.zeros((nbr * r, nbc * c), np.float64)
    padded[:rows, :cols] = np.asarray(w2, np.float64) ** 2
    norms = padded.reshape(nbr, r, nbc, c).sum(axis=(1, 3))
    keep = _keep_top(norms, round((1.0 - ratio) * norms.size))
    return np.repeat(np.repeat(keep, r, 0), c, 1)[:rows, :cols]


def nm_mask(w2: np.ndarray, n: int, m: int) -> np.ndarray:
    """Keep the n largest of every m consecutive weights of a row (a ragged tail keeps its share)."""
    rows, cols = w2.shape
    mask = np.zeros_like(w2, bool)
    a = np.abs(w2)
    full = cols // m * m
    if full:
        g = a[:, :full].reshape(rows, -1, m)
        idx = np.argsort(-g, axis=2, kind="stable")[:, :, :n]
        gm = np.zeros_like(g, bool)
        np.put_along_axis(gm, idx, True, axis=2)
        mask[:, :full] = gm.reshape(rows, full)
    rem = cols - full
    if rem:
        k = min(rem, -(-n * rem // m))
        idx = np.argsort(-a[:, full:], axis=1, kind="stable")[:, :k]
        tm = np.zeros((rows, rem), bool)
        np.put_along_axis(tm, idx, True, axis=1)
        mask[:, full:] = tm
    return mask


def bcr_mask(w2: np.ndarray, ratio: float, block: tuple[int, int]) -> np.ndarray:
    """Block-based column-row pruning (GRIM): inside each br x bc block whole columns and whole rows
    are pruned. Columns carry most of the sparsity (keep share kc), rows the rest (kr = k**0.1);
    both are chosen by L2 norm, globally across blocks; the achieved ratio is then trimmed or
    topped up to the target with whole block-columns."""
    br, bc = block
    rows, cols = w2.shape
    k = 1.0 - ratio
    if k >= 1.0:
        return np.ones_like(w2, bool)
    kr = k ** BCR_ROW_EXPONENT
    kc = min(1.0, k / kr)
    sq = np.asarray(w2, np.float64) ** 2
    nbr, nbc = -(-rows // br), -(-cols // bc)
    # 1. block-columns: (row-block i, column j) units, each spanning the block's rows
    colnorm = np.zeros((nbr, cols))
    for i in range(nbr):
        colnorm[i] = sq[i * br:(i + 1) * br].sum(0)
    keep_cols = _keep_top(colnorm, round(kc * colnorm.size))
    mask = np.repeat(keep_cols, br, 0)[:rows]
    # 2. block-rows: (row r, column-block j) units over the kept columns
    if kr < 1.0:
        rownorm = np.zeros((rows, nbc))
        for j in range(nbc):
            rownorm[:, j] = (sq[:, j * bc:(j + 1) * bc] * mask[:, j * bc:(j + 1) * bc]).sum(1)
        live = rownorm > 0
        n_drop = int(round((1.0 - kr) * live.sum()))
        if n_drop:
            scores = np.where(live, rownorm, np.inf)
            order = np.argsort(scores.ravel(), kind="stable")[:n_drop]
            dropm = np.zeros(rows * nbc, bool)
            dropm[order] = True
            dropm = dropm.reshape(rows, nbc)
            mask &= ~np.repeat(dropm, bc, 1)[:, :cols]
    # 3. hit the target count: remove weakest / add strongest block-column units
    target = round(k * w2.size)
    diff = int(mask.sum()) - target
    if diff > 0:  # too dense: drop single weakest kept columns inside blocks (column pruning)
        unit = np.zeros((nbr, cols))
        for i in range(nbr):
            unit[i] = (sq[i * br:(i + 1) * br] * mask[i * br:(i + 1) * br]).sum(0)
        cnt = np.zeros((nbr, cols), int)
        for i in range(nbr):
            cnt[i] = mask[i * br:(i + 1) * br].sum(0)
        order = np.argsort(np.where(cnt > 0, unit, np.inf).ravel(), kind="stable")
        for u in order:
            if diff <= 0:
                break
            i, j = divmod(int(u), cols)
            if cnt[i, j] == 0:
                break
            mask[i * br:(i + 1) * br, j] = False
            diff -= cnt[i, j]
    elif diff < 0:  # too sparse (row pruning overshot): restore the strongest pruned block-columns,
        # each over its block's live rows only, so every block stays (kept rows) x (kept columns)
        live = np.zeros((rows, nbc), bool)
        for j in range(nbc):
            live[:, j] = mask[:, j * bc:(j + 1) * bc].any(1)
        live_full = np.repeat(live, bc, 1)[:, :cols]
        val = np.zeros((nbr, cols))
        cnt = np.zeros((nbr, cols), int)
        kept = np.zeros((nbr, cols), bool)
        for i in range(nbr):
            rs = slice(i * br, (i + 1) * br)
            val[i] = (sq[rs] * live_full[rs]).sum(0)
            cnt[i] = live_full[rs].sum(0)
            kept[i] = mask[rs].any(0)
        cand = np.flatnonzero((~kept & (cnt > 0)).ravel())
        for u in cand[np.argsort(-val.ravel()[cand], kind="stable")]:
            if diff >= 0:
                break
            i, j = divmod(int(u), cols)
            rs = slice(i * br, (i + 1) * br)
            mask[rs, j] = live_full[rs, j]
            diff += cnt[i, j]
    return mask


# ---- pattern (PatDNN) -----------------------------------------------------------------------
_CANDIDATES = np.array([[i in c or i == 4 for i in range(9)] for c in combinations([0, 1, 2, 3, 5, 6, 7, 8], 3)])
"""The 56 four-entry 3x3 patterns that keep the centre tap (PatDNN's candidate set)."""


def pattern_mask(w: np.ndarray, ratio: float, patterns: int = 8) -> PruneResult:
    """PatDNN: every 3x3 kernel keeps 4 taps chosen from a library of `patterns` shapes (the most
    frequent best-fitting candidates), then connectivity pruning drops whole kernels with the
    smallest kept norm until `ratio` is reached (pattern alone gives 5/9)."""
    cout, kh, kw, cig = w.shape
    if (kh, kw) != (3, 3):
        raise ValueError("pattern pruning needs 3x3 kernels")
    k9 = np.transpose(np.asarray(w, np.float64) ** 2, (0, 3, 1, 2)).reshape(cout, cig, 9)
    fit = k9 @ _CANDIDATES.T.astype(np.float64)  # (cout, cig, 56): kept energy per candidate
    best = fit.argmax(-1)
    counts = np.bincount(best.ravel(), minlength=len(_CANDIDATES))
    lib_idx = np.argsort(-counts, kind="stable")[:max(1, min(patterns, len(_CANDIDATES)))]
    library = _CANDIDATES[lib_idx]
    lfit = fit[:, :, lib_idx]
    assign = lfit.argmax(-1)
    kept_energy = lfit.max(-1)
    total_k = cout * cig
    keep_kernels = total_k
    if ratio > 5.0 / 9.0:
        keep_kernels = int(round((1.0 - ratio) * 9.0 / 4.0 * total_k))
    keep = _keep_top(kept_energy, keep_kernels)
    assign = np.where(keep, assign, -1)
    m9 = np.zeros((cout, cig, 9), bool)
    m9[keep] = library[assign[keep]]
    mask = np.transpose(m9.reshape(cout, cig, 3, 3), (0, 2, 3, 1))
    return PruneResult(mask, 1.0 - mask.sum() / mask.size, {"library": library, "assign": assign})


def weight_matrix(spec: KernelSpec, w: np.ndarray) -> np.ndarray:
    return w.reshape(spec.cout, -1)


def nm_params(sp: Sparsity) -> tuple[int, int]:
    p = sp.p
    if "n" in p and "m" in p:
        return int(p["n"]), int(p["m"])
    r = sp.ratio  # choose n:m from the ratio: 1:round(1/(1-r)), 2:4 for 0.5
    if abs(r - 0.5) < 1e-9:
        return 2, 4
    return 1, max(1, int(round(1.0 / max(1e-9, 1.0 - r))))


def block_param(sp: Sparsity, default: tuple[int, int]) -> tuple[int, int]:
    b = sp.p.get("block", default)
    if isinstance(b, (int, np.integer)):
        b = (int(b), 1)
    r, c = (int(v) for v in b)
    if r < 1 or c < 1:
        raise ValueError(f"bad block shape {b!r}")
    return r, c


def prune(spec: KernelSpec, w: np.ndarray) -> PruneResult:
    """The mask `spec.sparsity` asks for on weight `w` (OHWI / (cout, cin))."""
    sp = spec.sparsity
    w2 = weight_matrix(spec, w)
    if sp.scheme == "dense":
        m2 = np.ones_like(w2, bool)
    elif sp.scheme == "unstructured":
        m2 = unstructured_mask(w2, sp.ratio)
    elif sp.scheme == "block":
        m2 = block_mask(w2, sp.ratio, block_param(sp, (4, 1)))
    elif sp.scheme == "bcr":
        m2 = bcr_mask(w2, sp.ratio, block_param(sp, (4, 16)))
    elif sp.scheme == "nm":
        m2 = nm_mask(w2, *nm_params(sp))
    elif sp.scheme == "pattern":
        if spec.op == "fc" or (spec.kh, spec.kw) != (3, 3):
            raise ValueError("pattern sparsity needs a 3x3 convolution")
        return pattern_mask(w, sp.ratio, int(sp.p.get("patterns", 8)))
    else:  # pragma: no cover - Sparsity validates schemes
        raise ValueError(sp.scheme)
    mask = m2.reshape(w.shape)
    return PruneResult(mask, 1.0 - mask.sum() / mask.size)
