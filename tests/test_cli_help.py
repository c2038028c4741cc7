"""Help and progress read well in an 80-column terminal: paragraphs wrapped once, no `<bool>`
type labels, `profile`'s options in groups; the progress line keeps its counts and ETA whole, and
the ETA follows what each runtime and op has cost so far."""
from __future__ import annotations

import io
import re

from rich.console import Console

from devprof.cli import _reflow, run
from devprof.eta import Eta


def _help(capsys, monkeypatch, *argv: str) -> str:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("TERMINAL_WIDTH", raising=False)
    assert run([*argv, "--help"]) == 0
    return capsys.readouterr().out


def test_profile_help_at_80_columns(capsys, monkeypatch):
    text = _help(capsys, monkeypatch, "profile")
    lines = text.splitlines()
    assert max(len(x.rstrip()) for x in lines) <= 80
    assert "<bool>" not in text and "<list[" not in text and "<str>" not in text
    panels = [m.group(1) for m in re.finditer(r"╭─ (.+?) ─", text)]
    assert panels == ["What to measure", "Where", "How", "Output"], panels
    # the description is wrapped by the terminal only: no line cut short in mid-paragraph
    body = lines[:next(i for i, x in enumerate(lines) if x.startswith("╭"))]
    for a, b in zip(body, body[1:]):
        if a.strip() and b.strip() and not a.startswith("   ") and not b.startswith("   "):
            assert len(a.rstrip()) >= 60, (a, b)


def test_every_command_help_has_no_type_labels(capsys, monkeypatch):
    for cmd in (["devices"], ["show"], ["fit-predictor"], ["report"], ["predict"], ["models", "walk"]):
        text = _help(capsys, monkeypatch, *cmd)
        assert "<bool>" not in text and "<list[" not in text and "<path>" not in text, (cmd, text)


def test_reflow_joins_paragraphs_and_keeps_examples():
    doc = """First line
    goes on.

    Examples:

      devprof a   # one
      devprof b
    """
    assert _reflow(doc) == "First line goes on.\n\nExamples:\n\n  devprof a   # one\n  devprof b"


def test_progress_line_keeps_counts_and_eta_at_80_columns():
    from rich.progress import Progress

    from devprof.commands.profile_suite import progress_columns

    console = Console(width=80, file=io.StringIO(), force_terminal=True, color_system=None)
    p = Progress(*progress_columns(console), console=console, auto_refresh=False)
    t = p.add_task("profiling", total=1234, current="conv2d-n1-112x112x32-o64-k3x3-s2-p1-relu6-bcr0.9-draw=1",
                   eta=571.0)
    p.update(t, advance=24)
    console.print(p.get_renderable())
    line = console.file.getvalue().splitlines()[0]
    assert len(line.rstrip()) <= 80
    assert "24/1234" in line and "ETA 0:09:31" in line and "conv2d-n1-112x112x32" in line, line


def test_eta_follows_each_runtime_and_op():
    clock = iter([0.0]).__next__
    work = [("onnxruntime", "fc")] * 10 + [("onnxruntime", "conv2d")] * 10 + [("devprof-c", "conv2d")] * 10
    eta = Eta(work, clock=clock)
    assert eta.remaining_s() is None
    for i in range(5):  # fast kernels first: 0.1 s each
        eta.finished("onnxruntime", "fc", now=0.1 * (i + 1))
    # 5 fc left at 0.1 s; the 20 others not started: the run's pace so far (0.1 s)
    assert abs(eta.remaining_s() - 2.5) < 1e-9
    t = 0.5
    for _ in range(5):
        eta.finished("onnxruntime", "fc", now=t + 0.1)
        t += 0.1
    for _ in range(2):  # the conv2d kernels take 2 s each
        t += 2.0
        eta.finished("onnxruntime", "conv2d", now=t)
    # 8 ORT conv2d at 2 s each; devprof-c not started: the run's pace so far (5 s over 12 kernels)
    ort_pace = (1.0 + 4.0) / 12
    assert abs(eta.remaining_s() - (8 * 2.0 + 10 * ort_pace)) < 1e-9


def test_suites_counts_the_models_a_suite_holds_not_its_entries():
    import json as _json

    from support.cli import run_cli

    r = run_cli("suites", "--json")
    assert r.returncode == 0, r.stderr
    rows = {x["name"]: x for x in _json.loads(r.stdout)}
    assert rows["models"]["models"] == 41 and rows["models"]["model_entries"] == 15
    # entries with a compute budget (max_gmacs) may skip draws: the count is then an upper bound
    assert rows["models-train"]["models"] == 67 and rows["models-large"]["models"] == 450
    assert not rows["models-train"]["models_exact"]
