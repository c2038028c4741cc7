"""`devprof fit-predictor`, `devprof publish`, `devprof predict`: datasets -> bundles -> answers.

The split: `fit-predictor` fits and scores predictors from datasets and writes complete bundles
(lookup table + regressors + metadata with held-out metrics) — by default straight into
datasets_latency/<device>/<runtime>/. `publish` verifies bundles made elsewhere (a CI artifact,
another machine, an `--out` staging folder) file by file and installs them atomically into the
published tree. `predict` answers queries from a bundle for shell users and other languages.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import UsageError


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
        t.add_row(f"[bold]{op}[/]", str(m["samples"]), str(m["n"]), _fmt(m["within_5"]), _fmt(m["within_10"]),
                  _fmt(m["mape"]), _fmt(m["spearman"], False), ", ".join(ests))
        for name, g in km["per_group"].items():
            if name.split("/")[0] == op and len([n for n in km["per_group"] if n.split("/")[0] == op]) > 1:
                t.add_row(f"  {name}", str(g["samples"]), str(g["n"]), _fmt(g["within_5"]), _fmt(g["within_10"]),
                          _fmt(g["mape"]), _fmt(g["spearman"], False), g["estimator"] or "-")
    o = km["overall"]
    t.add_row("[bold]all kernels[/]", str(b.dataset["lut_rows"]), str(o["n"]), _fmt(o["within_5"]),
              _fmt(o["within_10"]), _fmt(o["mape"]), _fmt(o["spearman"], False), "")
    st = km.get("overall_steady")
    if st and st["n"]:
        t.add_row("  held-out kernels not flagged noisy", "", str(st["n"]), _fmt(st["within_5"]),
                  _fmt(st["within_10"]), _fmt(st["mape"]), _fmt(st["spearman"], False), "")
    mm = b.metrics["model"]
    if mm.get("overall"):
        o = mm["overall"]
        label = "[bold]whole models[/]" + ("" if mm.get("held_out") else " (in-sample)")
        t.add_row(label, str(mm["n_train_models"] + mm["n_test_models"]), str(o["n"]), _fmt(o["within_5"]),
                  _fmt(o["within_10"]), _fmt(o["mape"]), _fmt(o["spearman"], False), "layers + overhead")
    return t


def register(app: typer.Typer) -> None:
    @app.command("fit-predictor")
    def fit_predictor(
        datasets: Optional[List[Path]] = typer.Argument(None, help="Dataset folder(s) written by 'devprof profile'."),
        out: Path = typer.Option(Path("datasets_latency"), "--out", "-o",
                                 help="Root folder: one bundle per device and runtime is written to "
                                      "OUT/<device>/<runtime>/."),
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
    ) -> None:
        """Fit latency predictors (per device, runtime, op and sparsity scheme), score them on held-out
        kernels and model variants, and write bundles: lookup table + predictor + metadata with the
        accuracy report.

        Several campaigns of one suite (profiled at different times into different folders, or
        'devprof profile --retry-noisy' folders) are merged: each kernel's table entry is the median
        of its steady records' medians (of their fastest rounds with --statistic min).

        Examples:\n
          devprof fit-predictor data/train data/train-r2 data/train-retry data/models\n
          devprof fit-predictor --statistic min data/train data/train-r2   # a shared, noisy host
        """
        if from_models is not None:  # devprof.from_models (issue 9)
            from ..from_models import cli_fit_from_models

            return cli_fit_from_models(from_models, out, seed, json_out)
        if not datasets:
            raise UsageError("give dataset folder(s), or --from-models FILE")
        from predictors.lut import STATISTICS

        if statistic not in STATISTICS:
            raise UsageError(f"unknown --statistic {statistic!r} (known: {', '.join(STATISTICS)})")
        from rich.console import Console

        from predictors.fit import DeviceClash, fit_bundles, read_datasets

        err = Console(stderr=True)
        df = read_datasets(datasets)
        if runtime and len(df):
            df = df[df["runtime"].isin(runtime)]
        if not len(df):
            raise UsageError("no records in " + ", ".join(map(str, datasets)) + (" for those runtimes" if runtime else ""))
        cands = None
        if estimator:
            from predictors.estimators import CANDIDATES

            bad = [e for e in estimator if e not in CANDIDATES]
            if bad:
                raise UsageError(f"unknown estimator {bad[0]!r} (known: {', '.join(CANDIDATES)})")
            cands = {e: CANDIDATES[e] for e in estimator}
        log = (lambda s: None) if json_out else (lambda s: err.print(f"  {s}", highlight=False))
        try:
            bundles = fit_bundles(df, [str(d) for d in datasets], candidates=cands, seed=seed, log=log,
                                  statistic=statistic, pool_devices=pool_devices)
        except DeviceClash as e:
            raise UsageError(str(e)) from None
        if not bundles:
            raise UsageError("no kernel records to fit (model records alone cannot make a lookup table)")
        report = []
        for b in bundles:
            path = b.write(out)
            report.append({"bundle": str(path), "device": b.device.get("name"), "runtime": b.runtime["key"],
                           "metrics": b.metrics, "predictor": b.selection, "dataset": b.dataset})
            if not json_out:
                title = f"held-out accuracy ({b.metrics['statistic']} latency): {b.device.get('name')} / {b.runtime['key']}"
                Console(width=None if sys.stdout.isatty() else 160).print(_report_table(b, title))
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

    @app.command("publish")
    def publish(
        bundles: List[Path] = typer.Argument(..., help="Bundle folder(s) (containing metadata.json)."),
        to: Path = typer.Option(Path("datasets_latency"), "--to", help="Published root: bundles go to "
                                                                         "TO/<device>/<runtime>/."),
        check: bool = typer.Option(False, "--check", help="Only verify (hashes, structure); install nothing."),
        force: bool = typer.Option(False, "--force", help="Replace a published bundle of another device."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Verify bundles file by file (sha256, sizes, structure, regressors) and install them atomically
        into the published tree (default datasets_latency/)."""
        from predictors.bundle import install, verify

        rows = []
        for b in bundles:
            meta = verify(b)
            dest = None if check else str(install(b, to, force=force))
            rows.append({"bundle": str(b), "verified": True, "installed": dest,
                         "device": meta.get("device", {}).get("name"), "runtime": meta.get("runtime", {}).get("key"),
                         "format_version": meta.get("format_version"),
                         "kernel_within_10": (meta.get("metrics", {}).get("kernel", {}).get("overall") or {}).get("within_10")})
        if json_out:
            print(json.dumps(rows, indent=2))
        else:
            for r in rows:
                print(f"{r['bundle']}: verified ({r['device']} / {r['runtime']})"
                      + (f" -> {r['installed']}" if r["installed"] else ""))

    @app.command("predict")
    def predict(
        bundle: Path = typer.Option(..., "--bundle", "-b", help="Bundle folder (datasets_latency/<device>/<runtime>)."),
        model: Optional[Path] = typer.Option(None, "--model", "-m", help="Whole model (.onnx / .tflite): "
                                                                         "sum of layers + runtime overhead."),
        spec: Optional[str] = typer.Option(None, "--spec", help="Kernel spec(s) as JSON (an object or a list), "
                                                                "or a path to a .json file, or '-' for stdin."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Predict latency from a bundle: a model file layer by layer, or kernel specs given as JSON."""
        import predictors
        from devprof.records import KernelSpec

        if (model is None) == (spec is None):
            raise UsageError("give exactly one of --model FILE or --spec JSON")
        p = predictors.load(bundle)
        if model is not None:
            r = p.predict_model(model)
            if json_out:
                print(json.dumps({"bundle": str(bundle), "statistic": p.statistic, "model": str(model), **r.to_dict()},
                                 indent=2))
                return
            from rich.console import Console
            from rich.table import Table

            t = Table(title=f"{model}: {r.total_us / 1000:.3f} ms predicted ({len(r.layers_us)} layers, "
                            f"{p.statistic} latency)")
            for c, j in (("#", "right"), ("layer", "left"), ("µs", "right"), ("share", "right"), ("source", "left")):
                t.add_column(c, justify=j)
            for i, (s, v, src) in enumerate(zip(r.specs, r.layers_us, r.source)):
                t.add_row(str(i), s.key, f"{v:,.1f}", f"{v / r.total_us:.1%}", str(src))
            t.add_row("", "runtime overhead (fitted)", f"{r.overhead_us:,.1f}", f"{r.overhead_us / r.total_us:.1%}", "")
            Console(width=None if sys.stdout.isatty() else 160).print(t)
            if r.unknown:
                print(f"{len(r.unknown)} layer(s) devprof could not map were predicted by the fallback regressor")
            return
        text = sys.stdin.read() if spec == "-" else spec
        if spec != "-" and spec is not None and not spec.lstrip().startswith(("{", "[")):
            try:
                text = Path(spec).read_text()
            except OSError as e:
                raise UsageError(f"--spec: cannot read {spec}: {e.strerror or e}") from None
        try:
            obj = json.loads(text or "")
        except ValueError as e:
            raise UsageError(f"--spec is not valid JSON ({e})") from None
        items = obj if isinstance(obj, list) else [obj]
        try:
            specs = [KernelSpec.from_dict(d) for d in items]
        except (TypeError, ValueError, AttributeError) as e:
            raise UsageError(f"--spec: bad kernel spec ({e})") from None
        r = p.predict(specs)
        rows = [{"key": s.key, "latency_us": float(v), "source": str(src)}
                for s, v, src in zip(specs, r.latency_us, r.source)]
        if json_out:
            print(json.dumps({"bundle": str(bundle), "statistic": p.statistic, "predictions": rows}, indent=2))
        else:
            for row in rows:
                print(f"{row['latency_us']:12,.1f} µs  {row['source']:8}  {row['key']}")


def cli_profile_adaptive(device_name: str, suite: str, runtimes: Optional[List[str]], threads: int, cores: str,
                         out_dir: Path, quick: bool, json_out: bool, target_acc: float, budget: int,
                         adb_server: Optional[str] = None) -> None:
    """`devprof profile --adaptive`: the suite's kernels are the candidates; measure batch by batch where
    the refitted forest is least certain, print the prospective-accuracy curve, stop at the target."""
    from rich.console import Console

    from ..devices import resolve_device
    from ..measure import Protocol
    from ..profile import default_runtimes
    from ..suites import load_suite
    from predictors.adaptive import profile_adaptive

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
    err = Console(stderr=True)
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
