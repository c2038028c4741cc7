"""`devprof fit-predictor --from-models FILE`: learn a per-layer table from whole-model timings."""
from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from ._console import err
from ._console import out as stdout


def fit_from_models_command(path: Path, out: Path, seed: int = 0, json_out: bool = False,
                        device: str | None = None, force: bool = False) -> None:
    """Fit and write one bundle per device and runtime of PATH's whole-model timings; print the held-out figures."""
    from ..errors import UsageError
    from ..from_models import fit_and_score, make_bundle, read_timings

    report = []
    for ts in read_timings(path, device):
        if len(ts.models) < 5:
            raise UsageError(f"{path}: {len(ts.models)} models for {ts.device.get('name')}; need at least 5")
        rep = fit_and_score(ts.models, seed=seed)
        b = make_bundle(ts.models, ts.device, ts.runtime, rep, seed, ts.source,
                        log=(lambda s: None) if json_out else (lambda s: err.print(f"  {s}", highlight=False)))
        from .fit_predictor import refuse_existing

        refuse_existing([b], out, force)
        dest = b.write(out)
        report.append({"bundle": str(dest), "device": ts.device.get("name"), "runtime": ts.runtime.get("key"),
                       "models": len(ts.models), "layers": len(rep.model.keys), "n_train": rep.n_train,
                       "n_test": rep.n_test, "heldout": rep.heldout, "overhead_us": rep.model.overhead_us,
                       "pairs": len(rep.model.pairs), "alpha": rep.model.alpha})
        if not json_out:
            t = Table(title=f"learned from whole models: {ts.device.get('name')} / {ts.runtime.get('key')}")
            for c in ("models (train/held out)", "layers learned", "±5%", "±10%", "MAPE", "Spearman",
                      "±10% additive only"):
                t.add_column(c, justify="right")
            h = rep.heldout
            f = lambda v, pct=True: "-" if v is None else (f"{v:.1%}" if pct else f"{v:.3f}")  # noqa: E731
            ci = h.get("within_10_ci")
            w10 = f(h.get("within_10")) + (f" ({ci[0]:.0%}–{ci[1]:.0%})" if ci else "")
            t.add_row(f"{rep.n_train}/{rep.n_test}", str(len(rep.model.keys)), f(h.get("within_5")),
                      w10, f(h.get("mape")), f(h.get("spearman"), False),
                      f((h.get("additive_only") or {}).get("within_10")))
            t.caption = (f"held out: {rep.n_test} models (±10%: 95% interval in brackets); pair correction: "
                         f"{len(rep.model.pairs)} pairs" + ("" if rep.model.pairs else " (it did not earn its keep)"))
            stdout.print(t)
            if not rep.n_test:
                err.print(f"warning: no model was held out ({len(ts.models)} models): there is no held-out figure; "
                          "measure more models", highlight=False)
            err.print(f"bundle written: {dest}")
    if json_out:
        print(json.dumps(report, indent=2, default=float))
