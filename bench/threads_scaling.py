"""Generated kernels on 1 vs N threads: the harness's pool and the chunk split by nonzero count.

Takes the `sparse-sweep` suite's conv/FC layer shapes (SR layers on the same 90x160 crop as
bench/sparse_vs_dense.py), builds each as the generated dense kernel and as every scheme's sparse
kernel at 0.75 and 0.9, builds ONE harness binary, and runs it alternately with --threads=1 and
--threads=N (N = --threads, default 2; pinned to CPUs 0..N-1), --rounds times each; a kernel's time
at a thread count is its lowest median over those runs. Prints per kernel the two times and the
speedup, then the geometric-mean speedup over kernels whose 1-thread time is at least --min-us
(short kernels are dominated by the wake-up of the pool, as in every thread pool).

    .venv/bin/python bench/threads_scaling.py [--threads 2] [--rounds 2] [--min-us 50] [--quick]
        [--match SUBSTR,...] [--csv PATH]

On a shared machine, run it when nothing else runs: two threads contend with whatever else is on
the cores, and the figure says as much about the machine's load as about the kernels.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devprof.artifacts.harness_build import build_batch, host_toolchain, vector_shape  # noqa: E402
from devprof.measure import Protocol  # noqa: E402
from devprof.records import KernelSpec, Sparsity  # noqa: E402
from devprof.runtimes.harness import parse_harness_output  # noqa: E402
from devprof.sparse.codegen import generate  # noqa: E402
from devprof.suites import load_suite  # noqa: E402

SCHEMES = [("unstructured", {}), ("bcr", {"block": [4, 16]}), ("block", {"block": [4, 1]}),
           ("block", {"block": [1, 4]}), ("nm", {}), ("pattern", {"patterns": 8})]
RATIOS = (0.75, 0.9)
CROP = (90, 160)
PROTOCOL = Protocol(warmup_s=0.02, min_warmups=2, sample_s=0.004, rounds=5, round_s=0.012, round_samples=2,
                    max_time_s=0.6)


def shapes(quick: bool, match: str = "") -> list[KernelSpec]:
    seen: list[KernelSpec] = []
    for s in load_suite("sparse-sweep").specs:
        if s.op not in ("conv2d", "pwconv", "fc") or s.sparsity.scheme != "dense":
            continue
        if s.h * s.w > 100_000:
            s = s.replace(h=CROP[0], w=CROP[1], attrs={"crop_of": f"{s.h}x{s.w}"})
        if s not in seen:
            seen.append(s)
    seen.sort(key=lambda s: s.flops)
    if quick:  # the larger half: the layers a second thread can help
        seen = seen[len(seen) // 2::2]
    if match:  # comma-separated substrings of the layer key, e.g. "90x160x12-o12,14x14x96"
        seen = [s for s in seen if any(m and m in s.key for m in match.split(","))]
    return seen


def kernels_for(layers: list[KernelSpec], vl: int, regs: int) -> list:
    ks = []
    for s in layers:
        ks.append(generate(s, "dense", vector_floats=vl, vector_regs=regs))
        for scheme, params in SCHEMES:
            if scheme == "pattern" and (s.kh, s.kw) != (3, 3):
                continue
            for r in RATIOS:
                p = dict(params)
                if scheme == "nm":
                    p = {"n": 1, "m": 4} if r == 0.75 else {"n": 1, "m": 10}
                sp = s.replace(sparsity=Sparsity(scheme, r, p))
                ks.append(generate(sp, "sparse", vector_floats=vl, vector_regs=regs))
    return ks


def run(batch, threads: int) -> dict[str, float]:
    cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0))[:max(threads, 1)])
    p = subprocess.run([str(batch.binary), *PROTOCOL.harness_args(), f"--threads={threads}", f"--cpus={cpus}"],
                       cwd=batch.folder, capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        raise SystemExit(f"error: the harness exited with {p.returncode}: {p.stderr.strip()[-300:]}")
    out = parse_harness_output(p.stdout)
    res = {}
    for name, line in out.lines.items():
        if line.status != "ok":
            raise SystemExit(f"error: {name}: {line.status}: {line.error}")
        xs = sorted(line.samples_us)
        res[name] = xs[len(xs) // 2]
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="runs at each thread count, alternating; best median kept")
    ap.add_argument("--min-us", type=float, default=50.0, help="summarise kernels at least this slow on 1 thread")
    ap.add_argument("--quick", action="store_true", help="every other layer of the larger half")
    ap.add_argument("--match", default="", help="only layers whose key contains one of these comma-separated "
                    "substrings (after --quick), e.g. 14x14x96-o576,90x160x12-o12")
    ap.add_argument("--csv", default=str(Path(__file__).resolve().parent / "results" / "threads_scaling.csv"))
    a = ap.parse_args()
    if a.threads < 2:
        raise SystemExit("error: --threads must be at least 2")
    if len(os.sched_getaffinity(0)) < a.threads:
        raise SystemExit(f"error: --threads {a.threads} needs {a.threads} CPUs; this process may use "
                         f"{len(os.sched_getaffinity(0))}")
    tc = host_toolchain()
    if tc.available():
        raise SystemExit(f"error: {tc.available()}")
    vl, regs = vector_shape(tc)
    layers = shapes(a.quick, a.match)
    if not layers:
        raise SystemExit(f"error: no layer matches --match {a.match!r}")
    ks = kernels_for(layers, vl, regs)
    print(f"building {len(ks)} kernels...", file=sys.stderr)
    batch = build_batch(ks, tc)
    best: dict[int, dict[str, float]] = {1: {}, a.threads: {}}
    for _ in range(a.rounds):
        for t in (1, a.threads):
            for name, us in run(batch, t).items():
                best[t][name] = min(us, best[t].get(name, math.inf))
    rows = []
    for k in ks:
        t1, tn = best[1][k.name], best[a.threads][k.name]
        sp = k.spec.sparsity
        rows.append({"layer": k.spec.key.split("-sp")[0], "op": k.spec.op, "scheme": sp.scheme,
                     "ratio": sp.ratio if sp.scheme != "dense" else 0.0, "us_1": round(t1, 2),
                     f"us_{a.threads}": round(tn, 2), "speedup": round(t1 / tn, 3)})
    print(f"{'layer':<44} {'scheme':<13} {'ratio':>5} {'1 thread us':>11} {f'{a.threads} threads us':>12} {'x':>6}")
    for r in rows:
        print(f"{r['layer'][:44]:<44} {r['scheme']:<13} {r['ratio']:>5.2f} {r['us_1']:>11.1f} "
              f"{r[f'us_{a.threads}']:>12.1f} {r['speedup']:>6.2f}")
    big = [r["speedup"] for r in rows if r["us_1"] >= a.min_us]
    if big:
        gm = math.exp(sum(math.log(x) for x in big) / len(big))
        print(f"\n{a.threads} threads vs 1 on the {len(big)} kernels of >= {a.min_us:g} us: geometric mean "
              f"{gm:.2f}x, min {min(big):.2f}x, max {max(big):.2f}x")
    Path(a.csv).parent.mkdir(parents=True, exist_ok=True)
    with open(a.csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {a.csv}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
