"""The report as a reader sees it: rendered by headless Chromium from disk, offline.

Checks that every section and figure is present and decoded, that nothing failed to load or was
requested from outside the file, that the page fits a laptop screen, and that it prints. The
screenshots and the PDF are saved as CI artifacts under $DEVPROF_TEST_ARTIFACTS (default
tests/output/report/).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from support.cli import ROOT
from support.report_browser import Browser, find_chromium
from devprof.report import build_report

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package `chromium`; "
                                                          ".ci/run installs it when run as root)")
SECTIONS = ["devices", "quality", "roofline", "sparse", "accuracy", "layers", "programs", "compare"]
LAPTOP_WIDTH = 1280
A4_TEXT_WIDTH = 680  # CSS px: 210 mm less the print stylesheet's 15 mm margins

PAGE_FACTS = """(() => {
  const imgs = Array.from(document.images);
  return JSON.stringify({
    sections: Array.from(document.querySelectorAll('section.report-section'))
      .map(s => [s.id, s.dataset.drawn, s.querySelector('h2').textContent.trim()]),
    images: imgs.length,
    decoded: imgs.filter(i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0).length,
    visible: imgs.filter(i => i.getBoundingClientRect().width > 300).length,
    figures: document.querySelectorAll('figure').length,
    tables: document.querySelectorAll('table').length,
    unavailable: Array.from(document.querySelectorAll('.unavailable')).map(e => e.textContent.trim()),
    overflowing: Array.from(document.querySelectorAll('.table-wrap'))
      .filter(w => w.scrollWidth > w.clientWidth + 1
                   || w.querySelector('table').getBoundingClientRect().right
                      > document.querySelector('main').getBoundingClientRect().right + 1)
      .map(w => w.querySelector('caption').textContent.slice(0, 40)),
    clipped: Array.from(document.querySelectorAll('caption'))
      .filter(c => c.getBoundingClientRect().right > c.closest('.table-wrap').getBoundingClientRect().right + 1
                   || c.scrollWidth > c.clientWidth + 1)
      .map(c => c.textContent.slice(0, 40)),
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    title: document.title,
  });
})()"""


def artifacts() -> Path:
    out = Path(os.environ.get("DEVPROF_TEST_ARTIFACTS") or ROOT / "tests" / "output") / "report"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _render(page: Path, shot: Path, pdf: Path | None = None) -> tuple[dict, dict]:
    with Browser(CHROMIUM, width=LAPTOP_WIDTH) as b:
        b.open(page, width=LAPTOP_WIDTH)
        facts = json.loads(b.evaluate(PAGE_FACTS))
        b.screenshot(shot, width=LAPTOP_WIDTH)
        if pdf is not None:
            b.pdf(pdf)
            b.emulate("print", A4_TEXT_WIDTH)  # the printed page: every table within the text width
            facts["print"] = json.loads(b.evaluate(PAGE_FACTS))
        return facts, b.problems()


def test_full_report_renders_in_chromium(report_full):
    res = report_full
    out = artifacts()
    facts, problems = _render(res.path, out / "report-full.png", out / "report-full.pdf")
    assert problems == {"failed": [], "outside": [], "errors": []}
    assert [s[0] for s in facts["sections"]] == SECTIONS
    assert all(s[1] == "true" for s in facts["sections"]), facts["sections"]
    n_fig = sum(s["figures"] for s in res.sections)
    assert facts["images"] == facts["figures"] == n_fig >= 7
    assert facts["decoded"] == n_fig, "a figure failed to decode"
    assert facts["visible"] == n_fig, "a figure is laid out too small to read"
    assert facts["tables"] == sum(s["tables"] for s in res.sections)
    assert facts["scrollWidth"] <= facts["innerWidth"], "the page scrolls sideways on a laptop screen"
    assert facts["overflowing"] == [], "tables wider than the text column"
    assert facts["clipped"] == [], "table captions cut off"
    printed = facts["print"]
    assert printed["overflowing"] == [] and printed["clipped"] == [], "tables wider than an A4 page"
    assert printed["scrollWidth"] <= printed["innerWidth"]
    assert facts["title"].startswith("Latency report")
    shot = (out / "report-full.png").read_bytes()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 100_000
    pdf = (out / "report-full.pdf").read_bytes()
    assert pdf[:5] == b"%PDF-" and pdf.count(b"/Type /Page") + pdf.count(b"/Type/Page") >= 4


def test_empty_report_renders_with_reasons(report_data, tmp_path):
    page = tmp_path / "empty.html"
    build_report([report_data["empty"]], out=page, strict=True)
    facts, problems = _render(page, artifacts() / "report-empty.png")
    assert problems == {"failed": [], "outside": [], "errors": []}
    assert [s[0] for s in facts["sections"]] == SECTIONS
    assert all(s[1] == "false" for s in facts["sections"])
    assert len(facts["unavailable"]) == len(SECTIONS)
    assert all(u.startswith("Cannot be drawn because") for u in facts["unavailable"])
    assert facts["images"] == 0
