"""`devprof profile --adaptive --transfer-from BUNDLE...`: on a new device, measure first the
suite's kernels the source devices' bundles disagree on most (spread over the kernels'
features), then fit with `devprof fit-predictor --transfer-from`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

from ..errors import UsageError
from ._console import err


def profile_transfer_command(sources: List[Path], device_name: str, suite: str, runtimes: Optional[List[str]],
                             threads: int, cores: str, out_dir: Path, quick: bool, json_out: bool, budget: int,
                             adb_server: Optional[str] = None, oversubscribe: bool = False) -> None:
    from ..devices import resolve_device
    from ..measure import Protocol
    from ..profile import default_runtimes, profile
    from ..suites import load_suite
    from ..transfer import choose_kernels, load_sources

    if budget < 1:
        raise UsageError(f"--budget must be at least 1, got {budget}")
    kind, srcs, _ = load_sources(sources)
    if kind != "kernel":
        raise UsageError("profile --adaptive --transfer-from chooses kernels: give kernel bundles (whole-model "
                         "sources choose networks with bench/transfer.py --design)")
    s = load_suite(suite)
    specs = [x for x in s.specs if x.op not in ("model", "other")]
    if not specs:
        raise UsageError(f"suite {s.name} has no kernels to choose from")
    dev = resolve_device(device_name, adb_server=adb_server)
    dev.check_threads(threads, dev.resolve_cores(cores), oversubscribe)
    names = list(runtimes) if runtimes else default_runtimes(dev, s.runtimes)
    if len(names) != 1:
        raise UsageError(f"--adaptive fits one predictor: choose one runtime with -r (suite default: {', '.join(names)})")
    picks = choose_kernels(srcs, specs, budget)
    if not json_out:
        err.print(f"measuring the {len(picks)} of {len(specs)} kernels of suite {s.name} the {len(srcs)} source "
                  f"bundle(s) disagree on most, on {dev.name} with {names[0]}", highlight=False)
    proto = (Protocol.quick() if quick else Protocol()).with_cpus(dev.resolve_cores(cores))
    summ = profile(dev, picks, names, out_dir, threads=threads, resume=True, protocol=proto, suite=s.name)
    src_args = " ".join(f"--transfer-from {p}" for p in sources)
    if json_out:
        print(json.dumps({"dataset": str(out_dir), "runtime": names[0], "candidates": len(specs),
                          "chosen": [x.key for x in picks], "sources": [x.name for x in srcs],
                          "interrupted": bool(getattr(summ, "interrupted", False))}, indent=2))
    else:
        err.print(f"fit the new device with: devprof fit-predictor {src_args} {out_dir}", highlight=False)
