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
from .records import Measurement
from .runtimes.base import Outcome
from .session import DEFAULT_COOLDOWN_TIMEOUT_S, Session
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
    failed: list = field(default_factory=list)  # (key, why): blocks whose output was wrong
    checked: int = 0  # records whose output was compared with the numpy reference before timing

    def to_dict(self) -> dict:
        return {"table": self.table_path, "dataset": self.dataset, "measured": self.measured,
                "already": self.already, "failed": len(self.failed), "blocks": len(self.table),
                "seconds": self.seconds}


def time_onnx(model, threads: int, protocol: Protocol, seed: int = 0, device=None) -> Outcome:
    """Build, check and time an ONNX model end to end in ONNX Runtime (the same session options as
    the single-op runtime), under `protocol`: its output is first compared with ONNX's own numpy
    reference evaluator (a wrong answer is an error outcome, never a timing), then it is timed
    with the device's conditions read around the timing."""
    from .runtimes.conditions import conditions_around
    from .runtimes.model_check import CHECKED, compare, reference_output
    from .runtimes.onnxruntime import OnnxRuntime

    spec = block_spec_of(model)
    started = time.time()
    sess = OnnxRuntime().session(model.SerializeToString(), threads)
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    feeds = {inp.name: x}
    run = sess.run
    bad = compare(run(None, feeds)[0], reference_output(model, feeds))
    if bad:
        return Outcome(spec, error=f"onnxruntime computes a different answer: {bad}", started_at=started,
                       finished_at=time.time())
    if device is None:
        m = measure_callable(lambda: run(None, feeds), protocol)
        return Outcome(spec, m, started_at=started, finished_at=time.time(), checked=CHECKED)
    with conditions_around(device, protocol.cpus or None) as cond:
        m = measure_callable(lambda: run(None, feeds), protocol)
    return Outcome(spec, m, conditions=cond.result, started_at=started, finished_at=time.time(), checked=CHECKED)


def block_spec_of(model):
    """A placeholder spec for an outcome; the caller's spec names the block."""
    from .records import KernelSpec

    return KernelSpec(op="other", bias=False, attrs={"model": model.graph.name})


def entry_of(m: Measurement) -> tuple[float, float, int]:
    """(latency ms, spread ms, count) for an OFA entry's (mean, std, count).

    devprof puts its robust statistics there: the median of the samples (one preempted sample
    on a busy core would otherwise drag the mean far off) and the MAD scaled to estimate the
    standard deviation (1.4826 x MAD); count = number of timing samples."""
    return m.median_us / 1000.0, 1.4826 * m.mad_us / 1000.0, int(m.repeats)


def profile_space(space: Space, device, out: str | Path, threads: int = 1, protocol: Protocol = Protocol(),
                  resume: bool = False, table_path: str | Path | None = None,
                  on_block: Callable[[Block, Measurement | None], None] | None = None, *,
                  cooldown_s: float = 0.0, max_temp_c: float | None = None,
                  cooldown_timeout_s: float = DEFAULT_COOLDOWN_TIMEOUT_S,
                  on_note: Callable[[str], None] | None = None) -> SpaceResult:
    """Measure every distinct block of `space` on `device` (local ONNX Runtime) into dataset `out`
    and write the table. Blocks already in the dataset are reused when `resume`. The run is a
    `Session`: locked, pinned, cooled before each block, every block checked before it is timed."""
    from .runtimes.onnxruntime import OnnxRuntime

    if not getattr(device, "in_process", False):
        raise UsageError(f"--space times blocks with ONNX Runtime in-process: use --device local "
                         f"({device.name} is not supported yet)")
    started = time.monotonic()
    session = Session(out, suite=f"space:{space.name}", resume=resume, cooldown_s=cooldown_s, max_temp_c=max_temp_c,
                      cooldown_timeout_s=cooldown_timeout_s, on_note=on_note)
    ds = session.ds
    dinfo = device.info()
    rinfo = OnnxRuntime().info(device, threads)
    have: dict[str, Measurement] = {}
    if ds.exists():
        for r in ds.records():
            if r.kind == "kernel" and r.device.id == dinfo.id and r.runtime.key == rinfo.key and r.spec.op == "other":
                have[r.spec.key] = r.measurement
    blocks = space.blocks()
    specs = {b.key: block_spec(b) for b in blocks}
    table = LatencyTable(stat="mean", spread="std", meta={"space": space.name, "device": dinfo.name,
                                                          "runtime": rinfo.key})
    res = SpaceResult(table, "", str(ds.path))
    with session, session.pinned(device, protocol.cpus):
        session.resume_rule(sum(specs[b.key].key in have for b in blocks), "blocks of this space")
        first = True
        for b in blocks:
            spec = specs[b.key]
            m = have.get(spec.key)
            if m is not None:
                res.already += 1
            else:
                session.cool(device, first=first)
                first = False
                o = time_onnx(blocks_model([b], name=space.name, act=space.act), threads, protocol, device=device)
                if not o.ok:
                    session.fail({"runtime": rinfo.key, "device_id": dinfo.id, "spec_id": spec.id,
                                  "spec_key": spec.key, "block": b.key, "error": o.error})
                    res.failed.append((b.key, o.error))
                    if on_block:
                        on_block(b, None)
                    continue
                session.save([session.record(spec, dinfo, rinfo, o.measurement, "kernel", conditions=o.conditions,
                                             started_at=o.started_at, finished_at=o.finished_at, checked=o.checked)])
                m = o.measurement
                res.measured += 1
            ms, sd, n = entry_of(m)
            table.add(b.key, ms, sd, n)
            res.rows.append((b.key, ms, sd, n))
            if on_block:
                on_block(b, m)
        session.compact()
    res.checked = session.checked
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
