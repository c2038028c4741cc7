"""Loading what a report draws: one or several datasets (as one table) and predictor bundles.

Every dataset is read through `devprof.store.Dataset`, so a newer schema version or a corrupt
part fails here with devprof's one-line `DatasetError`, before any plotting starts. Derived
columns that several sections need (labels, achieved GFLOP/s, shape keys) are computed once.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import DatasetError, UsageError  # noqa: F401 (re-exported)
from ..store import Dataset, read_records

#: Columns that identify a kernel's shape, whatever its sparsity (dense baselines match on them).
SHAPE_COLS = ("op", "n", "h", "w", "cin", "cout", "kh", "kw", "stride", "padding", "groups", "dilation", "dtype")


@dataclass
class Source:
    """One dataset folder given on the command line."""

    label: str
    path: Path
    records: int
    failures: list[dict] = field(default_factory=list)


@dataclass
class BundleInfo:
    """A predictor bundle: its metadata (always) and the loaded predictor (when loadable)."""

    path: Path
    label: str
    metadata: dict
    predictor: Any = None
    heldout: dict = field(default_factory=dict)  # heldout.json: held-out predictions vs measurements


@dataclass
class ReportData:
    records: pd.DataFrame
    sources: list[Source]
    bundles: list[BundleInfo]

    @property
    def empty(self) -> bool:
        return self.records.empty

    def kind(self, *kinds: str) -> pd.DataFrame:
        return self.records[self.records["kind"].isin(kinds)]

    def devices(self) -> dict[str, dict]:
        """device_id -> fingerprint dict (first seen)."""
        out: dict[str, dict] = {}
        for did, js in self.records.drop_duplicates("device_id")[["device_id", "device_json"]].itertuples(index=False):
            try:
                out[did] = json.loads(js)
            except ValueError:
                out[did] = {}
        return out


def _label_for(path: Path, taken: set[str]) -> str:
    label = path.name or str(path)
    if label in taken:
        label = str(path)
    i = 2
    base = label
    while label in taken:
        label = f"{base}#{i}"
        i += 1
    taken.add(label)
    return label


def load_datasets(paths: Sequence[str | Path]) -> tuple[pd.DataFrame, list[Source]]:
    frames, sources, taken, seen = [], [], set(), set()
    for p in paths:
        real = Path(p).resolve()
        if real in seen:  # the same folder named twice would only be compared with itself
            continue
        seen.add(real)
        # a folder, or a reference dataset file (FILE.parquet[@campaigns]), which keeps no failure log;
        # raises DatasetError (one line) on newer schema, missing or corrupt data
        df = read_records(p)
        label = _label_for(Path(p), taken)
        df.insert(0, "dataset", label)
        frames.append(df)
        failures = Dataset(p).failures() if Path(p).is_dir() else []
        sources.append(Source(label, Path(p), len(df), failures))
    if frames:
        nonempty = [f for f in frames if not f.empty]
        df = pd.concat(nonempty, ignore_index=True) if nonempty else frames[0]
    else:
        df = pd.DataFrame()
    return _derive(df), sources


def _options(js: str) -> dict:
    try:
        v = json.loads(js or "{}")
    except ValueError:
        return {}
    return v if isinstance(v, dict) else {}


#: An option value longer than this is not spelled in a label (a compiler string would fill a legend);
#: the configurations are numbered instead (`devprof-c#2/t1`) and the devices table spells them out.
LABEL_VALUE_MAX = 16


def _runtime_labels(df: pd.DataFrame) -> list[str]:
    """Short runtime labels for legends and tables: the runtime name and thread count
    (``devprof-c/t1``), plus only those backend options that tell apart two configurations of that
    runtime on one device (``litert[xnnpack=off]/t1``). Options that differ only from one device to
    another (the compiler of the host vs the phone's NDK, their vector widths) stay out of the label,
    so the same runtime on two devices carries the same label and the devices can be compared; the
    devices table lists every option in full."""
    combos = df.drop_duplicates(["device_id", "runtime", "runtime_options"])[["device_id", "runtime", "runtime_options"]]
    varying: dict[str, set[str]] = {}
    for (_, name), g in combos.groupby(["device_id", "runtime"]):
        opts = [_options(o) for o in g["runtime_options"]]
        keys = set().union(*opts) if opts else set()
        varying.setdefault(name, set()).update(  # an option some records lack (older records) is no variant
            k for k in keys if len({json.dumps(o[k], sort_keys=True) for o in opts if k in o}) > 1)
    numbered: dict[str, dict[str, int]] = {}  # runtime -> its configurations by option text, in order seen
    for name, js in combos[["runtime", "runtime_options"]].itertuples(index=False):
        keys = varying.get(name, set())
        opts = _options(js)
        if any(len(_fmt_opt(opts[k])) > LABEL_VALUE_MAX for k in keys if k in opts):
            numbered.setdefault(name, {})
    for name, js in combos[["runtime", "runtime_options"]].itertuples(index=False):
        if name in numbered:
            sub = json.dumps({k: v for k, v in sorted(_options(js).items()) if k in varying[name]}, sort_keys=True)
            numbered[name].setdefault(sub, len(numbered[name]) + 1)
    cache: dict[tuple, str] = {}
    out = []
    for name, threads, js in zip(df["runtime"], df["threads"], df["runtime_options"]):
        key = (name, threads, js)
        if key not in cache:
            opts = _options(js)
            keys = sorted(varying.get(name, ()))
            if name in numbered:
                sub = json.dumps({k: v for k, v in sorted(opts.items()) if k in keys}, sort_keys=True)
                cache[key] = f"{name}#{numbered[name][sub]}/t{int(threads)}"
            else:
                o = ",".join(f"{k}={_fmt_opt(opts[k])}" for k in keys if k in opts)
                cache[key] = f"{name}{'[' + o + ']' if o else ''}/t{int(threads)}"
        out.append(cache[key])
    return out


def options_text(js: str) -> str:
    """All backend options of a runtime, for the devices table."""
    return ", ".join(f"{k}={_fmt_opt(v)}" for k, v in sorted(_options(js).items())) or "–"


def _fmt_opt(v: Any) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    return str(v)


def _derive(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df
    df = df.copy()
    # device labels: the device name, disambiguated when two fingerprints share a name
    if "emulated" not in df:
        df["emulated"] = False
    names = df.drop_duplicates("device_id")[["device_id", "device_name", "device_model", "emulated"]]
    counts = names.groupby(["device_name", "emulated"]).size()
    dev_label = {}
    for did, name, model, emulated in names.itertuples(index=False):
        lab = name or model or did[:8]
        if counts.get((name, emulated), 0) > 1:
            lab = f"{lab} [{did[:6]}]"
        if emulated:  # every table and figure of an emulator says so: its timings are not a phone's
            lab += " (emulated)"
        dev_label[did] = lab
    df["device_label"] = df["device_id"].map(dev_label)
    df["runtime_label"] = _runtime_labels(df)
    # when one runtime label covers several versions on one device, say which (versions that differ
    # only between devices stay in the devices table, as the options do)
    ver = df.groupby(["device_id", "runtime_label"])["runtime_version"].nunique()
    multi = {lab for (_, lab), n in ver.items() if n > 1}
    if multi:
        df["runtime_label"] = [
            f"{lab}@{v}" if lab in multi else lab for lab, v in zip(df["runtime_label"], df["runtime_version"])
        ]
    med = df["median_us"].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        df["gflops"] = np.where((df["flops"] > 0) & (med > 0), df["flops"].astype(float) / (med * 1e3), np.nan)
        df["rel_iqr"] = np.where(med > 0, df["iqr_us"].astype(float) / med, np.nan)
    df["shape_key"] = df[list(SHAPE_COLS)].astype(str).agg("|".join, axis=1)
    df["scheme_label"] = [_scheme_label(s, p) for s, p in zip(df["scheme"], df["sparsity_params"])]
    df["bytes"] = _bytes_moved(df)
    return df


def _scheme_label(scheme: str, params_json: str) -> str:
    if scheme == "dense":
        return "dense"
    try:
        params = json.loads(params_json or "{}")
    except ValueError:
        params = {}
    if scheme == "nm" and {"n", "m"} <= set(params):
        return f"nm({params['n']}:{params['m']})"
    ps = ",".join(f"{k}={'x'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sorted(params.items()))
    return f"{scheme}({ps})" if ps else scheme


_DTYPE_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}


def _bytes_moved(df: pd.DataFrame) -> pd.Series:
    """Compulsory traffic (input + output + weights once), for arithmetic intensity."""
    eb = df["dtype"].map(_DTYPE_BYTES).fillna(4).astype(float)
    inp = df["n"] * df["h"] * df["w"] * df["cin"]
    out = df["n"] * df["out_h"] * df["out_w"] * df["cout"]
    density = 1.0 - df["sparsity_ratio"].astype(float)
    weights = df["params"].astype(float) * density
    return (inp.astype(float) + out.astype(float) + weights) * eb


def load_bundles(paths: Sequence[str | Path]) -> list[BundleInfo]:
    """Load each bundle through `predictors` (hash-verified, nothing executed) with its held-out
    predictions. A missing, newer, truncated or tampered bundle is refused with one line: its
    metrics could not be trusted either."""
    if not paths:
        return []
    import predictors
    from predictors import bundle as bmod

    out, taken = [], set()
    for p in paths:
        path = Path(p)
        pred = predictors.load(path)  # BundleError (a DevprofError, one line) when not sound
        meta = pred.metadata
        heldout: dict = {}
        if "heldout.json" in (meta.get("files") or {}):
            _, blobs = bmod.read_verified(path, ("heldout.json",))
            heldout = bmod.parse_json(path, "heldout.json", blobs["heldout.json"])
            if not isinstance(heldout, dict):
                raise bmod.BundleError(f"bundle {path}: heldout.json is not a JSON object")
        loc = meta.get("location") or {}
        label = "/".join(x for x in (loc.get("device"), loc.get("runtime")) if x) or path.name
        if label in taken:
            label = str(path)
        taken.add(label)
        out.append(BundleInfo(path, label, meta, pred, heldout=heldout))
    return out


def load(datasets: Sequence[str | Path], bundles: Sequence[str | Path] = ()) -> ReportData:
    if not datasets and not bundles:
        raise UsageError("give at least one dataset (or a --bundle) to report on")
    df, sources = load_datasets(datasets)
    return ReportData(df, sources, load_bundles(bundles))


def finite(values: Any) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    return a[np.isfinite(a)]


def geomean(values: Any) -> float:
    a = finite(values)
    a = a[a > 0]
    return float(np.exp(np.mean(np.log(a)))) if a.size else math.nan


__all__ = ["ReportData", "Source", "BundleInfo", "load", "load_datasets", "load_bundles", "geomean", "finite",
           "SHAPE_COLS", "DatasetError"]
