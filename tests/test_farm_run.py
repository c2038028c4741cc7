"""Device farms through two real adb servers and three emulated phones (two identical S20s, one S21).

The phones run the `farm-probe` runtime (tests/support/farm_probe.py): one real shell program per
batch, pushed and run over adb, whose kernels take a known time. Everything else is the real farm.
"""
from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devprof import farm
from devprof.errors import UsageError
from devprof.measure import Protocol
from devprof.runtimes import RUNTIMES
from devprof.store import Dataset
from devprof.suites import load_suite

from support.cli import run_cli
from support.fixtures import AdbServer, EmulatedPhone, free_port

S21_BUILD = "samsung/o1quew/o1q:13/TP1A.220624.014/G991USQS9EWE1:user/release-keys"
SUITE = """
[suite]
name = "farm-tiny"
description = "16 small FC kernels"
runtimes = ["farm-probe"]

[[family]]
op = "fc"
shape = { n = [1], cin = [8, 16, 32, 64], cout = [8, 16, 32, 64] }
"""


@pytest.fixture(scope="module")
def servers():
    a, b = AdbServer(free_port()).start(), AdbServer(free_port()).start()
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


@pytest.fixture
def lab(servers, tmp_path, monkeypatch):
    """Factory of emulated phones on the two servers; the probe runtime is registered by name."""
    monkeypatch.setitem(RUNTIMES, "farm-probe", "support.farm_probe:ProbeRuntime")
    monkeypatch.setenv("DEVPROF_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("DEVPROF_PROBE_KERNEL_S", "0.05")
    monkeypatch.setenv("DEVPROF_PROBE_BATCH", "2")
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    monkeypatch.delenv("ANDROID_ADB_SERVER_PORT", raising=False)
    phones: list[EmulatedPhone] = []

    def add(server: AdbServer, serialno: str, *args: str) -> EmulatedPhone:
        p = EmulatedPhone(server, tmp_path / f"phone-{serialno}", ["--serialno", serialno, *args]).start()
        phones.append(p)
        return p

    yield add
    for p in phones:
        p.stop()


@pytest.fixture
def suite_file(tmp_path) -> Path:
    p = tmp_path / "farm-tiny.toml"
    p.write_text(SUITE)
    return p


def _three_phones(lab, servers, die_b: bool = False):
    a, b = servers
    s20a = lab(a, "R3CN30S20A")
    fault = ["--die-on", "farm-probe", "--die-on-count", "2", "--die-delay", "0.05"] if die_b else []
    s20b = lab(b, "R3CN30S20B", *fault)
    s21 = lab(b, "R3CN30S21X", "--model", "SM-G991U", "--prop", f"ro.build.fingerprint={S21_BUILD}")
    return s20a, s20b, s21


def _by_serial(ds: Path) -> tuple[dict[str, list[str]], list[str]]:
    df = Dataset(ds).read()
    out: dict[str, list[str]] = {}
    for serial, spec in zip(df["device_serial"], df["spec_id"]):
        out.setdefault(serial, []).append(spec)
    return out, list(df["device_model"])


def test_identical_phones_share_the_suite_and_a_lost_phone_hands_back_its_batch(lab, servers, suite_file, tmp_path):
    a, b = servers
    _three_phones(lab, servers, die_b=True)
    members = farm.resolve_farm(["S20", "S21"], [a.address, b.address], all_matching=True)
    assert sorted(m.info.serial for m in members) == ["R3CN30S20A", "R3CN30S20B", "R3CN30S21X"]
    assert len(farm.fleets_of(members)) == 2  # the two S20s are one fleet, across servers
    suite = load_suite(str(suite_file))
    ds = tmp_path / "ds"
    summary = farm.run_farm(members, suite.specs, ds, suite_runtimes=suite.runtimes, protocol=Protocol.quick(),
                            suite=suite.name)
    ids = {s.id for s in suite.specs}
    got, _ = _by_serial(ds)
    s20 = got["R3CN30S20A"] + got.get("R3CN30S20B", [])
    assert sorted(s20) == sorted(ids), (summary.to_dict(), Dataset(ds).failures())  # all S20 kernels, once
    assert got.get("R3CN30S20B"), "the second S20 measured its first batch before it vanished"
    assert len(got["R3CN30S20A"]) > len(got["R3CN30S20B"])  # ...and its peer took over the rest
    assert sorted(got["R3CN30S21X"]) == sorted(ids)  # a different phone runs everything
    lost = {m.serial: m.lost for m in summary.members}
    assert lost["R3CN30S20B"] and not lost["R3CN30S20A"] and not lost["R3CN30S21X"]
    assert summary.unfinished == 0 and summary.measured == 32 and summary.failed == 0
    assert not Dataset(ds).failures()  # a lost phone's batch is handed back, not recorded as failed


def test_resume_counts_what_any_identical_peer_measured(lab, servers, suite_file, tmp_path):
    a, b = servers
    lab(a, "R3CN30S20A")
    suite = load_suite(str(suite_file))
    ds = tmp_path / "ds"
    one = farm.resolve_farm(["S20"], [a.address, b.address])
    s = farm.run_farm(one, suite.specs[:6], ds, protocol=Protocol.quick(), suite_runtimes=suite.runtimes)
    assert s.measured == 6
    lab(b, "R3CN30S20B")  # a second, identical S20 joins the farm
    both = farm.resolve_farm(["S20"], [a.address, b.address], all_matching=True)
    with pytest.raises(UsageError, match="--resume"):
        farm.run_farm(both, suite.specs, ds, protocol=Protocol.quick(), suite_runtimes=suite.runtimes)
    s = farm.run_farm(both, suite.specs, ds, protocol=Protocol.quick(), suite_runtimes=suite.runtimes, resume=True)
    assert (s.already, s.measured) == (6, 10)
    s = farm.run_farm(both, suite.specs, ds, protocol=Protocol.quick(), suite_runtimes=suite.runtimes, resume=True)
    assert (s.already, s.measured) == (16, 0)
    got, _ = _by_serial(ds)
    assert sorted(got["R3CN30S20A"] + got.get("R3CN30S20B", [])) == sorted(x.id for x in suite.specs)


def test_work_queue_gives_back_and_wakes_peers():
    q = farm.WorkQueue([farm.Batch("r", None, [1]), farm.Batch("r", None, [2])])  # type: ignore[arg-type,list-item]
    first, second = q.take(), q.take()
    got: list = []
    t = threading.Thread(target=lambda: got.append(q.take()))
    t.start()  # nothing left but two in flight: the peer waits
    q.done()
    q.give_back(second)  # a lost phone's batch goes to the waiting peer
    t.join(5)
    assert got == [second] and first is not None
    q.done()
    assert q.take() is None


def test_cli_profile_farm_devices_and_names_across_servers(lab, servers, suite_file, tmp_path):
    a, b = servers
    s20a, s20b, s21 = _three_phones(lab, servers)
    addrs = [a.address, b.address]
    with pytest.raises(UsageError, match="matches 2 phones.*--all-matching"):
        farm.resolve_farm(["S20"], addrs)
    assert [m.serial for m in farm.resolve_farm([s20b.serial], addrs)] == [s20b.serial]
    assert [m.info.serial for m in farm.resolve_farm(["R3CN30S21X"], addrs)] == ["R3CN30S21X"]
    with pytest.raises(UsageError, match="no attached device matches 'Pixel 9'"):
        farm.resolve_farm(["Pixel 9"], addrs)
    assert len(farm.resolve_farm(["S21", s21.serial], addrs)) == 1  # one phone named twice is one member
    canary = tmp_path / "pwned"
    for hostile in (f"S20; touch {canary}", f"$(touch {canary})", f"`touch {canary}`"):
        with pytest.raises(UsageError):
            farm.resolve_farm([hostile, "S21"], addrs, all_matching=True)
    assert not canary.exists()
    from devprof.cli import app

    ds = tmp_path / "cli-ds"
    r = CliRunner().invoke(app, ["profile", "--device", "S20", "--all-matching", "--device", "S21",
                                 "--adb-server", a.address, "--adb-server", b.address, "--suite", str(suite_file),
                                 "--quick", "--out", str(ds), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["measured"] == 32 and summary["unfinished"] == 0
    assert Counter(d["fleet"] for d in summary["devices"]) == {"Galaxy S20 5G x2": 2, "Galaxy S21 5G": 1}
    assert all(d["measured"] > 0 and not d["lost"] for d in summary["devices"])  # both S20s took batches
    got, _ = _by_serial(ds)
    assert len(got["R3CN30S20A"]) + len(got["R3CN30S20B"]) == 16 and len(got["R3CN30S21X"]) == 16
    r = CliRunner().invoke(app, ["devices", "--adb-server", a.address, "--adb-server", b.address, "--json"])
    assert r.exit_code == 0, r.output
    rows = [x for x in json.loads(r.stdout) if x["kind"] == "adb"]
    assert [x["model"] for x in rows] == ["SM-G981U", "SM-G981U", "SM-G991U"]  # grouped by model
    assert {x["server"] for x in rows} == {a.address, b.address}


@pytest.mark.skipif("devprof-c" not in RUNTIMES, reason="the devprof-c harness runtime is not there yet")
def test_cli_farm_with_the_real_harness(lab, servers, tmp_path):
    """The user's command line end to end (a subprocess) with generated C kernels on every phone."""
    a, b = servers
    _three_phones(lab, servers)
    suite = tmp_path / "c.toml"
    suite.write_text('[suite]\nname = "farm-c"\ndescription = "x"\nruntimes = ["devprof-c"]\n'
                     '[[family]]\nop = "fc"\nshape = { n = [1], cin = [16, 32], cout = [16, 32] }\n')
    ds = tmp_path / "c-ds"
    args = ["profile", "--device", "S20", "--all-matching", "--device", "S21", "--adb-server", a.address,
            "--adb-server", b.address, "--suite", str(suite), "--quick", "--out", str(ds)]
    r = run_cli(*args, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "8 measured, 0 refused" in r.stderr and "Galaxy S20 5G x2" in r.stdout, r.stderr
    df = Dataset(ds).read()
    assert set(df["runtime"]) == {"devprof-c"} and Counter(df["device_model"]) == {"SM-G981U": 4, "SM-G991U": 4}
    assert df["median_us"].gt(0).all()


def test_a_fleet_with_no_phone_left_is_unfinished_and_resume_finishes_it(lab, servers, suite_file, tmp_path):
    a, b = servers
    lab(a, "R3CN30S20A")
    s21 = lab(b, "R3CN30S21X", "--model", "SM-G991U", "--prop", f"ro.build.fingerprint={S21_BUILD}",
              "--die-on", "farm-probe", "--die-on-count", "2", "--die-delay", "0.05")
    addrs = [a.address, b.address]
    suite = load_suite(str(suite_file))
    ds = tmp_path / "ds"
    s = farm.run_farm(farm.resolve_farm(["S20", "S21"], addrs), suite.specs, ds, protocol=Protocol.quick(),
                      suite_runtimes=suite.runtimes)
    assert s.unfinished == 14 and s.measured == 16 + 2  # the S21 finished one batch, then was unplugged
    assert [f["unfinished"] for f in s.fleets] == [0, 14]
    s21.stop()
    lab(b, "R3CN30S21Y", "--model", "SM-G991U", "--prop", f"ro.build.fingerprint={S21_BUILD}")  # its twin
    s = farm.run_farm(farm.resolve_farm(["S20", "S21"], addrs), suite.specs, ds, protocol=Protocol.quick(),
                      suite_runtimes=suite.runtimes, resume=True)
    assert (s.already, s.measured, s.unfinished) == (18, 14, 0)
    got, models = _by_serial(ds)
    assert Counter(models) == {"SM-G981U": 16, "SM-G991U": 16}
    assert sorted(got["R3CN30S21X"] + got["R3CN30S21Y"]) == sorted(x.id for x in suite.specs)


def test_interrupt_keeps_every_finished_record(lab, servers, suite_file, tmp_path):
    import os
    import signal

    a, _ = servers
    lab(a, "R3CN30S20A")
    lab(a, "R3CN30S20B")
    suite = load_suite(str(suite_file))
    members = farm.resolve_farm(["S20"], [a.address], all_matching=True)
    ds = tmp_path / "ds"
    # Ctrl-C must reach Python even when the suite runs with SIGINT ignored (a background job)
    old_handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    sent = []

    def interrupt_after_first_record(event, rec):  # Ctrl-C as soon as something is saved
        if rec is not None and not sent:
            sent.append(rec)
            os.kill(os.getpid(), signal.SIGINT)

    try:
        s = farm.run_farm(members, suite.specs, ds, protocol=Protocol.quick(), cooldown_s=0.4,
                          suite_runtimes=suite.runtimes, on_event=interrupt_after_first_record)
    finally:
        signal.signal(signal.SIGINT, old_handler)
    assert s.interrupted and 0 < s.measured < 16
    assert len(Dataset(ds).read()) == s.measured  # every acknowledged record is on disk
    s2 = farm.run_farm(members, suite.specs, ds, protocol=Protocol.quick(), suite_runtimes=suite.runtimes,
                       resume=True)
    assert s2.already == s.measured and s.measured + s2.measured == 16
    got, _ = _by_serial(ds)
    assert sorted(got["R3CN30S20A"] + got.get("R3CN30S20B", [])) == sorted(x.id for x in suite.specs)
