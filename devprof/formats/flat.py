"""Flat tables any language reads: CSV and JSON of (key, ms, spread, count).

CSV (RFC 4180, UTF-8, header line, one row per key; floats written with Python's shortest
round-tripping repr, so reading them back gives the same doubles)::

    key,ms,spread_ms,count
    conv2d-n1-56x56x32-o64-k3x3-s1-p1,0.41235,0.0123,25

Tables devprof writes from its own records or bundles add a fifth column, ``spec``: the kernel
spec behind the key as canonical JSON, so `devprof import-table` gives back kernel records of the
real op (not ``op=other``) that `devprof fit-predictor` can fit again. Readers of the 4-column
form can ignore it; the JSON form carries it as each row's ``spec`` object.

JSON (one object)::

    {"format": "devprof-flat-table", "version": 1, "stat": "median", "spread": "iqr",
     "unit": "ms", "rows": [{"key": ..., "ms": ..., "spread_ms": ..., "count": ...}, ...]}

`from_bundle` makes such a table from a published devprof bundle (its lookup table: canonical
spec key, median, IQR, number of timing samples).
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .ofa import _atomic_write, _read_text
from .table import LatencyTable

FORMAT = "devprof-flat-table"
VERSION = 1
HEADER = ("key", "ms", "spread_ms", "count")
SPEC_HEADER = HEADER + ("spec",)


def csv_dumps(table: LatencyTable) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    with_spec = bool(table.specs)
    w.writerow(SPEC_HEADER if with_spec else HEADER)
    for k, e in table.items():
        w.writerow([k, repr(float(e.ms)), repr(float(e.spread_ms)), int(e.count)]
                   + ([table.specs.get(k, "")] if with_spec else []))
    return buf.getvalue()


def csv_loads(text: str, where: str = "table") -> LatencyTable:
    rows = list(csv.reader(io.StringIO(text)))
    header = tuple(c.strip() for c in rows[0]) if rows else ()
    if header not in (HEADER, SPEC_HEADER):
        raise UsageError(f"{where}: a flat CSV table starts with the header {','.join(HEADER)} (optionally ,spec)")
    t = LatencyTable(stat="median", spread="iqr", meta={"format": "csv"})
    for i, r in enumerate(rows[1:], start=2):
        if not r:
            continue
        if len(r) != len(header):
            raise UsageError(f"{where}:{i}: expected {len(header)} columns, got {len(r)}")
        try:
            if r[0] in t:
                raise ValueError(f"duplicate key {r[0][:80]!r}")
            t.add(r[0], float(r[1]), float(r[2]), int(r[3]), spec=r[4] if len(r) > 4 else None)
        except ValueError as e:
            raise UsageError(f"{where}:{i}: {e}") from None
    return t


def json_obj(table: LatencyTable) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "stat": table.stat, "spread": table.spread, "unit": "ms",
            "meta": table.meta,
            "rows": [{"key": k, "ms": e.ms, "spread_ms": e.spread_ms, "count": e.count,
                      **({"spec": json.loads(table.specs[k])} if k in table.specs else {})}
                     for k, e in table.items()]}


def json_dumps(table: LatencyTable) -> str:
    return json.dumps(json_obj(table), indent=1, allow_nan=False) + "\n"


def json_loads(text: str, where: str = "table") -> LatencyTable:
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise UsageError(f"{where} is not valid JSON ({str(e)[:80]})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise UsageError(f"{where} is not a {FORMAT} file")
    if not isinstance(obj.get("version"), int) or obj["version"] > VERSION:
        raise UsageError(f"{where}: unsupported version {obj.get('version')!r} (this devprof reads {VERSION})")
    rows = obj.get("rows")
    if not isinstance(rows, list):
        raise UsageError(f"{where}: rows must be a list")
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    t = LatencyTable(stat=str(obj.get("stat", "median")), spread=str(obj.get("spread", "iqr")), meta=meta)
    for i, r in enumerate(rows):
        try:
            if not isinstance(r, dict):
                raise ValueError("a row must be an object")
            if r.get("key") in t:
                raise ValueError(f"duplicate key {str(r.get('key'))[:80]!r}")
            spec = r.get("spec")
            if spec is not None and not isinstance(spec, dict):
                raise ValueError("spec must be an object")
            t.add(r["key"], r["ms"], r.get("spread_ms", 0.0), r.get("count", 1),
                  spec=json.dumps(spec, sort_keys=True, separators=(",", ":")) if spec else None)
        except KeyError as e:
            raise UsageError(f"{where}: row {i} has no {e.args[0]}") from None
        except (ValueError, TypeError) as e:
            raise UsageError(f"{where}: row {i}: {e}") from None
    return t


def write(table: LatencyTable, path: str | Path) -> Path:
    """Write CSV or JSON by the file's extension."""
    p = Path(path)
    if p.suffix.lower() == ".csv":
        _atomic_write(p, csv_dumps(table))
    elif p.suffix.lower() == ".json":
        _atomic_write(p, json_dumps(table))
    else:
        raise UsageError(f"{p}: a flat table ends in .csv or .json")
    return p


def read(path: str | Path) -> LatencyTable:
    p = Path(path)
    text = _read_text(p)
    if p.suffix.lower() == ".csv":
        return csv_loads(text, str(p))
    if p.suffix.lower() == ".json":
        return json_loads(text, str(p))
    raise UsageError(f"{p}: a flat table ends in .csv or .json")


def from_bundle(bundle: Any) -> LatencyTable:
    """A bundle's lookup table (path or loaded `predictors.Predictor`) as a flat table in ms:
    key = canonical spec key, ms = median, spread = IQR, count = timing samples behind it, and
    the spec itself (so the table imports back as kernel records of the real op)."""
    import predictors

    p = bundle if hasattr(bundle, "lut") and hasattr(bundle, "keys") else predictors.load(bundle)
    lut = p.lut
    t = LatencyTable(stat="median", spread="iqr",
                     meta={"source": "devprof-bundle", "device": p.metadata.get("device", {}).get("name"),
                           "runtime": p.metadata.get("runtime", {}).get("key")})
    for k, med, iqr, n, spec in zip(lut["key"], lut["median_us"], lut["iqr_us"], lut["repeats"], lut["spec_json"]):
        t.add(str(k), float(med) / 1000.0, float(iqr) / 1000.0, int(n), spec=str(spec))
    return t
