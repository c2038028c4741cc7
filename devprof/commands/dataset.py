"""`devprof dataset check DS` and `devprof dataset repair DS`: find and set aside unreadable parts;
`devprof dataset merge OUT.parquet DS...`: one reference dataset from campaign folders.

One part damaged on disk (a bad sector, a copy cut short, a foreign file dropped in) used to make
`show`, `report` and `fit-predictor` refuse the whole dataset. `check` reads every part in full
and names the unreadable ones and what they held; `repair` moves them into the dataset's
`quarantine/` folder (kept, never deleted) so that everything else reads again, and
`devprof profile ... --resume` measures their kernels again (it also sets such parts aside itself).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from ..errors import DatasetError

dataset_app = typer.Typer(help="Check a dataset's parts, set unreadable ones aside, merge campaigns.", no_args_is_help=True)


def _lost(bad: list[dict]) -> str:
    known = [r["records"] for r in bad if r["records"] is not None]
    if len(known) == len(bad):
        return f"{sum(known)} records"
    return f"at least {sum(known)} records" if known else "an unknown number of records"


@dataset_app.command("check")
def check_cmd(
    path: Path = typer.Argument(..., help="Dataset folder."),
    json_out: bool = typer.Option(False, "--json", help="Print the per-part report as JSON."),
) -> None:
    """Read every part in full; list the unreadable ones (exit 4 if any).

    Nothing is changed. `devprof dataset repair` sets unreadable parts aside."""
    from ..store import Dataset

    ds = Dataset(path)
    report = ds.check()
    bad = [r for r in report if not r["ok"]]
    good = sum(r["records"] for r in report if r["ok"])
    problem = DatasetError(f"{len(bad)} unreadable part(s) in {path} ({_lost(bad)}); `devprof dataset repair "
                           f"{path}` sets them aside, then `devprof profile ... --out {path} --resume` measures "
                           "them again") if bad else None
    if json_out:  # one JSON document, the verdict in it (not a second error object after it)
        doc = {"dataset": str(path), "parts": report, "readable_records": good, "unreadable_parts": len(bad)}
        if problem:
            doc.update(error=str(problem), exit_code=problem.exit_code)
        print(json.dumps(doc, indent=2))
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            raise typer.Exit(problem.exit_code)
        return
    for r in bad:
        n = "?" if r["records"] is None else r["records"]
        print(f"unreadable  {r['part']}  ({n} records)  {r['error']}")
    print(f"{path}: {len(report)} part(s), {good} readable records, {len(bad)} unreadable part(s)")
    if problem:
        raise problem


@dataset_app.command("repair")
def repair_cmd(
    path: Path = typer.Argument(..., help="Dataset folder."),
    json_out: bool = typer.Option(False, "--json", help="Print what was set aside as JSON."),
) -> None:
    """Move unreadable parts into DATASET/quarantine/ (kept, never deleted).

    Takes the dataset's lock (refused while a profile run writes it). Afterwards every reader
    works again; `devprof profile ... --resume` measures the lost kernels again."""
    from ..store import Dataset

    ds = Dataset(path)
    with ds:
        moved = ds.quarantine()
    if json_out:
        print(json.dumps({"dataset": str(path), "quarantined": moved,
                          "quarantine": str(Path(path) / "quarantine")}, indent=2))
    elif moved:
        for r in moved:
            print(f"set aside  {r['part']}  -> {r['quarantined_as']}  ({r['error']})")
        print(f"{len(moved)} part(s) set aside ({_lost(moved)} lost); measure them again with "
              f"`devprof profile ... --out {path} --resume`")
    else:
        print(f"{path}: every part is readable; nothing to repair")


def register(app: typer.Typer) -> None:
    app.add_typer(dataset_app, name="dataset")


@dataset_app.command("merge")
def merge_cmd(
    out: Path = typer.Argument(..., help="Reference dataset file to write (.parquet)."),
    folders: list[Path] = typer.Argument(..., help="Dataset folders (campaigns) to merge."),
) -> None:
    """Merge campaign folders into one reference dataset file (one Parquet file).

    Each record keeps its campaign (the folder's name, column `campaign`); repeat measurements
    from different campaigns are all kept, exact duplicates dropped. Commands that read datasets
    take the file, whole or as FILE.parquet@campaign1,campaign2."""
    from ..errors import UsageError
    from ..store import write_reference

    if out.suffix != ".parquet":
        raise UsageError(f"the reference dataset must be a .parquet file, got {out}")
    n = write_reference(folders, out)
    print(f"{out}: {n['records']} records from {n['campaigns']} campaign(s), "
          f"{n['duplicates_dropped']} exact duplicate(s) dropped")
