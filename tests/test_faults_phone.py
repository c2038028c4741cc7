"""Phone-path faults, injected for real: the emulated phone + the real adb server + the x86_64 harness.

A misbehaving harness is a small C program (compiled here) that runs the real harness and then
crashes with SIGSEGV, hangs, cuts its output mid-line, prints garbage or reports a wrong checksum
after K kernels; the emulated phone's ``--shell-sub`` puts it in front of the harness and
``--sync-space`` fills its /data. The adb server itself is killed and restarted mid-run. Each
case: a clear message, the affected kernels logged in failures.jsonl (never recorded), every
finished record kept, and --resume (fault gone) finishing with no duplicates.
A phone dying mid-batch is tests/test_adb_profile.py's; the hung harness (>= 40 s, it waits for the
batch timeout) runs only with DEVPROF_SLOW_TESTS=1.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from support.cli import run_cli
from devprof.store import Dataset
from support.fixtures import AdbServer, EmulatedPhone, free_port

FAULT_HARNESS_C = r"""
/* usage: fault_harness MODE K REAL_HARNESS [args...]: pass K kernel lines through, then misbehave.
 * MODE: segv | hang | truncate | garbage | mismatch */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: fault_harness MODE K HARNESS [args]\n"); return 2; }
    const char *mode = argv[1];
    long k = atol(argv[2]);
    int fd[2];
    if (pipe(fd)) return 3;
    pid_t pid = fork();
    if (pid == 0) { dup2(fd[1], 1); close(fd[0]); close(fd[1]); execv(argv[3], argv + 3); _exit(127); }
    close(fd[1]);
    FILE *in = fdopen(fd[0], "r");
    static char line[1 << 20];
    long seen = 0;
    while (fgets(line, sizeof line, in)) {
        if (strstr(line, "\"kernel\"") && seen++ >= k) {
            if (!strcmp(mode, "segv")) { fflush(stdout); kill(pid, SIGKILL); raise(SIGSEGV); }
            if (!strcmp(mode, "hang")) { fflush(stdout); kill(pid, SIGKILL); for (;;) pause(); }
            if (!strcmp(mode, "truncate")) {
                fwrite(line, 1, strlen(line) / 2, stdout); fflush(stdout); kill(pid, SIGKILL); return 0;
            }
            if (!strcmp(mode, "garbage")) { fputs("\x01\x02{\"kernel\": [garbage, \xff\xfe\n", stdout); continue; }
            if (!strcmp(mode, "mismatch")) {
                char name[256] = "";
                char *p = strstr(line, "\"kernel\":\"");
                if (p && sscanf(p, "\"kernel\":\"%255[^\"]\"", name) == 1) {
                    printf("{\"kernel\":\"%s\",\"status\":\"mismatch\",\"error\":\"checksum 1.25 != reference 1.5\"}\n", name);
                    continue;
                }
            }
        }
        fputs(line, stdout);
    }
    fflush(stdout);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
"""

#: 8 small fc kernels: one devprof-c batch.
EIGHT = """
[suite]
name = "eight"
description = "8 small fc kernels for phone fault tests"
runtimes = ["devprof-c"]

[[family]]
op = "fc"
shape = { n = [1, 2], cin = [16, 24, 32, 40], cout = [8] }
"""
HARNESS = r"(\S+/devprof-harness)(?= )"


@pytest.fixture(scope="module")
def fault_harness(tmp_path_factory) -> str:
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        pytest.skip("needs a C compiler")
    d = tmp_path_factory.mktemp("fault-harness")
    (d / "fault_harness.c").write_text(FAULT_HARNESS_C)
    subprocess.run([cc, "-O1", "-o", str(d / "fault_harness"), str(d / "fault_harness.c")], check=True)
    return str(d / "fault_harness")


@pytest.fixture
def suite(tmp_path) -> Path:
    p = tmp_path / "eight.toml"
    p.write_text(EIGHT)
    return p


def _profile(out: Path, suite: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    return run_cli("profile", "--device", "S20", "--suite", str(suite), "--quick", "--out", str(out), "--json",
                   *extra, env=env, timeout=240)


def _resume_clean(phone: EmulatedPhone, out: Path, suite: Path, env: dict, before: set[str]) -> None:
    """Plug the phone back without faults; --resume must add exactly what is missing."""
    phone.stop()
    phone.args = []
    phone.start()
    r = _profile(out, suite, env, "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    df = Dataset(out).read()
    assert len(df) == 8 and df["record_key"].is_unique and before <= set(df["record_key"])
    assert json.loads(r.stdout)["measured"] == 8 - len(before)


@pytest.mark.parametrize("mode,words", [
    ("segv", "exited with 139"),
    ("truncate", "harness gave no result"),
    ("garbage", "harness gave no result"),
    ("mismatch", "mismatch: checksum 1.25 != reference 1.5"),
])
def test_misbehaving_harness(mode, words, make_phone, adb_server, tmp_path, suite, fault_harness):
    k = 3
    phone = make_phone("--shell-sub", HARNESS, rf"{fault_harness} {mode} {k} \1")
    out = tmp_path / "ds"
    r = _profile(out, suite, adb_server.env)
    assert "Traceback" not in r.stderr
    assert r.returncode == 0, r.stderr[-2000:]  # some kernels measured, the rest refused: not fatal
    s = json.loads(r.stdout)
    assert s["measured"] == k and s["failed"] == 8 - k, s
    errors = [f["error"] for f in Dataset(out).failures()]
    assert len(errors) == 8 - k and all(words in e for e in errors), errors
    df = Dataset(out).read()
    assert len(df) == k and df["record_key"].is_unique
    if mode == "segv":  # one resume is enough: the dataset state is the same for every mode
        _resume_clean(phone, out, suite, adb_server.env, set(df["record_key"]))


@pytest.mark.skipif(not os.environ.get("DEVPROF_SLOW_TESTS"), reason="waits for the batch timeout (>= 40 s); "
                    "set DEVPROF_SLOW_TESTS=1")
def test_hung_harness_hits_the_batch_timeout(make_phone, adb_server, tmp_path, fault_harness):
    suite = tmp_path / "two.toml"
    suite.write_text(EIGHT.replace("n = [1, 2], cin = [16, 24, 32, 40]", "n = [1], cin = [16, 24]"))
    make_phone("--shell-sub", HARNESS, rf"{fault_harness} hang 1 \1")
    out = tmp_path / "ds"
    r = _profile(out, suite, adb_server.env)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    s = json.loads(r.stdout)
    assert s["measured"] == 1 and s["failed"] == 1
    assert "timed out" in Dataset(out).failures()[0]["error"]


def test_full_data_local_tmp(make_phone, adb_server, tmp_path, suite):
    """Pushes fail with ENOSPC: a one-line error naming the problem, nothing recorded, resume works."""
    phone = make_phone("--sync-space", "20000")
    out = tmp_path / "ds"
    r = _profile(out, suite, adb_server.env)
    assert "Traceback" not in r.stderr
    assert r.returncode == 5, r.stderr[-2000:]  # every kernel refused: nothing measured
    errors = [f["error"] for f in Dataset(out).failures()]
    assert len(errors) == 8 and all("No space left on device" in e for e in errors), errors
    got = set(Dataset(out).read()["record_key"])
    assert not got
    _resume_clean(phone, out, suite, adb_server.env, got)


def test_throttling_phone_is_marked(make_phone, adb_server, tmp_path, suite):
    """The CPU frequency drops while the batch runs: every record of it is kept and marked throttled."""
    sandbox = tmp_path / "phone0"
    drop = (f"for f in {sandbox}/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq; "
            f"do echo 300000 > \"$f\"; done; s after")
    make_phone("--shell-sub", r"^s after$", drop)
    out = tmp_path / "ds"
    r = _profile(out, suite, adb_server.env, "--cores", "big")
    assert r.returncode == 0, r.stderr[-2000:]
    df = Dataset(out).read()
    assert len(df) == 8 and df["throttled"].all()
    assert (df["freq_before_khz"] > df["freq_after_khz"]).all() and (df["freq_after_khz"] == 300000).all()


def test_adb_server_killed_and_restarted_mid_run(tmp_path):
    """The adb server dies while a batch runs and comes back: the run ends cleanly (or rides it out),
    what was measured is kept, and --resume through the new server completes with no duplicates."""
    server = AdbServer(free_port()).start()
    phone = EmulatedPhone(server, tmp_path / "phone").start()
    suite = tmp_path / "s.toml"
    suite.write_text(EIGHT.replace("cin = [16, 24, 32, 40]", "cin = [16, 24, 32, 40, 48, 56, 64, 72]"))  # 16 kernels
    env = {**server.env, "DEVPROF_CONFIG": str(tmp_path / "none.toml")}
    out = tmp_path / "ds"
    try:
        killed = threading.Event()

        def kill_when_running() -> None:
            staged = phone.sandbox / "data/local/tmp/devprof"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if staged.exists() and any((d / ".devprof-complete").exists() for d in staged.iterdir()):
                    time.sleep(0.2)
                    server.stop()
                    killed.set()
                    return
                time.sleep(0.02)

        t = threading.Thread(target=kill_when_running, daemon=True)
        t.start()
        r = run_cli("profile", "--device", phone.serial, "--suite", str(suite), "--quick", "--out", str(out), "--json",
                    env=env, timeout=240)
        t.join()
        assert killed.is_set()
        assert "Traceback" not in r.stderr
        errs = [l for l in r.stderr.splitlines() if l.startswith("error:")]
        assert r.returncode in (0, 3), r.stderr[-2000:]
        if r.returncode == 3:
            assert len(errs) == 1 and "adb" in errs[0].lower() or phone.serial in errs[0], errs
        before = set(Dataset(out).read()["record_key"]) if Dataset(out).exists() else set()
        server.start()
        deadline = time.monotonic() + 20
        while server.state(phone.serial) != "device" and time.monotonic() < deadline:
            server.run("connect", phone.serial)  # the new server finds the (still running) phone again
            time.sleep(0.1)
        print("first run:", r.returncode, errs, "records kept:", len(before))
        r = run_cli("profile", "--device", phone.serial, "--suite", str(suite), "--quick", "--out", str(out),
                    "--json", "--resume", env=env, timeout=240)
        assert r.returncode == 0, r.stderr[-2000:]
        df = Dataset(out).read()
        assert len(df) == 16 and df["record_key"].is_unique and before <= set(df["record_key"])
    finally:
        phone.stop()
        server.stop()
