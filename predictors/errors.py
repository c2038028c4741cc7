"""The one error type users act on, shared with devprof.

devprof's `DevprofError` is this class (`devprof.errors` re-exports it under that name), so a
bundle error raised here is caught, printed as one ``error:`` line and mapped to an exit code by
devprof's command line exactly as before, while `predictors` imports nothing from devprof.
"""
from __future__ import annotations


class UserError(Exception):
    """An error the user can act on. devprof's CLI prints ``error: <message>`` and exits `exit_code`."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(" ".join(str(message).split()))  # always one line
        if exit_code is not None:
            self.exit_code = exit_code
