"""The package's shape: command-line code only in the commands layer, one writer of records, no import circles among the model modules."""
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


def _module_imports(path: Path) -> set[str]:
    """Every devprof module `path` imports, at its top or inside functions (absolute names)."""
    rel = path.relative_to(ROOT).with_suffix("")
    package = list(rel.parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            names.add(mod)
            names.update(f"{mod}.{a.name}" for a in node.names)  # `from . import profile`
    return names


def test_one_place_writes_records():
    """Records and failure-log lines are written by the measurement session only."""
    import re

    writes = re.compile(r"\b(ds|dataset|self\.ds)\.(append|log_failure)\(")
    offenders = [p.relative_to(ROOT).as_posix() for pkg in ("devprof", "predictors")
                 for p in sorted((ROOT / pkg).rglob("*.py")) if writes.search(p.read_text())]
    assert offenders == ["devprof/session.py"], offenders


def test_model_modules_import_in_one_direction():
    """The shared types live in their own modules, so these pairs never import each other both ways."""
    mods = {m: _module_imports(ROOT / (m.replace(".", "/") + ".py")) for m in (
        "devprof.model_profiling.profile", "devprof.model_profiling.prune", "devprof.models.walk", "devprof.models.tflite_walk",
        "devprof.formats.nnmeter", "devprof.from_models")}
    for a, b in (("devprof.model_profiling.profile", "devprof.model_profiling.prune"), ("devprof.models.walk", "devprof.models.tflite_walk"),
                 ("devprof.formats.nnmeter", "devprof.from_models")):
        assert not (b in mods[a] and a in mods[b]), f"{a} and {b} import each other"


def test_model_sources_never_import_the_profilers():
    """Building or walking a model loads no profiler (and so no runtime): the sources in
    devprof.models import nothing from devprof.model_profiling."""
    offenders = {p.relative_to(ROOT).as_posix(): sorted(m for m in _module_imports(p) if m.startswith("devprof.model_profiling"))
                 for p in sorted((ROOT / "devprof" / "models").glob("*.py"))}
    assert {p: m for p, m in offenders.items() if m} == {}
