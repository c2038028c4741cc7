"""`devprof suites`: the built-in suites with their size and default runtimes."""
from __future__ import annotations

import json

import typer
from rich.table import Table

from ._console import out


def _variants(entry: dict) -> int:
    """Models one [[model]] entry asks for (a family entry's `variants`, a file 1); an entry with
    `max_gmacs` may end up with fewer if its draws run out."""
    if "path" in entry:
        return 1
    try:
        return max(1, int(entry.get("variants", 1)))
    except (TypeError, ValueError):
        return 1


def suites(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the built-in suites with their size and default runtimes."""
    from ..suites import builtin_names, load_suite

    rows = []
    for n in builtin_names():
        s = load_suite(n)
        # models: what the [[model]] entries expand to (each entry's variants), not the entries
        rows.append({"name": n, "kernels": len(s.specs), "models": sum(_variants(m) for m in s.models),
                     "models_exact": not any("max_gmacs" in m for m in s.models), "model_entries": len(s.models),
                     "runtimes": list(s.runtimes), "description": s.description})
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    t = Table(title="built-in suites")
    for c in ("name", "kernels", "models", "runtimes", "description"):
        t.add_column(c)
    for r in rows:
        models = str(r["models"]) if r["models_exact"] else f"≤{r['models']}"  # a compute budget may skip draws
        t.add_row(r["name"], str(r["kernels"]), models, ", ".join(r["runtimes"]), r["description"])
    out.print(t)


def register(app: typer.Typer) -> None:
    app.command("suites")(suites)
