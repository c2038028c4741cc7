"""The package's shape: command-line code only in the commands layer."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI_LIBS = ("typer", "rich")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_outside_the_commands_layer_imports_typer_or_rich():
    offenders = []
    for pkg in ("devprof", "predictors"):
        for p in sorted((ROOT / pkg).rglob("*.py")):
            rel = p.relative_to(ROOT).as_posix()
            if rel == "devprof/cli.py" or rel.startswith("devprof/commands/"):
                continue
            bad = _imports(p) & set(CLI_LIBS)
            if bad:
                offenders.append(f"{rel}: {', '.join(sorted(bad))}")
    assert not offenders, offenders


def test_every_command_has_its_module():
    from devprof.cli import COMMAND_MODULES, app

    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert {"devices", "profile", "show", "suites", "fit-predictor", "publish", "predict", "report",
            "build-harness", "export-table", "import-table"} <= names
    for mod in COMMAND_MODULES:
        assert (ROOT / (mod.replace(".", "/") + ".py")).is_file()
