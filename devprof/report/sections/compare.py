"""Section 7: the same kernels across devices, runtimes or repeated campaigns, as latency ratios.

Three kinds of comparison, each over the kernels (identical spec) both sides measured:
across devices for one runtime (reference: the first dataset's device), across runtimes on one
device (reference: the runtime sharing the most kernels with the others), and repeats of one device and
runtime in several datasets (reference: the first dataset) — a reproducibility check.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import figures as F
from .. import fmt
from ..data import ReportData, geomean
from ..model import Figure, Section, Table

TITLE = "Comparisons across devices and runtimes"
MAX_PANELS = 6


@dataclass
class Comparison:
    kind: str  # "device" | "runtime" | "repeat"
    ref: str
    other: str
    common: pd.DataFrame  # per spec: op, flops, ref_us, other_us, ratio

    @property
    def title(self) -> str:
        return f"{self.other} / {self.ref}"


def _per_spec(df: pd.DataFrame) -> pd.DataFrame:
    return df.groupby("cmp_key").agg(us=("median_us", "median"), op=("op", "first"), flops=("flops", "first"))


def _pair(kind: str, ref: str, other: str, a: pd.DataFrame, b: pd.DataFrame) -> Comparison | None:
    ra, rb = _per_spec(a), _per_spec(b)
    common = ra.index.intersection(rb.index)
    if not len(common):
        return None
    c = pd.DataFrame({"op": ra.loc[common, "op"], "flops": ra.loc[common, "flops"],
                      "ref_us": ra.loc[common, "us"], "other_us": rb.loc[common, "us"]})
    c["ratio"] = c["other_us"] / c["ref_us"]
    return Comparison(kind, ref, other, c)


def comparisons(data: ReportData) -> list[Comparison]:
    df = data.kind("kernel", "model")
    df = df[df["median_us"] > 0]
    if df.empty:
        return []
    # kernels match on their spec; whole models on their name (each runtime's walk gives its own spec)
    # a model's int8 and fp32 runs are different comparisons (kernels differ by spec id already)
    df = df.assign(cmp_key=np.where(df["kind"] == "model", "model:" + df["model_name"] + "@" + df["dtype"],
                                    df["spec_id"]))
    out: list[Comparison] = []
    order = {lab: i for i, lab in enumerate(s.label for s in data.sources)}
    # across devices, per runtime
    for rt, g in df.groupby("runtime_label", sort=True):
        devs = g.groupby("device_label").agg(first=("dataset", lambda d: min(order.get(x, 99) for x in d)),
                                             n=("cmp_key", "nunique")).sort_values(["first", "n"],
                                                                                   ascending=[True, False])
        if len(devs) < 2:
            continue
        ref = devs.index[0]
        for other in devs.index[1:]:
            c = _pair("device", f"{ref} · {rt}", f"{other} · {rt}", g[g["device_label"] == ref],
                      g[g["device_label"] == other])
            if c:
                out.append(c)
    # across runtimes, per device
    for dev, g in df.groupby("device_label", sort=True):
        specs = {rt: set(x["cmp_key"]) for rt, x in g.groupby("runtime_label", sort=True)}
        if len(specs) < 2:
            continue
        # the reference shares the most kernels with the others (not merely the most kernels: a sparse
        # sweep has many specs that no other runtime measured)
        ref = max(specs, key=lambda r: (sum(len(specs[r] & v) for o, v in specs.items() if o != r), -len(r)))
        for other in (r for r in specs if r != ref):
            c = _pair("runtime", f"{dev} · {ref}", f"{dev} · {other}", g[g["runtime_label"] == ref],
                      g[g["runtime_label"] == other])
            if c:
                out.append(c)
    # repeated campaigns: one device and runtime in several datasets
    for (dev, rt), g in df.groupby(["device_label", "runtime_label"], sort=True):
        sets = sorted(g["dataset"].unique(), key=lambda d: order.get(d, 99))
        for other in sets[1:]:
            c = _pair("repeat", f"{dev} · {rt} ({sets[0]})", f"{dev} · {rt} ({other})", g[g["dataset"] == sets[0]],
                      g[g["dataset"] == other])
            if c:
                out.append(c)
    return out


KIND_TEXT = {"device": "across devices", "runtime": "across runtimes", "repeat": "repeat campaign"}


def build(data: ReportData) -> Section:
    s = Section("compare", TITLE, lead=(
        "The same kernels (identical spec) and whole models (same name) on different devices, runtimes or in "
        "repeated campaigns, as the ratio of "
        "their median latencies (other / reference; below 1× the other side is faster). Devices are compared per "
        "runtime against the first dataset's device; runtimes per device against the runtime sharing the most "
        "kernels with the others; a device and runtime found in several datasets against the first (a "
        "reproducibility check)."))
    if data.empty:
        s.missing = "the datasets hold no records"
        return s
    kern = data.kind("kernel", "model")
    ndev, nrt, nds = kern["device_id"].nunique(), kern["runtime_label"].nunique(), kern["dataset"].nunique()
    comps = comparisons(data)
    if not comps:
        if not len(kern):
            s.missing = "the datasets hold only per-layer records, which are compared through their models"
        elif ndev < 2 and nrt < 2 and nds < 2:
            only = f"{kern['device_label'].iloc[0]} · {kern['runtime_label'].iloc[0]}"
            s.missing = (f"all kernel and model records come from one device and runtime ({only}); give several "
                         "datasets, devices or runtimes to compare")
        else:
            s.missing = (f"no kernel or model was measured on two devices, runtimes or datasets alike ({ndev} "
                         f"device(s), {nrt} runtime(s), {nds} dataset(s) share no spec)")
        return s
    comps.sort(key=lambda c: ({"device": 0, "runtime": 1, "repeat": 2}[c.kind], -len(c.common)))
    s.add(_figure(comps[:MAX_PANELS]))
    if len(comps) > MAX_PANELS:
        s.para(f"The figure shows {MAX_PANELS} of {len(comps)} comparisons (the largest of each kind first); the "
               "table lists all.", "note")
    rows = []
    for c in comps:
        r = c.common["ratio"].to_numpy(float)
        per_op = ", ".join(f"{op} {geomean(g['ratio']):.2f}×" for op, g in c.common.groupby("op"))
        rows.append([KIND_TEXT[c.kind], c.other, c.ref, fmt.num(len(r)), fmt.ratio(geomean(r)),
                     f"{fmt.ratio(np.percentile(r, 10))} – {fmt.ratio(np.percentile(r, 90))}",
                     fmt.pct(float(np.mean(r < 1)), 0), per_op])
    s.add(Table("Latency ratio other / reference over the kernels (and models) both measured: geometric mean, 10th–90th "
                "percentile, share of kernels faster than on the reference, and geometric mean per op type.",
                ["Comparison", "Other", "Reference", "Common", "Geomean", "p10 – p90", "Faster",
                 "Geomean per op"], rows, numeric=[False, False, False, True, True, True, True, False]))
    return s


def _figure(comps: list[Comparison]) -> Figure:
    ops = sorted({op for c in comps for op in c.common["op"].unique()})
    ocol = {op: i for i, op in enumerate(ops)}
    from matplotlib.ticker import FuncFormatter, NullFormatter

    with F.style():
        ncols, nrows = F.grid_shape(len(comps), 3)
        fig, axes = F.new(ncols, nrows, height=2.15, width=F.grid_width(ncols))
        for ax, c in zip(axes, comps):
            for op, g in c.common.groupby("op"):
                F.scatter(ax, g["ref_us"], g["ratio"], color=F.color(ocol[op]),
                          marker=F.marker(ocol[op]) if op != "model" else "*", label=op,
                          s=30 if op == "model" else 9)
            ax.axhline(1.0, color="#333", lw=0.7)
            gm = geomean(c.common["ratio"])
            ax.axhline(gm, color="#b00", lw=0.8, ls="--")
            ax.text(0.99, 0.97, f"geomean {gm:.2f}×", transform=ax.transAxes, ha="right", va="top", fontsize=6.5,
                    color="#b00")
            F.log_axis(ax, "x", c.common["ref_us"])
            ax.set_yscale("log", base=2)
            r = c.common["ratio"].to_numpy(float)
            lo, hi = min(r.min(), 1.0), max(r.max(), 1.0)
            ax.set_ylim(lo / 1.4, hi * 1.4)
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_title(F.short(c.other, 44) + "\nvs " + F.short(c.ref, 44), loc="left", fontsize=6.5)
            ax.set_xlabel("reference median latency (µs)")
            ax.set_ylabel("latency ratio")
        F.hide_unused(axes, len(comps))
        handles, labels = [], []
        for ax in axes[: len(comps)]:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        F.legend_below(fig, handles, labels, markerscale=1.6)
        uri, sc = F.to_data_uri(fig), F.scale(fig)
    return Figure("Latency of the same kernels (and whole models, ★) relative to a reference, against the "
                  "reference latency; one panel per comparison (title: other vs reference), coloured by op type. "
                  "Solid line: parity; dashed: geometric mean.", uri,
                  alt="latency ratio plots across devices and runtimes", scale=sc)
