"""`devprof show DATASET`: a dataset as a table (one row per kernel, or per record with --long)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from ..errors import UsageError
from ._console import err, out


def show(
    dataset: Path = typer.Argument(..., help="Dataset folder written by 'devprof profile'."),
    op: Optional[List[str]] = typer.Option(None, "--op", help="Only these ops (repeatable)."),
    runtime: Optional[List[str]] = typer.Option(None, "--runtime", "-r", help="Only these runtimes (repeatable)."),
    device: Optional[str] = typer.Option(None, "--device", help="Only records whose device name or model contains this."),
    kind: Optional[str] = typer.Option(None, "--kind", help="kernel, layer or model."),
    scheme: Optional[str] = typer.Option(None, "--scheme", help="Only this sparsity scheme (dense, bcr, ...)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="Only this data type (fp32, fp16, int8)."),
    long: bool = typer.Option(False, "--long", help="One row per record instead of one row per kernel with a "
                                                    "column per runtime."),
    limit: int = typer.Option(200, "--limit", help="At most this many rows (0 = all)."),
    json_out: bool = typer.Option(False, "--json", help="Print the selected records as JSON."),
) -> None:
    """Show a dataset as a table: by default one row per kernel, median µs per runtime side by side."""
    from ..store import read_records

    df = read_records(dataset)
    _check_present(df, "op", op, "--op", dataset)
    _check_present(df, "runtime", runtime, "--runtime", dataset)
    _check_present(df, "kind", [kind] if kind else None, "--kind", dataset)
    _check_present(df, "scheme", [scheme] if scheme else None, "--scheme", dataset)
    _check_present(df, "dtype", [dtype] if dtype else None, "--dtype", dataset)
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
    if dtype:
        df = df[df["dtype"] == dtype]
    df = df.assign(gflops=(df["flops"] / (df["median_us"] * 1e3)).where(df["flops"] > 0))
    # an emulator's timings say nothing about a phone: its device name says so wherever it is shown
    emulated = df["emulated"].astype(bool) if "emulated" in df else df["device_name"].map(lambda _: False)
    emulated_names = ", ".join(sorted(set(df.loc[emulated, "device_name"])))
    df = df.assign(device_name=df["device_name"].where(~emulated, df["device_name"] + " (emulated)"))
    if json_out:
        cols = ["kind", "spec_key", "op", "dtype", "scheme", "sparsity_ratio", "device_name", "runtime", "runtime_version",
                "threads", "median_us", "iqr_us", "cv", "noisy", "repeats", "gflops", "model_name", "layer_name",
                "emulated"]
        sel = df[cols] if limit == 0 else df[cols].head(limit)
        print(sel.to_json(orient="records", indent=2))
        return
    if df.empty:
        err.print(f"{dataset}: no records match")
        return
    if long:
        t = Table(title=f"{dataset}: {len(df)} records")
        for c in ("op", "dtype", "kernel", "device", "runtime", "median µs", "IQR µs", "CV", "GFLOP/s"):
            t.add_column(c, justify="right" if c in ("median µs", "IQR µs", "CV", "GFLOP/s") else "left")
        sel = df.sort_values(["op", "dtype", "spec_key", "runtime"])
        for _, r in (sel if limit == 0 else sel.head(limit)).iterrows():
            t.add_row(r["op"], r["dtype"], r["spec_key"], r["device_name"], r["runtime"], f"{r['median_us']:,.1f}",
                      f"{r['iqr_us']:,.1f}", f"{r['cv']:.1%}", "-" if r["gflops"] != r["gflops"] else f"{r['gflops']:.1f}")
        out.print(t)
        _emulated_note(emulated, emulated_names)
        return
    # a dtype column: int8 and fp32 of one shape are different kernels, side by side, never merged
    piv = df.pivot_table(index=["op", "dtype", "spec_key"], columns="runtime", values="median_us", aggfunc="median")
    t = Table(title=f"{dataset}: {len(df)} records, {len(piv)} kernels, median µs per runtime "
                    f"({df['device_name'].nunique()} device(s))")
    t.add_column("op")
    t.add_column("dtype")
    t.add_column("kernel")
    for c in piv.columns:
        t.add_column(str(c), justify="right")
    for (o, dt, key), r in (piv if limit == 0 else piv.head(limit)).iterrows():
        t.add_row(o, dt, key, *("-" if v != v else f"{v:,.1f}" for v in r.values))
    out.print(t)
    _emulated_note(emulated, emulated_names)
    if limit and len(piv) > limit:
        err.print(f"({len(piv) - limit} more rows; --limit 0 shows all)")


def _check_present(df, column: str, wanted, flag: str, dataset: Path) -> None:
    """A value the dataset never holds is a typo, not an empty selection: name the values it has."""
    if not wanted or column not in df:
        return
    present = sorted({str(v) for v in df[column].dropna().unique()})
    missing = [w for w in wanted if w not in present]
    if missing:
        raise UsageError(f"{flag} {', '.join(missing)}: {dataset} has no such {column} (it holds: "
                         f"{', '.join(present) or 'no records'})")


def _emulated_note(emulated, names: str) -> None:
    if emulated.any():
        err.print(f"{int(emulated.sum())} of {len(emulated)} records come from emulated devices ({names}): their "
                  "timings say nothing about a phone")


def register(app: typer.Typer) -> None:
    app.command("show")(show)
