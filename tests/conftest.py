"""Shared fixtures. Tests run real runtimes, real compilers and the real adb server; no mocks."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Phone path: a real adb server + emulated phones (tests/support/fixtures.py).
from support.fixtures import adb_server, make_phone, phone  # noqa: E402,F401
# Report tests: synthetic datasets, a fitted bundle and the full report, built once per session.
from report_synth import report_bundle, report_data, report_full  # noqa: E402,F401

sys.path.insert(0, str(ROOT / "bench"))
from faultkit import TINY_SUITE  # noqa: E402  (one tiny suite for tests and the fault benchmarks)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Build caches go to a per-session temporary folder, never the user's ~/.cache."""
    monkeypatch.setenv("DEVPROF_CACHE", str(tmp_path_factory.getbasetemp() / "devprof-cache"))


@pytest.fixture
def tiny_suite(tmp_path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(TINY_SUITE)
    return p


def run_cli(*args: str, timeout: float = 300, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    """Run the real `devprof` command line in a subprocess (as a user would)."""
    e = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "devprof", *args], capture_output=True, text=True,
                          timeout=timeout, env=e, cwd=kw.pop("cwd", ROOT), **kw)
