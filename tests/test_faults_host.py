"""Host-side faults injected for real: signals at random points, a full disk, two writers at once.

Each test drives the real `devprof profile` in subprocesses (tests/support/faultkit.py) and then reads the
dataset as a user would. bench/soak.py and `bench/fuzz.py` run the same checks many more times.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest


from support import faultkit as fk

from devprof.errors import DatasetError  # noqa: E402
from devprof.store import Dataset  # noqa: E402


def _one_line_error(p: subprocess.CompletedProcess, code: int, text: str) -> str:
    assert p.returncode == code, (p.returncode, p.stdout[-500:], p.stderr[-1500:])
    assert "Traceback" not in p.stderr
    lines = fk.error_lines(p.stderr)
    assert len(lines) == 1 and lines[0].startswith("error:") and text in lines[0], p.stderr
    return lines[0]


@pytest.fixture
def suite(tmp_path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(fk.TINY_SUITE)
    return p


def test_random_kill_points_keep_every_acknowledged_record(tmp_path):
    """6 signals (SIGINT, SIGTERM, SIGKILL, double Ctrl-C) at random points, chained with --resume
    (bench/soak.py --kill-points 50 runs many more)."""
    results, finals = fk.random_kill_loop(tmp_path, 6, seed=10, max_delay=3.0,
                                          kinds=("SIGINT", "SIGTERM", "SIGKILL", "SIGINTx2"))
    assert len(results) == 6
    bad = [r for r in results if not r.survived]
    assert not bad, bad
    assert not any(r.traceback for r in results if r.kind != "SIGKILL"), results
    assert finals and all(not c.problems and c.records == fk.TINY_RECORDS and c.duplicates >= 0 for c in finals), finals


def test_disk_full_via_file_size_limit(tmp_path, suite):
    """RLIMIT_FSIZE makes every write past 8 KiB fail with EFBIG: one line, exit 4, nothing lost."""
    out = tmp_path / "d"
    first = fk.run(["profile", "--suite", str(suite), "-r", "onnxruntime", "--out", str(out), "--quick", "--json"])
    assert first.returncode == 0, first.stderr
    before = fk.check_dataset(out)
    assert before.records == 9 and not before.problems
    capped = fk.run(["profile", "--suite", str(suite), "--out", str(out), "--quick", "--resume", "--json"],
                    preexec=fk.file_size_limit(8192))
    line = _one_line_error(capped, 4, "disk full")
    assert "9 records saved before are intact" in line
    after = fk.check_dataset(out, before.keys)
    assert not after.problems and after.keys == before.keys
    assert not list((out / "parts").glob(".*.tmp"))  # the half-written part was removed
    done = fk.finish(out, suite)
    assert not done.problems and done.records == fk.TINY_RECORDS


def _can_mount_tmpfs(where: Path) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    where.mkdir(parents=True, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True)
    if ok.returncode != 0:
        return False
    subprocess.run(["umount", str(where)], check=True)
    return True


def test_disk_full_on_a_small_tmpfs_mid_run(tmp_path, suite):
    """A 1 MiB tmpfs filled up to ~110 KiB free: the run stops mid-way with 'disk full', keeps its parts."""
    mnt = tmp_path / "mnt"
    if not _can_mount_tmpfs(mnt):
        pytest.skip("needs root and a mountable tmpfs (the RLIMIT_FSIZE test covers the same error)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        st = os.statvfs(mnt)
        free = st.f_bavail * st.f_frsize
        (mnt / "filler").write_bytes(b"\0" * (free - 110 * 1024))
        out = mnt / "d"
        with fk.PartWatcher(out) as w:
            p = fk.run(["profile", "--suite", str(suite), "--out", str(out), "--quick", "--json"])
        _one_line_error(p, 4, "disk full")
        mid = fk.check_dataset(out, w.acked)
        assert not mid.problems and 1 <= mid.records < fk.TINY_RECORDS, (mid.records, mid.problems)
        assert not list((out / "parts").glob(".*.tmp"))
        (mnt / "filler").unlink()
        done = fk.finish(out, suite)
        assert not done.problems and done.records == fk.TINY_RECORDS and mid.keys <= done.keys
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_second_writer_gets_the_lock_error_and_nothing_interleaves(tmp_path, suite):
    out = tmp_path / "d"
    with fk.PartWatcher(out) as w:
        # --cooldown keeps run A going (~0.4 s a kernel) well past B's start-up, however fast the machine
        a = fk.start(["profile", "--suite", str(suite), "--out", str(out), "--quick", "--json", "--cooldown", "0.4"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list((out / "parts").glob("part-*.parquet")):
            time.sleep(0.02)
        b = fk.run(["profile", "--suite", str(suite), "--out", str(out), "--quick", "--resume", "--json"])
        a_out, a_err = a.communicate(timeout=120)
    line = _one_line_error(b, 4, "being written by another devprof run")
    assert f"pid {a.pid}" in line
    assert a.returncode == 0, a_err
    c = fk.check_dataset(out, w.acked)
    assert not c.problems and c.records == fk.TINY_RECORDS


def _lock_and_hold(path: str, barrier, results) -> None:
    barrier.wait()
    try:
        d = Dataset(path)
        d.lock()
        results.put("locked")
        time.sleep(0.05)
        d.unlock()
    except DatasetError as e:
        results.put(str(e))


def test_writers_racing_to_create_a_dataset_get_the_lock_error(tmp_path):
    """Two processes creating the same new dataset at the same instant: one wins, the other is told why."""
    ctx = mp.get_context("fork")
    for i in range(20):
        path = str(tmp_path / f"d{i}")
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_lock_and_hold, args=(path, barrier, results)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        got = sorted([results.get(timeout=5), results.get(timeout=5)])
        assert got[-1] == "locked", got
        assert got[0] == "locked" or "being written by another devprof run" in got[0], got
