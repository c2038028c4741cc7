"""The `devprof` command line (Typer + rich).

Every failure the user can act on is one line on stderr (``error: ...``) and a non-zero exit
code; tracebacks are shown only with DEVPROF_DEBUG=1. Commands beyond devices/profile/show live
in `devprof/commands/<name>.py` modules listed in `COMMAND_MODULES`.
"""
from __future__ import annotations

import importlib
import json
import math
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import DevprofError, UsageError

#: Modules adding subcommands; each exposes ``register(app)``.
COMMAND_MODULES: list[str] = ["devprof.commands.predict", "devprof.commands.report", "devprof.commands.build_harness",
                               "devprof.commands.formats", "devprof.commands.models"]

app = typer.Typer(
    name="devprof",
    help="Measure how fast deep-learning layers (dense and sparse) run on Android phones and on this "
         "machine, and turn the timings into datasets, latency predictors and lookup tables.\n\n"
         "Start with: devprof devices; devprof profile --suite smoke; devprof show devprof-data",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
# Piped output (CI logs, `| less`) gets wide tables instead of 80 columns of truncated keys.
_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", 160))
out = Console(width=_WIDTH)
err = Console(stderr=True, width=None if sys.stderr.isatty() else int(os.environ.get("COLUMNS", 160)))


def _version(value: bool) -> None:
    if value:
        print(f"devprof {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """devprof: latency measurement for on-device deep learning."""


# ---- devices -------------------------------------------------------------------------------
@app.command()
def devices(
    json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    adb_server: Optional[List[str]] = typer.Option(None, "--adb-server", metavar="HOST:PORT",
                                                   help="adb server to ask for phones (repeatable; default: "
                                                        "$ANDROID_ADB_SERVER_PORT or 5037)."),
) -> None:
    """List devices: the embedded [bold]local[/] host and attached phones of every adb server, grouped by
    model, with CPU, cores, frequency, governor and temperature."""
    from .farm import devices_by_model

    rows = []
    found, warnings = devices_by_model(adb_server or [])
    for w in warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)
    for d, server in found:
        info = d.info()
        st = d.state()
        rows.append({"name": d.name, "kind": info.kind, "serial": info.serial, "model": info.model, "soc": info.soc,
                     "abi": info.abi, "cpu": info.cpu, "cores": info.cores, "isa": list(info.isa), "os": info.os,
                     "kernel": info.kernel, "governor": st.governor, "freq_khz": st.freq_khz,
                     "temp_c": None if math.isnan(st.temp_c) else st.temp_c, "fingerprint": info.id,
                     "extra": dict(info.extra), "server": server})
    if json_out:
        print(json.dumps(rows, indent=2, default=str))
        return
    t = Table(title="devprof devices")
    for c in ("name", "kind", "model / CPU", "SoC", "ABI", "cores", "ISA / OS", "governor", "freq", "temp"):
        t.add_column(c)
    for i, r in enumerate(rows):
        if i and r["model"] != rows[i - 1]["model"]:
            t.add_section()  # one section per model: identical phones side by side
        x = r["extra"]
        phone = r["kind"] == "adb"  # phones: clusters under the model code, battery under the temperature
        t.add_row(r["name"] + (f"\n{r['serial']} @ {r['server']}" if r["server"] else ""), r["kind"],
                  r["model"] + (f"\n{r['cpu']}" if phone else ""),
                  r["soc"] or "-", r["abi"], str(r["cores"]),
                  (" ".join(r["isa"][:6]) + ("…" if len(r["isa"]) > 6 else "") + "\n" if r["isa"] else "") + r["os"],
                  r["governor"] or "-", f"{r['freq_khz'] / 1e6:.2f} GHz" if r["freq_khz"] > 0 else "-",
                  (f"{r['temp_c']:.0f} °C" if r["temp_c"] is not None else "-")
                  + (f"\nbattery {x.get('battery_level')}%, {x.get('battery_temp_c')} °C"
                     if phone and x.get("battery_level", -1) >= 0 else ""))
    out.print(t)


# ---- profile -------------------------------------------------------------------------------
@app.command()
def profile(
    device: Optional[List[str]] = typer.Option(None, "--device", "-d",
                                               help="Device: 'local', or a phone's serial, model code (SM-G981U), "
                                                    "marketing name (S20) or alias; repeat for a farm (default: "
                                                    "$DEVPROF_DEVICE or local)."),
    all_matching: bool = typer.Option(False, "--all-matching", help="Use every attached phone each --device name "
                                                                    "matches (e.g. all S20s): a farm."),
    suite: str = typer.Option("smoke", "--suite", "-s",
                              help="Built-in suite name (see 'devprof suites') or a path to a suite .toml."),
    runtime: Optional[List[str]] = typer.Option(None, "--runtime", "-r",
                                                help="Runtime(s) to use (repeat the option); default: the suite's."),
    threads: int = typer.Option(1, "--threads", "-t", min=1, help="Threads per kernel."),
    cores: str = typer.Option("", "--cores", help="Pin to CPUs: a list such as 0 or 0-3 (phones also: "
                                                  "little, mid, big, prime)."),
    out_dir: Path = typer.Option(Path("devprof-data"), "--out", "-o", help="Dataset folder (created if missing)."),
    resume: bool = typer.Option(False, "--resume", help="Measure only what the dataset does not hold yet."),
    quick: bool = typer.Option(False, "--quick", help="Shorter protocol (fewer, shorter samples): for checks, "
                                                      "not for data you publish."),
    cooldown: float = typer.Option(0.0, "--cooldown", metavar="SECONDS", help="Pause between batches."),
    max_temp: Optional[float] = typer.Option(None, "--max-temp", metavar="CELSIUS",
                                             help="Before each batch, wait until the device is this cool."),
    adb_server: Optional[List[str]] = typer.Option(None, "--adb-server", metavar="HOST:PORT",
                                                   help="adb server for phones (repeatable: a farm across hosts)."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary instead of tables."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Profile a whole model layer by layer: FILE.onnx, "
                                        "FILE.tflite, a built-in family (mobilenetv2, resnet18@160...) or "
                                        "package.module:factory (torch extra). See docs/models.md."),
    prune: Optional[str] = typer.Option(None, "--prune", metavar="SCHEME:RATIO",
                                        help="With --model: prune conv/FC layers (e.g. bcr:0.9) and time them "
                                             "with generated sparse kernels."),
    space: Optional[Path] = typer.Option(None, "--space", help="Profile every block of a search space (TOML/JSON) "
                                         "and write its table in the front end's format. See docs/formats.md."),
    adaptive: bool = typer.Option(False, "--adaptive", help="Measure only where the predictor is least certain "
                                  "(refit after each batch) until --target-acc or --budget. See docs/predictors.md."),
    target_acc: float = typer.Option(0.95, "--target-acc", help="With --adaptive: stop when this share of new "
                                     "kernels was predicted within ±10% before being measured."),
    budget: int = typer.Option(200, "--budget", help="With --adaptive: at most this many measurements."),
    retry_noisy: Optional[List[Path]] = typer.Option(
        None, "--retry-noisy", metavar="DATASET",
        help="Measure only the suite's kernels that have no steady record in DATASET (repeatable: earlier "
             "campaigns), into another --out folder; fit-predictor merges the campaigns and prefers steady "
             "records."),
    min_steady: int = typer.Option(1, "--min-steady", min=1, metavar="N",
                                   help="With --retry-noisy: measure the kernels that have fewer than N steady "
                                        "records across those campaigns (2 = a second campaign of every kernel "
                                        "measured only once: a single campaign's label carries its phase of "
                                        "the device's speed)."),
    max_spread: Optional[float] = typer.Option(
        None, "--max-spread", min=0.0, metavar="FRACTION",
        help="With --retry-noisy: also measure the kernels whose steady records' fastest rounds differ by "
             "more than this fraction (0.1: max/min > 1.1) — one more campaign settles which is typical "
             "(the table takes the median)."),
    max_records: Optional[int] = typer.Option(
        None, "--max-records", min=1, metavar="N",
        help="With --retry-noisy: leave out the kernels already measured N times across those campaigns "
             "(steady or noisy records), so a kernel whose campaigns never agree — a layer that straddles "
             "a shared cache — is not measured again and again."),
    where: Optional[str] = typer.Option(
        None, "--where", metavar="CONDITIONS",
        help="Measure only the suite's kernels that meet every comma-separated condition, e.g. "
             "'op=pwconv,scheme!=dense,cout<=32' (fields: shape fields, out_h, out_w, flops, params, ratio; "
             "op, scheme, activation, dtype with = or !=)."),
    draw: int = typer.Option(
        0, "--draw", min=0, metavar="N",
        help="Prune sparse kernels from weight draw N (another seeded random dense tensor; 0 = the usual one). "
             "Which weights survive moves a few-channel sparse layer's time by 10-30%: campaigns of several "
             "draws, into separate --out folders, give the lookup table the median over draws."),
    dtype: Optional[str] = typer.Option(
        None, "--dtype", metavar="DTYPE",
        help="Measure every kernel of the suite in this data type, whatever the suite says: fp32, fp16 or "
             "int8. int8: quantized single-op models (ORT QDQ, full-integer LiteRT, XNNPACK QS8); fp16: "
             "LiteRT on CPUs with fp16 arithmetic (ARMv8.2). See docs/suites.md."),
) -> None:
    """Measure a suite's kernels on a device and save them into a dataset (Parquet).

    Each kernel is built as a single-op model (ONNX Runtime, LiteRT) or generated C (devprof-c),
    checked once against a numpy reference (a wrong answer is reported, never recorded), then timed:
    warm-up, calibrated repetitions, median with IQR. Every finished kernel is saved at once, so
    Ctrl-C loses nothing measured; rerun with --resume to finish.

    Examples:\n
      devprof profile                                  # smoke suite on this machine\n
      devprof profile --suite mobilenetv2 -r onnxruntime -t 4\n
      devprof profile --device S20 --cores big --suite sparse-sweep\n
      devprof profile -s predictor-train --retry-noisy data/train --out data/train-retry\n
      devprof profile -s predictor-train --retry-noisy data/train --min-steady 2 --out data/train-r2\n
      devprof profile -s sparse-train -r devprof-c --where 'op=pwconv,cout<=32' --draw 1 --out data/st-d1\n
      devprof profile --suite smoke --dtype int8 --out data/smoke-int8
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .devices import resolve_device
    from .measure import Protocol
    from .profile import default_runtimes, profile as run_profile
    from .suites import load_suite

    device_names = list(device) if device else [os.environ.get("DEVPROF_DEVICE") or "local"]
    if dtype is not None and (space is not None or adaptive or len(device_names) > 1 or all_matching
                              or len(adb_server or []) > 1):
        raise UsageError("--dtype applies to a kernel suite on one device: not with --space, --adaptive or a farm")
    if (where is not None or draw) and (space is not None or adaptive or model or len(device_names) > 1
                                        or all_matching or len(adb_server or []) > 1):
        raise UsageError("--where and --draw choose among a kernel suite's kernels on one device: not with "
                         "--space, --adaptive, --model or a farm")
    if space is not None:  # search-space blocks: devprof.space_profile (docs/formats.md)
        from .space_profile import cli_profile_space

        return cli_profile_space(space, device_names[0], threads, out_dir, resume, quick, json_out)
    if adaptive:  # active sampling: devprof.commands.predict (docs/predictors.md)
        from .commands.predict import cli_profile_adaptive

        return cli_profile_adaptive(device_names[0], suite, runtime, threads, cores, out_dir, quick, json_out,
                                    target_acc, budget, (adb_server or [None])[0])
    servers = list(adb_server or [])
    if len(device_names) > 1 or all_matching or len(servers) > 1:  # several devices: the farm (devprof/farm.py)
        from .farm import profile_command

        dev = profile_command(device_names, servers, all_matching, suite=suite, runtime=runtime, threads=threads,
                              cores=cores, out_dir=out_dir, resume=resume, quick=quick, cooldown=cooldown,
                              max_temp=max_temp, json_out=json_out, out=out, err=err, model=model)
        if dev is None:
            return
    s = load_suite(suite)
    if where is not None or draw:
        s = _select(s, where, draw)
    if len(device_names) == 1 and not all_matching and len(servers) <= 1:
        dev = resolve_device(device_names[0], adb_server=servers[0] if servers else None)
    if dtype is not None:  # suite-wide data type (devprof.suites.select.with_dtype)
        s = _with_dtype(s, dtype, dev, model)
    names = list(runtime) if runtime else default_runtimes(dev, s.runtimes)
    proto = (Protocol.quick() if quick else Protocol()).with_cpus(dev.resolve_cores(cores))
    if (min_steady > 1 or max_spread is not None or max_records is not None) and not retry_noisy:
        raise UsageError("--min-steady, --max-spread and --max-records need --retry-noisy DATASET (the campaigns "
                         "whose records count)")
    if retry_noisy and (model or s.models):
        raise UsageError("--retry-noisy applies to kernel suites, not to whole models")
    if prune and not (model or s.models):
        raise UsageError("--prune applies to whole models: use it with --model (or a suite with model entries)")
    if model or s.models:  # whole models: devprof.models.profile (docs/models.md)
        from .models.profile import cli_profile_models

        code = cli_profile_models(dev, [model] if model else s.models,
                                  runtimes=runtime or (None if model else list(s.runtimes)), threads=threads, out=out_dir,
                                  resume=resume, protocol=proto, suite="" if model else s.name, prune=prune or "",
                                  json_out=json_out, single=bool(model))
        if code or model or not s.specs:
            raise typer.Exit(code)
    show_progress = not json_out and sys.stderr.isatty()
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[current]}"), TimeElapsedColumn(), TextColumn("ETA"),
                        TimeRemainingColumn(), console=err, disable=not show_progress, transient=True)
    state = {"task": None}
    rows: list[tuple] = []

    def on_plan(p) -> None:
        if not json_out:
            rts = list(dict.fromkeys(t.info.name for t in p.tasks)) or names
            err.print(f"profiling suite [bold]{s.name}[/] on [bold]{dev.name}[/] with {', '.join(rts)}: "
                      f"{p.total} kernels to measure"
                      + (f", {p.already} already in the dataset" if p.already else "")
                      + (f", {len(p.skipped)} unsupported pairs skipped" if p.skipped else ""))
        state["task"] = progress.add_task("profiling", total=p.total, current="")

    def on_outcome(o, rec) -> None:
        progress.update(state["task"], advance=1, current=o.spec.key[:48])
        if rec is not None:
            m = rec.measurement
            gf = rec.spec.flops / (m.median_us * 1e3) if m.median_us > 0 and rec.spec.flops else float("nan")
            rows.append((rec.spec.op, rec.spec.key, rec.runtime.name, m.median_us, m.iqr_us, gf, m.noisy))
        elif not json_out:
            progress.console.print(f"[red]refused[/] {o.spec.key} ({o.spec.op}): {o.error}")

    # (specs, runtimes) to measure: the whole suite, or per runtime the kernels still lacking a steady record
    plan = ([(s.specs, names)] if not retry_noisy
            else _noisy_plan(s.specs, names, threads, retry_noisy, out_dir, min_steady, max_spread, max_records))
    if not plan:
        agree = f" agreeing within {max_spread:.0%}" if max_spread is not None else ""
        capped = f" (or {max_records} records)" if max_records is not None else ""
        err.print(f"nothing to retry: every kernel of {s.name} has {min_steady} steady record"
                  f"{'s' if min_steady > 1 else ''}{agree}{capped} in {', '.join(map(str, retry_noisy or []))}")
        return
    with progress:
        summary = None
        for specs, rts in plan:
            part = run_profile(dev, specs, rts, out_dir, threads=threads, resume=resume, protocol=proto,
                               suite=s.name, cooldown_s=cooldown, max_temp_c=max_temp, on_plan=on_plan,
                               on_outcome=on_outcome)
            summary = part if summary is None else _add_summaries(summary, part)
            if summary.interrupted:
                break
    if json_out:
        print(json.dumps(summary.to_dict(), indent=2, default=str))
    else:
        if rows:
            t = Table(title=f"{summary.measured} kernels measured on {dev.name}")
            for c, j in (("op", "left"), ("kernel", "left"), ("runtime", "left"), ("median µs", "right"),
                         ("IQR µs", "right"), ("GFLOP/s", "right"), ("", "left")):
                t.add_column(c, justify=j)
            for op, key, rt, med, iqr, gf, noisy in rows:
                t.add_row(op, key, rt, f"{med:,.1f}", f"{iqr:,.1f}", "-" if gf != gf else f"{gf:.1f}",
                          "noisy" if noisy else "")
            out.print(t)
        err.print(f"{summary.measured} measured, {summary.failed} refused, {summary.already} already there, "
                  f"{summary.skipped} skipped as unsupported; dataset: {summary.dataset} ({summary.seconds:.0f} s)")
    if summary.interrupted:
        err.print(f"interrupted: the {summary.measured} records measured before are saved; "
                  "rerun the same command with --resume to finish")
        raise typer.Exit(130)
    if summary.failed and not summary.measured and not summary.already:
        raise typer.Exit(5)


def _select(s, where: str | None, draw: int):
    """The suite's kernels that meet --where, pruned from weight draw --draw (devprof.suites.select)."""
    import dataclasses

    from .suites.select import parse_where, with_draw

    keep = parse_where(where) if where is not None else (lambda spec: True)
    specs = tuple(with_draw(x, draw) for x in s.specs if keep(x))
    if s.specs and not specs:
        raise UsageError(f"--where {where!r}: none of the {len(s.specs)} kernels of suite {s.name} meets it")
    return dataclasses.replace(s, specs=specs)


def _with_dtype(s, dtype: str, dev, model: str | None):
    """The suite with every kernel in `dtype` (--dtype); one-line errors for what cannot be done."""
    import dataclasses

    from .suites.select import check_dtype, with_dtype

    check_dtype(dtype, "--dtype")
    if model or s.models:
        raise UsageError("--dtype applies to kernel suites so far, not to whole models (--model, or a suite's model "
                         "entries)")
    if dtype == "fp16" and dev.in_process:
        from .runtimes.hostcpu import fp16_arithmetic

        why = fp16_arithmetic()
        if why:
            raise UsageError(f"--dtype fp16: {why}")
    return dataclasses.replace(s, specs=with_dtype(s.specs, dtype))


def _add_summaries(a, b):
    """Two runs' summaries as one (--retry-noisy runs once per runtime)."""
    import dataclasses

    return dataclasses.replace(a, measured=a.measured + b.measured, failed=a.failed + b.failed,
                               skipped=a.skipped + b.skipped, already=a.already + b.already,
                               interrupted=a.interrupted or b.interrupted, seconds=a.seconds + b.seconds,
                               failures=a.failures + b.failures, saved_keys=a.saved_keys + b.saved_keys)


def _noisy_plan(specs: list, runtimes: list[str], threads: int, campaigns: list[Path], out_dir: Path,
                min_steady: int = 1, max_spread: float | None = None,
                max_records: int | None = None) -> list[tuple[list, list[str]]]:
    """Per runtime, the specs with fewer than `min_steady` steady records in `campaigns` (1: those
    whose records are all flagged noisy, or missing), and with `max_spread` those whose steady
    records' fastest rounds differ by more than that fraction; with `max_records`, none that has
    that many records (steady or noisy) already."""
    from collections import defaultdict

    from .store import Dataset

    steady: dict[tuple[str, str, str], float] = {}  # (runtime, spec, start) -> fastest round: a campaign
    # given twice counts once
    records: set[tuple[str, str, str]] = set()  # every (runtime, spec, start), noisy ones too
    for c in campaigns:
        ds = Dataset(c)
        if not ds.exists():
            raise UsageError(f"--retry-noisy: no dataset at {c}")
        if Path(c).resolve() == Path(out_dir).resolve():
            raise UsageError("--retry-noisy: write the retries to another folder (--out): a dataset holds one "
                             "record per kernel")
        df = ds.read()
        if not len(df):
            continue
        mine = df[(df["kind"] == "kernel") & (df["threads"] == threads)]
        records.update(zip(mine["runtime"].astype(str), mine["spec_key"].astype(str), mine["started_at"].astype(str)))
        k = mine[~mine["noisy"].astype(bool)]
        steady.update(zip(zip(k["runtime"].astype(str), k["spec_key"].astype(str), k["started_at"].astype(str)),
                          k["min_us"].astype(float)))
    fastest: dict[tuple[str, str], list[float]] = defaultdict(list)  # (runtime, spec) -> one per campaign
    for (rt, key, _), v in steady.items():
        fastest[(rt, key)].append(v)
    count: dict[tuple[str, str], int] = defaultdict(int)
    for rt, key, _ in records:
        count[(rt, key)] += 1

    def wanted(rt: str, key: str) -> bool:
        v = fastest.get((rt, key), [])
        if max_records is not None and count[(rt, key)] >= max_records:
            return False
        return len(v) < min_steady or (max_spread is not None and bool(v) and max(v) > min(v) * (1.0 + max_spread))

    plan = []
    for rt in runtimes:
        todo = [sp for sp in specs if wanted(rt, sp.key)]
        if todo:
            plan.append((todo, [rt]))
    return plan


# ---- show ----------------------------------------------------------------------------------
@app.command()
def show(
    dataset: Path = typer.Argument(..., help="Dataset folder written by 'devprof profile'."),
    op: Optional[List[str]] = typer.Option(None, "--op", help="Only these ops (repeatable)."),
    runtime: Optional[List[str]] = typer.Option(None, "--runtime", "-r", help="Only these runtimes (repeatable)."),
    device: Optional[str] = typer.Option(None, "--device", help="Only records whose device name or model contains this."),
    kind: Optional[str] = typer.Option(None, "--kind", help="kernel, layer or model."),
    scheme: Optional[str] = typer.Option(None, "--scheme", help="Only this sparsity scheme (dense, bcr, ...)."),
    long: bool = typer.Option(False, "--long", help="One row per record instead of one row per kernel with a "
                                                    "column per runtime."),
    limit: int = typer.Option(200, "--limit", help="At most this many rows (0 = all)."),
    json_out: bool = typer.Option(False, "--json", help="Print the selected records as JSON."),
) -> None:
    """Show a dataset as a table: by default one row per kernel, median µs per runtime side by side."""
    from .store import Dataset

    df = Dataset(dataset).read()
    if op:
        df = df[df["op"].isin(op)]
    if runtime:
        df = df[df["runtime"].isin(runtime)]
    if device:
        df = df[df["device_name"].str.contains(device, case=False, regex=False)
                | df["device_model"].str.contains(device, case=False, regex=False)]
    if kind:
        df = df[df["kind"] == kind]
    if scheme:
        df = df[df["scheme"] == scheme]
    df = df.assign(gflops=(df["flops"] / (df["median_us"] * 1e3)).where(df["flops"] > 0))
    if json_out:
        cols = ["kind", "spec_key", "op", "scheme", "sparsity_ratio", "device_name", "runtime", "runtime_version",
                "threads", "median_us", "iqr_us", "cv", "noisy", "repeats", "gflops", "model_name", "layer_name"]
        sel = df[cols] if limit == 0 else df[cols].head(limit)
        print(sel.to_json(orient="records", indent=2))
        return
    if df.empty:
        err.print(f"{dataset}: no records match")
        return
    if long:
        t = Table(title=f"{dataset}: {len(df)} records")
        for c in ("op", "kernel", "device", "runtime", "median µs", "IQR µs", "CV", "GFLOP/s"):
            t.add_column(c, justify="right" if c in ("median µs", "IQR µs", "CV", "GFLOP/s") else "left")
        sel = df.sort_values(["op", "spec_key", "runtime"])
        for _, r in (sel if limit == 0 else sel.head(limit)).iterrows():
            t.add_row(r["op"], r["spec_key"], r["device_name"], r["runtime"], f"{r['median_us']:,.1f}",
                      f"{r['iqr_us']:,.1f}", f"{r['cv']:.1%}", "-" if r["gflops"] != r["gflops"] else f"{r['gflops']:.1f}")
        out.print(t)
        return
    piv = df.pivot_table(index=["op", "spec_key"], columns="runtime", values="median_us", aggfunc="median")
    t = Table(title=f"{dataset}: {len(df)} records, {len(piv)} kernels, median µs per runtime "
                    f"({df['device_name'].nunique()} device(s))")
    t.add_column("op")
    t.add_column("kernel")
    for c in piv.columns:
        t.add_column(str(c), justify="right")
    for (o, key), r in (piv if limit == 0 else piv.head(limit)).iterrows():
        t.add_row(o, key, *("-" if v != v else f"{v:,.1f}" for v in r.values))
    out.print(t)
    if limit and len(piv) > limit:
        err.print(f"({len(piv) - limit} more rows; --limit 0 shows all)")


@app.command()
def suites(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the built-in suites with their size and default runtimes."""
    from .suites import builtin_names, load_suite

    rows = []
    for n in builtin_names():
        s = load_suite(n)
        rows.append({"name": n, "kernels": len(s.specs), "models": len(s.models), "runtimes": list(s.runtimes),
                     "description": s.description})
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    t = Table(title="built-in suites")
    for c in ("name", "kernels", "models", "runtimes", "description"):
        t.add_column(c)
    for r in rows:
        t.add_row(r["name"], str(r["kernels"]), str(r["models"]), ", ".join(r["runtimes"]), r["description"])
    out.print(t)


def _register_commands() -> None:
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(app)


def main() -> None:
    """Entry point: run the app, turning devprof's errors into one line and an exit code."""
    _register_commands()
    try:
        app()
    except DevprofError as e:
        err.print(f"[red]error:[/] {e}", highlight=False, markup=True, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as e:  # an internal bug: still one line unless debugging
        cause = e  # Ctrl-C inside a C extension's import surfaces as ImportError("initialization failed")
        while cause is not None and not isinstance(cause, KeyboardInterrupt):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            err.print("interrupted")
            sys.exit(130)
        if os.environ.get("DEVPROF_DEBUG"):
            raise
        first = (str(e).splitlines() or [""])[0][:300]
        err.print(f"error: internal {type(e).__name__}: {first} (set DEVPROF_DEBUG=1 for a traceback)",
                  highlight=False, markup=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
