"""Adaptive sampling: the loop's contract (budget, stopping, strategies) on a synthetic pool."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import predictors
from devprof import adaptive

from support import predictors_synth as synth  # noqa: E402


def _pool(n: int = 160):
    specs = synth.random_specs(n, seed=21)
    X = predictors.encode(specs).data
    y = np.array([synth.true_latency_us(s) for s in specs])
    return X, y


def test_budget_is_respected_and_nothing_measured_twice() -> None:
    X, y = _pool()
    calls: list[int] = []

    def measure(idx):
        calls.extend(idx.tolist())
        return y[idx]

    res = adaptive.run(X, measure, budget=45, target_acc=2.0, initial=20, batch=10, seed=1)
    assert len(res.order) == 45 == len(calls) == len(set(calls)) and res.stopped == "budget"
    assert [r.measured for r in res.rounds] == [20, 30, 40, 45]
    assert all(r.prospective_within_10 is not None for r in res.rounds[1:])


def test_stops_at_target_and_strategies_differ() -> None:
    X, y = _pool()
    res = adaptive.run(X, lambda idx: y[idx], budget=150, target_acc=0.3, initial=20, batch=10, seed=0)
    assert res.stopped == "target" and len(res.order) < 150
    a = adaptive.run(X, lambda idx: y[idx], budget=50, target_acc=2.0, seed=3, strategy="adaptive")
    u = adaptive.run(X, lambda idx: y[idx], budget=50, target_acc=2.0, seed=3, strategy="uniform")
    assert a.order[:20] == u.order[:20]  # same initial set
    assert a.order[20:] != u.order[20:]


def test_adaptive_picks_uncertain_candidates() -> None:
    X, y = _pool()
    rng = np.random.default_rng(0)
    first = rng.permutation(len(X))[:30]
    model = adaptive._fit(X[first], y[first], 0)
    cand = np.setdiff1d(np.arange(len(X)), first)
    picked = adaptive.choose(model, X, cand, 8, rng)
    unc = model.uncertainty(X[cand])
    assert len(set(picked.tolist())) == 8
    assert model.uncertainty(X[picked]).mean() >= np.median(unc)


def test_profile_adaptive_cli_measures_for_real(tmp_path: Path) -> None:
    """`devprof profile --adaptive` on the smoke suite: 20 initial + 1 chosen batch, real ORT timings."""
    import json
    import subprocess

    from devprof.store import Dataset

    out = tmp_path / "ds"
    r = subprocess.run([sys.executable, "-m", "devprof", "profile", "--adaptive", "--suite", "smoke", "-r",
                        "onnxruntime", "--budget", "23", "--quick", "--out", str(out), "--json"],
                       capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["measured"] == 23 and summary["stopped"] == "budget"
    assert [x["measured"] for x in summary["rounds"]] == [20, 23]
    assert summary["rounds"][1]["prospective_within_10"] is not None
    df = Dataset(out).read()
    assert len(df) == 23 and set(df["runtime"]) == {"onnxruntime"}
