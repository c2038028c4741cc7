"""Section 5: how far a predictor bundle can be trusted. Held-out metrics from each bundle's
metadata, plus predicted-vs-measured on the given datasets' records for the bundle's device and
runtime (kernels and, when whole-model runs are present, models per family)."""
from __future__ import annotations

import json
import re
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .. import figures as F
from .. import fmt
from ..data import BundleInfo, ReportData, finite
from ..model import Figure, Section, Table

TITLE = "Predictor accuracy"
METRIC_KEYS = ("within_5", "within_10")


def _summaries(obj: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dict]]:
    """Every held-out summary ({n, within_5, within_10, mape, ...}) nested anywhere in metadata."""
    if isinstance(obj, dict):
        if any(k in obj for k in METRIC_KEYS):
            yield path, obj
            return
        for k, v in obj.items():
            yield from _summaries(v, path + (str(k),))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            name = v.get("op") or v.get("family") or v.get("name") if isinstance(v, dict) else None
            yield from _summaries(v, path + (str(name or i),))


def _metric_row(label: str, scope: str, m: dict) -> list[str]:
    sp = m.get("spearman")
    return [label, scope, fmt.num(m.get("n")), fmt.pct(m.get("within_5")), fmt.pct(m.get("within_10")),
            fmt.pct(m.get("mape")), fmt.us(m.get("rmse_us")) if m.get("rmse_us") is not None else "–",
            f"{sp:.3f}" if isinstance(sp, (int, float)) else "–"]


_COLS = ["Bundle", "Scope", "n", "±5%", "±10%", "MAPE", "RMSE", "Spearman"]
_NUM = [False, False, True, True, True, True, True, True]


def _find(meta: Any, *names: str) -> str:
    """First string value under any of `names`, searched breadth-first (metadata layouts vary)."""
    queue = [meta]
    while queue:
        cur = queue.pop(0)
        if isinstance(cur, dict):
            for n in names:
                v = cur.get(n)
                if isinstance(v, str) and v:
                    return v
            queue.extend(v for v in cur.values() if isinstance(v, (dict, list)))
        elif isinstance(cur, list):
            queue.extend(v for v in cur if isinstance(v, (dict, list)))
    return ""


def matching_records(b: BundleInfo, df: pd.DataFrame) -> pd.DataFrame:
    """The records measured on the bundle's device and runtime (by fingerprint id and runtime key)."""
    if df.empty:
        return df
    dev = _find(b.metadata, "device_id")
    rkey = _find(b.metadata, "runtime_key")
    rname = _find(b.metadata, "runtime_name", "runtime") or b.path.name
    m = df
    if dev:
        m = m[m["device_id"] == dev]
    if rkey:
        m = m[m["runtime_key"] == rkey]
    elif rname:
        m = m[m["runtime"] == rname]
    return m


def _predict(pred: Any, specs: list) -> tuple[np.ndarray, np.ndarray]:
    """Predictions (µs) and per-row source ("lut"/"model"), whatever shape `predict` returns."""
    try:
        out = pred.predict(specs)
    except Exception as e:  # noqa: BLE001 - a prediction failure is reported, not fatal
        raise RuntimeError(" ".join(str(e).split()) or type(e).__name__) from None
    src = np.array(["model"] * len(specs), dtype=object)
    if isinstance(out, pd.DataFrame):
        col = next((c for c in ("latency_us", "pred_us", "predicted_us", "median_us", "us") if c in out.columns),
                   out.select_dtypes("number").columns[0])
        if "source" in out.columns:
            src = out["source"].astype(str).to_numpy(object)
        return out[col].to_numpy(float), src
    for attr in ("source", "sources"):
        if hasattr(out, attr):
            src = np.asarray(getattr(out, attr), dtype=object)
    for attr in ("latency_us", "us", "values"):
        if hasattr(out, attr) and not callable(getattr(out, attr)):
            return np.asarray(getattr(out, attr), float), src
    return np.asarray(out, float), src


def family(model_name: str) -> str:
    """A model's family from its name (variant suffixes such as ``-v3`` or ``_s7`` dropped)."""
    return re.sub(r"([-_.](v|var|variant|s|seed)?\d+)+$", "", model_name or "") or model_name or "?"


def build(data: ReportData) -> Section:
    s = Section("accuracy", TITLE, lead=(
        "Accuracy of the latency predictors in the given bundles. Held-out figures come from each bundle's "
        "metadata (kernels the fit never saw); the scatter and error CDF predict this report's records for the "
        "bundle's device and runtime. Search cares about ranking, so Spearman's rank correlation is given too."))
    if not data.bundles:
        s.missing = "no predictor bundle was given (pass one or more with --bundle DIR)"
        return s
    rows, mrows = [], []
    for b in data.bundles:
        for path, m in _summaries(b.metadata):
            scope = " / ".join(p for p in path if p not in ("metrics", "heldout", "held_out", "test")) or "all"
            (mrows if any("model" in p for p in path) else rows).append(_metric_row(b.label, scope, m))
        if b.load_error:
            s.para(f"Bundle {b.label} could not be loaded ({b.load_error}); only its metadata is shown.", "warn")
    if rows:
        s.add(Table("Held-out kernel accuracy recorded in the bundles: share of predictions within ±5% and ±10% "
                    "of the measured median, mean absolute percentage error, RMSE and Spearman ρ.", _COLS, rows,
                    numeric=_NUM))
    if mrows:
        s.add(Table("Held-out model-level accuracy recorded in the bundles (end-to-end latency predicted as the sum "
                    "of layers plus the fitted per-runtime overhead).", _COLS, mrows, numeric=_NUM))

    evals, model_evals = [], []
    for b in data.bundles:
        if b.predictor is None or data.empty:
            continue
        recs = matching_records(b, data.kind("kernel"))
        recs = recs[recs["median_us"] > 0]
        if len(recs):
            from ...records import KernelSpec

            specs = [KernelSpec.from_dict(json.loads(j)) for j in recs["spec_json"]]
            try:
                p, src = _predict(b.predictor, specs)
            except RuntimeError as e:
                s.para(f"Bundle {b.label}: prediction failed ({e}).", "warn")
                continue
            evals.append(pd.DataFrame({"bundle": b.label, "op": recs["op"].to_numpy(),
                                       "measured": recs["median_us"].to_numpy(float), "predicted": p,
                                       "source": src}))
        model_evals.extend(_model_eval(b, data))
    if evals:
        ev = pd.concat(evals, ignore_index=True)
        ev["err"] = (ev["predicted"] - ev["measured"]) / ev["measured"]
        ev = ev[np.isfinite(ev["err"])]
        s.add(_figure(ev))
        rows = []
        for (bl, op), g in ev.groupby(["bundle", "op"], sort=True):
            a = np.abs(g["err"].to_numpy(float))
            lut = int((g["source"] == "lut").sum())
            rows.append([bl, op, fmt.num(len(g)), fmt.num(lut), fmt.pct(np.mean(a <= 0.05)),
                         fmt.pct(np.mean(a <= 0.10)), fmt.pct(np.mean(a)), _spearman(g)])
        s.add(Table("Accuracy on this report's records per op type. LUT rows are exact table hits (the bundle "
                    "was fitted on them); the held-out table above is the fair estimate for unseen kernels.",
                    ["Bundle", "Op", "n", "LUT hits", "±5%", "±10%", "MAPE", "Spearman"], rows,
                    numeric=[False, False, True, True, True, True, True, True]))
    if model_evals:
        me = pd.DataFrame(model_evals)
        rows = []
        for (bl, fam), g in me.groupby(["bundle", "family"], sort=True):
            a = np.abs(g["err"].to_numpy(float))
            rows.append([bl, fam, fmt.num(len(g)), fmt.pct(np.mean(a <= 0.05)), fmt.pct(np.mean(a <= 0.10)),
                         fmt.pct(np.mean(a)), fmt.pct(float(np.median(g["err"])))])
        s.add(Table("Model-level accuracy per family on this report's whole-model runs (predicted from the runs' "
                    "layer specs vs the measured end-to-end median).",
                    ["Bundle", "Family", "Models", "±5%", "±10%", "MAPE", "Median error"], rows,
                    numeric=[False, False, True, True, True, True, True]))
    if not evals and not model_evals:
        why = ("the datasets hold no records" if data.empty else
               "no loadable bundle matches a device and runtime in the datasets")
        if not rows and not mrows:
            s.missing = f"the bundles carry no held-out metrics and {why}"
        else:
            s.para(f"No predicted-vs-measured figure: {why}.", "note")
    return s


def _spearman(g: pd.DataFrame) -> str:
    if len(g) < 3:
        return "–"
    r = g[["predicted", "measured"]].rank()
    v = float(np.corrcoef(r["predicted"], r["measured"])[0, 1])
    return f"{v:.3f}" if np.isfinite(v) else "–"


def _model_eval(b: BundleInfo, data: ReportData) -> list[dict]:
    pm = getattr(b.predictor, "predict_model", None)
    if pm is None:
        return []
    layers = matching_records(b, data.kind("layer"))
    models = matching_records(b, data.kind("model"))
    if layers.empty or models.empty:
        return []
    from ...records import KernelSpec

    e2e = models.drop_duplicates("model_run_id").set_index("model_run_id")
    out = []
    for run_id, g in layers.groupby("model_run_id"):
        if run_id not in e2e.index:
            continue
        specs = [KernelSpec.from_dict(json.loads(j)) for j in g.sort_values("layer_index")["spec_json"]]
        try:
            v = pm(specs)
        except Exception:  # noqa: BLE001 - a model the predictor cannot handle is skipped
            continue
        v = float(getattr(v, "latency_us", v) if not isinstance(v, (int, float)) else v)
        meas = float(e2e.loc[run_id, "median_us"])
        if meas > 0 and np.isfinite(v):
            out.append({"bundle": b.label, "family": family(e2e.loc[run_id, "model_name"]),
                        "err": (v - meas) / meas})
    return out


def _figure(ev: pd.DataFrame) -> Figure:
    ops = sorted(ev["op"].unique())
    ocol = {op: i for i, op in enumerate(ops)}
    with F.style():
        fig, (ax1, ax2) = F.new(2, 1, height=2.6)
        for op, g in ev.groupby("op"):
            i = ocol[op]
            F.scatter(ax1, g["measured"], g["predicted"], color=F.color(i), marker=F.marker(i), label=op)
            a = np.sort(np.abs(g["err"].to_numpy(float)))
            a = np.maximum(a, 1e-4)
            ax2.step(a, np.arange(1, a.size + 1) / a.size, where="post", color=F.color(i), label=op)
        lo = max(min(finite(ev["measured"]).min(), finite(ev["predicted"]).min()) / 1.5, 1e-3)
        hi = max(finite(ev["measured"]).max(), finite(ev["predicted"]).max()) * 1.5
        x = np.geomspace(lo, hi, 20)
        ax1.plot(x, x, color="#333", lw=0.7)
        ax1.fill_between(x, x * 0.9, x * 1.1, color="#888", alpha=0.18, lw=0, label="±10%")
        F.log_axis(ax1, "x", x)
        F.log_axis(ax1, "y", x)
        ax1.set_xlabel("measured median (µs)")
        ax1.set_ylabel("predicted (µs)")
        ax1.set_title("(a) predicted vs measured", loc="left")
        ax1.legend(loc="upper left", markerscale=1.6)
        ax2.set_xscale("log")
        from matplotlib.ticker import FuncFormatter

        ax2.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}%"))
        for t in (0.05, 0.10):
            ax2.axvline(t, color="#b00", ls="--", lw=0.7)
        ax2.set_ylim(0, 1.02)
        ax2.set_xlabel("|relative error|")
        ax2.set_ylabel("share of kernels ≤ x")
        ax2.set_title("(b) error CDF (dashed: 5%, 10%)", loc="left")
        uri = F.to_data_uri(fig)
    return Figure("Predicted vs measured latency of this report's kernels (a), with the ±10% band, and the "
                  "cumulative distribution of the absolute relative error per op type (b).", uri,
                  alt="predicted vs measured scatter and error CDF")
