"""`devprof report DATASET... [--bundle B...] [-o report.html] [--format html|md] [--json]`."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        datasets: Optional[List[Path]] = typer.Argument(
            None, help="Dataset folders written by 'devprof profile' (several: compared side by side)."),
        bundle: Optional[List[Path]] = typer.Option(
            None, "--bundle", "-b", help="Predictor bundle folder(s) whose accuracy to report (repeatable)."),
        out: Optional[Path] = typer.Option(None, "-o", "--out",
                                           help="File to write (default report.html, or report.md with --format md)."),
        fmt: str = typer.Option("html", "--format", "-f", help="html (one self-contained page) or md (the tables "
                                                               "as Markdown, for terminals and pull requests)."),
        json_out: bool = typer.Option(False, "--json", help="Print what was written (path, sections drawn) as JSON."),
    ) -> None:
        """Write one self-contained report (HTML page with embedded figures, or Markdown tables): devices,
        measurement quality, latency vs FLOPs, sparse speedup, predictor accuracy, per-layer breakdown and
        comparisons across devices/runtimes. Runtimes are labelled name/threads (devprof-c/t1); their full
        options are in one table. The page prints to PDF (A4). Prints the path written."""
        from ..errors import UsageError
        from ..report import FORMATS, build_report

        fmt_l = fmt.lower()
        if fmt_l not in FORMATS:
            raise UsageError(f"unknown --format {fmt!r} (use html or md)")
        if not datasets and not bundle:
            raise UsageError("give at least one dataset folder (e.g. devprof report devprof-data)")
        res = build_report(list(datasets or []), list(bundle or []), out=out, fmt=fmt_l)
        if json_out:
            print(json.dumps(res.to_dict(), indent=2))
            return
        skipped = [s for s in res.sections if not s["drawn"]]
        if skipped:
            print(f"({len(skipped)} of {len(res.sections)} sections not drawn: "
                  + ", ".join(s["title"].lower() for s in skipped) + ")", file=sys.stderr)
        print(res.path)
