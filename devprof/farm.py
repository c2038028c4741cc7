"""Device farms: many phones at once, on one or several adb servers, into one dataset.

Why it looks the way it does:

* **Fleets.** Phones with the same fingerprint except their serial (same model, SoC, build
  fingerprint, kernel, cores...) are *identical*: `fleet_id` is `DeviceInfo.id` computed with the
  serial blanked. Identical phones share one suite; different phones each run the whole suite.
* **Records keep the serial.** Each record names the physical phone that measured it
  (`DeviceInfo.id` includes the serial), because a phone with a worn battery or bad thermal paste
  must stay traceable. The suite of a fleet is therefore spread over several device ids, so
  "already measured" is decided per *fleet*: a kernel measured on any identical peer, in this run
  or an earlier one, is done (`fleet_done`). Predictors and reports group by model/build anyway.
* **A shared work queue, not static shards.** Each fleet's batches sit in one `WorkQueue`; every
  phone of the fleet takes the next batch when it is free, so a fast (or cooler) phone takes more.
  A phone that disconnects gives the unfinished part of its batch back, and its peers finish it.
* **One worker thread per phone**, each with its own `Device` object (so its own push cache and
  adb connection), its own runtime instances, pinning and cooldown; the phones wait on adb, not
  on this machine's CPUs, so threads are enough.
* **One writer.** Workers never touch the dataset: they post events to a queue, and the calling
  (main) thread is the dataset's single writer — it appends whatever arrived as one atomic part,
  logs failures and drops any duplicate, so the single-writer `Dataset` stays correct.
"""
from __future__ import annotations

import dataclasses
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from .devices.base import Device
from .errors import DevprofError, DeviceError, UsageError
from .measure import Protocol
from .session import DEFAULT_COOLDOWN_TIMEOUT_S, Session
from .records import DeviceInfo, KernelSpec, Record, RuntimeInfo
from .runtimes import Runtime, get_runtime
from .runtimes.base import Outcome
from .store import Dataset

LOCAL_NAMES = ("local", "host", "localhost")
MAX_RETRIES = 1  # a batch hit by a device error on a phone that still answers is tried once more


# ---------------------------------------------------------------------- identity
def fleet_id(info: DeviceInfo) -> str:
    """The id shared by identical devices: `DeviceInfo.id` without the serial."""
    return dataclasses.replace(info, serial="").id


@dataclass
class Member:
    """One device of the farm, with the adb server it hangs on ("" for local)."""

    device: Device
    info: DeviceInfo
    server: str = ""

    @property
    def serial(self) -> str:
        return getattr(self.device, "serial", "") or self.info.serial

    @property
    def fleet(self) -> str:
        return fleet_id(self.info)

    @property
    def label(self) -> str:
        tag = self.info.serial or self.serial  # ro.serialno: stable, unlike a network adb serial
        return f"{self.info.name} [{tag}]" if tag and self.info.kind != "local" else self.info.name

    @property
    def unique(self) -> tuple[str, str]:
        """What makes two members the same physical device (a phone seen through two servers)."""
        return (self.info.kind, self.info.serial or f"{self.server}/{self.serial}")


def _server_label(server: str | None) -> str:
    from .devices import adb

    host, port = adb.parse_server(server)
    return f"{host}:{port}"


def attached(servers: Sequence[str] = ()) -> tuple[list[Member], list[str]]:
    """Every phone on every server (default: the local adb server), and one warning per server
    that does not answer. Phones that do not answer their fingerprint read are left out."""
    from .devices import adb

    members: list[Member] = []
    warnings: list[str] = []
    seen: set[tuple[str, str]] = set()
    for server in (list(servers) or [None]):
        label = _server_label(server)
        try:
            adb.attached_serials(server)
        except DeviceError as e:
            warnings.append(str(e))
            continue
        for d in adb.list_phones(server):
            try:
                m = Member(d, d.info(), label)
            except DevprofError:
                continue
            if m.unique not in seen:
                seen.add(m.unique)
                members.append(m)
    return members, warnings


def by_model(members: Iterable[Member]) -> list[Member]:
    """Members sorted so that phones of one model (then one fleet) are next to each other."""
    return sorted(members, key=lambda m: (m.info.kind != "local", m.info.name, m.info.model, m.fleet, m.info.serial,
                                          m.server, m.serial))


def _describe(m: Member) -> str:
    where = f"{m.serial} on {m.server}" if m.serial != m.info.serial else f"on {m.server}"
    return f"{m.info.serial or m.serial} ({m.info.name}, {m.info.model}, {where})"


def resolve_farm(names: Sequence[str], servers: Sequence[str] = (), all_matching: bool = False) -> list[Member]:
    """The devices `names` designate across `servers`: serials, aliases, model codes or marketing
    names. A name matching several phones is an error unless `all_matching` (then all of them)."""
    from .devices import LocalDevice, table

    names = [n.strip() for n in names]
    if not names or any(not n for n in names):
        raise UsageError("empty --device name")
    out: list[Member] = []
    seen: set[tuple[str, str]] = set()
    phones: list[Member] | None = None
    for name in names:
        if name.lower() in LOCAL_NAMES:
            d = LocalDevice()
            hits = [Member(d, d.info(), "")]
        else:
            if phones is None:
                phones, warnings = attached(servers)
                if not phones and warnings:
                    raise DeviceError(warnings[0])
            wanted = name
            alias = table.aliases().get(table.norm(name))
            if alias is not None:
                wanted = alias
            key = table.norm(wanted)
            if key in ("adb", "phone", "android"):
                hits = list(phones)
            else:
                hits = [p for p in phones if wanted in (p.serial, p.info.serial) or table.norm(p.info.serial) == key
                        or getattr(p.device, "matches", lambda _k: False)(key)]
            if not hits:
                listed = ", ".join(["local"] + [_describe(p) for p in by_model(phones)])
                raise UsageError(f"no attached device matches {name!r}; attached: {listed}")
            if len(hits) > 1 and not all_matching:
                listed = ", ".join(_describe(p) for p in by_model(hits))
                raise UsageError(f"{name!r} matches {len(hits)} phones: {listed}; pass --all-matching to use "
                                 "them all, or name each by serial")
        for m in hits:
            if m.unique not in seen:
                seen.add(m.unique)
                out.append(m)
    return out


# ---------------------------------------------------------------------- planning
@dataclass
class Batch:
    """One runtime's batch of specs: the unit a phone takes from its fleet's queue."""

    runtime: str
    info: RuntimeInfo
    specs: list[KernelSpec]
    retries: int = 0  # times it was handed back after a device error on a phone that still answers


class WorkQueue:
    """The batches of one fleet. Any member takes the next; a member that loses its phone gives
    back what it did not finish; `take` returns None only when nothing is left *and* nothing is in
    flight (a batch in flight may still come back)."""

    def __init__(self, batches: Iterable[Batch]) -> None:
        self._todo: deque[Batch] = deque(batches)
        self._in_flight = 0
        self._closed = False
        self._cv = threading.Condition()

    def take(self) -> Batch | None:
        with self._cv:
            while not self._todo:
                if self._in_flight == 0 or self._closed:
                    return None
                self._cv.wait()
            if self._closed:
                return None
            self._in_flight += 1
            return self._todo.popleft()

    def done(self) -> None:
        with self._cv:
            self._in_flight -= 1
            self._cv.notify_all()

    def give_back(self, batch: Batch) -> None:
        with self._cv:
            self._in_flight -= 1
            if batch.specs:
                self._todo.appendleft(batch)
            self._cv.notify_all()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def left(self) -> list[Batch]:
        with self._cv:
            return list(self._todo)


@dataclass
class Fleet:
    """Identical devices sharing one suite."""

    id: str
    members: list[Member]
    runtimes: list[str] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)
    total: int = 0
    already: int = 0
    skipped: int = 0

    @property
    def name(self) -> str:
        m = self.members[0]
        return f"{m.info.name} x{len(self.members)}" if len(self.members) > 1 else m.info.name


def fleets_of(members: Sequence[Member]) -> list[Fleet]:
    fleets: dict[str, Fleet] = {}
    for m in members:
        fleets.setdefault(m.fleet, Fleet(m.fleet, [])).members.append(m)
    return list(fleets.values())


def fleet_done(ds: Dataset) -> set[tuple[str, str, str]]:
    """(fleet id, runtime key, spec id) of every kernel record in the dataset: what any identical
    peer measured, whichever serial it has."""
    import json

    import pyarrow.parquet as pq

    from .store import PartUnreadable, _first_line

    if not ds.exists():
        return set()
    done: set[tuple[str, str, str]] = set()
    fleet_of: dict[str, str] = {}
    cols = ["kind", "spec_id", "runtime_key", "device_json", "model_name"]
    for p in ds.parts():
        try:
            t = pq.read_table(p, columns=cols).to_pydict()
        except FileNotFoundError:
            continue  # merged away since the listing
        except Exception as e:  # a corrupt part: same message as the store
            raise PartUnreadable(p, _first_line(e), ds.path) from None
        for kind, sid, rkey, dj, model in zip(t["kind"], t["spec_id"], t["runtime_key"], t["device_json"],
                                              t["model_name"]):
            if kind != "kernel" or model:
                continue
            f = fleet_of.get(dj)
            if f is None:
                f = fleet_of[dj] = fleet_id(DeviceInfo.from_dict(json.loads(dj)))
            done.add((f, rkey, sid))
    return done


def plan_fleets(fleets: Sequence[Fleet], specs: Sequence[KernelSpec], runtimes: Sequence[str] | None,
                suite_runtimes: Sequence[str], threads: int, done: set[tuple[str, str, str]],
                session: Session, batch_size: int = 0) -> None:
    """Fill each fleet's batches with what it still has to measure (whole suite per fleet)."""
    from .profile import default_runtimes

    already = 0
    for fl in fleets:
        rep = fl.members[0].device
        fl.runtimes = list(runtimes) if runtimes else default_runtimes(rep, suite_runtimes)
        if not fl.runtimes:
            raise UsageError(f"no runtime can run on {fl.name}; pass --runtime")
        for name in fl.runtimes:
            rt = get_runtime(name)
            why = rt.available(rep)
            if why:
                raise UsageError(f"runtime {name} is not available on {fl.name}: {why}")
            info = rt.info(rep, threads)
            todo: list[KernelSpec] = []
            for s in specs:
                if rt.supports(s):
                    fl.skipped += 1
                elif (fl.id, info.key, s.id) in done:
                    fl.already += 1
                else:
                    todo.append(s)
            n = max(1, batch_size or rt.batch_size_for(rep))
            if not batch_size and todo and len(todo) < n * len(fl.members):
                n = -(-len(todo) // len(fl.members))  # a small suite still gives every identical phone a share
            fl.batches += [Batch(name, info, todo[i:i + n]) for i in range(0, len(todo), n)]
            fl.total += len(todo)
        already += fl.already
    session.resume_rule(already, f"{already} of these measurements")


# ---------------------------------------------------------------------- running
@dataclass
class Event:
    """What a worker tells the writer: kind is outcome | failure | state | lost | exit."""

    kind: str
    member: Member
    batch: Batch | None = None
    outcome: Outcome | None = None
    text: str = ""
    cooldown_timed_out: bool = False  # the wait for --max-temp before this batch gave up


@dataclass
class MemberStats:
    label: str
    serial: str  # the phone's own serial (ro.serialno), as in its records
    adb_serial: str  # how its adb server names it
    server: str
    fleet: str
    batches: int = 0
    measured: int = 0
    failed: int = 0
    lost: str = ""  # why the device was lost ("" = it finished)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class FarmSummary:
    dataset: str
    measured: int = 0
    failed: int = 0
    skipped: int = 0
    already: int = 0
    unfinished: int = 0  # kernels left when every phone of their fleet was lost
    duplicates_dropped: int = 0
    cooldown_timeouts: int = 0  # batches measured after the wait for --max-temp gave up
    interrupted: bool = False
    seconds: float = 0.0
    members: list[MemberStats] = field(default_factory=list)
    fleets: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "members"}
        d["devices"] = [m.to_dict() for m in self.members]
        return d


def _is_lost(device: Device) -> bool:
    """One cheap round trip: does the device still answer?"""
    if device.in_process:
        return False
    try:
        device.state()
    except Exception:  # noqa: BLE001 - any transport failure means the phone is gone
        return True
    return False


class _Worker(threading.Thread):
    """Drives one device: takes batches from its fleet's queue, cools down between them, measures,
    and posts every outcome to the writer."""

    def __init__(self, member: Member, work: WorkQueue, events: "queue.Queue[Event]", stop: threading.Event,
                 threads: int, protocol: Protocol, session: Session) -> None:
        super().__init__(name=f"devprof-farm-{member.serial or member.info.name}", daemon=True)
        self.member, self.work, self.events, self.stop = member, work, events, stop
        self.threads, self.protocol = threads, protocol
        self.session = session
        self._timed_out = False  # the wait before the current batch gave up
        self._runtimes: dict[str, Runtime] = {}
        self._current: Batch | None = None  # taken from the queue and not yet done or given back

    def _post(self, kind: str, batch: Batch | None = None, outcome: Outcome | None = None, text: str = "") -> None:
        self.events.put(Event(kind, self.member, batch, outcome, text, self._timed_out))

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # noqa: BLE001 - a worker must always say it ended
            if self._current is not None:  # never strand a batch: peers wait for what is in flight
                self.work.give_back(self._current)
                self._current = None
            self._post("lost", text=f"internal {type(e).__name__}: {e}")
        finally:
            self._post("exit")

    def _loop(self) -> None:
        with self.session.pinned(self.member.device, self.protocol.cpus):  # on Linux: this thread only
            self._batches()

    def _batches(self) -> None:
        dev = self.member.device
        first = True
        while not self.stop.is_set():
            batch = self._current = self.work.take()
            if batch is None:
                return
            if (self.session.cooldown_s > 0 and not first) or self.session.max_temp_c is not None:
                self._post("state", text="cooling down")
                try:
                    self._timed_out = self.session.cool(dev, first=first, label=self.member.label)
                except Exception as e:  # noqa: BLE001 - the temperature read found no phone
                    self._give_back(batch)
                    self._post("lost", text=str(e))
                    return
            first = False
            if self.stop.is_set():
                self._give_back(batch)
                return
            self._post("state", batch=batch, text=f"{batch.runtime}: {len(batch.specs)} kernels")
            if not self._run_batch(batch):
                return

    def _give_back(self, batch: Batch) -> None:
        self.work.give_back(batch)
        self._current = None

    def _done(self) -> None:
        self.work.done()
        self._current = None

    def _run_batch(self, batch: Batch) -> bool:
        """Measure one batch; False when the device was lost (the unfinished rest is given back)."""
        dev = self.member.device
        finished: set[str] = set()
        errors: list[Outcome] = []
        crash = ""
        device_error = False
        gen = None
        try:
            rt = self._runtimes.get(batch.runtime)
            if rt is None:
                rt = self._runtimes[batch.runtime] = get_runtime(batch.runtime)
            gen = rt.measure(dev, batch.specs, self.threads, self.protocol)
            for o in gen:
                if o.ok:
                    finished.add(o.spec.id)
                    self._post("outcome", batch, o)
                else:
                    errors.append(o)  # held back: a batch failing because the phone left is not a kernel failure
                if self.stop.is_set():
                    break
        except Exception as e:  # noqa: BLE001 - decided below: lost phone, or this batch failed
            crash = str(e) or type(e).__name__
            device_error = isinstance(e, (DeviceError, OSError, EOFError))
        finally:
            if gen is not None and hasattr(gen, "close"):
                gen.close()
        if (crash or errors) and _is_lost(dev):
            self._give_back(dataclasses.replace(batch, specs=[s for s in batch.specs if s.id not in finished]))
            self._post("lost", text=crash or (errors[0].error if errors else "no answer"))
            return False
        rest = [s for s in batch.specs if s.id not in finished]
        if device_error and rest and batch.retries < MAX_RETRIES:  # a hiccup: the phone answers again
            self._give_back(dataclasses.replace(batch, specs=rest, retries=batch.retries + 1))
            return True
        for o in errors:
            finished.add(o.spec.id)
            self._post("outcome", batch, o)
        if crash:
            for s in batch.specs:
                if s.id not in finished:
                    self._post("outcome", batch, Outcome(s, error=f"batch failed: {crash}"))
            finished.update(s.id for s in batch.specs)
        rest = [s for s in batch.specs if s.id not in finished]
        if rest:  # stopped mid-batch
            self._give_back(dataclasses.replace(batch, specs=rest))
        else:
            self._done()
        return True


def run_farm(members: Sequence[Member], specs: Sequence[KernelSpec], out: str | os.PathLike, *,
             runtimes: Sequence[str] | None = None, suite_runtimes: Sequence[str] = (), threads: int = 1,
             cores: str = "", resume: bool = False, protocol: Protocol = Protocol(), suite: str = "",
             cooldown_s: float = 0.0, max_temp_c: float | None = None,
             cooldown_timeout_s: float = DEFAULT_COOLDOWN_TIMEOUT_S, batch_size: int = 0,
             on_plan: Callable[[list[Fleet]], None] | None = None,
             on_event: Callable[[Event, Record | None], None] | None = None,
             on_note: Callable[[str], None] | None = None) -> FarmSummary:
    """Profile `specs` on every member: each fleet of identical devices measures the suite once,
    its batches shared through a work queue; every record goes into the dataset `out` through
    this (the calling) thread only, by the run's `Session`."""
    if threads < 1:
        raise UsageError("--threads must be >= 1")
    if not members:
        raise UsageError("no device to profile on")
    started = time.monotonic()
    session = Session(out, suite=suite, resume=resume, cooldown_s=cooldown_s, max_temp_c=max_temp_c,
                      cooldown_timeout_s=cooldown_timeout_s, on_note=on_note)
    session.__enter__()
    summary = FarmSummary(dataset=str(session.path))
    stop = threading.Event()
    events: "queue.Queue[Event]" = queue.Queue()
    workers: list[_Worker] = []
    queues: dict[str, WorkQueue] = {}
    fleets: list[Fleet] = []
    stats: dict[int, MemberStats] = {}
    recorded: set[tuple[str, str, str]] = set()  # (fleet, runtime key, spec id) saved by this run
    try:
        fleets = fleets_of(members)
        protocols = {id(m): protocol.with_cpus(m.device.resolve_cores(cores)) for m in members}
        plan_fleets(fleets, specs, runtimes, suite_runtimes, threads, fleet_done(session.ds), session, batch_size)
        summary.already = sum(f.already for f in fleets)
        summary.skipped = sum(f.skipped for f in fleets)
        if on_plan:
            on_plan(fleets)
        for fl in fleets:
            queues[fl.id] = WorkQueue(fl.batches)
            for m in fl.members:
                stats[id(m)] = MemberStats(m.label, m.info.serial, m.serial, m.server, fl.name)
                workers.append(_Worker(m, queues[fl.id], events, stop, threads, protocols[id(m)], session))
        summary.members = [stats[id(m)] for fl in fleets for m in fl.members]
        for w in workers:
            w.start()
        running = len(workers)
        while running:
            try:
                got = [events.get(timeout=0.5)]
            except queue.Empty:
                continue
            while True:  # everything that arrived meanwhile goes into one part
                try:
                    got.append(events.get_nowait())
                except queue.Empty:
                    break
            running -= _write(got, session, stats, recorded, summary, on_event)
        session.compact()
    except KeyboardInterrupt:  # Ctrl-C, and SIGTERM via Terminated
        summary.interrupted = True
        stop.set()
        for q in queues.values():
            q.close()
        _drain(workers, events, session, stats, recorded, summary, on_event)
    finally:
        stop.set()
        for q in queues.values():
            q.close()
        session.__exit__(None, None, None)
        summary.cooldown_timeouts = session.cooldown_timeouts
        summary.seconds = round(time.monotonic() - started, 2)
    for fl in fleets:
        left = sum(len(b.specs) for b in queues[fl.id].left()) if fl.id in queues else 0
        summary.unfinished += left
        summary.fleets.append({"fleet": fl.name, "fleet_id": fl.id, "devices": len(fl.members),
                               "runtimes": fl.runtimes, "to_measure": fl.total, "already": fl.already,
                               "unfinished": left})
    return summary


def _write(got: list[Event], session: Session, stats: dict[int, MemberStats], recorded: set, summary: FarmSummary,
           on_event: Callable | None) -> int:
    """Persist a handful of events (the single writer); return how many workers ended."""
    ended = 0
    recs: list[tuple[Event, Record | None]] = []
    for ev in got:
        st = stats.get(id(ev.member))
        rec = None
        if ev.kind == "outcome" and ev.outcome is not None and ev.batch is not None:
            o, m = ev.outcome, ev.member
            k = (m.fleet, ev.batch.info.key, o.spec.id)
            if k in recorded:
                summary.duplicates_dropped += 1
                continue
            recorded.add(k)
            if o.ok:
                rec = session.record_outcome(o, m.info, ev.batch.info, cooldown_timed_out=ev.cooldown_timed_out)
                if st:
                    st.measured += 1
                summary.measured += 1
            else:
                entry = session.fail({"runtime": ev.batch.info.key, "device_id": m.info.id, "fleet_id": m.fleet,
                                      "device": m.label, "spec_id": o.spec.id, "spec_key": o.spec.key,
                                      "error": o.error})
                summary.failures.append(entry)
                summary.failed += 1
                if st:
                    st.failed += 1
        elif ev.kind == "state" and ev.batch is not None and st:
            st.batches += 1
        elif ev.kind == "lost" and st:
            st.lost = ev.text or "lost"
        elif ev.kind == "exit":
            ended += 1
        recs.append((ev, rec))
    fresh = [r for _, r in recs if r is not None]
    session.save(fresh)
    if on_event:
        for ev, rec in recs:
            on_event(ev, rec)
    return ended


def _drain(workers: Sequence[_Worker], events: "queue.Queue[Event]", session: Session, stats: dict, recorded: set,
           summary: FarmSummary, on_event: Callable | None, timeout_s: float = 5.0) -> None:
    """After an interrupt: save what workers still deliver for a few seconds (nothing measured is
    dropped on purpose), then leave the rest to --resume."""
    deadline = time.monotonic() + timeout_s
    while any(w.is_alive() for w in workers) and time.monotonic() < deadline:
        try:
            ev = events.get(timeout=0.1)
        except queue.Empty:
            continue
        try:
            _write([ev], session, stats, recorded, summary, on_event)
        except KeyboardInterrupt:  # Ctrl-C, and SIGTERM via Terminated
            return
    while True:
        try:
            ev = events.get_nowait()
        except queue.Empty:
            return
        _write([ev], session, stats, recorded, summary, on_event)


# ---------------------------------------------------------------------- command line
def devices_by_model(servers: Sequence[str] = ()) -> tuple[list[tuple[Device, str]], list[str]]:
    """`local`, then every phone of every server grouped by model: (device, server) pairs, and a
    warning for each server named explicitly that does not answer."""
    from .devices import LocalDevice

    members, warnings = attached(servers)
    rows: list[tuple[Device, str]] = [(LocalDevice(), "")]
    rows += [(m.device, m.server) for m in by_model(members)]
    return rows, (warnings if servers else [])
