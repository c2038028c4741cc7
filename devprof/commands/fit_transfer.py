"""`devprof fit-predictor --transfer-from SRC... DATA`: a new device's bundle from a few
measurements on it plus other devices' bundles (devprof.transfer)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

from ._console import err
from ._console import out as stdout


def _fmt(v, pct: bool = True) -> str:
    return "-" if v is None else (f"{v:.1%}" if pct else f"{v:.3f}")


def fit_transfer_command(sources: List[Path], data: List[Path], out: Path, samples: Optional[int], seed: int,
                         statistic: str, json_out: bool, force: bool = False) -> None:
    from rich.table import Table

    from ..errors import UsageError
    from ..transfer import load_sources, transfer_kernels, transfer_models

    from predictors.lut import STATISTICS

    if statistic not in STATISTICS:
        raise UsageError(f"unknown --statistic {statistic!r} (known: {', '.join(STATISTICS)})")
    if not data:
        raise UsageError("--transfer-from: give the target device's data (whole-model timings or a kernel dataset)")
    log = (lambda s: None) if json_out else (lambda s: err.print(f"  {s}", highlight=False))
    kind, srcs, specs = load_sources(sources)
    if kind == "table":
        if len(data) != 1:
            raise UsageError("whole-model transfer takes one target timings file or dataset")
        b, _, rep = transfer_models(srcs, specs, data[0], samples, seed, log=log)
    else:
        b, _, rep = transfer_kernels(srcs, data, samples, seed, statistic, log=log)
    from .fit_predictor import refuse_existing

    refuse_existing([b], out, force)
    dest = b.write(out)
    rep["bundle"] = str(dest)
    if json_out:
        print(json.dumps(rep, indent=2, default=float))
        return
    t = Table(title=f"transfer ({rep['mode']}): {rep['device']} / {rep['runtime']} from {len(srcs)} source(s)")
    for c in ("figures on", "n", "±5%", "±10%", "MAPE", "Spearman"):
        t.add_column(c, justify="right")
    rows = [(f"{rep.get('cv') or 'leave-one-out'} (target samples)", rep["loo"]), ("held out (target data not used)", rep["heldout"]),
            (f"best single source rescaled, LOO: {rep['best_single_source']['source']}", rep["best_single_source"])]
    for label, h in rows:
        if h:
            t.add_row(label, str(h.get("n", "")), _fmt(h.get("within_5")), _fmt(h.get("within_10")),
                      _fmt(h.get("mape")), _fmt(h.get("spearman"), False))
    stdout.print(t)
    w = ", ".join(f"{k} {v:.2f}" for k, v in sorted(rep["sources"].items(), key=lambda kv: -kv[1]) if v >= 0.005)
    err.print(f"source weights: {w or '-'}")
    if rep.get("choice"):
        err.print(f"chosen by {rep['cv'] or 'default'}: {rep['choice']}")
    if rep.get("prior_shrunk_away"):
        err.print("the target samples contradict every source: the prior was shrunk away")
    err.print(f"bundle written: {dest}")
