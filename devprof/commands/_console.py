"""The consoles every command prints through: stdout for results, stderr for progress and notes.

Piped output (CI logs, `| less`) gets wide tables instead of 80 columns of truncated keys.
"""
from __future__ import annotations

import os
import sys

from rich.console import Console

out = Console(width=None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", 160)))
err = Console(stderr=True, width=None if sys.stderr.isatty() else int(os.environ.get("COLUMNS", 160)))


def note(text: str) -> None:
    """One line on stderr, printed as written (no markup: device names and values may hold brackets)."""
    err.print(text, markup=False, highlight=False, soft_wrap=True)
