"""`devprof devices`: the local host and every attached phone, grouped by model."""
from __future__ import annotations

import json
import math
from typing import List, Optional

import typer
from rich.table import Table

from ._console import err, out, styled


def devices(
    json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    adb_server: Optional[List[str]] = typer.Option(None, "--adb-server", metavar="HOST:PORT",
                                                   help="adb server to ask for phones (repeatable; default: "
                                                        "$ANDROID_ADB_SERVER_PORT or 5037)."),
) -> None:
    """List devices: the embedded [bold]local[/] host and attached phones of every adb server, grouped by
    model, with CPU, cores, frequency, governor and temperature."""
    from ..farm import devices_by_model

    rows = []
    found, warnings = devices_by_model(adb_server or [])
    for w in warnings:
        err.print(styled(("warning:", "yellow"), f" {w}"))
    for d, server in found:
        info = d.info()
        st = d.state()
        rows.append({"name": d.name, "kind": info.kind, "serial": info.serial, "model": info.model, "soc": info.soc,
                     "abi": info.abi, "cpu": info.cpu, "cores": info.cores, "isa": list(info.isa), "os": info.os,
                     "kernel": info.kernel, "governor": st.governor, "freq_khz": st.freq_khz,
                     "temp_c": None if math.isnan(st.temp_c) else st.temp_c, "fingerprint": info.id,
                     "extra": dict(info.extra), "server": server, "emulated": info.emulated})
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
        t.add_row(r["name"] + (" (emulated)" if r["emulated"] else "")
                  + (f"\n{r['serial']} @ {r['server']}" if r["server"] else ""), r["kind"],
                  r["model"] + (f"\n{r['cpu']}" if phone else ""),
                  r["soc"] or "-", r["abi"], str(r["cores"]),
                  (" ".join(r["isa"][:6]) + ("…" if len(r["isa"]) > 6 else "") + "\n" if r["isa"] else "") + r["os"],
                  r["governor"] or "-", f"{r['freq_khz'] / 1e6:.2f} GHz" if r["freq_khz"] > 0 else "-",
                  (f"{r['temp_c']:.0f} °C" if r["temp_c"] is not None else "-")
                  + (f"\nbattery {x.get('battery_level')}%, {x.get('battery_temp_c')} °C"
                     if phone and x.get("battery_level", -1) >= 0 else ""))
    out.print(t)


def register(app: typer.Typer) -> None:
    app.command("devices")(devices)
