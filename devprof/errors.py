"""devprof's own errors: each carries one line for the user and an exit code for the shell."""
from __future__ import annotations


class DevprofError(Exception):
    """An error the user can act on. The CLI prints ``error: <message>`` and exits `exit_code`."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(" ".join(str(message).split()))  # always one line
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(DevprofError):
    """Bad arguments or input files (unknown device, malformed suite...)."""

    exit_code = 2


class DeviceError(DevprofError):
    """The device went away or misbehaved; what was measured before is kept."""

    exit_code = 3


class DatasetError(DevprofError):
    """The dataset cannot be read or written (locked, newer schema, disk full...)."""

    exit_code = 4


class KernelError(DevprofError):
    """A kernel computed a wrong answer or failed to build/run."""

    exit_code = 5
