"""Predictor query speed, measured side by side in one run (against its targets).

    .venv/bin/python bench/predictor_speed.py [--bundle DIR]

Prints: bundle load time (in-process, and a cold `import predictors` + load in a fresh
interpreter), batch throughput on 1,000,000 layer queries (a search-like mix: layers drawn from a
pool of LUT hits and regressor misses, built with `pool.take(...)` as search code would, and
the same rows as a plain table that must be deduplicated by hash), the all-unique-misses worst case, and the latency of
predicting a 50-layer model from the LUT (a list of KernelSpecs, warm and cold, and a
pre-encoded SpecTable). Without --bundle it fits a bundle on synthetic records first (the
figures are about the query path, which is the same for real and synthetic bundles).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _timeit(fn, repeat: int) -> float:
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _synthetic_bundle(tmp: Path) -> Path:
    from support import predictors_synth as synth

    from devprof.store import Dataset
    from devprof.store import read_datasets
    from predictors.fit import fit_bundles

    ds = Dataset(tmp / "ds")
    ds.create()
    ds.append(synth.records(synth.random_specs(1500, seed=11)))
    ds.append(synth.model_records(12, seed=2))
    (b,) = fit_bundles(read_datasets([ds.path]), ["synthetic"])
    return b.write(tmp / "bundles")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=None)
    ap.add_argument("--queries", type=int, default=1_000_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="devprof-bench-"))
    bundle = args.bundle or _synthetic_bundle(tmp)

    import predictors
    from devprof.records import KernelSpec

    # 1. load
    load_s = _timeit(lambda: predictors.load(bundle), 7)
    code = ("import time; t=time.perf_counter(); import predictors; p=predictors.load(%r); "
            "print(time.perf_counter()-t)" % str(bundle))
    cold = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                                 check=True).stdout.strip()) for _ in range(3)]
    p = predictors.load(bundle)
    lut_specs = [KernelSpec.from_dict(json.loads(s)) for s in p.lut["spec_json"]]

    # 2. batch: a search-like mix of hits and misses (70% / 30%)
    from support import predictors_synth as synth

    known = set(p.keys)
    misses = [s for s in synth.random_specs(6000, seed=1234) if s.key not in known][:3000]
    pool = predictors.encode(lut_specs + misses)
    rng = np.random.default_rng(0)
    n_hit, n_miss = len(lut_specs), len(misses)
    pick = np.where(rng.random(args.queries) < 0.7, rng.integers(0, n_hit, args.queries),
                    n_hit + rng.integers(0, n_miss, args.queries))
    batch = pool.take(pick)
    r = p.predict(batch)
    batch_s = _timeit(lambda: p.predict(batch), 3)
    # the same rows with no provenance (e.g. built by other code): distinct rows are found by hash
    plain = predictors.SpecTable(batch.data, batch.hashes)
    plain_s = _timeit(lambda: p.predict(plain), 3)
    assert np.array_equal(p.predict(plain).latency_us, r.latency_us)
    hit_share = r.lut_hits / len(r)
    # worst case: every row a distinct miss (no table hit, no repeated spec)
    worst = pool.take(np.arange(n_hit, n_hit + n_miss))
    worst_s = _timeit(lambda: p.predict(worst), 3)
    # spec objects instead of an encoded table (the convenient path)
    objs = [lut_specs[i] if i < n_hit else misses[i - n_hit] for i in pick[:200_000].tolist()]
    list_s = _timeit(lambda: p.predict(objs), 3)

    # 3. a 50-layer model from the LUT
    layers = [lut_specs[i] for i in rng.choice(n_hit, 50, replace=False)]
    fresh = [KernelSpec.from_dict(s.to_dict()) for s in layers]  # equal specs, new objects
    p.predict_model(layers)
    warm_us = _timeit(lambda: p.predict_model(layers), 2000) * 1e6
    fresh_us = _timeit(lambda: p.predict_model(fresh), 2000) * 1e6
    colds = []
    for _ in range(20):
        q = predictors.load(bundle)
        t = time.perf_counter()
        q.predict_model(layers)
        colds.append(time.perf_counter() - t)
    cold_us = statistics.median(colds) * 1e6
    table50 = predictors.encode(layers, with_keys=True)
    table_us = _timeit(lambda: p.predict_model(table50), 2000) * 1e6
    total = p.predict_model(layers).total_us

    rows = [
        ("bundle load (in process)", f"{load_s * 1e3:.1f} ms", "<= 200 ms", load_s <= 0.2),
        ("cold: import predictors + load (fresh python)", f"{statistics.median(cold) * 1e3:.1f} ms", "(info)", None),
        (f"batch of {args.queries:,} layers, {hit_share:.0%} LUT hits (pool.take)",
         f"{args.queries / batch_s:,.0f} /s", ">= 1,000,000 /s", args.queries / batch_s >= 1e6),
        ("same batch as a plain SpecTable (dedup by hash)",
         f"{args.queries / plain_s:,.0f} /s", ">= 1,000,000 /s", args.queries / plain_s >= 1e6),
        (f"worst case: {n_miss:,} distinct misses", f"{n_miss / worst_s:,.0f} /s", "(info)", None),
        ("200,000 layers as a list of KernelSpec", f"{200_000 / list_s:,.0f} /s", "(info)", None),
        ("50-layer model from the LUT (same spec objects)", f"{warm_us:.1f} µs", "<= 100 µs", warm_us <= 100),
        ("50-layer model, equal specs as new objects", f"{fresh_us:.1f} µs", "(info)", None),
        ("50-layer model, first query after load", f"{cold_us:.1f} µs", "(info)", None),
        ("50-layer model as a pre-encoded SpecTable", f"{table_us:.1f} µs", "(info)", None),
    ]
    print(f"bundle: {bundle} ({len(p.keys)} LUT rows, {len(p.groups)} regressors"
          f"{', synthetic records' if args.bundle is None else ''})")
    w = max(len(r[0]) for r in rows)
    for name, val, target, ok in rows:
        flag = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"  {name:<{w}}  {val:>16}  {target:>16}  {flag}")
    print(f"  (50-layer model predicted total: {total / 1000:.3f} ms)")


if __name__ == "__main__":
    main()
