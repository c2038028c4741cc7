"""Running the real `devprof` command line from tests, as a user would."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The checkout the tests run in."""


def run_cli(*args: str, timeout: float = 300, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    """Run the real `devprof` command line in a subprocess (as a user would)."""
    e = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "devprof", *args], capture_output=True, text=True,
                          timeout=timeout, env=e, cwd=kw.pop("cwd", ROOT), **kw)
