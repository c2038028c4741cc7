"""Options that would waste a run or do nothing are refused up front, with one line that says
why and what to do instead; a named adb server is connected to, never started."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from devprof.cli import run
from devprof.devices import LocalDevice
from support.cli import ROOT
from support.fixtures import free_port
from support.report_synth import LOCAL, ORT, kernels, write


def _refused(capsys, argv: list[str], *texts: str) -> str:
    rc = run(argv)
    cap = capsys.readouterr()
    lines = [x for x in cap.err.splitlines() if x.strip()]
    assert rc == 2, (rc, cap.err)
    assert len(lines) == 1 and lines[0].startswith("error: "), cap.err
    for t in texts:
        assert t in lines[0], cap.err
    return lines[0]


def test_more_threads_than_available_cpus_is_refused_unless_oversubscribed(capsys, tmp_path, tiny_suite):
    dev = LocalDevice()
    n = dev.available_cpus()
    assert n == len(os.sched_getaffinity(0))
    _refused(capsys, ["profile", "-s", str(tiny_suite), "--threads", str(n + 1), "--out", str(tmp_path / "d")],
             f"--threads {n + 1}", f"{n} CPU", "--oversubscribe")
    _refused(capsys, ["profile", "-s", str(tiny_suite), "--threads", "2", "--cores", "0", "--out",
                      str(tmp_path / "d")], "pinned with --cores", "--threads 1")
    dev.check_threads(n + 1, "", oversubscribe=True)  # asked for: allowed
    dev.check_threads(n)


def test_negative_cooldown_is_refused(capsys, tmp_path):
    _refused(capsys, ["profile", "--cooldown", "-5", "--out", str(tmp_path / "d")], "--cooldown")


def test_draw_on_a_dense_only_suite_says_it_does_nothing(capsys, tmp_path):
    _refused(capsys, ["profile", "-s", "smoke", "--draw", "1", "--out", str(tmp_path / "d")],
             "--draw 1 does nothing", "only dense")


def test_show_an_op_the_dataset_lacks_names_those_it_holds(capsys, tmp_path):
    ds = write(tmp_path / "ds", kernels(LOCAL, [ORT], 6))
    line = _refused(capsys, ["show", str(ds), "--op", "conv3d"], "--op conv3d", "conv2d")
    assert "holds" in line
    _refused(capsys, ["show", str(ds), "-r", "tensorflow"], "--runtime tensorflow", "onnxruntime")
    assert run(["show", str(ds), "--op", "conv2d"]) == 0


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_a_named_adb_server_is_connected_to_never_started(capsys, tmp_path):
    port = free_port()
    rc = run(["profile", "--device", "S20", "--adb-server", f"127.0.0.1:{port}", "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert rc == 3 and f"127.0.0.1:{port}" in err, err
    assert not _listening(port)  # no stray adb daemon on the user's port


def test_without_adb_on_path_the_bundled_adb_is_used_and_named(tmp_path):
    pytest.importorskip("adbutils")
    port = free_port()
    env = {**os.environ, "PATH": "/nonexistent", "ANDROID_ADB_SERVER_PORT": str(port), "COLUMNS": "200"}
    env.pop("ADBUTILS_ADB_PATH", None)
    p = subprocess.run([sys.executable, "-m", "devprof", "devices", "--json"], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=120)
    try:
        assert p.returncode == 0, p.stderr
        assert "bundled with adbutils" in p.stderr and "not on PATH" in p.stderr, p.stderr
    finally:
        from devprof.devices.adb import adb_binary

        subprocess.run([adb_binary()[0], "-P", str(port), "kill-server"], capture_output=True, timeout=30,
                       env={**os.environ, "PATH": "/nonexistent"})


def test_litert_does_not_announce_its_delegate(tmp_path):
    suite = tmp_path / "one.toml"
    suite.write_text('[suite]\nname = "one"\nruntimes = ["litert"]\n\n[[kernels]]\nop = "fc"\nn = 1\ncin = 8\ncout = 8\n')
    p = subprocess.run([sys.executable, "-m", "devprof", "profile", "-s", str(suite), "--quick", "--json", "--out",
                        str(tmp_path / "d")], capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env={**os.environ, "COLUMNS": "200"})
    assert p.returncode == 0, p.stderr
    assert "XNNPACK delegate" not in p.stderr and "INFO:" not in p.stderr, p.stderr
