"""`devprof profile` with several devices: a farm, one progress line per phone and per fleet."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from ..devices import Device

from ._console import err, note, out, styled


def profile_farm_command(names: Sequence[str], servers: Sequence[str], all_matching: bool, *, suite: str,
                    runtime: Sequence[str] | None, threads: int, cores: str, out_dir: Path, resume: bool,
                    quick: bool, cooldown: float, max_temp: float | None, json_out: bool,
                    model: str | None = None, cooldown_timeout: float = 120.0,
                         oversubscribe: bool = False) -> Device | None:
    """`devprof profile` with several devices. Returns the device when the names resolve to just
    one (the caller's single-device path then runs, unchanged); runs the farm and returns None
    otherwise. Raises typer.Exit with the run's exit code when something is left undone."""
    from ..errors import DeviceError, UsageError
    from ..farm import Event, Fleet, resolve_farm, run_farm
    from ..measure import Protocol
    from ..suites import load_suite

    s = load_suite(suite)
    members = resolve_farm(names, servers, all_matching)
    if len(members) == 1:
        return members[0].device
    if model or s.models:
        raise UsageError("whole models are profiled on one device at a time; a farm runs kernel suites "
                         "(drop --model, or name one --device)")
    for m in members:
        m.device.check_threads(threads, m.device.resolve_cores(cores), oversubscribe)
    proto = Protocol.quick() if quick else Protocol()
    show_progress = not json_out and sys.stderr.isatty()
    progress = Progress(TextColumn("{task.description}", style="bold", markup=False), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[status]}", markup=False), TimeElapsedColumn(), console=err,
                        disable=not show_progress, transient=True)
    lines: dict[int, int] = {}
    fleet_lines: dict[str, int] = {}
    lost: set[int] = set()

    def on_plan(fleets: list[Fleet]) -> None:
        for fl in fleets:
            if not json_out:
                err.print(styled((fl.name, "bold"), f" ({', '.join(m.serial for m in fl.members)}): {fl.total} kernels "
                                 f"with {', '.join(fl.runtimes)}"
                                 + (f", {fl.already} already in the dataset" if fl.already else "")
                                 + (" — shared by identical phones" if len(fl.members) > 1 else "")))
            if len(fl.members) > 1:
                fleet_lines[fl.id] = progress.add_task(f"{fl.name} (fleet)", total=fl.total, status="")
            for m in fl.members:
                lines[id(m)] = progress.add_task(m.label, total=fl.total, status="waiting")

    def on_event(ev: Event, rec) -> None:
        line = lines.get(id(ev.member))
        if line is None:
            return
        if ev.kind == "outcome":
            progress.update(line, advance=1)
            if ev.member.fleet in fleet_lines:
                progress.update(fleet_lines[ev.member.fleet], advance=1)
            if not json_out and ev.outcome is not None and not ev.outcome.ok:
                progress.console.print(styled(("refused", "red"), f" on {ev.member.label}: {ev.outcome.spec.key}: "
                                              f"{ev.outcome.error}"))
        elif ev.kind == "state":
            progress.update(line, status=ev.text)
        elif ev.kind == "lost":
            lost.add(id(ev.member))
            progress.update(line, status="lost")
            if not json_out:
                progress.console.print(styled(("lost", "yellow"), f" {ev.member.label}: {ev.text}; its unfinished "
                                              "kernels go to its identical peers"))
        elif ev.kind == "exit" and id(ev.member) not in lost:
            progress.update(line, status="done")

    with progress:
        summary = run_farm(members, s.specs, out_dir, runtimes=list(runtime) if runtime else None,
                           suite_runtimes=s.runtimes, threads=threads, cores=cores, resume=resume, protocol=proto,
                           suite=s.name, cooldown_s=cooldown, max_temp_c=max_temp,
                           cooldown_timeout_s=cooldown_timeout, on_plan=on_plan, on_event=on_event, on_note=note)
    if json_out:
        print(json.dumps(summary.to_dict(), indent=2, default=str))
    else:
        t = Table(title=f"farm run on {len(members)} devices")
        for c in ("device", "serial", "server", "fleet", "batches", "measured", "refused", "status"):
            t.add_column(c, justify="right" if c in ("batches", "measured", "refused") else "left")
        for m in summary.members:
            t.add_row(m.label, m.serial, m.server or "-", m.fleet, str(m.batches), str(m.measured), str(m.failed),
                      f"lost: {m.lost}" if m.lost else "ok")
        out.print(t)
        err.print(f"{summary.measured} measured, {summary.failed} refused, {summary.already} already there, "
                  f"{summary.skipped} skipped as unsupported; dataset: {summary.dataset} ({summary.seconds:.0f} s)")
    if summary.interrupted:
        err.print(f"interrupted: the {summary.measured} records measured before are saved; "
                  "rerun the same command with --resume to finish")
        raise typer.Exit(130)
    if summary.unfinished:
        left = [f"{f['fleet']} ({f['unfinished']})" for f in summary.fleets if f["unfinished"]]
        err.print(styled(("error:", "red"), f" every phone of {', '.join(left)} was lost: those kernels are not "
                         "measured; reconnect a phone and rerun with --resume"))
        raise typer.Exit(DeviceError.exit_code)
    if summary.failed and not summary.measured and not summary.already:
        raise typer.Exit(5)
    return None
