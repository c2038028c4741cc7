"""`devprof profile --device S20` end to end: the real CLI, the real adb server, the emulated phone,
and the x86_64 static harness running on it; and what happens when the phone goes away."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from devprof.store import Dataset

from support.cli import run_cli

def two_batches_suite() -> tuple[str, int]:
    """A suite of small fc kernels that fills one phone batch of devprof-c and starts a second (3 kernels),
    so a phone can die between, or during, batches."""
    from devprof.runtimes.harness import DevprofC

    n = DevprofC.phone_batch_size + 3
    kernels = "".join(f"\n[[kernels]]\nop = \"fc\"\nn = {1 + i % 4}\ncin = {16 + 8 * (i // 4)}\ncout = 8\n"
                      for i in range(n))
    head = '[suite]\nname = "two-batches"\ndescription = "small fc kernels"\nruntimes = ["devprof-c"]\n'
    return head + kernels, n


def _read(path) -> pd.DataFrame:
    return Dataset(path).read()


def test_profile_smoke_on_the_phone(phone, adb_server, tmp_path):
    out = tmp_path / "ds"
    r = run_cli("profile", "--device", "S20", "--suite", "smoke", "--quick", "--cores", "big", "--out", str(out),
                "--json", env=adb_server.env)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["measured"] >= 20 and summary["failed"] == 0
    df = _read(out)
    assert len(df) == summary["measured"]
    assert set(df["device_kind"]) == {"adb"} and set(df["device_name"]) == {"Galaxy S20 5G"}
    assert set(df["device_model"]) == {"SM-G981U"} and set(df["runtime"]) == {"devprof-c"}
    assert set(df["cpus"]) == {"4,5,6"} and (df["freq_before_khz"] == 2419200).all()
    dev = json.loads(df["device_json"].iloc[0])
    assert dev["build"].startswith("samsung/x1quex/x1q:13/") and dev["abi"] == "x86_64"
    assert dev["soc"].startswith("Snapdragon 865") and dev["extra"]["clusters"].startswith("little=0-3")
    assert df["op"].nunique() >= 4
    # the batch was pushed once, content-addressed, into the phone's /data/local/tmp/devprof/
    staged = list((phone.sandbox / "data/local/tmp/devprof").iterdir())
    assert staged and all((d / ".devprof-complete").exists() for d in staged)


def test_phone_dies_mid_batch_then_resume_completes(make_phone, adb_server, tmp_path):
    from devprof.runtimes.harness import DevprofC

    text, total = two_batches_suite()
    batch = DevprofC.phone_batch_size
    suite = tmp_path / "two.toml"
    suite.write_text(text)
    out = tmp_path / "ds"
    # the phone vanishes 0.05 s into the second harness run (as if unplugged)
    phone = make_phone("--die-on", "devprof-harness", "--die-on-count", "2", "--die-delay", "0.05")
    args = ["profile", "--device", "S20", "--suite", str(suite), "--quick", "--out", str(out)]
    r = run_cli(*args, env=adb_server.env)
    assert r.returncode == 3, (r.stdout, r.stderr)
    err = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(err) == 1 and phone.serial in err[0] and "--resume" in err[0] and "Traceback" not in r.stderr
    first = _read(out)
    # every record of the finished batch is kept, and so is any kernel the second batch finished
    # before the phone vanished (the harness's lines arrive as each kernel ends)
    assert batch <= len(first) < total and first["record_key"].is_unique

    phone.args = []  # plugged back in (same port, same sandbox), no more faults
    phone.start()
    r = run_cli(*args, "--resume", "--json", env=adb_server.env)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["measured"] == total - len(first) and s["already"] == len(first) and s["failed"] == 0
    df = _read(out)
    assert len(df) == total and df["record_key"].is_unique and df["spec_id"].is_unique
    assert df["device_id"].nunique() == 1  # the same phone (ro.serialno), although the adb serial may change
    r = run_cli(*args, "--resume", "--json", env=adb_server.env)
    assert r.returncode == 0 and json.loads(r.stdout)["measured"] == 0


def test_unplugged_phone_is_a_one_line_error(make_phone, adb_server, tmp_path):
    phone = make_phone()
    phone.stop()
    r = run_cli("profile", "--device", "S20", "--suite", "smoke", "--out", str(tmp_path / "ds"), env=adb_server.env)
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "no attached device matches 'S20'" in lines[0]


@pytest.mark.parametrize("cores", ["huge", "0-12"])
def test_bad_cores_are_one_line_errors(phone, adb_server, tmp_path, cores):
    r = run_cli("profile", "--device", "S20", "--cores", cores, "--suite", "smoke", "--out", str(tmp_path / "ds"),
                env=adb_server.env)
    assert r.returncode == 2 and "--cores" in r.stderr and "Traceback" not in r.stderr


def test_max_temp_waits_before_the_first_batch_and_flags_a_wait_that_gives_up(phone, adb_server, tmp_path):
    """--max-temp holds the first batch until the phone is cool; when the phone stays hot past
    --cooldown-timeout the run says so on one line and its records say cooldown_timed_out."""
    import threading

    suite = tmp_path / "one.toml"
    suite.write_text('[suite]\nname = "one"\nruntimes = ["devprof-c"]\n\n[[kernels]]\nop = "fc"\nn = 1\ncin = 16\n'
                     'cout = 8\n')
    zone = phone.sandbox / "sys/class/thermal/thermal_zone0/temp"
    # stays hot: measured anyway after --cooldown-timeout, said once, flagged in the records
    zone.write_text("48000\n")
    hot = tmp_path / "hot"
    r = run_cli("profile", "--device", "S20", "--suite", str(suite), "--quick", "--max-temp", "40",
                "--cooldown-timeout", "1", "--out", str(hot), "--json", env=adb_server.env)
    assert r.returncode == 0, r.stderr
    said = [line for line in r.stderr.splitlines() if "still at 48 °C" in line]
    assert len(said) == 1 and "cooldown_timed_out" in said[0], r.stderr
    assert json.loads(r.stdout)["cooldown_timeouts"] == 1
    df = _read(hot)
    assert len(df) == 1 and df["cooldown_timed_out"].all() and df["temp_before_c"].iloc[0] == pytest.approx(48.0)
    # hot at the start, cool 2.5 s later (the harness is built and staged already): the first (and
    # only) batch waits for it
    threading.Timer(2.5, lambda: zone.write_text("39000\n")).start()
    cool = tmp_path / "cool"
    r = run_cli("profile", "--device", "S20", "--suite", str(suite), "--quick", "--max-temp", "40", "--out", str(cool),
                "--json", env=adb_server.env)
    assert r.returncode == 0, r.stderr
    df = _read(cool)
    assert len(df) == 1 and df["temp_before_c"].iloc[0] == pytest.approx(39.0)
    assert not df["cooldown_timed_out"].any() and "still at" not in r.stderr
    r = run_cli("profile", "--device", "S20", "--suite", str(suite), "--cooldown-timeout", "0", "--out",
                str(tmp_path / "x"), env=adb_server.env)
    assert r.returncode == 2 and "--cooldown-timeout" in r.stderr
