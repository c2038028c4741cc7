"""The consoles every command prints through: stdout for results, stderr for progress and notes.

Both consoles print text as written: rich markup is off, because the text devprof prints is full
of brackets that are not markup (``pip install 'devprof[torch]'``, runtime labels such as
``devprof-c[cc=gcc]``, ONNX Runtime's ``[ONNXRuntimeError]``, device names). Styling goes through
`styled`, which never parses its arguments. Piped output (CI logs, `| less`) gets wide tables
instead of 80 columns of truncated keys.
"""
from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.text import Text


def _width(stream) -> int | None:
    return None if stream.isatty() else int(os.environ.get("COLUMNS", 160))


out = Console(width=_width(sys.stdout), markup=False, highlight=False)
err = Console(stderr=True, width=_width(sys.stderr), markup=False, highlight=False)


def styled(*parts: str | tuple[str, str]) -> Text:
    """Text from plain strings and (text, style) pairs; nothing in them is read as markup."""
    return Text.assemble(*parts)


def note(text: str) -> None:
    """One line on stderr, printed as written."""
    err.print(text, soft_wrap=True)
