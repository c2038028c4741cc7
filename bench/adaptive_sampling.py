"""Adaptive vs uniform sampling: predictor accuracy against the number of measurements.

    .venv/bin/python bench/adaptive_sampling.py [--dataset DIR --runtime onnxruntime] [--ops pwconv fc]
    .venv/bin/python bench/adaptive_sampling.py --synthetic 1200    # known latencies, 2% noise

How (said plainly): to keep the benchmark cheap and the comparison fair, a candidate pool is
measured ONCE (either the dataset you pass, or — without --dataset — the `predictor-train`
suite's kernels of the chosen ops, profiled now with ONNX Runtime), and both strategies then
"measure" by reading that pool. Per op type, a seeded 25% of the pool is a fixed test set; the
rest are candidates. Both strategies start from the same random initial set; uniform then adds
random kernels, adaptive adds those where the refitted random forest is least certain (plus
neighbours of its worst misses). After every batch a random forest on the measured kernels is
scored on the test set (share within ±10%, MAPE). Repeated over seeds; the figures are means.

Target: adaptive reaches the accuracy uniform has at the full budget with <= 60% of
the measurements, on at least one op type.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _pool(args) -> "object":
    from devprof.store import Dataset, read_datasets

    if args.synthetic:
        sys.path.insert(0, str(ROOT / "tests"))
        from support import predictors_synth as synth

        from devprof.store import Dataset

        out = Path(tempfile.mkdtemp(prefix="devprof-adaptive-")) / "synthetic"
        ds = Dataset(out)
        ds.create()
        specs = [s for s in synth.random_specs(args.synthetic, seed=7) if s.op in args.ops]
        ds.append(synth.records(specs, noise=0.02))
        df = ds.read()
        src = (f"SYNTHETIC pool of {len(specs)} kernels (roofline latencies + 2% noise, no device): shows the "
               "algorithm when measurements are repeatable")
    elif args.dataset:
        df = read_datasets([args.dataset])
        src = f"dataset {args.dataset}"
    else:
        from devprof.devices import resolve_device
        from devprof.profile import profile
        from devprof.suites import load_suite

        specs = [s for s in load_suite("predictor-train").specs if s.op in args.ops]
        out = Path(tempfile.mkdtemp(prefix="devprof-adaptive-")) / "pool"
        print(f"measuring the candidate pool once: {len(specs)} kernels with {args.runtime} -> {out}", flush=True)
        profile(resolve_device("local"), specs, [args.runtime], out, suite="predictor-train")
        df = Dataset(out).read()
        src = f"pool profiled now ({out})"
    df = df[(df["kind"] == "kernel") & (df["runtime"] == args.runtime) & df["op"].isin(args.ops)]
    df = df.drop_duplicates("spec_key").reset_index(drop=True)
    return df, src


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default=None, help="an already measured pool (dataset folder, or reference "
                    "file FILE.parquet[@campaign,...])")
    ap.add_argument("--synthetic", type=int, default=0, metavar="N",
                    help="instead of real timings, a synthetic pool of N kernels with known latencies")
    ap.add_argument("--runtime", default="onnxruntime")
    ap.add_argument("--ops", nargs="+", default=["pwconv", "fc", "conv2d"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--initial", type=int, default=20)
    args = ap.parse_args()

    from predictors import adaptive
    from predictors.metrics import within
    from predictors.spectable import encode_frame

    df, src = _pool(args)
    print(f"pool: {src}; runtime {args.runtime}; {len(df)} kernels; seeds {args.seeds}; batch {args.batch}")
    verdicts = []
    for op in args.ops:
        sub = df[df["op"] == op].reset_index(drop=True)
        if len(sub) < 60:
            print(f"\n{op}: only {len(sub)} kernels in the pool, skipped")
            continue
        X_all = encode_frame(sub).data
        y_all = sub["median_us"].to_numpy(dtype=float)
        curves: dict[str, dict[int, list[tuple[float, float]]]] = {"uniform": {}, "adaptive": {}}
        budget = None
        for seed in range(args.seeds):
            rng = np.random.default_rng(100 + seed)
            perm = rng.permutation(len(sub))
            n_test = len(sub) // 4
            test, cand = perm[:n_test], perm[n_test:]
            Xc, yc = X_all[cand], y_all[cand]
            budget = int(len(cand) * 0.8)
            for strat in ("uniform", "adaptive"):
                def on_round(r, strat=strat, res_holder=[None]):  # noqa: B006
                    pass

                res = adaptive.run(Xc, lambda idx: yc[idx], budget, target_acc=2.0, initial=args.initial,
                                   batch=args.batch, seed=seed, strategy=strat)
                # score the model after each round on the fixed test set
                n = args.initial
                while n <= len(res.order):
                    idx = np.array(res.order[:n])
                    m = adaptive._fit(Xc[idx], yc[idx], seed)
                    pred = m.predict(X_all[test])
                    w10 = within(pred, y_all[test], 0.10)
                    mape = float(np.mean(np.abs(pred - y_all[test]) / y_all[test]))
                    curves[strat].setdefault(n, []).append((w10, mape))
                    n += args.batch
        ns = sorted(set(curves["uniform"]) & set(curves["adaptive"]))
        mean = {s: {n: np.mean(curves[s][n], axis=0) for n in ns} for s in curves}
        print(f"\n{op}: {len(sub)} kernels ({len(sub) // 4} test), budget {budget} measurements")
        print(f"  {'n':>5}  {'uniform ±10%':>13} {'adaptive ±10%':>14}  {'uniform MAPE':>13} {'adaptive MAPE':>14}")
        step = max(1, len(ns) // 12)
        for n in ns[::step] + ([ns[-1]] if (len(ns) - 1) % step else []):
            u, a = mean["uniform"][n], mean["adaptive"][n]
            print(f"  {n:>5}  {u[0]:>13.1%} {a[0]:>14.1%}  {u[1]:>13.1%} {a[1]:>14.1%}")
        last = ns[-1]
        for k, name, better in ((0, "±10% share", lambda a, u: a >= u), (1, "MAPE", lambda a, u: a <= u)):
            goal = mean["uniform"][last][k]
            # smallest n from which adaptive stays at least as good as uniform's final figure
            reach = next((n for i, n in enumerate(ns) if all(better(mean["adaptive"][m][k], goal) for m in ns[i:])), None)
            share = reach / last if reach else None
            ok = share is not None and share <= 0.6
            verdicts.append(ok)
            print(f"  {name}: uniform reaches {goal:.1%} with {last}; adaptive reaches it with "
                  + (f"{reach} ({share:.0%} of the measurements) {'PASS' if ok else 'not <= 60%'}" if reach
                     else "- (never within the budget)"))
    print("\ntarget (adaptive <= 60% of uniform's measurements on at least one op type): "
          + ("MET" if any(verdicts) else "NOT MET"))


if __name__ == "__main__":
    main()
