"""`devprof profile --model M` (and a suite's [[model]] entries, and --prune): whole models layer by
layer, printed as per-layer tables and a summary line per model."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from rich.table import Table

if TYPE_CHECKING:
    from ..measure import Protocol

from ..errors import one_line
from ._console import err, note
from ._console import out as stdout


def profile_models_command(device, models: Sequence[Any], *, runtimes: Sequence[str] | None, threads: int,
                       out: Path, resume: bool, protocol: Protocol, suite: str, prune: str,
                       json_out: bool, single: bool, cooldown: float = 0.0, max_temp: float | None = None,
                       cooldown_timeout: float = 120.0, dtype: str = "fp32") -> int:
    """`devprof profile --model/--suite with [[model]]`: run, print tables or JSON; return exit code."""
    from ..model_profiling.profile import profile_models

    console = stdout
    t0 = time.monotonic()
    done: list = []

    def on_model(runs: list) -> None:
        done.extend(runs)
        if json_out:
            return
        if prune and single and len(runs) >= 2 and runs[0].rows and runs[1].rows:
            speedup_table(runs[0], runs[1], console)
            progs = [r for r in runs[2:] if r.rows and not r.error]
            if progs:
                program_table(runs[0], runs[1], progs, console)
        for r in runs:
            if single and r.rows and not r.error and not prune:
                layer_table(r, console)
        err.print(summary_line(runs), highlight=False, markup=False, soft_wrap=True)

    try:
        profile_models(models, device, runtimes, threads, out, resume, protocol, suite, prune, on_model,
                       cooldown_s=cooldown, max_temp_c=max_temp, cooldown_timeout_s=cooldown_timeout, on_note=note,
                       dtype=dtype)
    except KeyboardInterrupt:
        err.print(f"interrupted: the {sum(len(r.records) for r in done)} records of finished models are saved; "
                  "rerun with --resume to finish")
        return 130
    failed = [r for r in done if r.error]
    saved = sum(len(r.records) for r in done)
    if json_out:
        print(json.dumps({"dataset": str(out), "seconds": round(time.monotonic() - t0, 1), "records": saved,
                          "runs": [r.to_dict() for r in done]}, indent=2, default=str))
    else:
        err.print(f"{len({r.name.split('|')[0] for r in done})} model(s), {saved} records saved, {len(failed)} run(s) failed; "
                  f"dataset: {out} ({time.monotonic() - t0:.0f} s)", highlight=False, markup=False)
    return 5 if failed and not saved else 0


def layer_table(run, console, top: int = 0) -> None:
    """Print the per-layer table (layer, op, shape, latency, share of total) of an ORT model run."""
    total = run.layer_sum_us or 1.0
    int8 = sum(r.layer.spec.dtype == "int8" for r in run.rows)
    t = Table(title=f"{run.name}{' (int8)' if int8 else ''} on {run.runtime}: {len(run.rows)} layers, Σ layer medians {run.layer_sum_us:,.0f} µs, "
                    f"end to end {run.reference_us:,.0f} µs (gap {run.gap:+.1%}; framework overhead "
                    f"{run.framework_us:,.0f} µs"
                    + (f"; CPU time {run.cpu_us:,.0f} µs, gap {run.gap_cpu:+.1%}" if run.gap_cpu == run.gap_cpu else "")
                    + ")" if run.e2e else run.name)
    for c, j in (("#", "right"), ("layer", "left"), ("op", "left"), ("shape", "left"), ("median µs", "right"),
                 ("share", "right"), ("", "left")):
        t.add_column(c, justify=j)
    rows = run.rows
    if top:
        rows = sorted(rows, key=lambda r: -(r.measurement.median_us if r.measurement else 0))[:top]
    for r in rows:
        s = r.layer.spec
        op = s.op + (f"+{s.activation}" if s.activation != "none" else "") + ("+sum" if s.a.get("sum") else "")
        if s.op == "other":
            op = f"other:{s.a.get('onnx_op', s.a.get('tflite_op', '?'))}"
        med = r.measurement.median_us if r.measurement else 0.0
        note = ("fused away" if r.measurement is None else
                (f"incl. reorder {r.reorder_us:,.0f}" if r.reorder_us >= 0.5 else ""))
        t.add_row(str(r.layer.index), r.layer.name, op, r.layer.shape_str(), f"{med:,.1f}", f"{med / total:.1%}", note)
    console.print(t)


def summary_line(runs: list) -> str:
    parts = []
    for r in runs:
        if r.skipped:
            parts.append(f"{r.runtime}: already in dataset")
        elif r.error:
            parts.append(f"{r.runtime}: FAILED ({one_line(r.error, 160)})")
        elif r.e2e and r.runtime == "devprof-c" and r.name.endswith("|program"):  # the model as one program
            parts.append(f"devprof-c {r.name.split('|')[-2]} program: end to end {r.e2e.median_us / 1000:,.2f} ms "
                         f"(Σ in-model layers {r.layer_sum_us / 1000:,.2f} ms)")
        elif r.e2e and r.runtime == "devprof-c":  # a pruned model's composed layer chain
            s = (f"{r.runtime} {r.name.split('|')[-1]}: layer chain {r.e2e.median_us / 1000:,.2f} ms over "
                 f"{sum(x.measurement is not None for x in r.rows)} layers")
            parts.append(s)
        elif r.e2e:
            s = f"{r.runtime}: {r.e2e.median_us / 1000:,.2f} ms"
            if r.rows:
                s += (f" (interleaved {r.reference_us / 1000:,.2f} ms, Σ layer medians {r.layer_sum_us / 1000:,.2f} ms, "
                      f"gap {r.gap:+.1%}, framework overhead {r.framework_us / 1000:,.2f} ms"
                      + (f"; CPU-time end to end {r.cpu_us / 1000:,.2f} ms, gap {r.gap_cpu:+.1%}"
                         if r.gap_cpu == r.gap_cpu else "") + ")")
            parts.append(s)
    return f"{runs[0].name.split('|')[0] if runs else '?'}: " + "; ".join(parts)


def speedup_table(dense, sparse, console) -> None:
    """Per prunable layer: dense vs pruned generated kernel, and the speedup."""
    dtypes = sorted({r.layer.spec.dtype for r in sparse.rows if r.measurement is not None} - {"fp32"})
    t = Table(title=f"{sparse.name}: generated kernels{' in ' + '/'.join(dtypes) if dtypes else ''}, dense vs "
                    "pruned (devprof-c, 1 thread)")
    for c, j in (("#", "right"), ("layer", "left"), ("op", "left"), ("shape", "left"), ("dense µs", "right"),
                 ("pruned µs", "right"), ("speedup", "right")):
        t.add_column(c, justify=j)
    for d, s in zip(dense.rows, sparse.rows):
        if d.measurement is None or s.measurement is None:
            continue
        dm, sm = d.measurement.median_us, s.measurement.median_us
        t.add_row(str(d.layer.index), d.layer.name, s.layer.spec.op + ("*" if s.layer.spec.sparsity.scheme != "dense" else ""),
                  d.layer.shape_str(), f"{dm:,.1f}", f"{sm:,.1f}", f"{dm / sm:.2f}x" if sm > 0 else "-")
    if dense.e2e and sparse.e2e:
        t.caption = (f"layer chain (sum over the {sum(r.measurement is not None for r in sparse.rows)} layers "
                     f"devprof-c runs): dense {dense.e2e.median_us / 1000:,.2f} ms, pruned "
                     f"{sparse.e2e.median_us / 1000:,.2f} ms, {dense.e2e.median_us / sparse.e2e.median_us:.2f}x; "
                     "* = pruned layer")
    console.print(t)


def program_table(dense, sparse, progs: list, console) -> None:
    """Per layer, the pruned model as one generated program: its time inside the program next to
    the same kernel timed alone (what isolated tables miss), and which layers still dominate."""
    prog = progs[-1]
    iso = {r.layer.index: r.measurement for r in sparse.rows if r.measurement is not None}
    total = prog.layer_sum_us or 1.0
    t = Table(title=f"{prog.name}: the model as one generated program (devprof-c, 1 thread), layers timed inside it")
    for c, j in (("#", "right"), ("layer", "left"), ("op", "left"), ("in model µs", "right"), ("share", "right"),
                 ("alone µs", "right")):
        t.add_column(c, justify=j)
    for r in sorted(prog.rows, key=lambda r: -r.measurement.median_us)[:15]:
        s = r.layer.spec
        a = iso.get(r.layer.index)
        t.add_row(str(r.layer.index), r.layer.name, s.op + ("*" if s.sparsity.scheme != "dense" else ""),
                  f"{r.measurement.median_us:,.1f}", f"{r.measurement.median_us / total:.1%}",
                  f"{a.median_us:,.1f}" if a else "-")
    alone = sum(m.median_us for m in iso.values())
    cap = [f"end to end {prog.e2e.median_us / 1000:,.2f} ms; Σ in-model layers {total / 1000:,.2f} ms; "
           f"Σ the same kernels alone {alone / 1000:,.2f} ms"]
    if len(progs) == 2 and progs[0].e2e:
        cap.append(f"dense program {progs[0].e2e.median_us / 1000:,.2f} ms: pruned "
                   f"{progs[0].e2e.median_us / prog.e2e.median_us:.2f}x faster")
    t.caption = "; ".join(cap) + " (15 slowest layers; * = pruned)"
    console.print(t)
