"""Matplotlib (Agg) figures, encoded as self-contained SVG data URIs.

Figures are built on `matplotlib.figure.Figure` directly (no pyplot global state) in one paper-like
style: 8-pt DejaVu Sans drawn as paths (no font needed to view them), thin axes, a colour-blind
safe palette (Okabe-Ito). Dense scatters are rasterised inside the SVG to keep the page light.
"""
from __future__ import annotations

import base64
import io
import math
from contextlib import contextmanager
from typing import Iterator, Sequence

import matplotlib

matplotlib.use("Agg", force=False)
from matplotlib import rc_context  # noqa: E402
from matplotlib.figure import Figure as MplFigure  # noqa: E402

#: Okabe & Ito's palette (distinguishable with common colour-vision deficiencies), then greys.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
           "#7f7f7f", "#8c564b")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
TEXT_WIDTH_IN = 6.7  # a paper's text width (A4/letter, ~2.5 cm margins)
RASTERIZE_ABOVE = 1500  # points per scatter above which the markers are rasterised

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 7.5,
    "axes.titlesize": 8,
    "axes.labelsize": 7.5,
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.4,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "legend.fontsize": 6.5,
    "legend.frameon": False,
    "lines.linewidth": 1.2,
    "lines.markersize": 3.5,
    "svg.fonttype": "path",
    "svg.hashsalt": "devprof",  # stable ids: the same data gives the same bytes
    "figure.dpi": 100,
    "savefig.dpi": 150,
}


@contextmanager
def style() -> Iterator[None]:
    with rc_context(STYLE):
        yield


def new(ncols: int = 1, nrows: int = 1, height: float = 2.4, width: float = TEXT_WIDTH_IN,
        sharex: bool = False, sharey: bool = False):
    """A figure and its axes (always a flat list) sized for a paper's text width."""
    fig = MplFigure(figsize=(width, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=sharex, sharey=sharey, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def grid_width(ncols: int) -> float:
    """Width of a small-multiples grid: panels keep their size when there are fewer of them."""
    return min(TEXT_WIDTH_IN, 0.6 + 2.05 * ncols)


def scale(fig: MplFigure) -> float:
    """The figure's width as a share of the text width (the page shows it at that share)."""
    return round(min(1.0, fig.get_figwidth() / TEXT_WIDTH_IN), 3)


def grid_shape(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(n, max_cols)
    return cols, math.ceil(n / cols)


_RENDER = [True]


@contextmanager
def rendering(enabled: bool) -> Iterator[None]:
    """Turn figure encoding off (Markdown output shows no figures, so none is rendered)."""
    old = _RENDER[0]
    _RENDER[0] = enabled
    try:
        yield
    finally:
        _RENDER[0] = old


def to_data_uri(fig: MplFigure) -> str:
    """Encode a figure as an SVG data URI (vector for print, rasterised dense scatters)."""
    if not _RENDER[0]:
        return ""
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "devprof"})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def scatter(ax, x: Sequence[float], y: Sequence[float], **kw):
    kw.setdefault("s", 9)
    kw.setdefault("linewidths", 0.3)
    kw.setdefault("alpha", 0.8)
    kw.setdefault("edgecolors", "white")
    if len(x) > RASTERIZE_ABOVE:
        kw["rasterized"] = True
        kw["s"] = 5
        kw["linewidths"] = 0
    return ax.scatter(x, y, **kw)


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def marker(i: int) -> str:
    return MARKERS[i % len(MARKERS)]


def hide_unused(axes: list, used: int) -> None:
    for ax in axes[used:]:
        ax.set_visible(False)


def short(label: str, n: int = 38) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def log_axis(ax, which: str, values) -> None:
    """Log scale that always spans at least one decade (so ticks get labels) and shows no minor labels."""
    import numpy as np
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(LogLocator(base=10, numticks=7))
    # minor ticks at 2x and 5x only: enough to read a log scale, a fraction of the tick objects
    # (tick layout is most of a figure's rendering time)
    axis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0), numticks=12))
    axis.set_minor_formatter(NullFormatter())
    # plain-text labels (no mathtext parsing per tick): numbers when the whole axis reads well so,
    # else 10ⁿ throughout
    plain = not v.size or (v.min() >= 0.01 and v.max() <= 2e4)
    axis.set_major_formatter(FuncFormatter(_plain if plain else _pow10))
    if v.size:
        lo, hi = float(v.min()), float(v.max())
        if hi / lo < 12:
            mid = math.sqrt(lo * hi)
            lo, hi = mid / 4, mid * 4
        else:
            lo, hi = lo / 1.6, hi * 1.6
        (ax.set_xlim if which == "x" else ax.set_ylim)(lo, hi)


def legend_below(fig: MplFigure, handles: list, labels: list, label_in: float = 1.25, **kw) -> None:
    """One legend under all panels, with as many columns as fit the figure's width."""
    if not handles:
        return
    longest = max(len(lab) for lab in labels)
    per = max(label_in, 0.45 + 0.055 * longest)
    ncols = max(1, min(len(labels), int(fig.get_figwidth() / per)))
    fig.legend(handles, labels, loc="outside lower center", ncols=ncols, **kw)


_SUP = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _plain(v: float, _pos: object = None) -> str:
    return f"{v:g}" if v > 0 else ""


def _pow10(v: float, _pos: object = None) -> str:
    if v <= 0:
        return ""
    e = math.log10(v)
    if abs(e - round(e)) < 1e-9:
        return "10" + str(int(round(e))).translate(_SUP)
    return f"{v:.0e}"
