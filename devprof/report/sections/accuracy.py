"""Section 5: how far a predictor bundle can be trusted, from its held-out data.

A bundle (predictors issue) records, at fit time, predictions for kernels and whole models it was
not trained on (heldout.json) and their summary metrics (metadata.json). Those are the fair
figures; this section draws them. Kernels of the report's datasets that the bundle's lookup table
does not hold are a second, independent out-of-sample check.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from .. import figures as F
from .. import fmt
from ..data import BundleInfo, ReportData, finite
from ..model import Figure, Section, Table

TITLE = "Predictor accuracy"
MAX_FIGURES = 4


def _sp(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) and np.isfinite(v) else "–"


def _metric_cells(m: dict) -> list[str]:
    return [fmt.num(m.get("n") or 0), fmt.pct(m.get("within_5")), fmt.pct(m.get("within_10")),
            fmt.pct(m.get("mape")), _sp(m.get("spearman"))]


def heldout_kernels(b: BundleInfo) -> pd.DataFrame:
    k = (b.heldout or {}).get("kernels") or {}
    try:
        df = pd.DataFrame({c: k[c] for c in ("op", "measured_us", "predicted_us")})
    except (KeyError, ValueError, TypeError):
        return pd.DataFrame(columns=["op", "measured_us", "predicted_us"])
    df = df[(df["measured_us"] > 0) & np.isfinite(df["predicted_us"].astype(float))]
    return df.assign(err=(df["predicted_us"] - df["measured_us"]) / df["measured_us"])


def heldout_models(b: BundleInfo) -> pd.DataFrame:
    m = (b.heldout or {}).get("models") or {}
    try:
        df = pd.DataFrame({c: m[c] for c in ("model", "family", "measured_us", "predicted_us")})
    except (KeyError, ValueError, TypeError):
        return pd.DataFrame(columns=["model", "family", "measured_us", "predicted_us"])
    return df[df["measured_us"] > 0]


def build(data: ReportData) -> Section:
    s = Section("accuracy", TITLE, lead=(
        "Accuracy of the latency predictors in the given bundles on data they were not fitted on (held out at fit "
        "time and recorded in the bundle): share of predictions within ±5% and ±10% of the measured median, mean "
        "absolute percentage error (MAPE), and Spearman's rank correlation ρ — search ranks candidates, so ρ "
        "matters as much as the error."))
    if not data.bundles:
        s.missing = "no predictor bundle was given (pass one or more with --bundle DIR)"
        return s
    rows = []
    for b in data.bundles:
        km = (b.metadata.get("metrics") or {}).get("kernel") or {}
        noise = km.get("noise") if isinstance(km.get("noise"), dict) else {}
        per_noise = noise.get("per_op") if isinstance(noise.get("per_op"), dict) else {}
        camp = noise.get("campaigns") if isinstance(noise.get("campaigns"), dict) else {}
        per_camp = camp.get("per_op") if isinstance(camp.get("per_op"), dict) else {}

        def spread(d: Any) -> str:
            return fmt.pct(d.get("median_rel_iqr")) if isinstance(d, dict) else "–"

        def repeat(d: Any) -> str:
            return fmt.pct(d.get("within_10")) if isinstance(d, dict) and d.get("within_10") is not None else "–"

        for op, m in sorted((km.get("per_op") or {}).items()):
            if isinstance(m, dict):
                rows.append([b.label, op, fmt.num(m.get("samples", "–"))] + _metric_cells(m)
                            + [spread(per_noise.get(op)), repeat(per_camp.get(op))])
        if isinstance(km.get("overall"), dict):
            rows.append([b.label, "all ops", fmt.num(sum(int(m.get("samples") or 0) for m in
                                                         (km.get("per_op") or {}).values() if isinstance(m, dict)))]
                        + _metric_cells(km["overall"]) + [spread(noise), repeat(camp)])
        steady = km.get("overall_steady")
        if isinstance(steady, dict) and steady.get("n"):
            rows.append([b.label, "all ops, steady", "–"] + _metric_cells(steady) + ["–", "–"])
    if rows:
        s.add(Table("Held-out kernel accuracy per op type, as recorded in each bundle. Samples: kernels of that op "
                    "in the bundle's data; n: how many were held out and predicted by a regressor fitted without "
                    "them; “steady”: only held-out kernels whose own measurement was not flagged noisy. Spread: the "
                    "median IQR/median of the bundle's measurements — no predictor can be more accurate than the "
                    "numbers it is scored against. Repeat ±10%: of kernels measured in two or more campaigns, how "
                    "often one campaign came within ±10% of the median of the others: how well the measurements "
                    "themselves repeat (the table holds medians over campaigns, which repeat better than one "
                    "campaign does).",
                    ["Bundle", "Op", "Samples", "n held out", "±5%", "±10%", "MAPE", "Spearman ρ", "Spread",
                     "Repeat ±10%"], rows,
                    numeric=[False, False, True, True, True, True, True, True, True, True]))
    drawn = 0
    for b in data.bundles:
        hk, hm = heldout_kernels(b), heldout_models(b)
        if len(hk) and drawn < MAX_FIGURES:
            s.add(_figure(b, hk, hm))
            drawn += 1
    if not drawn:
        s.para("No held-out prediction is stored in the bundles (too few kernels to hold any out when they were "
               "fitted), so no scatter or error distribution can be drawn.", "note")

    mrows = []
    notes = []
    for b in data.bundles:
        mm = (b.metadata.get("metrics") or {}).get("model") or {}
        fams = mm.get("per_family") or {}
        for fam, m in sorted(fams.items()):
            if isinstance(m, dict):
                mrows.append([b.label, fam] + _metric_cells(m) + [""])
        if isinstance(mm.get("overall"), dict):
            lay = mm.get("sum_of_layers_only") or {}
            mrows.append([b.label, "all families"] + _metric_cells(mm["overall"])
                         + [fmt.pct(lay.get("within_10")) if isinstance(lay, dict) else "–"])
            if mm.get("held_out") is False:
                notes.append(f"{b.label}: too few models to hold any out, so its model-level figures are in-sample")
        elif mm.get("note"):
            notes.append(f"{b.label}: {mm['note']}")
    if mrows:
        s.add(Table("Model-level accuracy per family on held-out model variants: a model is predicted as the sum of "
                    "its layers' predictions plus the fitted per-runtime overhead. Last column: ±10% share when the "
                    "layers are summed without the overhead term.",
                    ["Bundle", "Family", "Models", "±5%", "±10%", "MAPE", "Spearman ρ", "Σ layers only ±10%"], mrows,
                    numeric=[False, False, True, True, True, True, True, True]))
    else:
        notes.append("no bundle holds model-level figures (fit on datasets with whole-model runs, e.g. the `models` "
                     "suite, to get them)")
    if notes:
        s.para("Model level: " + "; ".join(notes) + ".", "note")
    _unseen(s, data)
    return s


def _unseen(s: Section, data: ReportData) -> None:
    """Predict this report's kernels for each bundle's device and runtime; score the LUT misses."""
    if data.empty:
        return
    from ...records import KernelSpec

    kern = data.kind("kernel")
    rows, notes = [], []
    for b in data.bundles:
        dev = (b.metadata.get("device") or {}).get("id")
        rkey = (b.metadata.get("runtime") or {}).get("key")
        recs = kern[(kern["device_id"] == dev) & (kern["runtime_key"] == rkey) & (kern["median_us"] > 0)]
        if recs.empty:
            continue
        specs = [KernelSpec.from_dict(json.loads(j)) for j in recs["spec_json"]]
        p = b.predictor.predict(specs)
        src = np.asarray(p.source, dtype=object)
        miss = src != "lut"
        if not miss.any():
            notes.append(f"all {len(recs)} kernels of the datasets for {b.label} are in its lookup table "
                         "(answered exactly), so none tests the regressors")
            continue
        sub = recs[miss]
        err = np.abs(p.latency_us[miss] - sub["median_us"].to_numpy(float)) / sub["median_us"].to_numpy(float)
        for op in sorted(sub["op"].unique()):
            e = err[(sub["op"] == op).to_numpy()]
            rows.append([b.label, op, fmt.num(len(e)), fmt.pct(np.mean(e <= 0.05)), fmt.pct(np.mean(e <= 0.10)),
                         fmt.pct(np.mean(e))])
    if rows:
        s.add(Table("Kernels in this report's datasets that the bundle's lookup table does not hold (measured on the "
                    "bundle's device and runtime), predicted by its regressors: an independent out-of-sample check.",
                    ["Bundle", "Op", "Kernels", "±5%", "±10%", "MAPE"], rows,
                    numeric=[False, False, True, True, True, True]))
    if notes:
        s.para("; ".join(n[0].upper() + n[1:] for n in notes) + ".", "note")


def _figure(b: BundleInfo, hk: pd.DataFrame, hm: pd.DataFrame) -> Figure:
    ops = sorted(hk["op"].unique())
    ocol = {op: i for i, op in enumerate(ops)}
    from matplotlib.ticker import FuncFormatter

    panels = 3 if len(hm) else 2
    with F.style():
        fig, axes = F.new(panels, 1, height=2.45)
        ax1, ax2 = axes[0], axes[1]
        for op, g in hk.groupby("op"):
            i = ocol[op]
            F.scatter(ax1, g["measured_us"], g["predicted_us"], color=F.color(i), marker=F.marker(i), label=op)
            a = np.maximum(np.sort(np.abs(g["err"].to_numpy(float))), 1e-4)
            ax2.step(a, np.arange(1, a.size + 1) / a.size, where="post", color=F.color(i), label=op)
        _diag(ax1, np.concatenate([hk["measured_us"].to_numpy(float), hk["predicted_us"].to_numpy(float)]))
        ax1.set_xlabel("measured median (µs)")
        ax1.set_ylabel("predicted (µs)")
        ax1.set_title("(a) kernels: predicted vs measured", loc="left")
        allerr = np.maximum(np.abs(hk["err"].to_numpy(float)), 1e-4)
        F.log_axis(ax2, "x", np.concatenate([allerr, [0.02, 0.2]]))
        ax2.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}%"))
        for t in (0.05, 0.10):
            ax2.axvline(t, color="#b00", ls="--", lw=0.7)
        ax2.set_ylim(0, 1.02)
        ax2.set_xlabel("|relative error|")
        ax2.set_ylabel("share of held-out kernels ≤ x")
        ax2.set_title("(b) error CDF (dashed: 5%, 10%)", loc="left")
        handles, labels = ax1.get_legend_handles_labels()
        if panels == 3:
            ax3 = axes[2]
            fams = sorted(hm["family"].unique())
            for j, fam in enumerate(fams):
                g = hm[hm["family"] == fam]
                F.scatter(ax3, g["measured_us"] / 1e3, g["predicted_us"] / 1e3, color=F.color(len(ops) + j),
                          marker=F.marker(len(ops) + j), label=fam, s=16)
            _diag(ax3, np.concatenate([hm["measured_us"].to_numpy(float), hm["predicted_us"].to_numpy(float)]) / 1e3)
            ax3.set_xlabel("measured end-to-end (ms)")
            ax3.set_ylabel("predicted (ms)")
            ax3.set_title("(c) held-out models", loc="left")
            h3, l3 = ax3.get_legend_handles_labels()
            handles += [h for h, lab in zip(h3, l3) if lab != "±10%"]
            labels += [lab for lab in l3 if lab != "±10%"]
        keep = [(h, lab) for h, lab in zip(handles, labels) if lab != "±10%"]
        F.legend_below(fig, [h for h, _ in keep], [lab for _, lab in keep], markerscale=1.5)
        uri = F.to_data_uri(fig)
    return Figure(f"Held-out predictions of bundle {b.label}: (a) predicted vs measured latency per kernel (grey "
                  "band: ±10%), (b) cumulative distribution of the absolute relative error per op type"
                  + (", (c) whole models per family (sum of layers plus overhead)." if panels == 3 else "."),
                  uri, alt=f"predicted vs measured scatter and error CDF for {b.label}")


def _diag(ax, values: np.ndarray) -> None:
    v = finite(values)
    v = v[v > 0]
    lo, hi = (v.min() / 1.5, v.max() * 1.5) if v.size else (1, 10)
    x = np.geomspace(lo, hi, 20)
    ax.plot(x, x, color="#333", lw=0.7)
    ax.fill_between(x, x * 0.9, x * 1.1, color="#888", alpha=0.2, lw=0, label="±10%")
    F.log_axis(ax, "x", x)
    F.log_axis(ax, "y", x)
