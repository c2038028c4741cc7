"""The `devprof` command line (Typer + rich): assembles the app and handles errors.

Every command lives in its own module under `devprof/commands/` (a thin layer over a domain
function that knows nothing of typer or rich), listed in `COMMAND_MODULES`. Every failure the
user can act on is one line on stderr (``error: ...``) and a non-zero exit code; tracebacks are
shown only with DEVPROF_DEBUG=1.
"""
from __future__ import annotations

import importlib
import os
import sys

import typer

from . import __version__
from .commands._console import err
from .errors import DevprofError

#: Modules adding subcommands; each exposes ``register(app)``.
COMMAND_MODULES: list[str] = [f"devprof.commands.{m}" for m in (
    "devices", "profile", "show", "suites", "fit_predictor", "publish", "predict", "report", "build_harness",
    "formats", "models")]

app = typer.Typer(
    name="devprof",
    help="Measure how fast deep-learning layers (dense and sparse) run on Android phones and on this "
         "machine, and turn the timings into datasets, latency predictors and lookup tables.\n\n"
         "Start with: devprof devices; devprof profile --suite smoke; devprof show devprof-data",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        print(f"devprof {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """devprof: latency measurement for on-device deep learning."""


_registered = False


def _register_commands() -> None:
    """Add every command module's commands to `app` (once)."""
    global _registered
    if _registered:
        return
    _registered = True
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(app)


def main() -> None:
    """Entry point: run the app, turning devprof's errors into one line and an exit code."""
    _register_commands()
    try:
        app()
    except DevprofError as e:
        err.print(f"[red]error:[/] {e}", highlight=False, markup=True, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as e:  # an internal bug: still one line unless debugging
        cause = e  # Ctrl-C inside a C extension's import surfaces as ImportError("initialization failed")
        while cause is not None and not isinstance(cause, KeyboardInterrupt):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            err.print("interrupted")
            sys.exit(130)
        if os.environ.get("DEVPROF_DEBUG"):
            raise
        first = (str(e).splitlines() or [""])[0][:300]
        err.print(f"error: internal {type(e).__name__}: {first} (set DEVPROF_DEBUG=1 for a traceback)",
                  highlight=False, markup=False, soft_wrap=True)
        sys.exit(1)


_register_commands()  # `from devprof.cli import app` gives the whole app (tests, typer's CliRunner)

if __name__ == "__main__":  # pragma: no cover
    main()
