"""The adb backend through the real adb server and an emulated phone (tests/support)."""
from __future__ import annotations

import json
import time

import pytest

from devprof.devices import adb, resolve_device, table
from devprof.errors import DeviceError, UsageError

from support.cli import run_cli


def test_fingerprint_names_the_phone(phone):
    d = resolve_device("S20")
    info = d.info()
    assert info.kind == "adb" and info.name == "Galaxy S20 5G" and info.model == "SM-G981U"
    assert info.abi == "x86_64" and info.cores == 8
    assert "Snapdragon 865" in info.soc and info.os.startswith("Android 13")
    assert info.build.startswith("samsung/x1quex")
    assert info.serial == "R3CN30EMUL"  # ro.serialno, stable across reconnects (the adb serial is not)
    assert not info.emulated  # the x86_64 phone runs its binaries natively: no qemu marker
    extra = dict(info.extra)
    assert extra["clusters"] == "little=0-3@1804800;big=4-6@2419200;prime=7@2841600"
    assert extra["governor"] == "schedutil" and extra["battery_level"] == 87 and extra["battery_temp_c"] == 30.5
    st = d.state("7")
    assert st.freq_khz == 2841600 and st.temp_c == pytest.approx(41.0)


@pytest.mark.parametrize("name", ["S20", "s20", "Galaxy S20 5G", "galaxy s20", "SM-G981U", "sm-g981u", "SM-G981",
                                  "adb"])
def test_names_resolve_to_the_phone(phone, name):
    assert resolve_device(name).serial == phone.serial


def test_serial_and_alias(phone, tmp_path, monkeypatch):
    assert resolve_device(phone.serial).serial == phone.serial
    cfg = tmp_path / "devices.toml"
    cfg.write_text(f'[aliases]\nlab-phone = "{phone.serial}"\nmine = "SM-G981U"\n')
    monkeypatch.setenv("DEVPROF_CONFIG", str(cfg))
    assert resolve_device("lab-phone").serial == phone.serial
    assert resolve_device("Mine").serial == phone.serial


def test_unknown_and_ambiguous_names_are_one_line_errors(make_phone):
    a = make_phone()
    with pytest.raises(UsageError) as e:
        resolve_device("S21")
    assert "no attached device matches 'S21'" in str(e.value) and a.serial in str(e.value)
    b = make_phone("--serialno", "R3CN30EMUL2")
    with pytest.raises(UsageError) as e:
        resolve_device("S20")
    msg = str(e.value)
    assert "matches 2 phones" in msg and a.serial in msg and b.serial in msg and "\n" not in msg
    c = make_phone("--model", "SM-G991U", "--serialno", "R3CN30S21")
    assert resolve_device("S21").serial == c.serial
    assert resolve_device("Galaxy S21 5G").serial == c.serial


def test_cli_devices_lists_the_phone(phone, adb_server):
    r = run_cli("devices", "--json", env=adb_server.env)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    phones = [x for x in rows if x["kind"] == "adb"]
    assert len(phones) == 1 and phones[0]["name"] == "Galaxy S20 5G" and phones[0]["model"] == "SM-G981U"
    p = phones[0]
    assert p["cpu"] == "4x1.80+3x2.42+1x2.84 GHz (little/big/prime)" and p["governor"] == "schedutil"
    assert p["extra"]["battery_level"] == 87 and "cpu-0-0-usr=41.0" in p["extra"]["thermal_zones"]
    assert p["os"] == "Android 13 (SDK 33)" and p["soc"].startswith("Snapdragon 865") and p["abi"] == "x86_64"
    r = run_cli("devices", env=adb_server.env)
    assert r.returncode == 0 and "Galaxy S20" in r.stdout and "SM-G981U" in r.stdout


def test_cli_unknown_device_is_one_line(phone, adb_server):
    r = run_cli("profile", "--device", "Pixel 9", "--suite", "smoke", env=adb_server.env)
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "Pixel 9" in lines[0] and phone.serial in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_cores_resolve_to_clusters(phone):
    d = resolve_device("S20")
    assert (d.resolve_cores("little"), d.resolve_cores("big"), d.resolve_cores("prime")) == ("0,1,2,3", "4,5,6", "7")
    assert d.resolve_cores("0-3") == "0,1,2,3"
    with pytest.raises(UsageError, match="clusters little"):
        d.resolve_cores("mid")
    with pytest.raises(UsageError):
        d.resolve_cores("0-9")


def test_stage_is_content_addressed_and_skipped_when_present(phone, tmp_path):
    f = tmp_path / "prog.sh"
    f.write_text("#!/bin/sh\necho staged-ok\n")
    f.chmod(0o755)
    d = resolve_device("S20")
    remote = d.stage([f])
    assert remote.startswith("/data/local/tmp/devprof/")
    assert (phone.sandbox / remote.lstrip("/") / "prog.sh").read_text() == f.read_text()
    fresh = adb.AdbDevice(phone.serial)  # a new session: one sync round trip finds it complete
    fresh.info()  # the fingerprint: one shell call per session
    assert fresh.stage([f]) == remote and fresh.round_trips == 2
    assert fresh.stage([f]) == remote and fresh.round_trips == 2  # known in this session: no round trip
    r = fresh.execute(["./prog.sh"], remote, 10)
    assert r.returncode == 0 and r.stdout == "staged-ok\n" and fresh.round_trips == 3
    f.write_text("#!/bin/sh\necho changed\n")
    assert fresh.stage([f]) != remote


def test_execute_quotes_every_argument(phone, tmp_path):
    d = resolve_device("S20")
    canary = tmp_path / "injected"
    hostile = [f"; touch {canary}", f"$(touch {canary})", f"`touch {canary}`", f"a' ; touch {canary}; '",
               f"| touch {canary}", "*", "\\", "'\"", "\n touch " + str(canary)]
    r = d.execute(["printf", "%s\\n", *hostile], "/data/local/tmp", 10)
    assert r.returncode == 0 and not canary.exists()
    assert r.stdout.split("\n")[:-1][:len(hostile) - 1] == hostile[:-1]


def test_hostile_names_cannot_inject(phone, tmp_path, adb_server):
    canary = tmp_path / "pwned"
    for name in (f"S20; touch {canary}", f"$(touch {canary})", f"`touch {canary}`", f"{phone.serial} && touch {canary}"):
        with pytest.raises(UsageError):
            resolve_device(name)
        r = run_cli("profile", "--device", name, "--suite", "smoke", "--out", str(tmp_path / "ds"), env=adb_server.env)
        assert r.returncode == 2 and "Traceback" not in r.stderr
    assert not canary.exists()


def test_hung_program_hits_the_batch_timeout(phone):
    d = resolve_device("S20")
    t0 = time.monotonic()
    r = d.execute(["sleep", "60"], "/data/local/tmp", 1.0, cpus=d.resolve_cores("big"))
    assert r.timed_out and time.monotonic() - t0 < 10
    assert d.execute(["echo", "alive"], "/data/local/tmp", 5).stdout == "alive\n"  # the phone is still usable


def test_execute_reads_frequency_before_and_after(phone):
    d = resolve_device("S20")
    freq = phone.sandbox / "sys/devices/system/cpu/cpu7/cpufreq/scaling_cur_freq"
    # the "kernel" itself throttles the prime core mid-run, as heat does on a phone
    r = d.execute(["sh", "-c", f"echo 1200000 > {freq}"], "/data/local/tmp", 10, cpus="7")
    assert r.returncode == 0
    assert r.state_before.freq_khz == 2841600 and r.state_after.freq_khz == 1200000
    from devprof.runtimes.conditions import conditions_from

    assert conditions_from(r.state_before, r.state_after, "7").throttled


def test_cooldown_waits_for_the_thermal_zone(phone):
    d = resolve_device("S20")
    zone = phone.sandbox / "sys/class/thermal/thermal_zone0/temp"
    zone.write_text("48000\n")
    import threading

    threading.Timer(1.5, lambda: zone.write_text("39000\n")).start()
    t0 = time.monotonic()
    assert d.cooldown(max_temp_c=40.0, timeout_s=20) is False  # reached: the wait did not give up
    assert 1.0 < time.monotonic() - t0 < 10
    zone.write_text("48000\n")
    assert d.wait_cool(40.0, timeout_s=0.3) is False  # still hot when the time is up


def test_a_vanished_phone_is_a_device_error(phone):
    d = resolve_device("S20")
    d.info()
    phone.vanish()
    with pytest.raises(DeviceError) as e:
        d.execute(["echo", "x"], "/data/local/tmp", 5)
    assert phone.serial in str(e.value) and "--resume" in str(e.value)


def test_table_names():
    assert table.marketing_name("SM-G981U") == "Galaxy S20 5G"
    assert table.marketing_name("SM-G988B") == "Galaxy S20 Ultra 5G"
    assert table.lookup("SM-G981B").soc_for("SM-G981B") == "Exynos 990"
    assert table.lookup("SM-G981U").soc_for("SM-G981U").startswith("Snapdragon 865")
    assert "s20" in table.names_for("SM-G980F") and "s20ultra" in table.names_for("SM-G988U")
    assert "s20" not in table.names_for("SM-G988U")
    assert table.marketing_name("Pixel 8 Pro") == "Pixel 8 Pro" and table.lookup("SM-X999") is None
    for fam in ("S20", "S20+", "S20 Ultra", "S21", "S22", "S23", "S24", "Note20", "A54", "Pixel 6", "Pixel 9"):
        assert fam in table.known_families()


def test_clusters_from_frequencies():
    c = adb.clusters_from_freqs({0: 1800, 1: 1800, 2: 2400, 3: 2400, 4: 2400, 5: 2800})
    assert [(x.name, x.cpu_list) for x in c] == [("little", "0-1"), ("big", "2-4"), ("prime", "5")]
    c = adb.clusters_from_freqs({i: f for i, f in enumerate([1] * 4 + [2] * 2 + [3] * 2)})
    assert [x.name for x in c] == ["little", "mid", "big"]
    c = adb.clusters_from_freqs({i: f for i, f in enumerate([1] * 4 + [2] * 2 + [3] + [4])})
    assert [x.name for x in c] == ["little", "mid", "big", "prime"]


def test_bad_adb_server_address():
    with pytest.raises(UsageError):
        adb.parse_server("host:notaport")
    assert adb.parse_server("10.0.0.2:5038") == ("10.0.0.2", 5038)


def test_output_before_a_disconnect_is_handed_over(make_phone):
    make_phone("--die-on", "salvage-marker", "--die-delay", "1.0")
    d = resolve_device("S20")
    d.info()
    with pytest.raises(DeviceError) as e:
        d.execute(["sh", "-c", "echo first-kernel-line; sleep 20; echo never", "salvage-marker"], "/data/local/tmp", 30)
    partial = e.value.partial
    assert partial.stdout == "first-kernel-line\n" and partial.returncode == -1


def test_android_serial_picks_among_identical_phones(make_phone, monkeypatch):
    a = make_phone()
    b = make_phone("--serialno", "R3CN30EMUL2")
    with pytest.raises(UsageError):
        resolve_device("adb")  # two phones, no ANDROID_SERIAL
    monkeypatch.setenv("ANDROID_SERIAL", b.serial)
    assert resolve_device("adb").serial == b.serial
    assert resolve_device("S20").serial == b.serial  # ANDROID_SERIAL settles an ambiguous name
    monkeypatch.setenv("ANDROID_SERIAL", a.serial)
    assert resolve_device("phone").serial == a.serial



def test_error_listing_names_unusable_phones():
    msg = adb._describe([], [("R58X", "unauthorized"), ("10.0.0.9:5555", "offline")])
    assert msg.startswith("local, ") and "R58X [unauthorized: accept the USB debugging prompt" in msg
    assert "10.0.0.9:5555 [offline" in msg


def test_very_long_or_control_names_give_short_one_line_errors(phone):
    for name in ("S" * 100_000, "S20\nrm -rf /", "\x1b[31mS20"):
        with pytest.raises(UsageError) as e:
            resolve_device(name)
        msg = str(e.value)
        assert "\n" not in msg and "\x1b" not in msg and len(msg) < 400


def test_emulated_models_are_coherent(make_phone):
    s21 = make_phone("--model", "SM-G991U")
    info = resolve_device("S21").info()
    assert info.name == "Galaxy S21 5G" and info.soc.startswith("Snapdragon 888") and info.os.startswith("Android 14")
    assert info.build.startswith("samsung/o1quex/") and info.serial != "R3CN30EMUL"
    make_phone("--model", "Pixel 7")
    px = resolve_device("pixel 7")
    assert px.info().soc == "Google Tensor G2 [GS201]" and [c.name for c in px.clusters] == ["little", "mid", "big"]
    assert resolve_device("S21").serial == s21.serial


def test_fingerprint_parser_on_a_real_looking_phone():
    text = "\n".join([
        "[ro.product.model]: [SM-G991B]", "[ro.product.cpu.abi]: [arm64-v8a]", "[ro.soc.model]: [s5e9840]",
        "[ro.build.version.release]: [13]", "[weird line without brackets", "@@cpus",
        "cpu0 2002000 energy_aware 1040000", "cpu1 2002000 energy_aware 1040000", "cpu2 2002000 energy_aware -1",
        "cpu3 2002000 energy_aware 400000", "cpu4 2808000 energy_aware 2808000", "cpu5 2808000 energy_aware 2808000",
        "cpu6 2808000 energy_aware 2808000", "cpu7 2912000 energy_aware 2912000", "@@thermal",
        "thermal_zone0 38000 BIG", "thermal_zone1 36500 MID", "thermal_zone2 35000 LITTLE",
        "thermal_zone3 -273000 not-a-sensor", "thermal_zone4 x broken", "thermal_zone5 29 battery",
        "@@battery", "64 291", "@@kernel", "5.4.147-android11", "@@mem", "MemTotal:        7729644 kB",
        "@@cpuinfo", "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
        "lrcpc dcpop asimddp"])
    fp = adb.parse_fingerprint(text)
    assert {"asimddp", "asimdhp", "fphp"} <= fp.features and "flags" not in fp.features
    assert adb.parse_fingerprint(text.split("@@cpuinfo")[0]).features == frozenset()  # unreadable: none known
    assert fp.props["ro.product.model"] == "SM-G991B" and len(fp.props) == 4
    assert [(c.name, c.cpu_list, c.max_khz) for c in fp.clusters] == [
        ("little", "0-3", 2002000), ("big", "4-6", 2808000), ("prime", "7", 2912000)]
    assert fp.cur_khz[2] == -1 and fp.governors[0] == "energy_aware"
    assert fp.cpu_zone_dirs == ["thermal_zone0", "thermal_zone1", "thermal_zone2"]
    assert fp.battery_level == 64 and fp.battery_temp_c == pytest.approx(29.1)
    assert fp.kernel == "5.4.147-android11" and fp.mem_kb == 7729644
    assert table.lookup("SM-G991B").soc_for("SM-G991B") == "Exynos 2100"
