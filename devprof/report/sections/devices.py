"""Section 1: the devices and runtimes behind the numbers, and how they were measured."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from .. import fmt
from ..data import ReportData, options_text
from ..hardware import parse_clusters
from ..model import Section, Table

TITLE = "Devices and runtimes"


def _extra_text(extra: dict) -> str:
    keep = []
    for k, v in sorted(extra.items()):
        if k in ("hostname",) or v in ("", None, -1):
            continue
        if k == "clusters" and parse_clusters(v):
            v = ", ".join(f"{name + ' ' if not name.startswith('cluster') else ''}{_cpus_text(cpus)} @ "
                          f"{khz / 1e6:.2f} GHz" for name, cpus, khz in parse_clusters(v))
        elif isinstance(v, (list, dict)):
            v = json.dumps(v, separators=(",", ":"))
            if len(v) > 60:
                v = v[:57] + "..."
        keep.append(f"{k}={v}")
    return "; ".join(keep) or "–"


FIELDS = ("Kind", "Model / CPU", "SoC", "ABI", "Cores", "ISA features", "OS / kernel", "Build", "Other",
          "Fingerprint")
TRANSPOSE_MAX = 4  # up to this many devices, one column per device reads better than one row each


def _fingerprints(df: pd.DataFrame, devs: dict[str, dict]) -> Table:
    cols = []
    for did, d in devs.items():
        label = df.loc[df["device_id"] == did, "device_label"].iloc[0]
        hw = d.get("cpu") or d.get("model") or "–"
        if d.get("model") and d.get("cpu") and d.get("model") != d.get("cpu"):
            hw = f"{d['model']} — {d['cpu']}"
        osk = " / ".join(x for x in (d.get("os"), d.get("kernel")) if x) or "–"
        cols.append([label, d.get("kind", "–"), hw, d.get("soc") or "–", d.get("abi") or "–",
                     str(d.get("cores") or "–"), ", ".join(d.get("isa") or ()) or "–", osk, d.get("build") or "–",
                     _extra_text(d.get("extra") or {}), did])
    caption = ("Device fingerprints. The fingerprint id hashes the fields that decide speed (model, SoC, ABI, CPU, "
               "cores, ISA, OS, kernel, build); records are grouped by it.")
    if len(cols) <= TRANSPOSE_MAX:
        rows = [[field] + [c[i + 1] for c in cols] for i, field in enumerate(FIELDS)]
        return Table(caption, [""] + [c[0] for c in cols], rows, row_header=True)
    rows = [c[:-1] + [c[-1][:12]] for c in cols]
    return Table(caption, ["Device", *FIELDS], rows, numeric=[False] * 5 + [True] + [False] * 5)


def build(data: ReportData) -> Section:
    s = Section("devices", TITLE, lead="Every number in this report carries the fingerprint of the device and "
                "the runtime that produced it; two records are comparable only when both match.")
    if data.empty:
        s.missing = "the datasets hold no records, so there is no device or runtime to describe"
        return s
    df = data.records
    devs = data.devices()
    s.add(_fingerprints(df, devs))
    s.add(_configurations(df))
    rows = []
    for (dlabel, rlabel), g in df.groupby(["device_label", "runtime_label"], sort=True):
        kinds = g["kind"].value_counts()
        kinds_txt = ", ".join(f"{kinds[k]} {k}" for k in ("kernel", "layer", "model") if k in kinds)
        suites = ", ".join(sorted(x for x in g["suite"].unique() if x)) or "–"
        t0, t1 = g["started_at"].min(), g["finished_at"].max()
        span = fmt.span(t0, t1)
        proto = f"{_med(g['warmups'])} warm-ups; {_med(g['repeats'])} × {_med(g['number'])} calls"
        cpus = ", ".join(sorted({c for c in g["cpus"] if c})) or "not pinned"
        gov = ", ".join(sorted({c for c in g["governor"] if c})) or "–"
        dv = ", ".join(sorted({v for v in g["devprof_version"] if v})) or "–"
        hv = ", ".join(sorted({v for v in g["harness_version"] if v}))
        rows.append([dlabel, rlabel, kinds_txt, suites, span, proto, cpus, gov,
                     dv + (f" (harness {hv})" if hv else "")])
    s.add(Table("Measurement campaigns per device and runtime. Protocol columns give the median per record: "
                "warm-up calls, then repetitions × back-to-back calls per sample; a record's latency is the "
                "median sample.",
                ["Device", "Runtime", "Records", "Suites", "Measured", "Protocol", "CPUs", "Governor", "devprof"],
                rows))
    emu = sorted(set(df.loc[df["emulated"].astype(bool), "device_label"])) if "emulated" in df else []
    if emu:
        s.para(f"Emulated: {', '.join(emu)}. Its kernels ran under an emulator (qemu); they were checked "
               "against the reference like any others, but their timings say nothing about a phone — "
               "compare them with nothing but each other.", "note")
    srcs = [f"{src.label} ({fmt.plural(src.records, 'record')}, {fmt.plural(len(src.failures), 'failure')})"
            for src in data.sources]
    if len(srcs) > 1:
        s.para("Datasets: " + "; ".join(srcs) + ".", "note")
    return s


def _configurations(df: pd.DataFrame) -> Table:
    """The one table that spells out every runtime's version and backend options (compiler, ISA,
    vector width, ...); everywhere else a runtime is named by its short label."""
    rows = []
    for (dlabel, rlabel), g in df.groupby(["device_label", "runtime_label"], sort=True):
        vers = ", ".join(sorted(set(g["runtime_version"])))
        opts = "; ".join(sorted({options_text(o) for o in g["runtime_options"]}))
        rows.append([dlabel, rlabel, vers, opts])
    return Table("Runtime configurations: per device, the label used in every table and figure of this report "
                 "(runtime name, then threads), the runtime's version and all its backend options. Options that "
                 "differ only from one device to another (compiler, ISA, vector width) are not part of the label, "
                 "so one runtime is compared across devices under one label.",
                 ["Device", "Runtime", "Version", "Options"], rows)


def _cpus_text(cpus: set[int]) -> str:
    c = sorted(cpus)
    if not c:
        return "?"
    return f"{c[0]}-{c[-1]}" if len(c) > 1 and c == list(range(c[0], c[-1] + 1)) else ",".join(map(str, c))


def _med(col: pd.Series) -> str:
    v = np.nanmedian(col.astype(float)) if len(col) else float("nan")
    return fmt.num(round(float(v))) if np.isfinite(v) else "–"
