"""Section 3: latency against work. Log-log latency vs FLOPs per op, with the device's compute
ceiling as a lower bound, achieved GFLOP/s, and a roofline (GFLOP/s vs arithmetic intensity)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import figures as F
from .. import fmt
from ..data import ReportData, finite
from ..hardware import Peak, estimate_peak
from ..model import Figure, Section, Table

TITLE = "Latency vs FLOPs"
MAX_OPS = 6
MAX_GROUPS = 8


def _dense_kernels(data: ReportData) -> pd.DataFrame:
    df = data.kind("kernel")
    return df[(df["scheme"] == "dense") & (df["flops"] > 0) & (df["median_us"] > 0)]


def peaks(data: ReportData, df: pd.DataFrame) -> dict[tuple[str, int], Peak | None]:
    """(device_id, threads) -> estimated fp32 peak of that many cores of that device."""
    devs = data.devices()
    out = {}
    for (did, thr), g in df.groupby(["device_id", "threads"]):
        freq = finite(g["freq_before_khz"].astype(float).where(lambda v: v > 0))
        pins = g["cpus"].value_counts()
        out[(did, int(thr))] = estimate_peak(devs.get(did, {}), int(thr), float(np.median(freq)) if freq.size else math.nan,
                                             cpus=str(pins.index[0]) if len(pins) else "")
    return out


def build(data: ReportData) -> Section:
    s = Section("roofline", TITLE, lead=(
        "Latency against dense-equivalent FLOPs for every dense kernel, per op type (log-log). On these axes a "
        "kernel running at a constant rate lies on a line of slope 1; the dashed line is the device's fp32 compute "
        "ceiling, a lower bound no kernel can beat. Achieved GFLOP/s = FLOPs / median latency."))
    if data.empty:
        s.missing = "the datasets hold no records"
        return s
    df = _dense_kernels(data)
    if df.empty:
        s.missing = ("no dense kernel record with a FLOP count (conv, pointwise, depthwise, FC, pooling or "
                     "elementwise op) is in the data")
        return s
    df = df.assign(group=df["device_label"] + " · " + df["runtime_label"])
    pk = peaks(data, df)
    ops = list(df["op"].value_counts().index)
    shown = ops[:MAX_OPS]
    groups = sorted(df["group"].unique())
    gcolor = {g: i for i, g in enumerate(groups)}
    s.add(_latency_figure(df[df["op"].isin(shown)], shown, groups, gcolor, pk))
    s.add(_roofline_figure(df, groups, gcolor, pk))

    rows, above = [], []
    for (op, group), g in df.groupby(["op", "group"], sort=True):
        gf = finite(g["gflops"])
        key = (g["device_id"].iloc[0], int(g["threads"].iloc[0]))
        p = pk.get(key)
        share = gf.max() / p.gflops if p and gf.size else math.nan
        if share > 1:
            above.append((group, op, share, p))
        rows.append([op, group, fmt.num(len(g)), fmt.flops_range(g['flops'].min(), g['flops'].max()),
                     fmt.num(np.median(gf)), fmt.num(gf.max()),
                     fmt.pct(share) + (" †" if share > 1 else "") if p else "–"])
    s.add(Table("Achieved throughput per op type (dense kernels). % of peak compares the best kernel with the "
                "estimated compute ceiling of the cores the runtime used"
                + ("; † marks a kernel faster than that estimate (the note below says why)." if above else "."),
                ["Op", "Device · runtime", "Kernels", "FLOPs", "Median GFLOP/s", "Best GFLOP/s", "Best % of peak"],
                rows, numeric=[False, False, True, False, True, True, True]))
    notes = []
    devlab = dict(zip(df["device_id"], df["device_label"]))
    for (did, thr), p in sorted(pk.items(), key=lambda kv: (devlab[kv[0][0]], kv[0][1])):
        if p is None:
            notes.append(f"{devlab[did]} ({thr} thread{'s' if thr > 1 else ''}): no ceiling drawn — the "
                         "fingerprint does not give the ISA and frequency needed to estimate one")
        else:
            notes.append(f"{devlab[did]} ({thr} thread{'s' if thr > 1 else ''}): {p.gflops:.0f} GFLOP/s = {p.how}")
    if above:
        s.para(_above_note(above), "warn")
    s.para("Compute ceilings (fp32, estimated from the fingerprint, not measured): " + "; ".join(notes) + ".", "note")
    if not any(p and math.isfinite(p.mem_gbs) for p in pk.values()):
        s.para("No memory bandwidth is recorded in the fingerprints, so the roofline shows the compute roof only; "
               "kernels far below it at low arithmetic intensity are likely memory-bound.", "note")
    if len(ops) > MAX_OPS:
        s.para(f"The figure shows the {MAX_OPS} most frequent op types; the table lists all {len(ops)}.", "note")
    nsparse = int((data.kind("kernel")["scheme"] != "dense").sum())
    if nsparse:
        s.para(f"{nsparse} sparse kernel records are left out here (their FLOPs are dense-equivalent); section 4 "
               "compares them with their dense baselines.", "note")
    return s


def _above_note(above: list[tuple[str, str, float, Peak]]) -> str:
    """Why a kernel can beat the ceiling: the ceiling is an estimate from the fingerprint, and an
    estimate below the true peak (a base clock where the cores turbo, fewer vector pipes than the
    core has) puts fast kernels above 100%. The measured latency is not in doubt."""
    pairs = "; ".join(f"{group} {op} {fmt.pct(share, 0)}" for group, op, share, _ in above)
    causes = []
    if any("base clock" in p.how for *_, p in above):
        causes.append("the ceiling uses the clock frequency read during the measurements, and a VM reports its "
                      "base clock while the cores run at a higher turbo clock")
    if any("base clock" not in p.how for *_, p in above):
        causes.append("the cores ran above the maximum frequency the fingerprint gives, or execute more vector "
                      "FLOPs per cycle than assumed")
    return (f"Above 100% of the estimated peak ({pairs}): the estimated peak is below the true peak of these cores — "
            + "; ".join(causes) + ". The latencies are measured and stand; read the ceiling and the % of peak "
            "as approximate there.")


def _iqr(samples) -> tuple[float, float]:
    a = np.asarray(samples if samples is not None else (), dtype=float)
    a = a[np.isfinite(a)]
    return (float(np.percentile(a, 25)), float(np.percentile(a, 75))) if a.size else (math.nan, math.nan)


def _latency_figure(df, ops, groups, gcolor, pk) -> Figure:
    with F.style():
        ncols, nrows = F.grid_shape(len(ops), 3)
        fig, axes = F.new(ncols, nrows, height=2.0, width=F.grid_width(ncols))
        for ax, op in zip(axes, ops):
            d = df[df["op"] == op]
            for group, g in d.groupby("group"):
                i = gcolor[group]
                # the spread of the samples behind each median: their interquartile range
                q = np.array([_iqr(x) for x in g["samples_us"]]).reshape(-1, 2)
                med = g["median_us"].to_numpy(float)
                yerr = np.nan_to_num(np.vstack([med - q[:, 0], q[:, 1] - med]).clip(0))
                eb = ax.errorbar(g["flops"], med, yerr=yerr, fmt="none", ecolor=F.color(i), elinewidth=0.6,
                                 alpha=0.7, capsize=0)
                for coll in eb.lines[2]:
                    coll.set_gid(f"iqr-errorbars-{i}")
                    coll.set_rasterized(len(g) > F.RASTERIZE_ABOVE)
                F.scatter(ax, g["flops"], g["median_us"], color=F.color(i), marker=F.marker(i), label=group)
            x = np.geomspace(max(d["flops"].min(), 1) / 1.5, d["flops"].max() * 1.5, 20)
            seen = set()
            for (did, thr), g in d.groupby(["device_id", "threads"]):
                p = pk.get((did, int(thr)))
                if p and p.gflops not in seen:
                    seen.add(p.gflops)
                    ax.plot(x, x / (p.gflops * 1e3), ls="--", color="#555", lw=0.7)
            F.log_axis(ax, "x", d["flops"])
            F.log_axis(ax, "y", d["median_us"])
            ax.set_title(op, loc="left")
            ax.set_xlabel("FLOPs (dense-equivalent)")
            ax.set_ylabel("median latency (µs)")
        F.hide_unused(axes, len(ops))
        handles, labels = [], []
        for ax in axes[: len(ops)]:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        F.legend_below(fig, handles, [F.short(lab, 48) for lab in labels], markerscale=1.6)
        uri, sc = F.to_data_uri(fig), F.scale(fig)
    return Figure("Median latency vs FLOPs per op type, one colour per device and runtime; error bars span the "
                  "interquartile range (25th–75th percentile) of each record's samples. Dashed: latency at "
                  "the estimated fp32 compute ceiling (FLOPs / peak).", uri,
                  alt="log-log latency vs FLOPs per op", scale=sc)


def _roofline_figure(df, groups, gcolor, pk) -> Figure:
    with F.style():
        fig, (ax,) = F.new(1, 1, height=2.6)
        ai = df["flops"].astype(float) / df["bytes"].astype(float)
        df = df.assign(ai=ai)
        for group, g in df.groupby("group"):
            i = gcolor[group]
            F.scatter(ax, g["ai"], g["gflops"], color=F.color(i), marker=F.marker(i), label=F.short(group, 48))
        x = np.geomspace(max(df["ai"].min() / 2, 1e-3), df["ai"].max() * 2, 50)
        drawn = set()
        for (did, thr), p in pk.items():
            if p is None or p.gflops in drawn or not (df["device_id"] == did).any():
                continue
            drawn.add(p.gflops)
            roof = np.full_like(x, p.gflops)
            if math.isfinite(p.mem_gbs):
                roof = np.minimum(roof, x * p.mem_gbs)
            ax.plot(x, roof, color="#555", ls="--", lw=0.7)
            ax.text(x[-1], p.gflops, f" {p.gflops:.0f} GFLOP/s ({thr}t)", fontsize=6, va="bottom", ha="right",
                    color="#333")
        F.log_axis(ax, "x", df["ai"])
        F.log_axis(ax, "y", np.concatenate([df["gflops"].to_numpy(float), [p.gflops for p in pk.values() if p]]))
        ax.set_xlabel("arithmetic intensity (FLOP / byte of compulsory traffic)")
        ax.set_ylabel("achieved GFLOP/s")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=1.6)
        uri, sc = F.to_data_uri(fig), F.scale(fig)
    return Figure("Roofline: achieved GFLOP/s of every dense kernel against its arithmetic intensity "
                  "(FLOPs over the bytes of input, output and weights). Dashed: estimated compute ceiling.",
                  uri, alt="roofline plot", scale=sc)
