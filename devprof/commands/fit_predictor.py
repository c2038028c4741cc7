"""`devprof fit-predictor DATASET...`: fit and score predictors from datasets and write complete
bundles (lookup table + regressors + metadata with held-out metrics) into ./bundles/<device>/<runtime>/
(never over an existing bundle without --force: the published tree is `publish`'s to change).
`publish` installs bundles into datasets_latency/; `predict` answers queries from one."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import UsageError
from ._console import err, styled
from ._console import out as stdout


DEFAULT_OUT = "bundles"


def refuse_existing(bundles, out: Path, force: bool) -> None:
    """One line, before anything is written, when a bundle would replace one already under `out`
    (a published table overwritten by a small fit is a silent loss)."""
    if force:
        return
    for b in bundles:
        dest = Path(out) / b.location[0] / b.location[1]
        if dest.exists() and any(dest.iterdir()):
            raise UsageError(f"{dest} already holds a bundle: pass --force to replace it, or choose another --out")


def _fmt(v, pct: bool = True) -> str:
    if v is None:
        return "-"
    return f"{v:.1%}" if pct else f"{v:.3f}"


def _report_table(b, title: str):
    from rich.table import Table

    km = b.metrics["kernel"]
    t = Table(title=title)
    for c, j in (("op / group", "left"), ("samples", "right"), ("held out", "right"), ("±5%", "right"),
                 ("±10%", "right"), ("MAPE", "right"), ("Spearman", "right"), ("estimator", "left")):
        t.add_column(c, justify=j)
    for op, m in km["per_op"].items():
        ests = sorted({g["estimator"] or "-" for name, g in km["per_group"].items() if name.split("/")[0] == op})
        t.add_row(styled((op, "bold")), str(m["samples"]), str(m["n"]), _fmt(m["within_5"]), _fmt(m["within_10"]),
                  _fmt(m["mape"]), _fmt(m["spearman"], False), ", ".join(ests))
        for name, g in km["per_group"].items():
            if name.split("/")[0] == op and len([n for n in km["per_group"] if n.split("/")[0] == op]) > 1:
                t.add_row(f"  {name}", str(g["samples"]), str(g["n"]), _fmt(g["within_5"]), _fmt(g["within_10"]),
                          _fmt(g["mape"]), _fmt(g["spearman"], False), g["estimator"] or "-")
    per_dtype = km.get("per_dtype") or {}
    if len(per_dtype) > 1:  # int8 and fp32 kernels of one bundle, side by side
        for d, m in per_dtype.items():
            t.add_row(styled((f"{d} kernels", "bold")), str(m["samples"]), str(m["n"]), _fmt(m["within_5"]),
                      _fmt(m["within_10"]), _fmt(m["mape"]), _fmt(m["spearman"], False), "")
    o = km["overall"]
    t.add_row(styled(("all kernels", "bold")), str(b.dataset["lut_rows"]), str(o["n"]), _fmt(o["within_5"]),
              _fmt(o["within_10"]), _fmt(o["mape"]), _fmt(o["spearman"], False), "")
    st = km.get("overall_steady")
    if st and st["n"]:
        t.add_row("  held-out kernels not flagged noisy", "", str(st["n"]), _fmt(st["within_5"]),
                  _fmt(st["within_10"]), _fmt(st["mape"]), _fmt(st["spearman"], False), "")
    mm = b.metrics["model"]
    if mm.get("overall"):
        o = mm["overall"]
        label = styled(("whole models", "bold"), "" if mm.get("held_out") else " (in-sample)")
        t.add_row(label, str(mm["n_train_models"] + mm["n_test_models"]), str(o["n"]), _fmt(o["within_5"]),
                  _fmt(o["within_10"]), _fmt(o["mape"]), _fmt(o["spearman"], False), "layers + overhead")
    return t


def fit_predictor(
    datasets: Optional[List[Path]] = typer.Argument(None, help="Dataset folder(s) written by 'devprof profile'."),
    out: Path = typer.Option(Path(DEFAULT_OUT), "--out", "-o",
                             help="Root folder: one bundle per device and runtime is written to "
                                  "OUT/<device>/<runtime>/. An existing bundle there is refused without "
                                  "--force; 'devprof publish' installs bundles into datasets_latency/."),
    force: bool = typer.Option(False, "--force", help="Replace bundles that already exist under OUT."),
    runtime: Optional[List[str]] = typer.Option(None, "--runtime", "-r", help="Only these runtimes (repeatable)."),
    estimator: Optional[List[str]] = typer.Option(
        None, "--estimator", help="Candidate estimators for cross-validation (repeatable): flops_linear, "
                                  "random_forest, gradient_boosting, blend, gradient_boosting_bagged, "
                                  "gradient_boosting_switch, gradient_boosting_large, "
                                  "gradient_boosting_deep, gradient_boosting_kernel (the last three only "
                                  "on groups of >= 400 training rows; the kernel-cost one only where "
                                  "sparse schemes are: devprof-c). Default: all (docs/predictors.md)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the held-out split and the cross-validation folds "
                                               "(the estimators' own seeds are fixed: the same data and seed "
                                               "give the same regressors)."),
    statistic: str = typer.Option(
        "median", "--statistic", help="What the table serves and the regressors predict for a kernel: "
                                      "'median' of its timed rounds, or 'min', its fastest round. On a phone "
                                      "pinned and cooled the two agree; on a machine shared with other "
                                      "tenants only 'min' repeats from one campaign to the next (see "
                                      "docs/predictors.md)."),
    json_out: bool = typer.Option(False, "--json", help="Print the accuracy report as JSON."),
    pool_devices: bool = typer.Option(
        False, "--pool-devices", help="Fit the records of every fingerprint of one device name as one device "
                                      "(an OS or kernel update: first check with a repeat campaign of measured "
                                      "kernels that it does not move timings). Without it, two fingerprints "
                                      "of one device are refused: they would write one bundle folder."),
    from_models: Optional[Path] = typer.Option(
        None, "--from-models", help="Learn a per-layer table from whole-model timings instead: a devprof "
                                    "model-timings JSONL, an nn-Meter JSONL, or a dataset of --model runs "
                                    "(see docs/formats.md)."),
    transfer_from: Optional[List[Path]] = typer.Option(
        None, "--transfer-from", metavar="SOURCE",
        help="Fit a new device from few measurements (DATA) plus other devices' bundles (repeatable): "
             "from-models bundles or whole-model timings with target timings, or kernel bundles with a "
             "target kernel dataset. See 'A new phone in an afternoon' in docs/predictors.md."),
    drop_emulated: bool = typer.Option(
        False, "--drop-emulated", help="Leave out the records of emulated devices (an Android emulator, or "
                                       "the emulated arm64 phone running under qemu). Without it, datasets "
                                       "that mix emulated and real records are refused."),
    samples: Optional[int] = typer.Option(
        None, "--samples", metavar="K", help="With --transfer-from: use K of the target's measurements (a seeded "
                                             "choice) and score the transfer on the rest."),
) -> None:
    """Fit latency predictors (per device, runtime, op and sparsity scheme), score them on held-out
    kernels and model variants, and write bundles: lookup table + predictor + metadata with the
    accuracy report.

    Several campaigns of one suite (profiled at different times into different folders, or
    'devprof profile --retry-noisy' folders) are merged: each kernel's table entry is the median
    of its steady records' medians (of their fastest rounds with --statistic min).

    Examples (the second for a shared, noisy host):

      devprof fit-predictor data/train data/train-r2 data/train-retry data/models
      devprof fit-predictor --statistic min data/train data/train-r2
      devprof fit-predictor --transfer-from BUNDLE new-phone.jsonl
    """
    if transfer_from:  # a new device from few measurements plus source bundles (devprof.transfer)
        from .fit_transfer import fit_transfer_command

        return fit_transfer_command(transfer_from, datasets or [], out, samples, seed, statistic, json_out, force)
    if samples is not None:
        raise UsageError("--samples goes with --transfer-from")
    if from_models is not None:  # whole-model timings (devprof.from_models)
        from .fit_from_models import fit_from_models_command

        return fit_from_models_command(from_models, out, seed, json_out, force=force)
    if not datasets:
        raise UsageError("give dataset folder(s), or --from-models FILE")
    from predictors.lut import STATISTICS

    if statistic not in STATISTICS:
        raise UsageError(f"unknown --statistic {statistic!r} (known: {', '.join(STATISTICS)})")
    from devprof.store import read_datasets
    from predictors.fit import DeviceClash, emulated_mix, fit_bundles

    df = read_datasets(datasets)
    if runtime and len(df):
        df = df[df["runtime"].isin(runtime)]
    if len(df) and "emulated" in df:
        emulated = df["emulated"].fillna(False).astype(bool)
        if drop_emulated:
            df = df[~emulated]
        else:
            mix = emulated_mix(df)
            if mix:
                raise UsageError(mix)
            if emulated.all():
                err.print("warning: every record comes from an emulated device: the bundle predicts the emulator, "
                          "not a phone (it is written under a device folder named '... emulated')")
    if not len(df):
        raise UsageError("no records in " + ", ".join(map(str, datasets)) + (" for those runtimes" if runtime else "")
                         + (" from real devices" if drop_emulated else ""))
    cands = None
    if estimator:
        from predictors.estimators import CANDIDATES

        bad = [e for e in estimator if e not in CANDIDATES]
        if bad:
            raise UsageError(f"unknown estimator {bad[0]!r} (known: {', '.join(CANDIDATES)})")
        cands = {e: CANDIDATES[e] for e in estimator}
    log = (lambda s: None) if json_out else (lambda s: err.print(f"  {s}"))
    try:
        bundles = fit_bundles(df, [str(d) for d in datasets], candidates=cands, seed=seed, log=log,
                              statistic=statistic, pool_devices=pool_devices)
    except DeviceClash as e:
        raise UsageError(str(e)) from None
    if not bundles:
        raise UsageError("no kernel records to fit (model records alone cannot make a lookup table)")
    refuse_existing(bundles, out, force)
    report = []
    for b in bundles:
        path = b.write(out)
        report.append({"bundle": str(path), "device": b.device.get("name"), "runtime": b.runtime["key"],
                       "metrics": b.metrics, "predictor": b.selection, "dataset": b.dataset})
        if not json_out:
            title = f"held-out accuracy ({b.metrics['statistic']} latency): {b.device.get('name')} / {b.runtime['key']}"
            stdout.print(_report_table(b, title))
            noise = b.metrics["kernel"].get("noise") or {}
            if noise.get("median_rel_iqr") is not None:
                err.print(f"measurement spread: median IQR/median {noise['median_rel_iqr']:.1%}, "
                          f"{noise['noisy_share']:.0%} of kernels flagged noisy (accuracy cannot beat repeatability)")
            camp = noise.get("campaigns") or {}
            if camp.get("within_10") is not None:
                per = ", ".join(f"{o} {v['within_10']:.1%}" for o, v in camp["per_op"].items())
                err.print(f"repeat campaigns: one campaign within ±10% of the others for {camp['within_10']:.1%} "
                          f"of {camp['records']} records of {camp['kernels']} kernels measured more than once "
                          f"({per})")
            err.print(f"bundle written: {path}")
    if json_out:
        print(json.dumps(report, indent=2))


def register(app: typer.Typer) -> None:
    app.command("fit-predictor")(fit_predictor)
