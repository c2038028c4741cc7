"""Whole models: do the per-layer timings add up to the end-to-end time? One command, one run.

    .venv/bin/python bench/model_layers.py [--suite models] [--families mobilenetv2 resnet18] [--quick]

Profiles the `models` suite (or the named families' reference architectures) on `local` with
ONNX Runtime, 1 thread, into a temporary dataset, and prints per model: Σ layer medians (ORT
profiler), the end-to-end wall-clock median of clean runs interleaved with the profiled ones, its
CPU time (immune to preemption by other processes), the gaps, and the measured framework overhead
(time per run outside kernels). Then the share of models whose Σ layer medians are within 10% of
end to end (wall and CPU), and the machine's load average, which explains a large wall-clock gap.

Target: Σ layer medians within 10% of the end-to-end median, or the gap explained and
recorded as the per-model overhead term.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="models")
    ap.add_argument("--families", nargs="*", help="reference architectures of these families instead of a suite")
    ap.add_argument("--quick", action="store_true", help="shorter protocol")
    args = ap.parse_args()

    from devprof.measure import Protocol
    from devprof.model_profiling.profile import profile_models
    from devprof.suites import load_suite

    models = list(args.families) if args.families else list(load_suite(args.suite).models)
    rows = []

    def on_model(runs) -> None:
        for r in runs:
            if r.runtime == "onnxruntime" and r.e2e and r.rows:
                rows.append((r.name, r.layer_sum_us, r.reference_us, r.cpu_us, r.gap, r.gap_cpu, r.framework_us))
                print(f"{r.name:42s} Σlayers {r.layer_sum_us / 1e3:9.2f} ms  e2e {r.reference_us / 1e3:9.2f} ms "
                      f"(gap {r.gap:+7.1%})  cpu {r.cpu_us / 1e3:9.2f} ms (gap {r.gap_cpu:+7.1%})  "
                      f"framework {r.framework_us / 1e3:6.2f} ms", flush=True)

    t0 = time.monotonic()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="devprof-bench-models-") as tmp:
        profile_models(models, runtimes=["onnxruntime"], threads=1, out=Path(tmp) / "ds",
                       protocol=Protocol.quick() if args.quick else Protocol(), on_model=on_model)
    if not rows:
        print("no model ran")
        return
    g = np.array([r[4] for r in rows])
    gc = np.array([r[5] for r in rows])
    fw = np.array([r[6] / r[1] for r in rows])
    print(f"\n{len(rows)} models in {time.monotonic() - t0:.0f} s; load average {load0:.1f} -> {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    print(f"Σ layer medians within 10% of end to end: wall {np.mean(np.abs(g) <= 0.10):.0%} "
          f"(median gap {np.median(g):+.1%}), CPU time {np.mean(np.abs(gc) <= 0.10):.0%} (median gap {np.median(gc):+.1%})")
    print(f"framework overhead (recorded per model as the '(overhead)' term): median {np.median(fw):.1%} of Σ layers")


if __name__ == "__main__":
    main()
