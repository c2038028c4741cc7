"""`devprof suites`: the built-in suites with their size and default runtimes."""
from __future__ import annotations

import json

import typer
from rich.table import Table

from ._console import out


def suites(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the built-in suites with their size and default runtimes."""
    from ..suites import builtin_names, load_suite

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


def register(app: typer.Typer) -> None:
    app.command("suites")(suites)
