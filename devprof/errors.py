"""devprof's own errors: each carries one line for the user and an exit code for the shell."""
from __future__ import annotations

from predictors.errors import UserError


DevprofError = UserError
"""An error the user can act on. The CLI prints ``error: <message>`` and exits `exit_code`. The
class lives in `predictors.errors` so that bundle errors are devprof errors without `predictors`
importing devprof."""


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


def one_line(text: object, limit: int = 300) -> str:
    """`text` as one line of at most `limit` characters, cut at a word boundary with an ellipsis:
    a message cut mid-word reads as a different message."""
    s = " ".join(str(text).split())
    if len(s) <= limit:
        return s
    cut = s[:limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"


#: errno values that mean "this path cannot be written here": the user's choice of place, not a bug.
_WRITE_ERRNOS = {"EROFS", "EACCES", "EPERM", "ENOSPC", "EDQUOT", "EFBIG", "ENOTDIR", "EISDIR", "ENAMETOOLONG",
                 "ELOOP", "EEXIST", "ENOENT"}


def as_user_error(e: BaseException) -> DevprofError | None:
    """The one-line user error an exception that escaped a command stands for, or None for a bug.

    A read-only or full filesystem, a missing or unwritable folder, and running out of memory on
    an input the user chose (a model at a huge resolution) are things the user can act on; they
    are named with the path and the reason, and the exit code of their kind (4: a file could not
    be read or written; 2: the input is too large for this machine)."""
    import errno as _errno

    if isinstance(e, MemoryError):
        return UsageError("out of memory: the input is too large for this machine (a smaller model, resolution or "
                          "suite)")
    if isinstance(e, OSError) and e.errno is not None:
        name = _errno.errorcode.get(e.errno, "")
        if name in _WRITE_ERRNOS:
            path = e.filename if e.filename is not None else ""
            verb = "write" if name in ("EROFS", "ENOSPC", "EDQUOT", "EFBIG") else "access"
            return DatasetError(f"cannot {verb}{f' {path}' if path else ''}: {e.strerror or name}")
    return None
