"""`devprof profile --space FILE`: time every block of a search space, write the front end's table.

Each distinct block is built as a single-block ONNX model (devprof.formats.ofa.blocks_model:
Conv+BN+activation nodes as exporters write them) and timed end to end with ONNX Runtime on
`local` under the one measurement protocol. Every block becomes a record in the dataset (op
"other", ``attrs["block"]`` = its OFA key, so `--resume` skips what was measured and the data can
be shown, reported and fitted like any other), and the table is written in the space's format:
OFA YAML (``mean`` = the median of the timing samples in ms — robust to a preempted sample —,
``std`` = 1.4826 x MAD, ``count`` = samples), or flat CSV/JSON.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import UsageError
from .formats.ofa import Block, block_spec, blocks_model
from .formats.table import LatencyTable
from .measure import Protocol, measure_callable
from .records import Measurement, Record
from .space import Space

EXT = {"ofa-yaml": ".yaml", "csv": ".csv", "json": ".json"}


@dataclass
class SpaceResult:
    table: LatencyTable
    table_path: str
    dataset: str
    measured: int = 0
    already: int = 0
    seconds: float = 0.0
    rows: list = field(default_factory=list)  # (key, mean ms, std ms, count)

    def to_dict(self) -> dict:
        return {"table": self.table_path, "dataset": self.dataset, "measured": self.measured,
                "already": self.already, "blocks": len(self.table), "seconds": self.seconds}


def time_onnx(model, threads: int, protocol: Protocol, seed: int = 0) -> Measurement:
    """End-to-end time of an ONNX model in ONNX Runtime (the same session options as the
    single-op runtime), under `protocol`."""
    from .runtimes.onnxruntime import OnnxRuntime

    sess = OnnxRuntime().session(model.SerializeToString(), threads)
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    feeds = {inp.name: x}
    run = sess.run
    run(None, feeds)
    return measure_callable(lambda: run(None, feeds), protocol)


def entry_of(m: Measurement) -> tuple[float, float, int]:
    """(latency ms, spread ms, count) for an OFA entry's (mean, std, count).

    devprof puts its robust statistics there: the median of the samples (one preempted sample
    on a busy core would otherwise drag the mean far off) and the MAD scaled to estimate the
    standard deviation (1.4826 x MAD); count = number of timing samples."""
    return m.median_us / 1000.0, 1.4826 * m.mad_us / 1000.0, int(m.repeats)


def profile_space(space: Space, device, out: str | Path, threads: int = 1, protocol: Protocol = Protocol(),
                  resume: bool = False, table_path: str | Path | None = None,
                  on_block: Callable[[Block, Measurement | None], None] | None = None) -> SpaceResult:
    """Measure every distinct block of `space` on `device` (local ONNX Runtime) into dataset `out`
    and write the table. Blocks already in the dataset are reused when `resume`."""
    from . import __version__
    from .runtimes.onnxruntime import OnnxRuntime
    from .store import Dataset

    if not getattr(device, "in_process", False):
        raise UsageError(f"--space times blocks with ONNX Runtime in-process: use --device local "
                         f"({device.name} is not supported yet)")
    started = time.monotonic()
    ds = Dataset(out)
    dinfo = device.info()
    rinfo = OnnxRuntime().info(device, threads)
    have: dict[str, Measurement] = {}
    if ds.exists():
        for r in ds.records():
            if r.kind == "kernel" and r.device.id == dinfo.id and r.runtime.key == rinfo.key and r.spec.op == "other":
                have[r.spec.key] = r.measurement
    blocks = space.blocks()
    specs = {b.key: block_spec(b) for b in blocks}
    if have and not resume and any(specs[b.key].key in have for b in blocks):
        raise UsageError(f"{ds.path} already holds blocks of this space; pass --resume to measure only what is "
                         "missing, or choose another --out")
    table = LatencyTable(stat="mean", spread="std", meta={"space": space.name, "device": dinfo.name,
                                                          "runtime": rinfo.key})
    res = SpaceResult(table, "", str(ds.path))
    ds.lock()
    try:
        for b in blocks:
            spec = specs[b.key]
            m = have.get(spec.key)
            if m is not None:
                res.already += 1
            else:
                t0 = time.time()
                m = time_onnx(blocks_model([b], name=space.name, act=space.act), threads, protocol)
                ds.append([Record(spec, dinfo, rinfo, m, "kernel", started_at=t0, finished_at=time.time(),
                                  devprof_version=__version__, suite=f"space:{space.name}")])
                res.measured += 1
            ms, sd, n = entry_of(m)
            table.add(b.key, ms, sd, n)
            res.rows.append((b.key, ms, sd, n))
            if on_block:
                on_block(b, m)
        ds.compact()
    finally:
        ds.unlock()
    path = Path(table_path) if table_path else Path(out) / f"{space.name}{EXT[space.format]}"
    write_table(table, path, space.format)
    res.table_path = str(path)
    res.seconds = round(time.monotonic() - started, 2)
    return res


def write_table(table: LatencyTable, path: str | Path, fmt: str) -> Path:
    from .formats import flat, ofa

    if fmt == "ofa-yaml":
        return ofa.write(table, path)
    p = Path(path)
    if p.suffix.lower() != f".{fmt}":
        raise UsageError(f"a {fmt} table file must end in .{fmt}")
    return flat.write(table, p)
