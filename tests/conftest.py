"""Shared fixtures. Tests run real runtimes, real compilers and the real adb server; no mocks.

Helpers live in tests/support/ (imported as ``support.*``: pytest's ``pythonpath`` puts tests/ on
the path); this file only registers fixtures.
"""
from __future__ import annotations

from pathlib import Path

import pytest

# Phone path: a real adb server + emulated phones (tests/support/fixtures.py).
from support.fixtures import adb_server, make_phone, phone  # noqa: F401
# Generated-kernel tests: this host's toolchain and a per-module harness build cache.
from support.fixtures import cache, toolchain  # noqa: F401
# Report tests: synthetic datasets, a fitted bundle and the full report, built once per session.
from support.report_synth import report_bundle, report_data, report_full  # noqa: F401
from support.faultkit import TINY_SUITE  # one tiny suite for tests and the fault benchmarks


#: Fixtures whose tests talk to an (emulated) phone through the adb server.
_PHONE_FIXTURES = {"adb_server", "make_phone", "phone"}


def pytest_collection_modifyitems(items) -> None:
    """Mark tests by what they need, so a run can pick them (``-m phone``, ``-m "not browser"``):
    `phone` for every test that uses the emulated phone, `browser` for the report's browser tests."""
    for item in items:
        if _PHONE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.phone)
        if item.path.name == "test_report_browser.py":
            item.add_marker(pytest.mark.browser)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Build caches go to a per-session temporary folder, never the user's ~/.cache."""
    monkeypatch.setenv("DEVPROF_CACHE", str(tmp_path_factory.getbasetemp() / "devprof-cache"))


@pytest.fixture
def tiny_suite(tmp_path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(TINY_SUITE)
    return p
