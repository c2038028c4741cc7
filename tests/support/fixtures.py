"""Fixtures for the phone path: a real adb server on a free port, and emulated phones attached to it.

Nothing is mocked: the adb server is Debian's `adb` (or the one bundled in the adbutils wheel),
the phone is `loopback_adbd.py` in its own process (so a test can make it vanish, as an unplugged
phone), and devprof talks to them through adbutils exactly as it would to a real phone.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

LOOPBACK_ADBD = Path(__file__).with_name("loopback_adbd.py")
_EMULATOR_PORTS = range(5555, 5586)  # the adb server probes these for emulators


def adb_binary() -> str:
    """Debian's adb when installed, else the one bundled in the adbutils wheel."""
    found = shutil.which("adb")
    if found:
        return found
    import adbutils

    return adbutils.adb_path()


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _EMULATOR_PORTS:
            return port


@dataclass
class AdbServer:
    """A real adb server on its own port (never the user's 5037)."""

    port: int
    adb: str = field(default_factory=adb_binary)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {"ANDROID_ADB_SERVER_PORT": str(self.port)}

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([self.adb, "-P", str(self.port), *args], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **self.env})

    def start(self) -> "AdbServer":
        r = self.run("start-server")
        if r.returncode != 0:
            raise RuntimeError(f"adb start-server failed: {r.stderr.strip()}")
        return self

    def stop(self) -> None:
        self.run("kill-server", timeout=15)

    def state(self, serial: str) -> str:
        out = self.run("devices").stdout
        for line in out.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == serial:
                return parts[1]
        return ""


@dataclass
class EmulatedPhone:
    """One loopback_adbd process attached to `server`; `vanish()` unplugs it, `start()` plugs it back."""

    server: AdbServer
    sandbox: Path
    args: list[str] = field(default_factory=list)
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *extra: str, timeout: float = 20) -> "EmulatedPhone":
        if self.port:  # plugged back in: drop the server's stale transport first (it would back off)
            self.server.run("disconnect", self.serial, timeout=10)
        argv = [sys.executable, str(LOOPBACK_ADBD), "--sandbox", str(self.sandbox), "--port", str(self.port),
                *self.args, *extra]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError(f"emulated phone did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.server.run("connect", self.serial)
            if self.server.state(self.serial) == "device":
                return self
            time.sleep(0.1)
        raise RuntimeError(f"adb server never saw {self.serial} as a device")

    def vanish(self) -> None:
        """Unplug: the phone kills its running commands and drops its connection (SIGTERM)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)

    def stop(self) -> None:
        self.server.run("disconnect", self.serial, timeout=10)
        self.vanish()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture(scope="session")
def adb_server() -> Iterator[AdbServer]:
    server = AdbServer(free_port()).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_phone(adb_server: AdbServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Factory: ``make_phone("--model", "SM-G991U")`` starts and attaches an emulated phone.
    Sets ANDROID_ADB_SERVER_PORT so in-process devprof code talks to the test's adb server."""
    adb_server.start()  # idempotent; revives the server if an earlier test (faults) killed it
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(adb_server.port))
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    monkeypatch.setenv("DEVPROF_CONFIG", str(tmp_path / "no-devprof-config.toml"))
    phones: list[EmulatedPhone] = []

    def make(*args: str, name: str = "") -> EmulatedPhone:
        sandbox = tmp_path / f"phone{len(phones)}{name}"
        p = EmulatedPhone(adb_server, sandbox, list(args)).start()
        phones.append(p)
        return p

    yield make
    for p in phones:
        p.stop()


@pytest.fixture
def phone(make_phone) -> EmulatedPhone:
    """One emulated Galaxy S20 5G (SM-G981U, ABI x86_64) attached to the test adb server."""
    return make_phone()


# ---- the native harness on this host (sparse, threads and int8 kernel tests) ----------------------
@pytest.fixture(scope="module")
def toolchain():
    """This host's C toolchain for harness batches (the test is skipped when there is none)."""
    from devprof.artifacts.harness_build import host_toolchain

    tc = host_toolchain()
    if tc.available():
        pytest.skip(tc.available())
    return tc


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A module's own harness build cache (batches compiled by its tests only)."""
    return tmp_path_factory.mktemp("harness-cache")
