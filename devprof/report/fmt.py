"""Number formatting shared by every table (HTML and Markdown show the same strings)."""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any


def _bad(v: Any) -> bool:
    try:
        return v is None or (isinstance(v, float) and not math.isfinite(v))
    except TypeError:
        return False


def us(v: float) -> str:
    """A latency in µs, shown in the unit that keeps 3 significant digits readable."""
    if _bad(v):
        return "–"
    v = float(v)
    if v >= 1e6:
        return f"{v / 1e6:.3g}\u00a0s"
    if v >= 1e3:
        return f"{v / 1e3:.3g}\u00a0ms"
    return f"{v:.3g}\u00a0µs"


def num(v: Any, digits: int = 3) -> str:
    if _bad(v):
        return "–"
    if isinstance(v, (int,)) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e6):
        return f"{int(v):,}"
    return f"{float(v):.{digits}g}"


def flops(v: Any) -> str:
    if _bad(v) or v <= 0:
        return "–"
    v = float(v)
    for unit, scale in (("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if v >= scale:
            return f"{v / scale:.3g}\u00a0{unit}"
    return f"{v:.0f}\u00a0FLOP"


def flops_range(lo: Any, hi: Any) -> str:
    a, b = flops(lo), flops(hi)
    return a if a == b else f"{a} – {b}"


def pct(v: Any, digits: int = 1) -> str:
    if _bad(v):
        return "–"
    return f"{100 * float(v):.{digits}f}%"


def ratio(v: Any) -> str:
    if _bad(v):
        return "–"
    return f"{float(v):.2f}×"


def when(ts: Any) -> str:
    """A timestamp (pandas/pyarrow/unix seconds) as ``YYYY-MM-DD HH:MM UTC``."""
    if ts is None:
        return "–"
    try:
        if hasattr(ts, "to_pydatetime"):
            ts = ts.to_pydatetime()
        if isinstance(ts, (int, float)):
            if not math.isfinite(ts) or ts <= 0:
                return "–"
            ts = datetime.fromtimestamp(ts, tz=timezone.utc)
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=timezone.utc)
        if ts.year < 1971:
            return "–"
        return ts.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except (ValueError, OverflowError, AttributeError, TypeError):
        return "–"


def span(t0: Any, t1: Any) -> str:
    """A measuring period: one date when it fits in a day, else first and last."""
    a, b = when(t0), when(t1)
    if a == b or b == "–":
        return a
    if a[:10] == b[:10]:
        return f"{a[:16]}–{b[11:]}"
    return f"{a} → {b}"


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (words or word + 's')}"
