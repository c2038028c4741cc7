"""`devprof publish BUNDLE...`: verify bundles made elsewhere (a CI artifact, another machine, an
`--out` staging folder) file by file and install them atomically into the published tree."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List

import typer



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


def register(app: typer.Typer) -> None:
    app.command("publish")(publish)
