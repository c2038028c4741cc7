"""`devprof profile --suite S` on one device: a kernel suite's kernels (and its models, if any),
with a progress bar and a table of what was measured."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from rich.text import Text

from ..errors import UsageError
from ._console import err, note, out, styled


def profile_suite_command(dev, device_name: str, servers: list[str], *, suite: str, runtime: Optional[List[str]],
                          threads: int, cores: str, out_dir: Path, resume: bool, quick: bool, cooldown: float,
                          max_temp: Optional[float], json_out: bool, model: Optional[str], prune: Optional[str],
                          retry_noisy: Optional[List[Path]], min_steady: int, max_spread: Optional[float],
                          max_records: Optional[int], where: Optional[str], draw: int, dtype: Optional[str],
                          cooldown_timeout: float = 120.0, oversubscribe: bool = False) -> None:
    """One device: a whole model (--model), a suite's models, its kernels, or (--retry-noisy) the
    kernels still lacking steady records."""
    from ..devices import resolve_device
    from ..measure import Protocol
    from ..profile import default_runtimes
    from ..suites import load_suite

    s = load_suite(suite)
    if where is not None or draw:
        s = _select(s, where, draw)
    if dev is None:
        dev = resolve_device(device_name, adb_server=servers[0] if servers else None)
    if dtype is not None:  # suite-wide data type (devprof.suites.select.with_dtype)
        s = _with_dtype(s, dtype, dev, model)
    names = list(runtime) if runtime else default_runtimes(dev, s.runtimes)
    if dtype == "fp16" and runtime and "devprof-c" in names:
        from ..sparse.codegen_fp16 import unsupported_on

        why = unsupported_on(getattr(dev, "abi", ""), dev.cpu_features)
        if why:
            raise UsageError(f"--dtype fp16: {why}")
    proto = (Protocol.quick() if quick else Protocol()).with_cpus(dev.resolve_cores(cores))
    dev.check_threads(threads, proto.cpus, oversubscribe)
    if (min_steady > 1 or max_spread is not None or max_records is not None) and not retry_noisy:
        raise UsageError("--min-steady, --max-spread and --max-records need --retry-noisy DATASET (the campaigns "
                         "whose records count)")
    if retry_noisy and (model or s.models):
        raise UsageError("--retry-noisy applies to kernel suites, not to whole models")
    if prune and not (model or s.models):
        raise UsageError("--prune applies to whole models: use it with --model (or a suite with model entries)")
    if model or s.models:  # whole models (docs/models.md)
        from .profile_model import profile_models_command

        code = profile_models_command(dev, [model] if model else s.models,
                                      runtimes=runtime or (None if model else list(s.runtimes)), threads=threads,
                                      out=out_dir, resume=resume, protocol=proto, suite="" if model else s.name,
                                      prune=prune or "", json_out=json_out, single=bool(model), cooldown=cooldown,
                                      max_temp=max_temp, cooldown_timeout=cooldown_timeout, dtype=dtype or "fp32")
        if code or model or not s.specs:
            raise typer.Exit(code)
    if retry_noisy:
        from .profile_retry import retry_plan

        plan = retry_plan(s, names, threads, retry_noisy, out_dir, min_steady, max_spread, max_records)
        if not plan:
            return
    else:
        plan = [(s.specs, names)]
    run_kernel_plan(dev, s.name, plan, names, out_dir, threads=threads, resume=resume, protocol=proto,
                    cooldown=cooldown, max_temp=max_temp, json_out=json_out, cooldown_timeout=cooldown_timeout)


def run_kernel_plan(dev, suite_name: str, plan: list[tuple[list, list[str]]], names: list[str], out_dir: Path, *,
                    threads: int, resume: bool, protocol, cooldown: float, max_temp: Optional[float],
                    json_out: bool, cooldown_timeout: float = 120.0) -> None:
    """Measure each (specs, runtimes) pair of `plan` on `dev`, showing progress; print the table
    or the JSON summary; exit 130 when interrupted, 5 when every kernel was refused."""
    from ..profile import profile as run_profile

    from ..eta import Eta

    show_progress = not json_out and sys.stderr.isatty()
    progress = Progress(*progress_columns(err), console=err, disable=not show_progress, transient=True)
    state: dict = {"task": None, "eta": None, "order": [], "n": 0}
    rows: list[tuple] = []

    def on_plan(p) -> None:
        if not json_out:
            rts = list(dict.fromkeys(t.info.name for t in p.tasks)) or names
            err.print(styled("profiling suite ", (suite_name, "bold"), " on ", (dev.name, "bold"),
                             f" with {', '.join(rts)}: {p.total} kernels to measure"
                      + (f", {p.already} already in the dataset" if p.already else "")
                      + (f", {len(p.skipped)} unsupported pairs skipped" if p.skipped else "")))
        state["order"] = [t.info.name for t in p.tasks for _ in t.specs]  # runs in plan order
        state["eta"], state["n"] = Eta((t.info.name, x.op) for t in p.tasks for x in t.specs), 0
        state["task"] = progress.add_task("profiling", total=p.total, current="", eta=None)

    def on_outcome(o, rec) -> None:
        order, n = state["order"], state["n"]
        rt = rec.runtime.name if rec is not None else (order[n] if n < len(order) else "")
        state["n"] = n + 1
        state["eta"].finished(rt, o.spec.op)
        progress.update(state["task"], advance=1, current=o.spec.key, eta=state["eta"].remaining_s())
        if rec is not None:
            m = rec.measurement
            gf = rec.spec.flops / (m.median_us * 1e3) if m.median_us > 0 and rec.spec.flops else float("nan")
            rows.append((rec.spec.op, rec.spec.key, rec.runtime.name, m.median_us, m.iqr_us, gf, m.noisy))
        elif not json_out:
            progress.console.print(styled(("refused", "red"), f" {o.spec.key} ({o.spec.op}): {o.error}"))

    with progress:
        summary = None
        for specs, rts in plan:
            part = run_profile(dev, specs, rts, out_dir, threads=threads, resume=resume, protocol=protocol,
                               suite=suite_name, cooldown_s=cooldown, max_temp_c=max_temp,
                               cooldown_timeout_s=cooldown_timeout, on_plan=on_plan, on_outcome=on_outcome, on_note=note)
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


class _EtaColumn(ProgressColumn):
    """Time left as estimated from each (runtime, op)'s measured time per kernel (devprof.eta)."""

    def render(self, task) -> Text:
        left = task.fields.get("eta")
        if left is None:
            return Text("ETA -:--:--", style="progress.remaining")
        m, sec = divmod(int(left + 0.5), 60)
        h, m = divmod(m, 60)
        return Text(f"ETA {h}:{m:02d}:{sec:02d}", style="progress.remaining")


class _KeyColumn(ProgressColumn):
    """The current kernel's key, cut with an ellipsis to what the other columns leave of the line."""

    def __init__(self, console) -> None:
        super().__init__(table_column=Column(no_wrap=True, overflow="ellipsis"))
        self.console = console

    def render(self, task) -> Text:
        digits = len(str(int(task.total or 0)))
        others = len(task.description) + 16 + (2 * digits + 1) + 7 + 11 + 5  # and one space between columns
        room = self.console.width - others - 1
        key = str(task.fields.get("current", ""))
        if room < 8:
            return Text("")
        return Text(key if len(key) <= room else key[:room - 1] + "…")


def progress_columns(console) -> list:
    """The progress line's columns: counts, times and ETA keep their width at any terminal width;
    the current kernel's key, last, takes what is left."""
    fixed = {"no_wrap": True}
    return [TextColumn("{task.description}", style="bold", markup=False, table_column=Column(**fixed)),
            BarColumn(bar_width=16, table_column=Column(**fixed)),
            MofNCompleteColumn(table_column=Column(**fixed)),
            TimeElapsedColumn(table_column=Column(**fixed)),
            _EtaColumn(table_column=Column(**fixed)),
            _KeyColumn(console)]


def _select(s, where: str | None, draw: int):
    """The suite's kernels that meet --where, pruned from weight draw --draw (devprof.suites.select)."""
    from ..suites.select import parse_where, with_draw

    keep = parse_where(where) if where is not None else (lambda spec: True)
    specs = tuple(with_draw(x, draw) for x in s.specs if keep(x))
    if s.specs and not specs:
        raise UsageError(f"--where {where!r}: none of the {len(s.specs)} kernels of suite {s.name} meets it")
    if draw and specs and all(x.sparsity.scheme == "dense" for x in specs):
        chosen = f"the kernels of suite {s.name} that meet --where" if where is not None else f"suite {s.name}"
        raise UsageError(f"--draw {draw} does nothing here: {chosen} has only dense kernels (a draw chooses which "
                         "weights a pruned kernel keeps; a dense kernel's time does not depend on them)")
    return dataclasses.replace(s, specs=specs)


def _with_dtype(s, dtype: str, dev, model: str | None):
    """The suite with every kernel in `dtype` (--dtype); one-line errors for what cannot be done."""
    from ..suites.select import check_dtype, with_dtype

    check_dtype(dtype, "--dtype")
    if (model or s.models) and dtype == "fp16":
        raise UsageError("--dtype fp16 applies to kernel suites; whole models (--model, a suite's model entries) "
                         "run in fp32 or int8")
    if dtype == "fp16" and dev.in_process:
        from ..runtimes.hostcpu import fp16_arithmetic

        why = fp16_arithmetic()
        if why:
            raise UsageError(f"--dtype fp16: {why}")
    return dataclasses.replace(s, specs=with_dtype(s.specs, dtype))


def _add_summaries(a, b):
    """Two runs' summaries as one (--retry-noisy runs once per runtime)."""
    return dataclasses.replace(a, measured=a.measured + b.measured, failed=a.failed + b.failed,
                               skipped=a.skipped + b.skipped, already=a.already + b.already,
                               interrupted=a.interrupted or b.interrupted, seconds=a.seconds + b.seconds,
                               failures=a.failures + b.failures, saved_keys=a.saved_keys + b.saved_keys)
