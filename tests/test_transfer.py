"""Transfer fits (predictors.transfer): synthetic target devices built from source devices."""
from __future__ import annotations

import numpy as np
import pytest

from predictors import transfer as T

OPS = ("none", "skip", "conv1", "conv3", "pool")
KEYS = [f"e{e}:{o}" for e in range(6) for o in OPS]


def _archs(n: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [[f"e{e}:{OPS[o]}" for e, o in enumerate(rng.integers(0, 5, 6))] for _ in range(n)]


def _sources(seed: int = 0) -> list[T.TableSource]:
    rng = np.random.default_rng(seed)
    base = {k: 50.0 + 900.0 * (k.endswith("conv3")) + 300.0 * (k.endswith("conv1")) for k in KEYS}
    out = []
    for i in range(4):
        f = np.exp(rng.normal(0, 0.3, len(KEYS)))
        out.append(T.TableSource(f"dev{i}", {k: base[k] * v * (i + 1) for k, v in zip(KEYS, f)}, 100.0 * (i + 1)))
    return out


def _total(table: dict[str, float], overhead: float, arch: list[str]) -> float:
    return overhead + sum(table[k] for k in arch)


@pytest.mark.parametrize("scale", [1.0, 3.7])
def test_table_exact_scaling_of_a_source_recovered_from_5(scale):
    src = _sources()
    s = src[2]
    models = [(a, scale * _total(s.table, s.overhead_us, a)) for a in _archs(5, 1)]
    f = T.fit_table(models, src)
    test = _archs(200, 2)
    want = np.array([scale * _total(s.table, s.overhead_us, a) for a in test])
    np.testing.assert_allclose(f.predict(test), want, rtol=1e-6)
    assert f.best_single["source"] == "dev2"
    assert not f.prior_shrunk_away
    assert f.loo["within_10"] == 1.0


def test_table_contradicting_samples_shrink_the_prior_away():
    src = _sources()
    rng = np.random.default_rng(5)
    # a device unlike every source: convolutions cheap, pooling and skips expensive
    table = {k: float(rng.uniform(10, 2000)) for k in KEYS}
    archs = _archs(120, 3)
    models = [(a, _total(table, 30.0, a)) for a in archs]
    f = T.fit_table(models, src)
    test = _archs(300, 4)
    want = np.array([_total(table, 30.0, a) for a in test])
    got = f.predict(test)
    assert np.mean(np.abs(got - want) / want <= 0.10) >= 0.95
    assert f.prior_shrunk_away
    assert f.info()["prior_shrunk_away"] is True
    assert f.loo_prior_only["mse"] > 4 * f.loo["mse"]


def test_table_bad_input():
    src = _sources()
    models = [(a, 1000.0) for a in _archs(5, 1)]
    with pytest.raises(T.TransferError, match="no source"):
        T.fit_table(models, [])
    with pytest.raises(T.TransferError, match="duplicate source name 'dev0'"):
        T.fit_table(models, [src[0], src[0]])
    with pytest.raises(T.TransferError, match="0 target sample"):
        T.fit_table([], src)
    other = [T.TableSource("other", {"conv_a": 1.0, "conv_b": 2.0})]
    with pytest.raises(T.TransferError, match="another search space"):
        T.fit_table(models, other)


def _kernel_case(n: int, seed: int):
    rng = np.random.default_rng(seed)
    groups = np.array(["conv2d/dense", "fc/dense", "pwconv/dense"])[rng.integers(0, 3, n)]
    flops = np.exp(rng.uniform(5, 15, n))
    P = np.stack([flops * 1e-3 * np.exp(rng.normal(0, 0.4, n)) for _ in range(3)], axis=1)
    return P, groups, np.log(flops)[:, None]


def test_kernels_exact_scaling_recovered_from_5():
    P, g, F = _kernel_case(60, 0)
    y = 2.5 * P[:, 1]
    f = T.fit_kernels(P[:5], y[:5], g[:5], ["a", "b", "c"], F[:5])
    np.testing.assert_allclose(f.predict(P[5:], g[5:], F[5:]), y[5:], rtol=1e-6)
    assert f.mode == "single" and f.weights[1] == 1.0
    assert f.loo["within_10"] == 1.0


def test_kernels_per_group_scaling_and_bad_input():
    P, g, F = _kernel_case(200, 1)
    y = P[:, 0] * np.where(g == "fc/dense", 0.5, 2.0)
    f = T.fit_kernels(P[:40], y[:40], g[:40], ["a", "b", "c"])
    got = f.predict(P[40:], g[40:])
    assert np.mean(np.abs(got - y[40:]) / y[40:] <= 0.10) >= 0.95
    with pytest.raises(T.TransferError, match="duplicate source name 'a'"):
        T.fit_kernels(P[:5], y[:5], g[:5], ["a", "a", "c"])
    with pytest.raises(T.TransferError, match="no source"):
        T.fit_kernels(P[:5, :0], y[:5], g[:5], [])
    with pytest.raises(T.TransferError, match="0 target sample"):
        T.fit_kernels(P[:0], y[:0], g[:0], ["a", "b", "c"])


def test_choose_informative_prefers_disagreement_and_spread():
    rng = np.random.default_rng(0)
    P = np.exp(rng.normal(0, 1, (100, 1))) * np.ones((100, 3))
    P[7] *= np.array([1.0, 3.0, 0.3])  # the sources disagree on candidate 7 only
    picks = T.choose_informative(P, 5)
    assert picks[0] == 7 and len(set(picks.tolist())) == 5
    with pytest.raises(T.TransferError, match="k must be at least 1"):
        T.choose_informative(P, 0)


def test_scale_model_tree_linear_switch():
    lin = {"kind": "linear", "coef": [1.0, 2.0], "intercept": 3.0, "floor_us": 0.5}
    tr = {"kind": "tree_ensemble", "base": 0.1}
    sw = {"kind": "switch", "feature": "cin_pad4", "threshold": 1.0, "le": lin, "gt": tr}
    out = T.scale_model(sw, 2.0)
    assert out["le"]["coef"] == [2.0, 4.0] and out["le"]["intercept"] == 6.0 and out["le"]["floor_us"] == 1.0
    assert out["gt"]["base"] == pytest.approx(0.1 + np.log(2.0))


def test_table_choice_between_fit_and_rescaled_source_is_cross_validated():
    src = _sources()
    s = src[1]
    test = _archs(200, 7)
    want = np.array([2.5 * _total(s.table, s.overhead_us, a) for a in test])
    # an exact rescaling of one source: the choice keeps it (whatever the blend weight, the table matches)
    exact = [(a, 2.5 * _total(s.table, s.overhead_us, a)) for a in _archs(20, 6)]
    f = T.fit_table(exact, src)
    np.testing.assert_allclose(f.predict(test), want, rtol=1e-6)
    ch = f.info()["choice"]
    assert ch["cv"] == "5-fold" and ch["transfer_weight"] == f.transfer_weight and len(ch["candidates"]) == len(T.BLEND)
    assert f.loo["within_10"] == 1.0 and f.loo["cv"] == "5-fold"
    # the same with noise no table explains (each model's own): the averaged sources win the cross-validation
    rng = np.random.default_rng(8)
    noisy = [(a, v * float(np.exp(rng.normal(0, 0.08)))) for a, v in exact]
    g = T.fit_table(noisy, src)
    assert g.transfer_weight < 1.0 and g.choice["chosen"] in ("averaged sources", "blend")
    lowest = min(g.choice["candidates"], key=lambda w: g.choice["candidates"][w])
    assert g.transfer_weight <= float(lowest)  # the rule only ever moves toward the average
    assert not g.prior_shrunk_away
    # five samples: leave-one-out
    assert T.fit_table(exact[:5], src).choice["cv"] == "leave-one-out"


def test_final_choice_keeps_the_average_unless_the_fit_is_better_beyond_noise():
    rng = np.random.default_rng(3)
    y = np.full(20, 100.0)
    e = rng.normal(0, 0.05, 20)
    avg = y * (1.0 + e)
    # a fit better on half the samples and worse on the rest, a little better on average: the average
    close = y * (1.0 + np.where(np.arange(20) % 2 == 0, 0.75, 1.15) * e)
    a, cands = T._choose_blend(y, close, avg, T.ROBUST)
    assert min(cands.values()) < cands[0.0] and a == 0.0
    # a fit better on every sample: the fit
    a, _ = T._choose_blend(y, y * (1.0 + 0.3 * e), avg, T.ROBUST)
    assert a == 1.0


def test_source_average_rescale_is_robust_to_a_slow_timing():
    src = _sources()
    s = src[1]
    archs = _archs(20, 9)
    y = np.array([2.5 * _total(s.table, s.overhead_us, a) for a in archs])
    y[3] *= 2.0  # one run the phone was busy for
    P = np.array([[_total(t.table, t.overhead_us, a) for t in src] for a in archs])
    w = T.source_average(P, y)
    squares = T.source_average(P, y, robust=None)
    assert w.sum() == pytest.approx(w[1], rel=1e-6)  # the exact source carries the average
    # Huber bounds the slow run's pull on the scale; squared relative error follows it
    assert abs(w[1] / 2.5 - 1.0) < 0.3 * abs(squares[1] / 2.5 - 1.0)
