"""The `devprof` command line (Typer + rich): assembles the app and handles errors.

Every command lives in its own module under `devprof/commands/` (a thin layer over a domain
function that knows nothing of typer or rich), listed in `COMMAND_MODULES`. Every failure the
user can act on is one line on stderr (``error: ...``) and a non-zero exit code; tracebacks are
shown only with DEVPROF_DEBUG=1. With ``--json`` the error is also printed on stdout as
``{"error": ..., "exit_code": N}``, so a script reading the JSON gets an answer either way.
"""
from __future__ import annotations

import importlib
import json
import os
import sys

import typer

try:  # typer >= 0.20 carries its own click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException, NoArgsIsHelpError

from . import __version__
from .commands._console import err, styled
from .errors import DevprofError, as_user_error, one_line

#: Modules adding subcommands; each exposes ``register(app)``.
COMMAND_MODULES: list[str] = [f"devprof.commands.{m}" for m in (
    "devices", "profile", "show", "suites", "fit_predictor", "publish", "predict", "report", "build_harness",
    "formats", "models", "bundle", "dataset")]

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


_command = None


def command():
    """The app as one click command, built once, its help made to read well at any width
    (`_tidy_help`)."""
    global _command
    if _command is None:
        _register_commands()
        _command = typer.main.get_command(app)
        _tidy_help(_command)
    return _command


def _tidy_help(cmd) -> None:
    """Help that reads well at 80 columns, for `cmd` and its subcommands.

    Docstrings are written wrapped at 120 columns; typer's rich help keeps their line breaks, so
    at 80 columns every line wraps into one and a half. Paragraphs are joined into one line each
    (the terminal wraps them), indented lines (examples) are kept as they are, and text is never
    read as rich markup (help mentions `devprof[torch]`, `[x>=0]`). Flags show no value type (typer
    labels them `<bool>`); options that take a value show its name in capitals unless they set
    their own metavar."""
    from rich.markup import escape

    if cmd.help:
        cmd.help = escape(_reflow(cmd.help))
    for param in getattr(cmd, "params", ()):
        if getattr(param, "help", None):
            param.help = escape(" ".join(param.help.split()))
        if getattr(param, "is_flag", False):
            param.metavar = ""
        elif param.param_type_name == "argument":  # its name says it (typer would add <list[Path]>)
            param.display_type_rich = lambda ctx: None
        elif param.metavar is None:
            param.metavar = (param.name or "value").upper()
    panels = [getattr(x, "rich_help_panel", None) for x in getattr(cmd, "params", ())]
    last_panel = panels[-1] if panels and all(panels) else None  # --help joins the last group
    make_help_option = cmd.get_help_option

    def get_help_option(ctx):
        opt = make_help_option(ctx)
        if opt is not None:
            opt.metavar = ""
            if last_panel:
                opt.rich_help_panel = last_panel
        return opt

    cmd.get_help_option = get_help_option
    for sub in getattr(cmd, "commands", {}).values():
        _tidy_help(sub)


def _reflow(text: str) -> str:
    """Docstring paragraphs as one line each; indented lines (examples) one per line, grouped."""
    import inspect

    blocks: list[tuple[bool, list[str]]] = []  # (verbatim, lines)
    for para in inspect.cleandoc(text).split("\n\n"):
        lines = [x.rstrip() for x in para.split("\n") if x.strip()]
        if not lines:
            continue
        verbatim = all(x.startswith((" ", "\t")) for x in lines)
        if verbatim and blocks and blocks[-1][0]:
            blocks[-1][1].extend(lines)  # consecutive example lines: one block
        else:
            blocks.append((verbatim, lines))
    return "\n\n".join("\n".join(lines) if verbatim else " ".join(x.strip() for x in lines)
                       for verbatim, lines in blocks)


def run(argv: list[str] | None = None) -> int:
    """Run the app on `argv` (default: the process's arguments) and return the exit code.

    Every failure is one line on stderr: devprof's own errors as they are; usage errors (unknown
    option, bad value) as ``error: ...`` with the command's --help, not click's box; an exception
    that stands for something the user can act on (read-only filesystem, out of memory) with its
    path and exit code; anything else as an internal error, with a traceback under DEVPROF_DEBUG=1.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    code = _run(args)
    if code not in (0, 130) and "--json" in args and _last_error:
        print(json.dumps({"error": _last_error[-1], "exit_code": code}))
    return code


_last_error: list[str] = []


def _run(argv: list[str]) -> int:
    _last_error.clear()
    try:
        rv = command().main(args=argv, prog_name="devprof", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except NoArgsIsHelpError as e:  # `devprof` or a group alone: its help
        e.show()
        return e.exit_code
    except ClickException as e:  # typer/click's usage errors
        ctx = getattr(e, "ctx", None)
        hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
        _error(one_line(e.format_message(), 600) + hint)
        return e.exit_code
    except typer.Abort:  # end of input at a prompt
        err.print("aborted")
        return 1
    except DevprofError as e:
        _error(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as e:
        cause = e  # Ctrl-C inside a C extension's import surfaces as ImportError("initialization failed")
        while cause is not None and not isinstance(cause, KeyboardInterrupt):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            err.print("interrupted")
            return 130
        if os.environ.get("DEVPROF_DEBUG"):
            raise
        user = as_user_error(e)
        if user is not None:
            _error(str(user))
            return user.exit_code
        _error(f"internal {type(e).__name__}: {one_line((str(e).splitlines() or [''])[0])} "
               "(set DEVPROF_DEBUG=1 for a traceback)")
        return 1


def _error(message: str) -> None:
    """``error: message`` on stderr, one line, printed as written (messages hold brackets)."""
    _last_error.append(message)
    err.print(styled(("error:", "red"), " " + message), soft_wrap=True)


def main() -> None:
    """Entry point: run the app, turning every error into one line and an exit code."""
    sys.exit(run())


_register_commands()  # `from devprof.cli import app` gives the whole app (tests, typer's CliRunner)

if __name__ == "__main__":  # pragma: no cover
    main()
