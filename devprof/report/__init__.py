"""`devprof report`: one self-contained HTML page (or Markdown) from datasets and predictor bundles.

    from devprof.report import build_report
    result = build_report(["devprof-data"], bundles=["datasets_latency/local/onnxruntime"],
                          out="report.html")

Sections (devices, quality, latency vs FLOPs, sparse speedup, predictor accuracy, per-layer,
comparisons) are built independently; each says why it cannot be drawn when its data is absent.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from ..errors import DatasetError, UsageError

FORMATS = ("html", "md")


@dataclass
class ReportResult:
    path: Path
    format: str
    seconds: float
    records: int
    sections: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "format": self.format, "seconds": round(self.seconds, 3),
                "records": self.records, "sections": self.sections}


def build_document(datasets: Sequence[str | Path], bundles: Sequence[str | Path] = (), strict: bool = False,
                   figures: bool = True):
    """Load the data and build every section (no file written). `strict` re-raises section bugs;
    `figures=False` skips encoding the figures (for Markdown, which shows none)."""
    from .. import __version__
    from . import fmt
    from .data import load
    from .model import Report, Section

    data = load(datasets, bundles)  # bad input fails here, before matplotlib is imported
    from .figures import rendering
    from .sections import ORDER

    sections = []
    for mod in ORDER:
        try:
            with rendering(figures):
                sections.append(mod.build(data))
        except Exception as e:  # a bug in one section must not cost the user the whole report
            if strict:
                raise
            msg = " ".join(str(e).split()) or type(e).__name__
            sections.append(Section(mod.__name__.rsplit(".", 1)[-1], mod.TITLE,
                                    missing=f"devprof failed while drawing it ({type(e).__name__}: {msg}); "
                                            "please report this"))
    df = data.records
    sources = []
    for src in data.sources:
        part = df[df["dataset"] == src.label] if len(df) else df
        kinds = part["kind"].value_counts().to_dict() if len(part) else {}
        bits = [fmt.plural(src.records, "record")]
        if kinds:
            bits.append(", ".join(f"{v} {k}" for k, v in sorted(kinds.items())))
        if len(part):
            bits.append(fmt.plural(part["device_id"].nunique(), "device") + ", "
                        + fmt.plural(part["runtime_label"].nunique(), "runtime"))
        if src.failures:
            bits.append(fmt.plural(len(src.failures), "failed kernel"))
        sources.append({"label": src.label, "path": str(src.path), "summary": "; ".join(bits)})
    for b in data.bundles:
        rt = b.metadata.get("runtime") or {}
        ds = b.metadata.get("dataset") or {}
        sources.append({"label": b.label, "path": str(b.path),
                        "summary": f"predictor bundle for {(b.metadata.get('device') or {}).get('name', '?')} · "
                                   f"{_runtime_short(rt)}, fitted on {ds.get('kernel_records', '?')} kernel records "
                                   f"({b.metadata.get('created_at', 'date unknown')})"})
    n = len(df)
    if n:
        subtitle = (f"{fmt.plural(n, 'measurement')} of {fmt.plural(df['spec_id'].nunique(), 'distinct kernel')} "
                    f"on {fmt.plural(df['device_id'].nunique(), 'device')} with "
                    f"{fmt.plural(df['runtime_label'].nunique(), 'runtime configuration')}")
        emu = df.loc[df["emulated"].astype(bool), "device_id"].nunique() if "emulated" in df else 0
        if emu:
            subtitle += f"; {fmt.plural(emu, 'device')} emulated (timings not a phone's)"
    else:
        subtitle = "No measurements in the given datasets"
    names = ", ".join(src.label for src in data.sources) or ", ".join(b.label for b in data.bundles)
    report = Report(title=f"Latency report — {names}", subtitle=subtitle,
                    generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                    sources=sources, sections=sections, devprof_version=__version__)
    report.number()
    return report, data


def _runtime_short(rt: dict) -> str:
    """A bundle's runtime as the report labels runtimes (name/threads, version): its full key carries
    every backend option, a compiler string among them."""
    if rt.get("name"):
        return f"{rt['name']}/t{rt.get('threads', '?')} {rt.get('version', '')}".strip()
    return str(rt.get("key") or "?")


def build_report(datasets: Sequence[str | Path], bundles: Sequence[str | Path] = (), out: str | Path | None = None,
                 fmt: str = "html", strict: bool = False) -> ReportResult:
    """Write the report (HTML page or Markdown) and say where, how long it took and what was drawn."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown report format {fmt!r} (use html or md)")
    t0 = time.perf_counter()
    out = Path(out) if out else Path("report.html" if fmt == "html" else "report.md")
    if out.is_dir():
        raise UsageError(f"{out} is a folder; give a file name with -o")
    if not out.parent.exists():
        raise UsageError(f"cannot write {out}: folder {out.parent} does not exist")
    report, data = build_document(datasets, bundles, strict=strict, figures=fmt == "html")
    from . import render

    text = render.html(report) if fmt == "html" else render.markdown(report)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # a read-only folder: there is no half-written file to remove
            pass
        raise DatasetError(f"cannot write {out}: {e.strerror or e}") from None
    secs = [{"number": s.number, "key": s.key, "title": s.title, "drawn": s.drawn, "reason": s.missing,
             "figures": len(s.figures), "tables": len(s.tables)} for s in report.sections]
    return ReportResult(out, fmt, time.perf_counter() - t0, len(data.records), secs)


__all__ = ["build_report", "build_document", "ReportResult", "FORMATS"]
