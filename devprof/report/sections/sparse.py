"""Section 4: what sparsity buys. Speedup of each pruning scheme over dense baselines of the same
shape and data type, on the same device and thread count, against the sparsity ratio; break-even
marked. One set of curves per data type: int8 sparse kernels are compared with int8 dense ones."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import figures as F
from .. import fmt
from ..data import ReportData, geomean
from ..model import Figure, Section, Table

TITLE = "Sparse speedup vs sparsity"
MAX_PANELS = 6
MAX_CURVES = 8


def speedups(data: ReportData) -> pd.DataFrame:
    """One row per (sparse record, dense baseline runtime): speedup = baseline / sparse latency."""
    df = data.kind("kernel")
    df = df[df["median_us"] > 0]
    sparse = df[df["scheme"] != "dense"]
    dense = df[df["scheme"] == "dense"]
    if sparse.empty or dense.empty:
        return pd.DataFrame()
    # a baseline is the median over its duplicates (e.g. bias/activation variants) per shape
    base = (dense.groupby(["device_id", "threads", "shape_key", "runtime_label"], as_index=False)["median_us"]
            .median().rename(columns={"median_us": "base_us", "runtime_label": "baseline"}))
    m = sparse.merge(base, on=["device_id", "threads", "shape_key"])  # the shape key holds the dtype
    if m.empty:
        return m
    m["speedup"] = m["base_us"] / m["median_us"]
    m["curve"] = curve_labels(m)
    return m


def curve_labels(df: pd.DataFrame) -> list[str]:
    """One curve per scheme. Parameters join the label only when they split a scheme at one ratio
    (e.g. bcr 4x16 and bcr 16x4 both at 0.9); N:M, whose parameters change with the ratio, stays one
    curve."""
    split = set()
    for scheme, g in df.groupby("scheme"):
        if (g.groupby("sparsity_ratio")["scheme_label"].nunique() > 1).any():
            split.add(scheme)
    return [lab if sch in split else sch for sch, lab in zip(df["scheme"], df["scheme_label"])]


def break_even(ratios: np.ndarray, speed: np.ndarray) -> float:
    """Lowest sparsity ratio at which the (interpolated) speedup reaches 1; nan when never."""
    order = np.argsort(ratios)
    r, s = ratios[order], speed[order]
    if not r.size:
        return math.nan
    if s[0] >= 1:
        return -float(r[0])  # negative: already at least as fast at the lowest ratio measured
    for i in range(1, r.size):
        if s[i] >= 1 > s[i - 1]:
            # interpolate in log-speedup, which is close to linear in the ratio for these curves
            a, b = math.log(s[i - 1]), math.log(s[i])
            return float(r[i - 1] + (r[i] - r[i - 1]) * (0 - a) / (b - a))
    return math.nan


def _be_text(be: float) -> str:
    if math.isnan(be):
        return "not reached"
    if be < 0:
        return f"≤ {-be:g} (faster at every ratio)"
    return f"{be:.2f}"


def build(data: ReportData) -> Section:
    s = Section("sparse", TITLE, lead=(
        "Speedup of each sparsity scheme over a dense kernel of the same shape and data type on the same device "
        "and thread count (baseline latency / sparse latency; > 1 means faster), as the geometric mean over the shapes "
        "measured at each ratio. Curves cross 1 at the break-even ratio (marked ×): a pruning search should only "
        "pay for sparsity beyond it."))
    if data.empty:
        s.missing = "the datasets hold no records"
        return s
    kern = data.kind("kernel")
    nsparse = int((kern["scheme"] != "dense").sum())
    if nsparse == 0:
        s.missing = ("no sparse kernel records are in the data (profile a sparse suite such as `sparse-sweep` "
                     "with the devprof-c runtime)")
        return s
    sp = speedups(data)
    if sp.empty:
        s.missing = (f"{nsparse} sparse kernel records are present but none has a dense baseline of the same "
                     "shape on the same device and thread count")
        return s
    agg = (sp.groupby(["device_label", "dtype", "baseline", "curve", "sparsity_ratio"])
           .agg(speedup=("speedup", geomean), lo=("speedup", "min"), hi=("speedup", "max"),
                shapes=("shape_key", "nunique"), params=("scheme_label", lambda v: ", ".join(sorted(set(v)))))
           .reset_index())
    panels = list(agg.groupby(["device_label", "dtype", "baseline"], sort=True))
    schemes = sorted(agg["curve"].unique())
    scolor = {sch: i for i, sch in enumerate(schemes)}
    s.add(_figure(panels[:MAX_PANELS], scolor))
    if len(panels) > MAX_PANELS:
        s.para(f"The figure shows {MAX_PANELS} of {len(panels)} device/dtype/baseline sets; the table lists all.",
               "note")

    ratios = sorted(agg["sparsity_ratio"].unique())
    rows = []
    for (dev, dtype, baseline, sch), g in agg.groupby(["device_label", "dtype", "baseline", "curve"], sort=True):
        by_r = dict(zip(g["sparsity_ratio"], g["speedup"]))
        be = break_even(g["sparsity_ratio"].to_numpy(float), g["speedup"].to_numpy(float))
        variants = sorted(set(", ".join(g["params"]).split(", ")))
        label = variants[0] if len(variants) == 1 else (
            f"{sch} (" + ", ".join(v[len(sch) + 1:-1] if v.startswith(sch + "(") else v for v in variants) + ")")
        rows.append([dev, dtype, baseline, label, fmt.num(int(g["shapes"].max()))]
                    + [fmt.ratio(by_r.get(r, math.nan)) for r in ratios] + [_be_text(be)])
    s.add(Table("Geometric-mean speedup over the dense baseline at each sparsity ratio, and the break-even ratio "
                "(interpolated in log-speedup between the measured ratios).",
                ["Device", "Dtype", "Dense baseline", "Scheme", "Shapes"] + [f"{r:g}" for r in ratios]
                + ["Break-even"], rows, numeric=[False, False, False, False, True] + [True] * len(ratios) + [True]))
    unmatched = nsparse - sp.drop_duplicates("record_key").shape[0]
    if unmatched:
        s.para(f"{unmatched} sparse records have no dense baseline of the same shape and are not shown.", "note")
    return s


def _figure(panels, scolor) -> Figure:
    with F.style():
        ncols, nrows = F.grid_shape(len(panels), 3)
        fig, axes = F.new(ncols, nrows, height=2.2, sharey=False, width=F.grid_width(ncols))
        for ax, ((dev, dtype, baseline), g) in zip(axes, panels):
            for sch, c in g.groupby("curve"):
                if scolor[sch] >= MAX_CURVES:
                    continue
                c = c.sort_values("sparsity_ratio")
                x, y = c["sparsity_ratio"].to_numpy(float), c["speedup"].to_numpy(float)
                i = scolor[sch]
                ax.plot(x, y, marker=F.marker(i), color=F.color(i), label=sch, ms=3)
                if len(c) > 1 and (c["hi"] > c["lo"]).any():
                    ax.fill_between(x, c["lo"], c["hi"], color=F.color(i), alpha=0.12, lw=0)
                be = break_even(x, y)
                if not math.isnan(be) and be > 0 and be > x.min():
                    ax.plot([be], [1.0], marker="x", color=F.color(i), ms=6, mew=1.4)
            ax.axhline(1.0, color="#333", lw=0.7)
            ax.set_yscale("log", base=2)
            from matplotlib.ticker import FuncFormatter

            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
            ax.set_xlabel("sparsity ratio")
            ax.set_ylabel("speedup over dense")
            ax.set_title(F.short(f"{dev}\n{dtype}: vs dense {baseline} {dtype}", 80), loc="left", fontsize=7)
        F.hide_unused(axes, len(panels))
        handles, labels = [], []
        for ax in axes[: len(panels)]:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        F.legend_below(fig, handles, labels)
        uri, sc = F.to_data_uri(fig), F.scale(fig)
    return Figure("Speedup over the dense baseline vs sparsity ratio (share of weights pruned), one curve per scheme and panel per data type (geometric mean over "
                  "shapes; band: min–max over shapes). × marks the break-even ratio; above the line at 1× the "
                  "sparse kernel is faster.", uri, alt="sparse speedup vs sparsity ratio", scale=sc)
