"""How repeatable are devprof's medians? Profile a suite twice and compare kernel by kernel.

    .venv/bin/python bench/stability.py [--suite smoke] [--runtime onnxruntime --runtime litert] [--cores 0]
    .venv/bin/python bench/stability.py --datasets CAMPAIGN_A CAMPAIGN_B    # two existing campaigns

Prints the share of (kernel, runtime) pairs whose two medians agree within 5% (and 2%, 10%),
the same for their fastest rounds (minima), per runtime and op with --datasets, and the worst
disagreements. A benchmark, not a test: the figure depends on the machine's noise. It is what
`devprof fit-predictor --statistic` is chosen from: serve the statistic that repeats.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pandas as pd

from devprof.devices import LocalDevice
from devprof.errors import DevprofError
from devprof.measure import Protocol
from devprof.profile import default_runtimes, profile
from devprof.store import Dataset
from devprof.suites import load_suite


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="smoke")
    ap.add_argument("--runtime", action="append")
    ap.add_argument("--cores", default="", help="pin to these CPUs (e.g. 0)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--datasets", nargs=2, metavar=("A", "B"),
                    help="compare two campaigns already profiled (same kernels) instead of profiling")
    a = ap.parse_args()
    if a.datasets:
        return compare_campaigns(*a.datasets)
    dev = LocalDevice()
    suite = load_suite(a.suite)
    rts = a.runtime or default_runtimes(dev, suite.runtimes)
    proto = Protocol().with_cpus(dev.resolve_cores(a.cores))
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(2):
            t = time.monotonic()
            s = profile(dev, suite.specs, rts, f"{tmp}/run{i}", threads=a.threads, protocol=proto, suite=suite.name)
            print(f"run {i + 1}: {s.measured} kernels in {time.monotonic() - t:.1f} s ({s.failed} refused)")
            frames.append(Dataset(f"{tmp}/run{i}").read().set_index(["spec_id", "runtime"]))
    a_, b_ = frames[0]["median_us"].align(frames[1]["median_us"], join="inner")
    rel = _rel_diff(a_, b_)
    relmin = _rel_diff(*frames[0]["min_us"].align(frames[1]["min_us"], join="inner"))
    print(f"\nsuite {suite.name}, runtimes {', '.join(rts)}, {len(rel)} (kernel, runtime) pairs compared")
    print(f"  {'agree within':<14}{'medians':>9}{'minima':>9}")
    for tol in (0.02, 0.05, 0.10):
        print(f"  {tol:<14.0%}{np.mean(rel <= tol):>9.1%}{np.mean(relmin <= tol):>9.1%}")
    print(f"  median relative difference: {np.median(rel):.2%} (medians), {np.median(relmin):.2%} (minima)")
    noisy = pd.concat([frames[0]["noisy"], frames[1]["noisy"]]).mean()
    print(f"  measurements flagged noisy (IQR/median > 10%): {noisy:.0%}")
    print("  (medians follow the machine's load phases; minima show the kernel's own repeatability)")
    worst = rel.sort_values(ascending=False).head(5)
    print("  worst pairs:")
    for (sid, rt), r in worst.items():
        print(f"    {rt:14s} {sid}  {a_[(sid, rt)]:9.1f} vs {b_[(sid, rt)]:9.1f} µs  ({r:.1%})")


def _rel_diff(a, b):
    """|a - b| relative to the smaller of the two (symmetric: which run came first does not matter)."""
    return np.abs(a - b) / np.minimum(a, b)


def compare_campaigns(path_a: str, path_b: str) -> None:
    """Agreement of two campaigns' medians and minima, per runtime and op (kernels in both)."""
    frames = []
    for p in (path_a, path_b):
        try:
            df = Dataset(p).read()
        except DevprofError as e:
            raise SystemExit(f"error: {e}") from None
        df = df[df["kind"] == "kernel"]
        frames.append(df.drop_duplicates(["spec_key", "runtime"], keep="last").set_index(["spec_key", "runtime"]))
    both = frames[0].index.intersection(frames[1].index)
    if not len(both):
        raise SystemExit(f"error: {path_a} and {path_b} have no kernel in common")
    x, y = frames[0].loc[both], frames[1].loc[both]
    rel = pd.DataFrame({stat: _rel_diff(x[stat], y[stat]).to_numpy() for stat in ("median_us", "min_us")})
    rel = rel.assign(op=x["op"].to_numpy(), runtime=both.get_level_values(1))
    print(f"{path_a} vs {path_b}: {len(rel)} (kernel, runtime) pairs in both")
    print(f"  {'runtime':<14}{'op':<10}{'pairs':>6}{'medians ±10%':>14}{'minima ±10%':>13}{'±5%':>7}{'±5%':>7}")
    for (rt, op), g in [(("all", ""), rel)] + list(rel.groupby(["runtime", "op"])):
        print(f"  {rt:<14}{op:<10}{len(g):>6}{np.mean(g.median_us <= .10):>14.1%}{np.mean(g.min_us <= .10):>13.1%}"
              f"{np.mean(g.median_us <= .05):>7.1%}{np.mean(g.min_us <= .05):>7.1%}")
    print("  (medians follow the machine's load phases; minima show the kernel's own repeatability)")


if __name__ == "__main__":
    main()
