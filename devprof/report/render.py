"""Lay the document model out as one self-contained HTML page or as Markdown, with Jinja2.

The HTML inlines its stylesheet and every figure (SVG data URIs) and references nothing outside
itself — no CDN, no web font, no script — so it opens from disk, offline, and prints cleanly.
"""
from __future__ import annotations

from importlib import resources

from jinja2 import Environment, StrictUndefined

from .model import Figure, Paragraph, Report, Table


def _env(autoescape: bool) -> Environment:
    env = Environment(autoescape=autoescape, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.tests["table"] = lambda b: isinstance(b, Table)
    env.tests["figure"] = lambda b: isinstance(b, Figure)
    env.tests["paragraph"] = lambda b: isinstance(b, Paragraph)
    env.filters["md_cell"] = _md_cell
    return env


def _template(name: str) -> str:
    return resources.files("devprof.report").joinpath("templates", name).read_text(encoding="utf-8")


def _md_cell(v: object) -> str:
    return str(v).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ") or " "


def html(report: Report) -> str:
    env = _env(True)
    css = _template("report.css")
    return env.from_string(_template("report.html.j2")).render(report=report, css=css)


def markdown(report: Report) -> str:
    return _env(False).from_string(_template("report.md.j2")).render(report=report)
