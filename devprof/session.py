"""The measurement session: the one owner of everything around a measurement.

Every path that measures — kernel suites, farms, whole models, pruned models, search spaces,
adaptive sampling, retries — runs inside a `Session`, which owns what these must do alike (the
shape of TVM's `auto_scheduler.measure`: one measurer drives build -> run -> results):

- the dataset and its single-writer lock, held from start to end;
- signals: SIGTERM stops a run as Ctrl-C does, and a Ctrl-C a C extension swallowed is honoured
  at the next kernel boundary (`check_interrupt`);
- CPU pinning of this process for in-process runtimes (`pinned`);
- cooldown between batches and the temperature wait before every batch, the first too
  (`cool`); a wait that gives up is said (`on_note`) and flagged in the records that follow;
- build -> check -> time: outcomes come from `Runtime.measure` (or a caller's own checked
  timing) and only a checked outcome becomes a record;
- turning an outcome into a `Record` with its full conditions (`record`, `record_outcome`) and
  saving it at once (`save`): the only place in devprof that constructs or writes records;
- the failure log (`fail`) and the one `--resume` rule (`resume_rule`).

A single device is a farm of one: the farm's writer thread calls the same `record`/`save`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
import time
from typing import Callable, Iterable, Iterator, Sequence

from . import __version__
from .errors import UsageError
from .records import Conditions, DeviceInfo, KernelSpec, Measurement, Record, RuntimeInfo
from .store import Dataset

#: How long `cool` waits for --max-temp before giving up (the records then say so).
DEFAULT_COOLDOWN_TIMEOUT_S = 120.0


class Terminated(KeyboardInterrupt):
    """Raised from the SIGTERM handler so a terminated run stops like an interrupted one."""


_interrupts = 0  # SIGINTs received; some C extensions' imports (ai_edge_litert) swallow the exception


def _on_sigint(signum, frame):  # noqa: ARG001
    global _interrupts
    _interrupts += 1
    raise KeyboardInterrupt


def check_interrupt() -> None:
    """Honour a Ctrl-C whose KeyboardInterrupt a library swallowed (at the next kernel boundary)."""
    if _interrupts:
        raise KeyboardInterrupt


def clear_interrupts() -> None:
    global _interrupts
    _interrupts = 0


if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # the CLI: count Ctrl-C before imports
    try:
        signal.signal(signal.SIGINT, _on_sigint)
    except ValueError:  # imported outside the main thread
        pass


class Session:
    """One run writing into one dataset. Use as a context manager::

        with Session(out, suite="smoke", resume=True, max_temp_c=40) as ses:
            for i, batch in enumerate(batches):
                ses.cool(device, first=(i == 0))
                for o in ses.measure(device, runtime, batch, threads, protocol):
                    if o.ok:
                        ses.save([ses.record_outcome(o, dinfo, rinfo)])
                    else:
                        ses.fail({...})
    """

    def __init__(self, out: str | os.PathLike, *, suite: str = "", resume: bool = False, cooldown_s: float = 0.0,
                 max_temp_c: float | None = None, cooldown_timeout_s: float = DEFAULT_COOLDOWN_TIMEOUT_S,
                 on_note: Callable[[str], None] | None = None) -> None:
        if cooldown_s < 0:
            raise UsageError("--cooldown must be >= 0 seconds")
        if cooldown_timeout_s <= 0:
            raise UsageError("--cooldown-timeout must be > 0 seconds")
        self.ds = Dataset(out)
        self.suite, self.resume = suite, resume
        self.cooldown_s, self.max_temp_c, self.cooldown_timeout_s = cooldown_s, max_temp_c, cooldown_timeout_s
        self.on_note = on_note
        #: Set by `cool` when its wait gave up; flags the records of the batch that follows.
        self.cooldown_timed_out = False
        self.saved = 0
        self.checked = 0  # records whose outcome was checked against a reference
        self.unchecked = 0  # records whose output nothing could be compared with
        self.cooldown_timeouts = 0
        self._have: set[str] | None = None
        self._old_term = None
        self._term_installed = False

    # ---- lifetime: lock and signals ----------------------------------------------------------
    def __enter__(self) -> "Session":
        clear_interrupts()  # a Ctrl-C handled by an earlier run in this process (farm, tests) is not ours
        self.ds.lock()
        for note in self.ds.notes:
            self._warn(note)
        if self.resume and self.ds.exists():
            try:
                self._set_aside_unreadable()
            except BaseException:
                self.ds.unlock()
                raise
        if threading.current_thread() is threading.main_thread():
            def on_term(signum, frame):  # noqa: ARG001
                raise Terminated()

            try:
                self._old_term = signal.signal(signal.SIGTERM, on_term)
                self._term_installed = True
            except ValueError:
                pass
        return self

    def __exit__(self, et, ev, tb) -> None:
        if et is not None and issubclass(et, KeyboardInterrupt):
            clear_interrupts()
        if self._term_installed:
            signal.signal(signal.SIGTERM, self._old_term)
            self._term_installed = False
        self.ds.unlock()

    def _set_aside_unreadable(self) -> None:
        """--resume measures what the dataset lacks, and a record in an unreadable part is lacking:
        such parts go to quarantine/ (kept, not deleted) so that their kernels are measured again
        and every reader of the dataset works again."""
        bad = self.ds.quarantine()
        if bad:
            known = [r["records"] for r in bad if r["records"] is not None]
            lost = f"{sum(known)} records" if len(known) == len(bad) else "records of unknown count"
            self._warn(f"{len(bad)} unreadable part(s) of {self.ds.path} ({lost}: {bad[0]['error']}) set aside in "
                       f"{self.ds.path / 'quarantine'}; their kernels are measured again")

    def _warn(self, msg: str) -> None:
        if self.on_note:
            self.on_note(msg)
        else:
            import sys

            print(f"warning: {msg}", file=sys.stderr)

    @property
    def path(self):
        return self.ds.path

    def compact(self) -> None:
        """Merge the run's parts. Every record is saved already, so a failure (a full disk, an
        undeletable file) is said as a warning, not an error: the merge waits for the next run."""
        from .store import MergePending

        try:
            self.ds.compact()
        except MergePending as e:
            self._warn(str(e))

    # ---- the one --resume rule ---------------------------------------------------------------
    def keys(self) -> set[str]:
        """Record keys the dataset holds (read once; kept up to date by `save`)."""
        if self._have is None:
            self._have = set(self.ds.keys()) if self.ds.exists() else set()
        return self._have

    def holds(self, key: str) -> bool:
        return key in self.keys()

    def resume_rule(self, already: int, what: str) -> None:
        """What the dataset holds already is skipped with --resume and refused without it."""
        if already and not self.resume:
            raise UsageError(f"{self.ds.path} already holds {what}; pass --resume to measure only what is "
                             "missing, or choose another --out")

    def skip(self, key: str, what: str) -> bool:
        """True when the record `key` is there and --resume skips it; refused without --resume."""
        if not self.holds(key):
            return False
        self.resume_rule(1, what)
        return True

    # ---- pinning and cooldown ----------------------------------------------------------------
    @contextlib.contextmanager
    def pinned(self, device, cpus: str) -> Iterator[None]:
        """Pin the calling thread (and the threads it starts) to `cpus` while in-process runtimes
        measure on `device`; phones pin their own process in the harness."""
        if not cpus or not getattr(device, "in_process", False):
            yield
            return
        old = os.sched_getaffinity(0)
        os.sched_setaffinity(0, [int(c) for c in cpus.split(",")])
        try:
            yield
        finally:
            os.sched_setaffinity(0, old)

    def cool(self, device, first: bool = False, label: str = "") -> bool:
        """Before a batch: pause --cooldown seconds (not before the first), then wait until the
        device is at most --max-temp (before the first too). Returns True when the wait gave up;
        the records of the batch that follows are then flagged `cooldown_timed_out`."""
        if self.cooldown_s > 0 and not first:
            time.sleep(self.cooldown_s)
        timed_out = False
        if self.max_temp_c is not None:
            timed_out = not device.wait_cool(self.max_temp_c, self.cooldown_timeout_s)
            if timed_out:
                self.cooldown_timeouts += 1
                if self.on_note:
                    t = device.state().temp_c
                    self.on_note(f"{label or device.name} still at {t:.0f} °C after waiting "
                                 f"{self.cooldown_timeout_s:.0f} s for {self.max_temp_c:.0f} °C: measuring anyway; "
                                 "its records are flagged cooldown_timed_out")
        self.cooldown_timed_out = timed_out
        return timed_out

    # ---- build -> check -> time --------------------------------------------------------------
    def measure(self, device, runtime, specs: Sequence[KernelSpec], threads: int, protocol) -> Iterator:
        """The runtime's outcomes for `specs` (each built, checked against the numpy reference,
        then timed), stopping at the next kernel boundary after a swallowed Ctrl-C."""
        for o in runtime.measure(device, specs, threads, protocol):
            yield o
            check_interrupt()

    # ---- records -----------------------------------------------------------------------------
    def record(self, spec: KernelSpec, device: DeviceInfo, runtime: RuntimeInfo, m: Measurement, kind: str = "kernel",
               *, conditions: Conditions, started_at: float, finished_at: float | None = None, checked: str,
               harness_version: str = "", kernel: str = "", cooldown_timed_out: bool | None = None,
               model_run_id: str = "", model_name: str = "", layer_index: int = -1, layer_name: str = "") -> Record:
        """The one constructor of records: a measurement with its full provenance.

        `checked` says what the output was compared with before timing (stored in the record; ""
        where nothing could be, e.g. a .tflite-only model); `conditions` are the device's state
        around the timing, to which the session adds whether the cooldown before it gave up."""
        flag = self.cooldown_timed_out if cooldown_timed_out is None else cooldown_timed_out
        if flag and not conditions.cooldown_timed_out:
            conditions = dataclasses.replace(conditions, cooldown_timed_out=True)
        if checked:
            self.checked += 1
        else:
            self.unchecked += 1
        return Record(spec, device, runtime, m, kind, conditions, started_at,
                      time.time() if finished_at is None else finished_at, __version__, harness_version,
                      model_run_id=model_run_id, model_name=model_name, layer_index=layer_index,
                      layer_name=layer_name, suite=self.suite, kernel=kernel, checked=checked)

    def record_outcome(self, o, device: DeviceInfo, runtime: RuntimeInfo, **links) -> Record:
        """The record of a successful `Outcome` (kind "kernel" unless `links` say otherwise)."""
        if not o.ok:
            raise ValueError(f"{o.spec.key}: a failed outcome has no record")
        return self.record(o.spec, device, runtime, o.measurement, links.pop("kind", "kernel"),
                           conditions=o.conditions, started_at=o.started_at, finished_at=o.finished_at,
                           checked=o.checked, harness_version=o.harness_version, kernel=o.kernel, **links)

    def save(self, records: Iterable[Record]) -> int:
        """Append records to the dataset at once (one part); returns how many were new."""
        recs = list(records)
        if not recs:
            return 0
        added = self.ds.append(recs)
        self.saved += len(recs)
        if self._have is not None:
            self._have.update(r.key for r in recs)
        return added

    def fail(self, entry: dict) -> dict:
        """Log why something was not measured (the dataset's failures log)."""
        entry = {"time": time.time(), **entry}
        self.ds.log_failure(entry)
        return entry

