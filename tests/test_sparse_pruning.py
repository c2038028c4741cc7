"""Pruning masks have the structure each scheme promises and report the ratio they achieve."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devprof.records import KernelSpec, Sparsity
from devprof.sparse.pruning import bcr_mask, block_mask, nm_mask, pattern_mask, prune, unstructured_mask

mat = st.tuples(st.integers(1, 40), st.integers(1, 70), st.integers(0, 2**31 - 1))


def rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@settings(max_examples=25, deadline=None)
@given(m=mat, ratio=st.floats(0.0, 0.999))
def test_unstructured_is_exact(m, ratio):
    r, c, seed = m
    w = rand((r, c), seed)
    mask = unstructured_mask(w, ratio)
    assert mask.sum() == round((1 - ratio) * w.size)
    if 0 < mask.sum() < w.size:  # magnitude: every kept weight at least as large as every pruned one
        assert np.abs(w[mask]).min() >= np.abs(w[~mask]).max()


@settings(max_examples=25, deadline=None)
@given(m=mat, ratio=st.floats(0.0, 0.99), br=st.integers(1, 8), bc=st.integers(1, 8))
def test_block_keeps_whole_blocks(m, ratio, br, bc):
    r, c, seed = m
    mask = block_mask(rand((r, c), seed), ratio, (br, bc))
    for i in range(0, r, br):
        for j in range(0, c, bc):
            blk = mask[i:i + br, j:j + bc]
            assert blk.all() or not blk.any()


@settings(max_examples=25, deadline=None)
@given(m=mat, ratio=st.floats(0.0, 0.99), br=st.integers(1, 8), bc=st.integers(1, 20))
def test_bcr_prunes_whole_rows_and_columns_inside_blocks(m, ratio, br, bc):
    r, c, seed = m
    mask = bcr_mask(rand((r, c), seed), ratio, (br, bc))
    for i in range(0, r, br):
        for j in range(0, c, bc):
            blk = mask[i:i + br, j:j + bc]
            rows, cols = blk.any(1), blk.any(0)
            assert (blk == np.outer(rows, cols)).all()  # kept entries form rows x columns
    assert abs(mask.sum() - round((1 - ratio) * mask.size)) <= max(br, 1)  # on target up to one column


@settings(max_examples=25, deadline=None)
@given(m=mat, nm=st.sampled_from([(2, 4), (1, 4), (1, 10), (2, 8)]))
def test_nm_keeps_n_of_every_m(m, nm):
    r, c, seed = m
    n, mm = nm
    mask = nm_mask(rand((r, c), seed), n, mm)
    full = c // mm * mm
    if full:
        assert (mask[:, :full].reshape(r, -1, mm).sum(-1) == n).all()


@settings(max_examples=15, deadline=None)
@given(co=st.integers(1, 12), ci=st.integers(1, 12), seed=st.integers(0, 2**31 - 1),
       ratio=st.floats(0.0, 0.98), npat=st.sampled_from([4, 6, 8]))
def test_pattern_library_and_connectivity(co, ci, seed, ratio, npat):
    w = rand((co, 3, 3, ci), seed)
    pr = pattern_mask(w, ratio, npat)
    k9 = np.transpose(pr.mask, (0, 3, 1, 2)).reshape(co, ci, 9)
    kept = k9.sum(-1)
    assert set(np.unique(kept)) <= {0, 4}
    assert k9[kept == 4][:, 4].all()  # the centre tap is always kept
    assert len({tuple(x) for x in k9[kept == 4]}) <= npat
    if ratio <= 5 / 9:  # patterns alone: 5 of 9 pruned, every kernel kept
        assert (kept == 4).all() and pr.achieved == pytest.approx(5 / 9)
    else:  # connectivity pruning drops whole kernels to the nearest kernel of the target
        assert abs(pr.achieved - ratio) <= 2 / (9 * co * ci) + 1e-9


@pytest.mark.parametrize("scheme,params", [("dense", {}), ("unstructured", {}), ("bcr", {"block": [4, 16]}),
                                           ("block", {"block": [1, 4]}), ("nm", {"n": 2, "m": 4}),
                                           ("pattern", {"patterns": 8})])
def test_prune_reports_achieved_ratio(scheme, params):
    ratio = 0.0 if scheme == "dense" else 0.5
    spec = KernelSpec("conv2d", h=8, w=8, cin=16, cout=32, kh=3, kw=3, padding=1,
                      sparsity=Sparsity(scheme, ratio, params))
    w = rand(spec.weight_shape, 1)
    pr = prune(spec, w)
    assert pr.mask.shape == w.shape
    assert pr.achieved == pytest.approx(1 - pr.mask.mean())
    if scheme in ("unstructured", "nm"):
        assert pr.achieved == pytest.approx(0.5)
    if scheme == "pattern":
        assert pr.achieved == pytest.approx(5 / 9)
