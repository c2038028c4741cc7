"""Adaptive sampling: measure where the predictor is least certain, refit, repeat.

Uniform sampling spends most measurements on easy, well-covered regions of the shape space.
Here a random forest (on top of the FLOPs-linear model, as the published predictors) is refitted
after every batch; the next batch is the candidates whose trees disagree most (the spread of
the trees' log-latency predictions, ~ the relative uncertainty), mixed with a few candidates
nearest to the kernels the previous batch got most wrong. Before each batch is measured its
latencies are predicted, so every round also yields an honest, prospective accuracy figure
("how well did we predict what we measured next") that decides when to stop.

`run(pool, measure, ...)` is the algorithm: `measure(indices) -> latencies µs` can time kernels
for real (`profile_adaptive`, behind `devprof profile --adaptive`) or read an already measured
pool (bench/adaptive_sampling.py). Fitting imports scikit-learn; queries never need this module.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from predictors.features import generic_features
from predictors.metrics import within


@dataclass
class Round:
    measured: int  # measurements so far (after this round)
    batch: int
    prospective_within_10: float | None  # accuracy of predictions made before measuring this batch
    mean_uncertainty: float | None


@dataclass
class Result:
    order: list[int]  # pool indices in the order they were measured
    latency_us: dict[int, float]
    rounds: list[Round] = field(default_factory=list)
    stopped: str = ""  # "target", "budget", "pool"


def _fit(X: np.ndarray, y: np.ndarray, seed: int):
    from predictors.estimators import ForestLatency

    return ForestLatency(n_estimators=32, min_samples_leaf=1, random_state=seed).fit(X, y)


def choose(model, X: np.ndarray, candidates: np.ndarray, k: int, rng: np.random.Generator,
           worst: np.ndarray | None = None, Xall: np.ndarray | None = None) -> np.ndarray:
    """k candidates: ~3/4 by largest tree spread, ~1/4 nearest (in feature space) to the last
    batch's worst-predicted kernels; ties broken at random."""
    if len(candidates) <= k:
        return candidates
    unc = model.uncertainty(X[candidates]) + rng.random(len(candidates)) * 1e-9
    picked: list[int] = []
    n_near = k // 4 if worst is not None and len(worst) else 0
    if n_near:  # nearness in the space the uncertainty model (the forest) sees
        F = generic_features(X[candidates])
        scale = F.std(axis=0) + 1e-9
        for w in worst[:n_near]:
            fw = generic_features(Xall[[w]] if Xall is not None else X[[w]])[0]
            d = (((F - fw) / scale) ** 2).sum(axis=1)
            for j in np.argsort(d):
                if int(candidates[j]) not in picked:
                    picked.append(int(candidates[j]))
                    break
    for j in np.argsort(-unc):
        if len(picked) >= k:
            break
        if int(candidates[j]) not in picked:
            picked.append(int(candidates[j]))
    return np.array(picked, dtype=np.int64)


def run(X: np.ndarray, measure: Callable[[np.ndarray], Sequence[float]], budget: int,
        target_acc: float = 0.95, initial: int = 20, batch: int = 10, seed: int = 0,
        strategy: str = "adaptive", on_round: Callable[[Round], None] | None = None,
        min_rounds_at_target: int = 2) -> Result:
    """Sample from the pool `X` (encoded specs, rows) until `budget` measurements, or until the
    prospective ±10% accuracy reached `target_acc` in `min_rounds_at_target` consecutive rounds.

    `strategy`: "adaptive" (uncertainty + worst neighbours) or "uniform" (seeded random order,
    the baseline). Both measure the same initial random set."""
    rng = np.random.default_rng(seed)
    n = len(X)
    budget = min(budget, n)
    perm = rng.permutation(n)
    order: list[int] = [int(i) for i in perm[:min(initial, budget)]]
    lat: dict[int, float] = {}
    for i, v in zip(order, measure(np.array(order))):
        lat[i] = float(v)
    res = Result(order, lat)
    res.rounds.append(Round(len(order), len(order), None, None))
    if on_round:
        on_round(res.rounds[-1])
    uniform_next = [int(i) for i in perm[len(order):]]
    worst: np.ndarray | None = None
    at_target = 0
    while len(order) < budget:
        k = min(batch, budget - len(order))
        idx = np.array(order)
        y = np.array([lat[i] for i in order])
        model = _fit(X[idx], y, seed)
        measured = set(order)
        cand = np.array([i for i in range(n) if i not in measured], dtype=np.int64)
        if not len(cand):
            res.stopped = "pool"
            break
        if strategy == "uniform":
            nxt = np.array([i for i in uniform_next if i not in measured][:k], dtype=np.int64)
        else:
            nxt = choose(model, X, cand, k, rng, worst, X)
        pred = model.predict(X[nxt])
        unc = float(model.uncertainty(X[nxt]).mean())
        got = np.array([float(v) for v in measure(nxt)])
        for i, v in zip(nxt.tolist(), got.tolist()):
            lat[i] = v
            order.append(i)
        err = np.abs(pred - got) / got
        worst = nxt[np.argsort(-err)]
        acc = within(pred, got, 0.10)
        res.rounds.append(Round(len(order), len(nxt), acc, unc))
        if on_round:
            on_round(res.rounds[-1])
        at_target = at_target + 1 if acc >= target_acc else 0
        if at_target >= min_rounds_at_target:
            res.stopped = "target"
            break
    else:
        res.stopped = "budget"
    if not res.stopped:
        res.stopped = "budget"
    return res


def profile_adaptive(device: Any, specs: Sequence[Any], runtime: str, out: Any, *, budget: int,
                     target_acc: float = 0.95, threads: int = 1, protocol: Any = None, suite: str = "",
                     initial: int = 20, batch: int = 10, seed: int = 0,
                     on_round: Callable[[Round], None] | None = None) -> tuple[Result, Any]:
    """`devprof profile --adaptive`: the suite's specs are the candidate pool; each chosen batch is
    measured for real through devprof.profile (saved at once, resumable) and the loop refits.
    Specs the dataset already holds for this device and runtime are reused, not re-measured."""
    from .errors import DevprofError, KernelError
    from .measure import Protocol
    from .profile import profile
    from .store import Dataset

    from predictors.spectable import encode

    specs = list(specs)
    X = encode(specs).data
    protocol = protocol or Protocol()
    dinfo = device.info()

    def known() -> dict[str, float]:
        ds = Dataset(out)
        if not ds.exists():
            return {}
        df = ds.read()
        if not len(df):
            return {}
        df = df[(df["kind"] == "kernel") & (df["runtime"] == runtime) & (df["device_id"] == dinfo.id)]
        return dict(zip(df["spec_key"], df["median_us"]))

    summaries = []

    def measure(idx: np.ndarray) -> list[float]:
        have = known()
        todo = [specs[i] for i in idx.tolist() if specs[i].key not in have]
        if todo:
            s = profile(device, todo, [runtime], out, threads=threads, resume=True, protocol=protocol, suite=suite)
            summaries.append(s)
            if s.interrupted:
                raise KeyboardInterrupt
            have = known()
        missing = [specs[i].key for i in idx.tolist() if specs[i].key not in have]
        if missing:
            raise KernelError(f"{len(missing)} kernel(s) could not be measured with {runtime} (first: {missing[0]}); "
                              "see failures.jsonl in the dataset")
        return [have[specs[i].key] for i in idx.tolist()]

    if budget < 1:
        raise DevprofError("--budget must be >= 1")
    return run(X, measure, budget, target_acc, initial, batch, seed, "adaptive", on_round), summaries
