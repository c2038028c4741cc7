"""`devprof profile --adaptive`: measure where the predictor is least certain, refit, repeat."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

from ..errors import UsageError
from ._console import err


def profile_adaptive_command(device_name: str, suite: str, runtimes: Optional[List[str]], threads: int, cores: str,
                         out_dir: Path, quick: bool, json_out: bool, target_acc: float, budget: int,
                         adb_server: Optional[str] = None, oversubscribe: bool = False) -> None:
    """`devprof profile --adaptive`: the suite's kernels are the candidates; measure batch by batch where
    the refitted forest is least certain, print the prospective-accuracy curve, stop at the target."""
    from ..devices import resolve_device
    from ..measure import Protocol
    from ..profile import default_runtimes
    from ..suites import load_suite
    from ..adaptive import profile_adaptive

    if not 0 < target_acc <= 1:
        raise UsageError("--target-acc must be in (0, 1]")
    if budget < 1:
        raise UsageError("--budget must be >= 1")
    s = load_suite(suite)
    dev = resolve_device(device_name, adb_server=adb_server)
    names = list(runtimes) if runtimes else default_runtimes(dev, s.runtimes)
    if len(names) != 1:
        raise UsageError(f"--adaptive fits one predictor: choose one runtime with -r (suite default: {', '.join(names)})")
    specs = [x for x in s.specs if x.op not in ("model", "other")]
    if not specs:
        raise UsageError(f"suite {s.name} has no kernels to sample from")
    proto = (Protocol.quick() if quick else Protocol()).with_cpus(dev.resolve_cores(cores))
    dev.check_threads(threads, proto.cpus, oversubscribe)
    rows = []

    def on_round(r) -> None:
        rows.append({"measured": r.measured, "batch": r.batch, "prospective_within_10": r.prospective_within_10,
                     "mean_uncertainty": r.mean_uncertainty})
        if not json_out:
            acc = "-" if r.prospective_within_10 is None else f"{r.prospective_within_10:.0%}"
            unc = "-" if r.mean_uncertainty is None else f"±{r.mean_uncertainty:.0%}"
            err.print(f"  {r.measured:5d} measured   next batch predicted within ±10%: {acc:>5}   "
                      f"forest spread {unc}", highlight=False)

    if not json_out:
        err.print(f"adaptive sampling over {len(specs)} candidate kernels of suite {s.name} on {dev.name} with "
                  f"{names[0]}: budget {budget}, target {target_acc:.0%} within ±10%")
    res, _ = profile_adaptive(dev, specs, names[0], out_dir, budget=budget, target_acc=target_acc, threads=threads,
                              protocol=proto, suite=s.name, on_round=on_round)
    summary = {"dataset": str(out_dir), "runtime": names[0], "candidates": len(specs), "measured": len(res.order),
               "stopped": res.stopped, "rounds": rows}
    if json_out:
        print(json.dumps(summary, indent=2))
    else:
        why = {"target": f"target {target_acc:.0%} reached", "budget": "budget spent", "pool": "every candidate measured"}
        err.print(f"{len(res.order)} of {len(specs)} candidates measured ({why.get(res.stopped, res.stopped)}); "
                  f"fit and publish with: devprof fit-predictor {out_dir}")
