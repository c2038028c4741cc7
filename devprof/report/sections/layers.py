"""Section 6: where a model's time goes. Per-layer breakdown of whole-model runs (layer records
linked to their end-to-end model record by `model_run_id`)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import figures as F
from .. import fmt
from ..data import ReportData
from ..model import Figure, Section, Table

TITLE = "Per-layer breakdown of models"
MAX_BARS = 24
TOP_PER_MODEL = 3
MAX_TOP_ROWS = 30


def _runs(data: ReportData) -> tuple[pd.DataFrame, pd.DataFrame]:
    layers = data.kind("layer")
    layers = layers[layers["model_run_id"] != ""]
    models = data.kind("model")
    return layers, models


def build(data: ReportData) -> Section:
    s = Section("layers", TITLE, lead=(
        "Each bar is one profiled model run split by op type, from the per-layer timings of that run, next to the "
        "run's end-to-end median. The gap between the summed layers and the end-to-end time is per-model overhead "
        "(graph dispatch, memory reorders, fusion the per-layer profile cannot attribute)."))
    if data.empty:
        s.missing = "the datasets hold no records"
        return s
    layers, models = _runs(data)
    if layers.empty:
        s.missing = ("no per-layer records of a whole-model run are in the data (profile a model, e.g. "
                     "`devprof profile --suite models`)" + (f"; {len(models)} end-to-end model records alone "
                                                            "cannot be broken down" if len(models) else ""))
        return s
    e2e = models.drop_duplicates("model_run_id").set_index("model_run_id")["median_us"]
    runs = []
    for run_id, g in layers.groupby("model_run_id", sort=False):
        name = g["model_name"].iloc[0] or run_id[:8]
        label = f"{name} · {g['device_label'].iloc[0]} · {g['runtime_label'].iloc[0]}"
        total = float(g["median_us"].sum())
        runs.append((label, run_id, g, total, float(e2e.get(run_id, np.nan))))
    runs.sort(key=lambda r: r[0])
    # disambiguate identical labels (the same model measured twice)
    seen: dict[str, int] = {}
    for i, r in enumerate(runs):
        n = seen.get(r[0], 0)
        seen[r[0]] = n + 1
        if n:
            runs[i] = (f"{r[0]} #{n + 1}",) + r[1:]
    s.add(_figure(runs[:MAX_BARS]))
    if len(runs) > MAX_BARS:
        s.para(f"The figure shows {MAX_BARS} of {len(runs)} model runs; the tables list all.", "note")

    rows = []
    for label, run_id, g, total, e in runs:
        by_op = g.groupby("op")["median_us"].sum().sort_values(ascending=False)
        top_op = f"{by_op.index[0]} ({fmt.pct(by_op.iloc[0] / total, 0)})" if total > 0 else "–"
        gap = (e - total) / e if np.isfinite(e) and e > 0 else np.nan
        rows.append([label, fmt.num(len(g)), fmt.us(e), fmt.us(total), fmt.pct(gap), top_op])
    s.add(Table("Model runs: end-to-end median against the sum of the layer medians. Overhead = (end-to-end − Σ "
                "layers) / end-to-end; a negative value means layers overlap or were timed slower alone.",
                ["Model · device · runtime", "Layers", "End-to-end", "Σ layers", "Overhead", "Largest op type"],
                rows, numeric=[False, True, True, True, True, False]))
    rows = []
    for label, run_id, g, total, e in runs:
        top = g.sort_values("median_us", ascending=False).head(TOP_PER_MODEL)
        for r in top.itertuples(index=False):
            name = r.layer_name or f"#{r.layer_index}"
            rows.append([label, str(r.layer_index), name, r.op, _shape(r), fmt.us(r.median_us),
                         fmt.pct(r.median_us / total if total else np.nan)])
            if len(rows) >= MAX_TOP_ROWS:
                break
        if len(rows) >= MAX_TOP_ROWS:
            break
    s.add(Table(f"The {TOP_PER_MODEL} most expensive layers of each model run, by share of the summed layer "
                "latency" + (f" (first {MAX_TOP_ROWS} rows)" if len(rows) >= MAX_TOP_ROWS else "") + ".",
                ["Model · device · runtime", "#", "Layer", "Op", "Shape", "Median", "Share"], rows,
                numeric=[False, True, False, False, False, True, True]))
    no_e2e = sum(1 for r in runs if not np.isfinite(r[4]))
    if no_e2e:
        s.para(f"{no_e2e} model run(s) have layer records but no end-to-end model record; their overhead is unknown.",
               "note")
    return s


def _shape(r) -> str:
    if r.op == "fc":
        return f"{r.cin}→{r.cout}"
    k = f" k{r.kh}" + (f" s{r.stride}" if r.stride != 1 else "") if r.kh > 1 or r.stride > 1 else ""
    return f"{r.h}×{r.w}×{r.cin}→{r.cout}{k}"


def _figure(runs) -> Figure:
    ops = pd.concat([g for _, _, g, _, _ in runs]).groupby("op")["median_us"].sum().sort_values(ascending=False)
    oplist = list(ops.index)
    with F.style():
        h = max(1.6, 0.26 * len(runs) + 0.9)
        fig, (ax,) = F.new(1, 1, height=h)
        y = np.arange(len(runs))[::-1]
        for yi, (label, run_id, g, total, e) in zip(y, runs):
            left = 0.0
            by_op = g.groupby("op")["median_us"].sum()
            for i, op in enumerate(oplist):
                v = 100.0 * float(by_op.get(op, 0.0)) / total if total > 0 else 0.0
                if v > 0:
                    ax.barh(yi, v, left=left, height=0.66, color=F.color(i), label=op, edgecolor="white",
                            linewidth=0.3)
                    left += v
            txt = f"Σ {_ms(total)}" + (f" · e2e {_ms(e)}" if np.isfinite(e) else "")
            ax.text(101.5, yi, txt, va="center", ha="left", fontsize=6.5, color="#333")
        ax.set_yticks(y, [F.short(r[0], 60) for r in runs])
        ax.set_xlim(0, 100)
        ax.set_xlabel("share of the summed layer latency (%)")
        ax.grid(axis="y", visible=False)
        ax.spines["right"].set_visible(False)
        handles, labels = ax.get_legend_handles_labels()
        uniq = {}
        for hnd, lab in zip(handles, labels):
            uniq.setdefault(lab, hnd)
        F.legend_below(fig, list(uniq.values()), list(uniq.keys()))
        fig.get_layout_engine().set(w_pad=0.02, rect=(0, 0, 0.9, 1))
        uri = F.to_data_uri(fig)
    return Figure("Composition of each model run by op type, as shares of the summed per-layer medians (100% "
                  "stacked). Right: the summed layer latency (Σ) and the end-to-end median (e2e) of the same run.",
                  uri, alt="stacked per-layer bars per model")


def _ms(us: float) -> str:
    return f"{us / 1e3:.3g} ms"
