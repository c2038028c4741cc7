"""`devprof bundle seal PATH --note TEXT`: re-seal a bundle edited by hand, on purpose.

A bundle whose files no longer match the hashes in its metadata.json is refused on load (a
swapped or truncated file must never answer a search loop). Someone who edits one deliberately
(drops a bad table row, fixes a device name) seals it again here; the bundle then says so to
every reader (metadata ``hand_sealed``: who, when, the note, the files changed; `devprof predict`
warns).
"""
from __future__ import annotations

from pathlib import Path

import typer

bundle_app = typer.Typer(help="Bundle maintenance: re-seal a bundle edited by hand.", no_args_is_help=True)


@bundle_app.command("seal")
def seal_cmd(
    path: Path = typer.Argument(..., help="Bundle folder edited by hand."),
    note: str = typer.Option(..., "--note", help="What was changed and why (kept in the bundle's metadata)."),
    by: str = typer.Option("", "--by", help="Who sealed it (default: $USER)."),
) -> None:
    """Record the edited files' new hashes and a loud note that the bundle was edited by hand.

    The edited bundle must still load (JSON parses, regressors compile); otherwise nothing is
    written. Every later `devprof predict` on it prints a warning naming the edit."""
    from predictors.bundle import seal

    changed = seal(path, note, by=by)
    print(f"sealed {path}: {', '.join(changed) if changed else 'no file had changed'}; "
          "metadata.json now records the hand edit (hand_sealed)")


def register(app: typer.Typer) -> None:
    app.add_typer(bundle_app, name="bundle")
