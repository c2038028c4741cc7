"""Section 7: the same kernels across devices, runtimes or datasets, as latency ratios against
one reference (the group with the most records)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import figures as F
from .. import fmt
from ..data import ReportData, geomean
from ..model import Figure, Section, Table

TITLE = "Comparisons across devices and runtimes"
MAX_PANELS = 6


def groups(data: ReportData) -> pd.DataFrame:
    """Kernel records with a `group` column: device · runtime, plus the dataset when one device and
    runtime appear in several datasets (a repeat campaign is then compared with the first)."""
    df = data.kind("kernel")
    df = df[df["median_us"] > 0]
    if df.empty:
        return df.assign(group=pd.Series(dtype=str))
    base = df["device_label"] + " · " + df["runtime_label"]
    multi = df.assign(base=base).groupby("base")["dataset"].nunique()
    split = set(multi[multi > 1].index)
    grp = [f"{b} ({d})" if b in split else b for b, d in zip(base, df["dataset"])]
    return df.assign(group=grp)


def build(data: ReportData) -> Section:
    s = Section("compare", TITLE, lead=(
        "The same kernels (identical spec) measured on different devices, runtimes or datasets, as the ratio of "
        "their median latencies to a reference: below 1 the other side is faster. The reference is the "
        "device · runtime with the most kernel records."))
    if data.empty:
        s.missing = "the datasets hold no records"
        return s
    df = groups(data)
    names = df["group"].value_counts()
    if len(names) < 2:
        only = names.index[0] if len(names) else "none"
        s.missing = (f"all kernel records come from one device and runtime ({only}); give several datasets, "
                     "devices or runtimes to compare")
        return s
    ref = names.index[0]
    refd = df[df["group"] == ref].groupby("spec_id")["median_us"].median()
    pairs = []
    for other in names.index[1:]:
        o = df[df["group"] == other]
        od = o.groupby("spec_id").agg(median_us=("median_us", "median"), flops=("flops", "first"), op=("op", "first"))
        common = od.index.intersection(refd.index)
        if len(common):
            c = od.loc[common].assign(ratio=od.loc[common, "median_us"] / refd.loc[common])
            pairs.append((other, c))
    if not pairs:
        s.missing = (f"no kernel was measured both on the reference ({ref}) and elsewhere: the "
                     f"{len(names)} device/runtime groups share no spec")
        return s
    s.add(_figure(ref, pairs[:MAX_PANELS]))
    if len(pairs) > MAX_PANELS:
        s.para(f"The figure shows {MAX_PANELS} of {len(pairs)} comparisons; the table lists all.", "note")
    rows = []
    for other, c in pairs:
        r = c["ratio"].to_numpy(float)
        per_op = ", ".join(f"{op} {geomean(g['ratio']):.2f}×" for op, g in c.groupby("op"))
        rows.append([other, fmt.num(len(c)), fmt.ratio(geomean(r)), fmt.ratio(np.median(r)),
                     f"{fmt.ratio(np.percentile(r, 10))} – {fmt.ratio(np.percentile(r, 90))}",
                     fmt.pct(float(np.mean(r < 1)), 0), per_op])
    s.add(Table(f"Latency ratio to the reference {ref} over the kernels both measured (other / reference).",
                ["Compared with reference", "Common kernels", "Geomean", "Median", "p10 – p90", "Faster share",
                 "Geomean per op"], rows, numeric=[False, True, True, True, True, True, False]))
    lonely = [n for n in names.index[1:] if n not in {p for p, _ in pairs}]
    if lonely:
        s.para("No kernel in common with the reference, so not compared: " + "; ".join(lonely) + ".", "note")
    return s


def _figure(ref: str, pairs) -> Figure:
    ops = sorted({op for _, c in pairs for op in c["op"].unique()})
    ocol = {op: i for i, op in enumerate(ops)}
    with F.style():
        ncols, nrows = F.grid_shape(len(pairs), 3)
        fig, axes = F.new(ncols, nrows, height=2.1, sharey=True)
        for ax, (other, c) in zip(axes, pairs):
            for op, g in c.groupby("op"):
                F.scatter(ax, g["flops"].clip(lower=1), g["ratio"], color=F.color(ocol[op]),
                          marker=F.marker(ocol[op]), label=op)
            ax.axhline(1.0, color="#333", lw=0.7)
            gm = geomean(c["ratio"])
            ax.axhline(gm, color="#b00", lw=0.8, ls="--")
            ax.text(0.99, 0.97, f"geomean {gm:.2f}×", transform=ax.transAxes, ha="right", va="top", fontsize=6.5,
                    color="#b00")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(F.short(other, 48), loc="left", fontsize=7)
            ax.set_xlabel("FLOPs")
            ax.set_ylabel("latency ratio to reference")
        F.hide_unused(axes, len(pairs))
        handles, labels = [], []
        for ax in axes[: len(pairs)]:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        fig.legend(handles, labels, loc="outside lower center", ncols=min(6, len(labels)), markerscale=1.6)
        uri = F.to_data_uri(fig)
    return Figure(f"Latency of the same kernels relative to the reference ({ref}), one panel per device · runtime, "
                  "coloured by op type. Solid line: parity; dashed: geometric mean.", uri,
                  alt="latency ratio plots across devices and runtimes")
