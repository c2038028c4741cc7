"""How long `devprof report` takes on the demo dataset (target: <= 30 s here).

    .venv/bin/python bench/report_speed.py [DATASET ...] [--repeat 3] [--bundle B]

Without a dataset it uses ./devprof-data (what `make demo` writes) or, when that is missing,
profiles the `smoke` suite on `local` into a temporary folder first, as the demo does. It then
times the command a user runs (a fresh `devprof report` process, interpreter start and imports
included) `--repeat` times, and breaks one in-process run down into imports, loading, each
section and rendering — so a slow section is easy to spot.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 30.0


def _devprof(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devprof", *args], capture_output=True, text=True, cwd=ROOT)


def breakdown(datasets: list[str], bundles: list[str]) -> list[tuple[str, float]]:
    out = []
    t = time.perf_counter()
    import matplotlib  # noqa: F401  (the main import cost)
    import pandas  # noqa: F401

    from devprof.report import render
    from devprof.report.data import load
    from devprof.report.model import Report
    from devprof.report.sections import ORDER

    out.append(("imports (pandas, matplotlib, jinja2)", time.perf_counter() - t))
    t = time.perf_counter()
    data = load(datasets, bundles)
    out.append((f"load {len(data.records)} records", time.perf_counter() - t))
    sections = []
    for mod in ORDER:
        t = time.perf_counter()
        sections.append(mod.build(data))
        out.append((f"section {mod.__name__.rsplit('.', 1)[-1]}", time.perf_counter() - t))
    t = time.perf_counter()
    rep = Report("bench", "", "", [], sections)
    rep.number()
    html = render.html(rep)
    out.append((f"render HTML ({len(html) / 1e6:.2f} MB)", time.perf_counter() - t))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datasets", nargs="*")
    ap.add_argument("--bundle", action="append", default=[])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = None
    datasets = args.datasets
    if not datasets:
        if (ROOT / "devprof-data" / "dataset.json").exists():
            datasets = [str(ROOT / "devprof-data")]
        else:
            tmp = tempfile.TemporaryDirectory(prefix="devprof-bench-report-")
            ds = str(Path(tmp.name) / "demo")
            print("profiling the smoke suite on local (as `make demo` does)...", flush=True)
            p = _devprof("profile", "--device", "local", "--suite", "smoke", "--out", ds)
            if p.returncode:
                print(p.stderr, file=sys.stderr)
                return 1
            datasets = [ds]
    out = Path(tempfile.mkdtemp(prefix="devprof-report-")) / "report.html"
    walls = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        p = _devprof("report", *datasets, *[x for b in args.bundle for x in ("--bundle", b)], "-o", str(out))
        walls.append(time.perf_counter() - t)
        if p.returncode:
            print(p.stderr, file=sys.stderr)
            return 1
    print(f"datasets: {', '.join(datasets)}")
    print(f"`devprof report` wall time over {args.repeat} runs: min {min(walls):.2f} s, "
          f"median {statistics.median(walls):.2f} s (target <= {TARGET_S:.0f} s: "
          f"{'met' if statistics.median(walls) <= TARGET_S else 'NOT met'}); page {out.stat().st_size / 1e6:.2f} MB")
    print("one in-process run, by stage:")
    for name, secs in breakdown(datasets, args.bundle):
        print(f"  {name:<42} {secs:6.2f} s")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
