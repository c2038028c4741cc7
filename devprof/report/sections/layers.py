"""Section 6: where a model's time goes. Per-layer breakdown of whole-model runs: layer records
linked to their end-to-end model record by `model_run_id`. A layer record whose attrs say
``term=overhead`` (the framework's per-run overhead) is drawn as its own segment, not as a layer."""
from __future__ import annotations

import json

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
OVERHEAD = "(overhead)"


def _is_overhead(df: pd.DataFrame) -> pd.Series:
    def term(js: str) -> bool:
        try:
            return json.loads(js or "{}").get("term") == "overhead"
        except (ValueError, AttributeError):
            return False

    return (df["layer_name"] == OVERHEAD) | df["attrs"].map(term)


def runs(data: ReportData) -> list[dict]:
    """Every model run: its label, end-to-end median (nan if absent), layers and overhead term."""
    layers = data.kind("layer")
    layers = layers[layers["model_run_id"] != ""]
    models = data.kind("model")
    models = models[models["model_run_id"] != ""].drop_duplicates("model_run_id")
    ov_mask = _is_overhead(layers) if len(layers) else pd.Series(dtype=bool)
    out = []
    ids = list(dict.fromkeys(list(models["model_run_id"]) + list(layers["model_run_id"])))
    by_model = models.set_index("model_run_id")
    for run_id in ids:
        lay = layers[layers["model_run_id"] == run_id]
        ov = lay[ov_mask[lay.index]] if len(lay) else lay
        lay = lay[~ov_mask[lay.index]] if len(lay) else lay
        src = by_model.loc[run_id] if run_id in by_model.index else (lay.iloc[0] if len(lay) else ov.iloc[0])
        name = src["model_name"] or run_id[:8]
        dt = "" if src.get("dtype", "fp32") == "fp32" else f" · {src['dtype']}"  # int8 runs apart from fp32
        out.append({"label": f"{name}{dt} · {src['device_label']} · {src['runtime_label']}", "name": name,
                    "run_id": run_id, "layers": lay, "sum": float(lay["median_us"].sum()),
                    "overhead": float(ov["median_us"].sum()) if len(ov) else np.nan,
                    "e2e": float(by_model.loc[run_id, "median_us"]) if run_id in by_model.index else np.nan})
    out.sort(key=lambda r: r["label"])
    seen: dict[str, int] = {}
    for r in out:  # the same model measured twice gets #2, #3...
        n = seen.get(r["label"], 0)
        seen[r["label"]] = n + 1
        if n:
            r["label"] += f" #{n + 1}"
    return out


def build(data: ReportData) -> Section:
    s = Section("layers", TITLE, lead=(
        "Each bar is one profiled model run split by op type, from the per-layer timings of that run (100% = the "
        "summed layer medians), with the run's end-to-end median beside it. End-to-end minus the summed layers is "
        "per-model overhead: graph dispatch, input/output copies, and fusion or overlap the per-layer profile "
        "cannot attribute. Runtimes that only time whole models appear in the table alone."))
    if data.empty:
        s.missing = "the datasets hold no records"
        return s
    allruns = runs(data)
    with_layers = [r for r in allruns if len(r["layers"])]
    if not with_layers:
        s.missing = ("no per-layer records of a whole-model run are in the data (profile a model, e.g. "
                     "`devprof profile --model mobilenetv2` or `--suite models`)"
                     + (f"; the {len(allruns)} end-to-end model records alone cannot be broken down"
                        if allruns else ""))
        return s
    s.add(_figure(with_layers[:MAX_BARS]))
    if len(with_layers) > MAX_BARS:
        s.para(f"The figure shows {MAX_BARS} of {len(with_layers)} model runs; the tables list all.", "note")

    rows = []
    for r in allruns:
        lay, total, e, ov = r["layers"], r["sum"], r["e2e"], r["overhead"]
        if len(lay) and total > 0:
            by_op = lay.groupby("op")["median_us"].sum().sort_values(ascending=False)
            top_op = f"{by_op.index[0]} ({fmt.pct(by_op.iloc[0] / total, 0)})"
        else:
            top_op = "–"
        explained = total + (ov if np.isfinite(ov) else 0.0)
        gap = (e - explained) / e if np.isfinite(e) and e > 0 and len(lay) else np.nan
        rows.append([r["label"], fmt.num(len(lay)) if len(lay) else "–", fmt.us(e),
                     fmt.us(total) if len(lay) else "–", fmt.us(ov), fmt.pct(gap), top_op])
    s.add(Table("Model runs: end-to-end median, the sum of the layer medians, the recorded per-run overhead term "
                "(framework time outside the kernels, when the runtime reports it) and the share of the end-to-end "
                "time neither explains (gap = (end-to-end − Σ layers − overhead) / end-to-end; large when the "
                "machine was loaded, negative when layers overlap).",
                ["Model · device · runtime", "Layers", "End-to-end", "Σ layers", "Overhead term", "Gap",
                 "Largest op type"], rows, numeric=[False, True, True, True, True, True, False]))
    rows = []
    for r in with_layers:
        top = r["layers"].sort_values("median_us", ascending=False).head(TOP_PER_MODEL)
        for x in top.itertuples(index=False):
            rows.append([r["label"], str(x.layer_index), x.layer_name or f"#{x.layer_index}", x.op, _shape(x),
                         fmt.us(x.median_us), fmt.pct(x.median_us / r["sum"] if r["sum"] else np.nan)])
        if len(rows) >= MAX_TOP_ROWS:
            break
    s.add(Table(f"The {TOP_PER_MODEL} most expensive layers of each model run, by share of the summed layer latency"
                + (f" (first {MAX_TOP_ROWS} rows)" if len(rows) >= MAX_TOP_ROWS else "") + ".",
                ["Model · device · runtime", "#", "Layer", "Op", "Shape", "Median", "Share"], rows,
                numeric=[False, True, False, False, False, True, True]))
    return s


def _shape(r) -> str:
    if r.op == "fc":
        return f"{r.cin}→{r.cout}"
    k = (f" k{r.kh}" + (f" s{r.stride}" if r.stride != 1 else "")) if r.kh > 1 or r.stride > 1 else ""
    return f"{r.h}×{r.w}×{r.cin}→{r.cout}{k}"


def _ms(us: float) -> str:
    return f"{us / 1e3:.3g} ms"


def _figure(runs: list[dict]) -> Figure:
    ops = pd.concat([r["layers"] for r in runs]).groupby("op")["median_us"].sum().sort_values(ascending=False)
    oplist = list(ops.index)
    with F.style():
        h = max(1.6, 0.26 * len(runs) + 0.9)
        fig, (ax,) = F.new(1, 1, height=h)
        y = np.arange(len(runs))[::-1]
        for yi, r in zip(y, runs):
            left = 0.0
            by_op = r["layers"].groupby("op")["median_us"].sum()
            for i, op in enumerate(oplist):
                v = 100.0 * float(by_op.get(op, 0.0)) / r["sum"] if r["sum"] > 0 else 0.0
                if v > 0:
                    ax.barh(yi, v, left=left, height=0.66, color=F.color(i), label=op, edgecolor="white",
                            linewidth=0.3)
                    left += v
            txt = f"Σ {_ms(r['sum'])}" + (f" · e2e {_ms(r['e2e'])}" if np.isfinite(r["e2e"]) else "")
            ax.text(101.5, yi, txt, va="center", ha="left", fontsize=6.5, color="#333")
        ax.set_yticks(y, [F.short(r["label"], 60) for r in runs])
        ax.set_xlim(0, 100)
        ax.set_xlabel("share of the summed layer latency (%)")
        ax.grid(axis="y", visible=False)
        handles, labels = ax.get_legend_handles_labels()
        uniq: dict = {}
        for hnd, lab in zip(handles, labels):
            uniq.setdefault(lab, hnd)
        F.legend_below(fig, list(uniq.values()), list(uniq.keys()))
        fig.get_layout_engine().set(rect=(0, 0, 0.88, 1))
        uri = F.to_data_uri(fig)
    return Figure("Composition of each model run by op type, as shares of the summed per-layer medians (100% "
                  "stacked). Right: the summed layer latency (Σ) and the end-to-end median (e2e) of the same run.",
                  uri, alt="stacked per-layer bars per model")
