"""The report's document model: sections made of paragraphs, tables and figures.

Sections build these plain objects from the data; the renderers (HTML, Markdown) only lay them
out. Keeping numbers and words apart from markup is what lets `--format md` print exactly the
same tables as the HTML page.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


@dataclass
class Paragraph:
    text: str
    kind: str = "text"  # "text" | "note" (a caveat or how a number was obtained) | "warn"


@dataclass
class Table:
    caption: str
    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool] | None = None  # right-align these columns
    note: str = ""
    row_header: bool = False  # the first column names the row (a transposed, key/value table)
    number: int = 0  # assigned at render time

    def __post_init__(self) -> None:
        if self.numeric is None:
            self.numeric = [False] * len(self.columns)


@dataclass
class Figure:
    caption: str
    data_uri: str  # data:image/svg+xml;base64,... (self-contained, opens from disk)
    alt: str = ""
    scale: float = 1.0  # share of the text width the figure is drawn for (and shown at)
    number: int = 0


Block = Union[Paragraph, Table, Figure]


@dataclass
class Section:
    key: str
    title: str
    lead: str = ""
    blocks: list[Block] = field(default_factory=list)
    missing: str = ""  # why this section cannot be drawn ("" when it can)
    number: int = 0

    def add(self, block: Block) -> Block:
        self.blocks.append(block)
        return block

    def para(self, text: str, kind: str = "text") -> None:
        self.blocks.append(Paragraph(text, kind))

    @property
    def drawn(self) -> bool:
        return not self.missing

    @property
    def figures(self) -> list[Figure]:
        return [b for b in self.blocks if isinstance(b, Figure)]

    @property
    def tables(self) -> list[Table]:
        return [b for b in self.blocks if isinstance(b, Table)]


@dataclass
class Report:
    title: str
    subtitle: str
    generated_at: str
    sources: list[dict]
    sections: list[Section]
    devprof_version: str = ""

    def number(self) -> None:
        """Number sections, tables and figures in reading order (as a paper does)."""
        t = f = 0
        for i, s in enumerate(self.sections, 1):
            s.number = i
            for b in s.blocks:
                if isinstance(b, Table):
                    t += 1
                    b.number = t
                elif isinstance(b, Figure):
                    f += 1
                    b.number = f
