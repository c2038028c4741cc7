"""Lookup tables <-> devprof records, so imported tables can be shown, reported, compared and fitted.

An imported entry becomes one kernel record:

- OFA/ProxylessNAS block keys -> ``KernelSpec(op="other", <block shapes>, attrs={"block": key})``
  (the same spec `devprof profile --space` records, so imported and measured blocks line up);
- a row that carries its devprof spec (tables devprof writes) -> that spec, checked against the
  key (a row whose spec has another key is refused);
- any other key -> ``KernelSpec(op="other", attrs={"key": key})``;
- the latency (ms) -> a `Measurement` with one sample of ``ms x 1000`` µs standing for the mean of
  ``count`` calls (``number = count``); the table's std/IQR is not kept (records hold samples);
- the device and runtime are what the user names (`--device`, `--runtime`), kind ``imported``.

`records_table` goes back: block records are keyed by their OFA key, ``attrs["key"]`` records by
that key, everything else by its canonical spec key (µs -> ms; count = timing samples).
"""
from __future__ import annotations

import time
from typing import Any, Iterable

from ..records import DeviceInfo, KernelSpec, Measurement, Record, RuntimeInfo
from .ofa import block_spec, parse_key
from .table import LatencyTable


def spec_for_key(key: str, spec_json: str | None = None) -> KernelSpec:
    if spec_json:
        import json

        from ..errors import UsageError

        try:
            spec = KernelSpec.from_dict(json.loads(spec_json))
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
            raise UsageError(f"table row {key[:80]!r}: its spec is not a devprof kernel spec ({str(e)[:80]})") from None
        if spec.key != key:
            raise UsageError(f"table row {key[:80]!r}: its spec is {spec.key[:80]!r}, another kernel")
        return spec
    try:
        return block_spec(parse_key(key))
    except ValueError:
        return KernelSpec("other", bias=False, attrs={"key": key})


def key_for_spec(spec: KernelSpec) -> str:
    a = spec.a
    if spec.op == "other" and "block" in a and "position" not in a:
        return str(a["block"])
    if spec.op == "other" and "key" in a:
        return str(a["key"])
    return spec.key


def imported_device(name: str, source: str) -> DeviceInfo:
    return DeviceInfo(kind="imported", name=name, model=name, extra={"source": source})


def table_records(table: LatencyTable, device: str = "imported", runtime: str = "imported", version: str = "",
                  source: str = "", suite: str = "imported") -> list[Record]:
    """One kernel record per table entry (see the module docstring)."""
    from .. import __version__

    dev = imported_device(device, source or str(table.meta.get("format", "table")))
    rt = RuntimeInfo(runtime, version, 1, {"source": source or str(table.meta.get("format", "table"))})
    now = time.time()
    out = []
    for k, e in table.items():
        out.append(Record(spec_for_key(k, table.specs.get(k)), dev, rt, Measurement((e.ms * 1000.0,), 0, max(1, e.count)), "kernel",
                          started_at=now, finished_at=now, devprof_version=__version__, suite=suite))
    return out


def records_table(records: Iterable[Record] | Any, stat: str = "median") -> LatencyTable:
    """Kernel records (a list of Record, or a dataset DataFrame of one device+runtime) as a table."""
    import json

    t = LatencyTable(stat=stat, spread="iqr", meta={"source": "devprof-records"})
    if hasattr(records, "iterrows"):
        df = records[records["kind"] == "kernel"]
        for _, r in df.iterrows():
            s = KernelSpec.from_dict(json.loads(r["spec_json"]))
            n = int(r["number"]) if int(r["repeats"]) == 1 else int(r["repeats"])
            k = key_for_spec(s)
            t.add(k, float(r["median_us"]) / 1000.0, float(r["iqr_us"]) / 1000.0, n,
                  spec=s.to_json() if k == s.key and s.op != "other" else None)
        return t
    for r in records:
        if r.kind != "kernel":
            continue
        m = r.measurement
        n = m.number if m.repeats == 1 else m.repeats
        k = key_for_spec(r.spec)
        t.add(k, m.median_us / 1000.0, m.iqr_us / 1000.0, n,
              spec=r.spec.to_json() if k == r.spec.key and r.spec.op != "other" else None)
    return t
