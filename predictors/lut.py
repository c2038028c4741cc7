"""The lookup table: one row per distinct kernel spec measured on one (device, runtime).

Columns (JSON is columnar: each column a list; Parquet has the same columns):
    key           KernelSpec.key, the canonical spec key (unique)
    median_us     median latency (µs); a spec measured in several records (repeat campaigns):
                  median of the medians of its steady records (of all of them if every one is
                  flagged noisy) — a measurement that knows it is noisy is used only when
                  nothing better exists
    min_us        fastest round (µs): each record's fastest round (a round is already the best of
                  its samples), median over the spec's steady records as for median_us. On a host
                  shared with other tenants this is the reproducible figure (their load only ever
                  slows a kernel down); a bundle serves one of the two (its `statistic`)
    iqr_us        interquartile range of the samples (µs) (several records: median)
    mad_us        median absolute deviation (µs)
    cv            coefficient of variation of the samples
    repeats       number of timing samples behind the median (summed over records)
    records       number of records merged into the row
    draws         number of weight draws behind the row (sparse specs measured with `devprof profile
                  --draw`: the row is the median over draws of each draw's merged records; 1 otherwise;
                  absent in tables written before it existed)
    noisy         every record of the spec flagged too noisy
    op, n, h, w, cin, cout, kh, kw, stride, padding, groups, dilation, bias, activation, dtype,
    scheme, sparsity_ratio, sparsity_params, attrs, out_h, out_w, flops, params
                  the spec, as in a dataset's Parquet columns
    spec_json     the full spec as canonical JSON (KernelSpec.from_dict reads it)
"""
from __future__ import annotations

from typing import Any

import numpy as np

SPEC_COLUMNS = ("op", "n", "h", "w", "cin", "cout", "kh", "kw", "stride", "padding", "groups", "dilation",
                "bias", "activation", "dtype", "scheme", "sparsity_ratio", "sparsity_params", "attrs",
                "out_h", "out_w", "flops", "params")
STAT_COLUMNS = ("median_us", "min_us", "iqr_us", "mad_us", "cv", "repeats", "records", "draws", "noisy")
COLUMNS = ("key",) + STAT_COLUMNS + SPEC_COLUMNS + ("spec_json",)
INT_COLUMNS = {"n", "h", "w", "cin", "cout", "kh", "kw", "stride", "padding", "groups", "dilation", "out_h",
               "out_w", "flops", "params", "repeats", "records", "draws"}
BOOL_COLUMNS = {"bias", "noisy"}
OPTIONAL_COLUMNS = {"min_us", "draws"}
"""Columns older tables lack: min_us (format 1, which can serve only its medians), draws (tables
written before weight draws)."""
STATISTICS = ("median", "min")
"""What a bundle serves for a kernel: the median of its rounds, or its fastest round
(``<statistic>_us``). `devprof fit-predictor --statistic` picks it."""
FLOAT_COLUMNS = {"median_us", "min_us", "iqr_us", "mad_us", "cv", "sparsity_ratio"}


def _merged_records(kernels: Any) -> Any:
    """The records a LUT row is made of: a spec's steady records, or all of them if none is."""
    noisy = kernels["noisy"].astype(bool)
    has_steady = (~noisy).groupby(kernels["spec_key"]).transform("any")
    return kernels[~(noisy & has_steady)]


def _draws_pooled(kernels: Any) -> Any:
    """Records of a sparse spec's weight draws (``attrs.draw``, `devprof profile --draw`) under the
    key of the spec without the draw, with the draw in a ``_draw`` column (0 where absent). A query
    names a scheme and a ratio, not the weights that survived pruning: the table serves the spec."""
    attrs = kernels["attrs"].astype(str)
    drawn = attrs.str.contains('"draw"', regex=False).to_numpy()
    k = kernels.assign(_draw=0)
    if not drawn.any():
        return k
    import json

    from .spec import DRAW_ATTR, KernelSpec, without_draw

    from .spectable import canon

    def rekeyed(sj: str) -> tuple:
        spec = KernelSpec.from_dict(json.loads(sj))
        base = without_draw(spec)
        return base.key, canon(base.to_dict()["attrs"]), base.to_json(), int(spec.a.get(DRAW_ATTR, 0))

    specs = k.loc[drawn, "spec_json"]
    new = {sj: rekeyed(sj) for sj in specs.unique()}  # one parse per distinct spec, not per record
    for j, c in enumerate(("spec_key", "attrs", "spec_json", "_draw")):
        k.loc[drawn, c] = [new[sj][j] for sj in specs]
    return k


def build(kernels: Any) -> Any:
    """Aggregate kernel records (a dataset DataFrame, one device+runtime) into LUT rows (DataFrame).

    A spec measured under several weight draws: each draw's records are merged as above (its steady
    records' medians), then the row takes the median over draws."""
    import pandas as pd

    if not len(kernels):
        return pd.DataFrame({c: [] for c in COLUMNS})
    kernels = _draws_pooled(_merged_records(kernels))
    stats = ("median_us", "min_us", "iqr_us", "mad_us", "cv")
    per_draw = kernels.groupby(["spec_key", "_draw"], sort=True).agg(
        **{c: (c, "median") for c in stats}, repeats=("repeats", "sum"), records=("repeats", "size"),
        noisy=("noisy", "all"))
    g = per_draw.groupby(level="spec_key", sort=True)
    first = kernels.groupby("spec_key", sort=True).first()
    out = pd.DataFrame({
        "key": first.index.astype(str),
        **{c: g[c].median().to_numpy() for c in stats},
        "repeats": g["repeats"].sum().to_numpy().astype(np.int64),
        "records": g["records"].sum().to_numpy().astype(np.int64),
        "draws": g.size().to_numpy().astype(np.int64),
        "noisy": g["noisy"].all().to_numpy().astype(bool),
    })
    for c in SPEC_COLUMNS + ("spec_json",):
        out[c] = first[c].to_numpy()
    for c in INT_COLUMNS:
        out[c] = out[c].astype(np.int64)
    out["bias"] = out["bias"].astype(bool)
    return out.reset_index(drop=True)


def campaign_agreement(kernels: Any, statistic: str = "median", tol: float = 0.10) -> dict[str, Any]:
    """How well one campaign reproduces the others: over the specs measured in two or more merged
    records (repeat campaigns), the share of records whose `statistic` lies within ±`tol` of the
    median of the spec's *other* records, overall and per op. A shared host's load, or a layer
    too big for the caches, moves a kernel's time from one campaign to the next; a regressor's
    held-out share within ±`tol` is to be read against this one (the table's values, medians over
    campaigns, repeat better than one campaign does, so it is a yardstick, not a hard ceiling).
    Records of another weight draw (``attrs.draw``) are another spec here: this compares campaigns,
    not draws."""
    import pandas as pd

    col = f"{statistic}_us"
    k = _merged_records(kernels)
    rows = []
    for (key, op), v in k.groupby(["spec_key", "op"], sort=False)[col]:
        a = v.to_numpy(dtype=np.float64)
        if len(a) < 2:
            continue
        for i in range(len(a)):
            ref = float(np.median(np.delete(a, i)))
            rows.append((key, op, abs(a[i] - ref) <= tol * ref + 1e-12))
    f = pd.DataFrame(rows, columns=["spec_key", "op", "ok"])

    def share(frame: Any) -> dict[str, Any]:
        return {"kernels": int(frame["spec_key"].nunique()), "records": int(len(frame)),
                f"within_{round(tol * 100)}": float(frame["ok"].mean()) if len(frame) else None}

    return {**share(f), "tolerance": tol, "per_op": {str(o): share(g) for o, g in f.groupby("op", sort=True)}}


def to_json_obj(lut: Any) -> dict[str, Any]:
    cols: dict[str, list] = {}
    for c in COLUMNS:
        if c in OPTIONAL_COLUMNS and c not in lut:
            continue
        v = lut[c].to_numpy()
        if c in INT_COLUMNS:
            cols[c] = [int(x) for x in v]
        elif c in BOOL_COLUMNS:
            cols[c] = [bool(x) for x in v]
        elif c in FLOAT_COLUMNS:
            cols[c] = [float(x) for x in v]
        else:
            cols[c] = [str(x) for x in v]
    return {"format": "devprof-lut", "version": 1, "rows": len(lut), "columns": cols}


def check_json_obj(obj: Any) -> dict[str, list]:
    """Validate the JSON LUT's shape (types, equal column lengths, positive medians)."""
    if not isinstance(obj, dict) or obj.get("format") != "devprof-lut":
        raise ValueError("not a devprof lookup table")
    cols = obj.get("columns")
    if not isinstance(cols, dict):
        raise ValueError("missing columns")
    n = obj.get("rows")
    if not isinstance(n, int) or n < 0:
        raise ValueError("bad row count")
    for c in COLUMNS:
        v = cols.get(c)
        if c in OPTIONAL_COLUMNS and v is None:
            continue
        if not isinstance(v, list) or len(v) != n:
            raise ValueError(f"column {c!r} missing or of the wrong length")
    for c in [c for c in ("median_us", "min_us") if c in cols]:
        med = np.asarray(cols[c], dtype=np.float64)
        if n and not (np.isfinite(med).all() and (med > 0).all()):
            raise ValueError(f"{c} must be finite and positive")
    if len(set(cols["key"])) != n:
        raise ValueError("duplicate keys")
    return cols
