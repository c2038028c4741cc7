"""Fault-injection helpers shared by tests/test_faults_*.py, bench/fuzz.py and bench/soak.py.

Everything here drives the real `devprof` command line in subprocesses and checks the dataset
with devprof's own reader, the way a user would find it after a crash. A record counts as
*acknowledged* once its Parquet part has been renamed into ``parts/``: a watcher thread polls that
folder while a run is in flight and reads the keys of every part it sees, so a later check can
prove no acknowledged record was lost (even those compacted away into a merged part).
"""
from __future__ import annotations

import contextlib
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

ROOT = Path(__file__).resolve().parents[2]

TINY_SUITE = """
[suite]
name = "tiny"
description = "a handful of small kernels for tests and fault benchmarks"
runtimes = ["onnxruntime", "litert"]

[[family]]
op = "conv2d"
shape = { hw = [8, 12], cin = [4], cout = [8], k = [3], stride = [1, 2], activation = "relu" }

[[family]]
op = "dwconv2d"
shape = { hw = [10], cin = [8], k = [3], stride = [1, 2] }

[[family]]
op = "pwconv"
shape = { hw = [6], cin = [8], cout = [16] }

[[family]]
op = "fc"
shape = { n = [1, 2], cin = [32], cout = [16] }
"""
TINY_RECORDS = 18  # 9 kernels x 2 runtimes

SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}


def devprof_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "devprof", *args]


def _child_setup(preexec: Callable[[], None] | None) -> Callable[[], None]:
    """SIGINT back to its default in the child: a harness started in the background (`cmd &`)
    inherits SIG_IGN for SIGINT, and Python then never turns Ctrl-C into KeyboardInterrupt."""
    def pre() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if preexec:
            preexec()
    return pre


def start(args: Sequence[str], *, env: dict | None = None, preexec: Callable[[], None] | None = None,
          ) -> subprocess.Popen:
    """Start the real `devprof` CLI (text pipes; stdout/stderr are small for --json runs)."""
    e = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.Popen(devprof_cmd(*args), cwd=ROOT, env=e, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_child_setup(preexec))


def run(args: Sequence[str], *, env: dict | None = None, preexec: Callable[[], None] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess:
    e = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(devprof_cmd(*args), cwd=ROOT, env=e, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=_child_setup(preexec))


def error_lines(stderr: str) -> list[str]:
    """stderr lines that are not the runtimes' own chatter (LiteRT prints an INFO line)."""
    return [l for l in stderr.splitlines() if l.strip() and not l.startswith("INFO:")]


def file_size_limit(nbytes: int) -> Callable[[], None]:
    """preexec_fn: cap every file the child writes at `nbytes` (EFBIG, like a full disk)."""
    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # make writes fail with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return pre


class PartWatcher:
    """Poll ``parts/`` and remember the keys of every part seen there (= acknowledged records)."""

    def __init__(self, dataset: Path, interval: float = 0.02) -> None:
        self.parts = Path(dataset) / "parts"
        self.interval = interval
        self.acked: set[str] = set()
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "PartWatcher":
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
        self.scan()  # a last look after the writer is gone

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.scan()
            time.sleep(self.interval)

    def scan(self) -> None:
        import pyarrow.parquet as pq

        if not self.parts.is_dir():
            return
        for p in self.parts.glob("part-*.parquet"):
            if p.name in self.seen:
                continue
            try:
                keys = pq.read_table(p, columns=["record_key"]).column(0).to_pylist()
            except FileNotFoundError:  # compacted away between glob and read: its keys live on in the merge
                continue
            self.seen.add(p.name)
            self.acked.update(keys)


@dataclass
class Check:
    """What a dataset looks like after a fault."""

    records: int = 0
    keys: set[str] = field(default_factory=set)
    lost: set[str] = field(default_factory=set)  # acknowledged but missing
    duplicates: int = 0  # rows on disk beyond one per key (allowed on disk, removed on read)
    problems: list[str] = field(default_factory=list)


def check_dataset(path: Path, acked: set[str] = frozenset()) -> Check:
    """Read the dataset as a user would; every part must read on its own; nothing acked is missing."""
    import pyarrow.parquet as pq

    from devprof.errors import DevprofError
    from devprof.store import Dataset

    c = Check()
    ds = Dataset(path)
    if not ds.exists():
        c.lost = set(acked)
        if acked:
            c.problems.append("no dataset although records were acknowledged")
        return c
    rows = 0
    for p in ds.parts():
        try:
            rows += pq.read_table(p, columns=["record_key"]).num_rows
        except Exception as e:  # noqa: BLE001 - any unreadable part is a corruption
            c.problems.append(f"unreadable part {p.name}: {e}")
    try:
        df = ds.read()
    except DevprofError as e:
        c.problems.append(f"dataset unreadable: {e}")
        return c
    c.records = len(df)
    c.keys = set(df["record_key"])
    if not df["record_key"].is_unique:
        c.problems.append("duplicate record keys after read")
    c.duplicates = rows - c.records
    c.lost = set(acked) - c.keys
    if c.lost:
        c.problems.append(f"{len(c.lost)} acknowledged records lost")
    return c


@dataclass
class KillResult:
    kind: str
    where: str
    rc: int | None
    records_before: int
    records_after: int
    acked: int
    lost: int
    traceback: bool
    problems: list[str]
    stderr: str = ""

    @property
    def survived(self) -> bool:
        return not self.problems and self.lost == 0


def kill_once(out: Path, suite: Path, kind: str, delay: float, after_records: int | None = None,
              extra: Sequence[str] = ("--quick",), env: dict | None = None) -> KillResult:
    """Start `devprof profile --resume` on `out` and deliver `kind`: `delay` s after the start, or, when
    `after_records` is given, `delay` s after that many new records were acknowledged; then check."""
    before = check_dataset(out).records if (out / "dataset.json").exists() else 0
    args = ["profile", "--suite", str(suite), "--out", str(out), "--resume", "--json", *extra]
    with PartWatcher(out, interval=0.01) as w:
        proc = start(args, env=env)
        if after_records is not None:
            while proc.poll() is None and len(w.acked) < before + after_records:
                time.sleep(0.005)
        time.sleep(delay)
        if proc.poll() is None:
            if kind == "SIGINTx2":  # an impatient user: Ctrl-C twice
                proc.send_signal(signal.SIGINT)
                time.sleep(0.05)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
            else:
                proc.send_signal(SIGNALS[kind])
        try:
            _, stderr = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
            return KillResult(kind, delay, None, before, before, 0, 0, False, ["run did not stop within 120 s"])
    c = check_dataset(out, w.acked)
    problems = list(c.problems)
    rc = proc.returncode
    if rc not in (0, 130, -signal.SIGTERM, -signal.SIGKILL, -signal.SIGINT):
        problems.append(f"exit code {rc}: {error_lines(stderr)[-1:]}")
    if c.records < before:
        problems.append(f"records went from {before} to {c.records}")
    where = f"{delay:.2f}s" if after_records is None else f"record+{after_records}+{delay * 1000:.0f}ms"
    return KillResult(kind, where, rc, before, c.records, len(w.acked), len(c.lost),
                      "Traceback" in stderr, problems, stderr[-3000:] if "Traceback" in stderr else "")


def random_kill_loop(work: Path, n: int, seed: int, max_delay: float = 2.5,
                     kinds: Sequence[str] = ("SIGINT", "SIGTERM"), log: Callable[[str], None] | None = None,
                     ) -> tuple[list[KillResult], list[Check]]:
    """`n` kills at random points, chained with --resume; each finished dataset is checked complete.

    A third of the kill points are random times after the start (start-up, planning, first kernels);
    the rest land a random 0-80 ms after a random number of newly acknowledged records (mid-run,
    mid-write, mid-compaction), so the points cover the whole run whatever this machine's speed."""
    rng = random.Random(seed)
    suite = work / "tiny.toml"
    suite.write_text(TINY_SUITE)
    results: list[KillResult] = []
    finals: list[Check] = []
    k = 0
    out = work / f"d{k}"
    for i in range(n):
        kind = rng.choice(list(kinds))
        have = check_dataset(out).records if (out / "dataset.json").exists() else 0
        if rng.random() < 1 / 3:
            r = kill_once(out, suite, kind, rng.uniform(0.0, max_delay))
        else:
            r = kill_once(out, suite, kind, rng.uniform(0.0, 0.08), rng.randint(1, max(1, TINY_RECORDS - have - 1)))
        results.append(r)
        if log:
            log(f"kill {i + 1:3d}/{n}: {r.kind:8s} at {r.where:>18s} rc={r.rc} records {r.records_before}->"
                f"{r.records_after} lost={r.lost}{' TRACEBACK' if r.traceback else ''}"
                f"{' PROBLEMS ' + '; '.join(r.problems) if r.problems else ''}")
        if r.records_after >= TINY_RECORDS or i == n - 1:
            finals.append(finish(out, suite))
            k += 1
            out = work / f"d{k}"
    return results, finals


def finish(out: Path, suite: Path) -> Check:
    """--resume to completion; the dataset must then hold every record exactly once."""
    acked = check_dataset(out).keys if (out / "dataset.json").exists() else set()
    p = run(["profile", "--suite", str(suite), "--out", str(out), "--resume", "--json", "--quick"])
    c = check_dataset(out, acked)
    if p.returncode != 0:
        c.problems.append(f"--resume failed ({p.returncode}): {error_lines(p.stderr)[-1:]}")
    if c.records != TINY_RECORDS:
        c.problems.append(f"{c.records} records after --resume, expected {TINY_RECORDS}")
    return c


@contextlib.contextmanager
def immutable(path: Path):
    """Make `path` undeletable and unrenamable for the duration: the real `chattr +i` where the
    filesystem and our privileges allow it, else (no root, tmpfs) a stand-in that makes
    os.unlink / os.rename / os.replace of that file name fail with EPERM as the kernel would.
    Renaming the folder holding it still works, as with a real immutable file."""
    path = Path(path)
    real = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0 if shutil.which(
        "chattr") else False
    if real:
        try:
            yield "chattr"
        finally:
            for p in [path, *path.parent.parent.glob(f"*/{path.name}")]:  # wherever a merge moved it
                subprocess.run(["chattr", "-i", str(p)], capture_output=True)
        return
    saved = {n: getattr(os, n) for n in ("unlink", "remove", "rename", "replace")}

    def refusing(name):
        def call(src, *a, **k):
            if os.fsdecode(os.path.basename(os.fspath(src))) == path.name:
                raise PermissionError(1, "Operation not permitted", os.fspath(src))
            return saved[name](src, *a, **k)
        return call

    for n in saved:
        setattr(os, n, refusing(n))
    try:
        yield "simulated"
    finally:
        for n, f in saved.items():
            setattr(os, n, f)
