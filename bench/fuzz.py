"""Fuzz every parser devprof owns with hypothesis: no input may raise anything but a DevprofError.

    .venv/bin/python bench/fuzz.py                      # >= 10,000 inputs per parser (minutes)
    .venv/bin/python bench/fuzz.py -n 500 -p harness    # fewer inputs, one parser

The targets (parsers, input strategies, what counts as a failure) live in tests/support/fuzzkit.py,
shared with the bounded test run (tests/test_fuzz_parsers.py).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT / "tests", ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from support.fuzzkit import TARGETS, fuzz  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=10_000, help="inputs per parser (default 10000)")
    ap.add_argument("-p", "--parser", action="append", choices=sorted(TARGETS), help="only these parsers")
    args = ap.parse_args()
    names = args.parser or list(TARGETS)
    total_fail = 0
    print(f"{'parser':16s} {'inputs':>8s} {'accepted':>9s} {'refused':>8s} {'failures':>9s} {'seconds':>8s}")
    for name in names:
        t = TARGETS[name]
        t0 = time.perf_counter()
        fuzz(t, args.n)
        fails = len(t.failures)
        total_fail += fails
        print(f"{name:16s} {t.calls:8d} {t.accepted:9d} {t.refused:8d} {fails:9d} {time.perf_counter() - t0:8.1f}",
              flush=True)
        for f in t.failures[:5]:
            print(f"    FAIL {f}")
    print("no failures" if not total_fail else f"{total_fail} failing inputs")
    return 1 if total_fail else 0


if __name__ == "__main__":
    sys.exit(main())
