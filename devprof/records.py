"""The record model: the single source of truth for what devprof measures and stores.

Every stage shares these types and nothing else: suites and model walkers produce
`KernelSpec`s, runtimes turn them into `Measurement`s, and a `Record` binds a measurement to
the conditions it was taken under (device fingerprint, runtime, threads, temperature...).
The Parquet layout (`arrow_schema()`) is derived from these types here and nowhere else; its
version is `SCHEMA_VERSION` and is documented in docs/dataset-schema.md.

This module imports only the standard library, numpy and (lazily) pyarrow, so that
`predictors` can use it on a machine with no compiler, no adb and no torch.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

SCHEMA_VERSION = 3
"""Bump when a column is added, removed or changes meaning; readers refuse newer versions."""

#: Columns added after version 1: name -> (version that added it, value in older parts).
#: `conform` fills them in when an older part is read, so every reader sees one layout.
ADDED_COLUMNS = {
    "emulated": (2, False),
    "cooldown_timed_out": (2, False),
    "kernel": (2, ""),
    "checked": (3, ""),
}

from predictors.spec import (  # noqa: F401  the spec types, shared with predictors
    ACTIVATIONS, CONV_OPS, DTYPES, KINDS, OPS, SCHEMES, SHAPE_PRESERVING, KernelSpec, Sparsity, _canon,
    REQUIRED_FIELDS, _frozen_items, _jsonable, content_id, expand_shorthand, spec_from_user,
)


# ---- measurement -------------------------------------------------------------------------
NOISY_REL_IQR = 0.10
"""IQR / median above which a measurement is flagged as too noisy to trust (as torch.utils.benchmark)."""


@dataclass(frozen=True)
class Measurement:
    """Timing samples of one kernel and their statistics; immutable.

    Each sample is one round of the protocol (`devprof.measure`): the fastest of the round's
    timings, each the mean of `number` back-to-back calls (µs per call), so that very short kernels
    are timed above the clock's resolution. Samples from tools that only report their runs
    (benchmark_model, onnxruntime_perf_test, ORT's per-layer profile) are those runs. `warmups`
    calls ran before.
    """

    samples_us: tuple[float, ...]
    warmups: int = 0
    number: int = 1

    def __post_init__(self) -> None:
        s = tuple(float(x) for x in self.samples_us)
        if not s:
            raise ValueError("a measurement needs at least one sample")
        if not all(math.isfinite(x) and x >= 0 for x in s):
            raise ValueError("samples must be finite and non-negative")
        object.__setattr__(self, "samples_us", s)

    @property
    def repeats(self) -> int:
        return len(self.samples_us)

    @property
    def median_us(self) -> float:
        return float(np.median(self.samples_us))

    @property
    def mean_us(self) -> float:
        return float(np.mean(self.samples_us))

    @property
    def min_us(self) -> float:
        return float(np.min(self.samples_us))

    @property
    def iqr_us(self) -> float:
        q1, q3 = np.percentile(self.samples_us, [25, 75])
        return float(q3 - q1)

    @property
    def mad_us(self) -> float:
        med = self.median_us
        return float(np.median(np.abs(np.asarray(self.samples_us) - med)))

    @property
    def cv(self) -> float:
        m = self.mean_us
        return float(np.std(self.samples_us) / m) if m > 0 else 0.0

    @property
    def noisy(self) -> bool:
        med = self.median_us
        return med > 0 and self.iqr_us / med > NOISY_REL_IQR

    def __str__(self) -> str:
        flag = " (noisy)" if self.noisy else ""
        return f"{self.median_us:.1f} µs median, IQR {self.iqr_us:.1f} µs, {self.repeats}x{self.number}{flag}"


# ---- provenance --------------------------------------------------------------------------
#: CPU features a fingerprint records that its id does not hash (recorded only since ids existed)
_FEATURES_OUTSIDE_ID = frozenset({"asimdhp"})


@dataclass(frozen=True)
class DeviceInfo:
    """Fingerprint of the machine the kernel ran on. `id` hashes only what decides speed."""

    kind: str  # "local" | "adb"
    name: str  # marketing name or host name, e.g. "Galaxy S20 5G" / "local"
    model: str = ""  # model code (SM-G981U) or CPU model string for local
    serial: str = ""
    soc: str = ""
    abi: str = ""
    cpu: str = ""
    cores: int = 0
    isa: tuple = ()
    os: str = ""
    kernel: str = ""
    build: str = ""  # ro.build.fingerprint on phones
    extra: tuple = ()  # clusters, frequencies, memory...: informative, not part of the id
    #: An emulator (or a loopback phone under qemu): its timings say nothing about a real phone,
    #: so it is part of the id and records say so.
    emulated: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "isa", tuple(self.isa))
        object.__setattr__(self, "extra", _frozen_items(self.extra))

    @property
    def id(self) -> str:
        # a phone's CPU features follow from its model, SoC, kernel and build (all hashed), so they
        # stay out of its id: phones fingerprinted before devprof read them keep their id
        # features recorded since ids were defined (asimdhp) stay out too, so hosts keep their id
        parts = [self.kind, self.model, self.soc, self.abi, self.cpu, self.cores,
                 sorted(set(self.isa) - _FEATURES_OUTSIDE_ID) if self.kind == "local" else [], self.os,
                 self.kernel, self.build, self.serial if self.kind != "local" else ""]
        if self.emulated:  # only when true, so the ids of real devices never change
            parts.append("emulated")
        return content_id(parts)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["isa"] = list(self.isa)
        d["extra"] = {k: v for k, v in self.extra}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DeviceInfo":
        d = dict(d)
        d["extra"] = d.get("extra") or {}
        return cls(**d)


@dataclass(frozen=True)
class RuntimeInfo:
    """What executed the kernel: name, version, threads and backend options."""

    name: str  # "onnxruntime" | "litert" | "devprof-c" | "tflite-benchmark" | ...
    version: str
    threads: int = 1
    options: tuple = ()  # e.g. (("xnnpack", True),)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", _frozen_items(self.options))

    @property
    def key(self) -> str:
        """Human-readable runtime key used for dedup and grouping, e.g. ``litert[xnnpack=True]/t1``."""
        opts = ",".join(f"{k}={v}" for k, v in self.options)
        return f"{self.name}{'[' + opts + ']' if opts else ''}@{self.version}/t{self.threads}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "threads": self.threads,
                "options": {k: v for k, v in self.options}}


@dataclass(frozen=True)
class Conditions:
    """The state of the device around a measurement (read before and after on phones)."""

    cpus: str = ""  # pinned CPU list, e.g. "4-7"; "" = not pinned
    governor: str = ""
    freq_before_khz: int = -1
    freq_after_khz: int = -1
    temp_before_c: float = float("nan")
    temp_after_c: float = float("nan")
    throttled: bool = False
    #: The cooldown before this measurement gave up waiting for the temperature/timeout target.
    cooldown_timed_out: bool = False


@dataclass(frozen=True)
class Record:
    """A measurement with the conditions it was taken under: one row of a dataset."""

    spec: KernelSpec
    device: DeviceInfo
    runtime: RuntimeInfo
    measurement: Measurement
    kind: str = "kernel"
    conditions: Conditions = field(default_factory=Conditions)
    started_at: float = 0.0  # unix seconds
    finished_at: float = 0.0
    devprof_version: str = ""
    harness_version: str = ""
    model_run_id: str = ""  # links layer records to their model record (and that one to itself)
    model_name: str = ""
    layer_index: int = -1
    layer_name: str = ""
    suite: str = ""
    #: The runtime's own kernel that computed it, where the runtime reports it (not part of the key).
    kernel: str = ""
    #: What the output was compared with before it was timed ("numpy reference"); "" where nothing
    #: could be (a .tflite-only model, records imported from tables, parts older than schema 3).
    checked: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown record kind {self.kind!r}")

    @property
    def key(self) -> str:
        """Dedup key: (kind, spec id, model context, device fingerprint, runtime)."""
        return record_key(self.kind, self.spec.id, self.device.id, self.runtime.key, self.model_name,
                          self.layer_index, self.layer_name)


def record_key(kind: str, spec_id: str, device_id: str, runtime_key: str, model_name: str = "",
               layer_index: int = -1, layer_name: str = "") -> str:
    """The dedup key of a record, computable before measuring (so `--resume` can skip work)."""
    return content_id([kind, spec_id, model_name, layer_index, layer_name, device_id, runtime_key], 24)


# ---- Parquet layout ----------------------------------------------------------------------
_SPEC_SCALARS = ("n", "h", "w", "cin", "cout", "kh", "kw", "stride", "padding", "groups", "dilation")


def _columns():
    import pyarrow as pa

    cols = [
        ("schema_version", pa.int16()), ("record_key", pa.string()), ("kind", pa.string()),
        ("spec_id", pa.string()), ("spec_key", pa.string()), ("op", pa.string()),
        *[(c, pa.int32()) for c in _SPEC_SCALARS],
        ("out_h", pa.int32()), ("out_w", pa.int32()), ("bias", pa.bool_()), ("activation", pa.string()),
        ("dtype", pa.string()), ("scheme", pa.string()), ("sparsity_ratio", pa.float64()),
        ("sparsity_params", pa.string()), ("attrs", pa.string()), ("flops", pa.int64()),
        ("params", pa.int64()), ("spec_json", pa.string()),
        ("device_id", pa.string()), ("device_kind", pa.string()), ("device_name", pa.string()),
        ("device_model", pa.string()), ("device_serial", pa.string()), ("device_json", pa.string()),
        ("runtime", pa.string()), ("runtime_version", pa.string()), ("threads", pa.int16()),
        ("runtime_options", pa.string()), ("runtime_key", pa.string()),
        ("samples_us", pa.list_(pa.float64())), ("warmups", pa.int32()), ("number", pa.int32()),
        ("repeats", pa.int32()), ("median_us", pa.float64()), ("mean_us", pa.float64()),
        ("min_us", pa.float64()), ("iqr_us", pa.float64()), ("mad_us", pa.float64()), ("cv", pa.float64()),
        ("noisy", pa.bool_()),
        ("cpus", pa.string()), ("governor", pa.string()), ("freq_before_khz", pa.int64()),
        ("freq_after_khz", pa.int64()), ("temp_before_c", pa.float64()), ("temp_after_c", pa.float64()),
        ("throttled", pa.bool_()),
        ("started_at", pa.timestamp("us", tz="UTC")), ("finished_at", pa.timestamp("us", tz="UTC")),
        ("devprof_version", pa.string()), ("harness_version", pa.string()),
        ("model_run_id", pa.string()), ("model_name", pa.string()), ("layer_index", pa.int32()),
        ("layer_name", pa.string()), ("suite", pa.string()),
        ("emulated", pa.bool_()), ("cooldown_timed_out", pa.bool_()), ("kernel", pa.string()),
        ("checked", pa.string()),
    ]
    return cols


def arrow_schema():
    """The explicit Arrow schema of a dataset's Parquet files (version `SCHEMA_VERSION`)."""
    import pyarrow as pa

    return pa.schema(_columns(), metadata={b"devprof.schema_version": str(SCHEMA_VERSION).encode()})


def conform(table, version: int):
    """An Arrow table read from a part of schema `version` in today's layout.

    Columns added since `version` get their documented old value; a column missing from a part
    of a version that should have it is an error (the part was not written by devprof)."""
    import pyarrow as pa

    schema = arrow_schema()
    for name, (added_in, old_value) in ADDED_COLUMNS.items():
        if name in table.column_names:
            continue
        if version >= added_in:
            raise ValueError(f"column {name!r} missing from a schema-{version} part")
        table = table.append_column(name, pa.array([old_value] * table.num_rows, type=schema.field(name).type))
    return table.select(schema.names).cast(schema)


def record_to_row(r: Record) -> dict[str, Any]:
    s, m, c, d, rt = r.spec, r.measurement, r.conditions, r.device, r.runtime
    row: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "record_key": r.key, "kind": r.kind,
        "spec_id": s.id, "spec_key": s.key, "op": s.op,
        **{k: getattr(s, k) for k in _SPEC_SCALARS},
        "out_h": s.out_h, "out_w": s.out_w, "bias": s.bias, "activation": s.activation, "dtype": s.dtype,
        "scheme": s.sparsity.scheme, "sparsity_ratio": s.sparsity.ratio,
        "sparsity_params": _canon(s.sparsity.to_dict()["params"]), "attrs": _canon(s.to_dict()["attrs"]),
        "flops": s.flops, "params": s.params_count, "spec_json": s.to_json(),
        "device_id": d.id, "device_kind": d.kind, "device_name": d.name, "device_model": d.model,
        "device_serial": d.serial, "device_json": _canon(d.to_dict()),
        "runtime": rt.name, "runtime_version": rt.version, "threads": rt.threads,
        "runtime_options": _canon(rt.to_dict()["options"]), "runtime_key": rt.key,
        "samples_us": list(m.samples_us), "warmups": m.warmups, "number": m.number, "repeats": m.repeats,
        "median_us": m.median_us, "mean_us": m.mean_us, "min_us": m.min_us, "iqr_us": m.iqr_us,
        "mad_us": m.mad_us, "cv": m.cv, "noisy": m.noisy,
        "cpus": c.cpus, "governor": c.governor, "freq_before_khz": c.freq_before_khz,
        "freq_after_khz": c.freq_after_khz, "temp_before_c": c.temp_before_c, "temp_after_c": c.temp_after_c,
        "throttled": c.throttled,
        "started_at": int(r.started_at * 1e6), "finished_at": int(r.finished_at * 1e6),
        "devprof_version": r.devprof_version, "harness_version": r.harness_version,
        "model_run_id": r.model_run_id, "model_name": r.model_name, "layer_index": r.layer_index,
        "layer_name": r.layer_name, "suite": r.suite,
        "emulated": d.emulated, "cooldown_timed_out": c.cooldown_timed_out, "kernel": r.kernel,
        "checked": r.checked,
    }
    return row


def records_to_table(records: Iterable[Record]):
    import pyarrow as pa

    rows = [record_to_row(r) for r in records]
    schema = arrow_schema()
    arrays = []
    for f in schema:
        vals = [row[f.name] for row in rows]
        if pa.types.is_timestamp(f.type):
            arrays.append(pa.array(vals, type=pa.int64()).cast(f.type))
        else:
            arrays.append(pa.array(vals, type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def row_to_record(row: Mapping[str, Any]) -> Record:
    """Rebuild a `Record` from a dataset row (a dict or a pandas Series)."""

    def ts(v: Any) -> float:
        if v is None:
            return 0.0
        if hasattr(v, "timestamp"):
            return float(v.timestamp())
        return float(v) / 1e6

    rt_opts = json.loads(row["runtime_options"] or "{}")
    return Record(
        spec=KernelSpec.from_dict(json.loads(row["spec_json"])),
        device=DeviceInfo.from_dict(json.loads(row["device_json"])),
        runtime=RuntimeInfo(row["runtime"], row["runtime_version"], int(row["threads"]), rt_opts),
        measurement=Measurement(tuple(row["samples_us"]), int(row["warmups"]), int(row["number"])),
        kind=row["kind"],
        conditions=Conditions(row["cpus"], row["governor"], int(row["freq_before_khz"]),
                              int(row["freq_after_khz"]), float(row["temp_before_c"]),
                              float(row["temp_after_c"]), bool(row["throttled"]),
                              bool(row.get("cooldown_timed_out", False))),
        started_at=ts(row["started_at"]), finished_at=ts(row["finished_at"]),
        devprof_version=row["devprof_version"], harness_version=row["harness_version"],
        model_run_id=row["model_run_id"], model_name=row["model_name"], layer_index=int(row["layer_index"]),
        layer_name=row["layer_name"], suite=row["suite"], kernel=row.get("kernel", "") or "",
        checked=row.get("checked", "") or "",
    )
