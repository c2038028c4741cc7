"""`LatencyTable`: the in-memory form every exchange format reads into and writes from.

A front end's lookup table is a mapping from a key (an OFA block key, a devprof canonical spec
key, a (position, block) name...) to a latency with its spread and the number of timings behind
it. Keeping one small type between the formats is what makes "export -> import reproduces the
table exactly" checkable: every reader returns a `LatencyTable`, every writer takes one, and
`==` compares keys, order-insensitively, and float values bit for bit.

Units: milliseconds (the unit OFA/ProxylessNAS tables and nn-Meter use); `spread_ms` is the
standard deviation for OFA tables and the IQR for tables made from devprof bundles (`spread`
names which).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

from ..errors import UsageError


@dataclass(frozen=True)
class Entry:
    """One table row: mean/median latency (ms), its spread (ms) and how many timings it summarises."""

    ms: float
    spread_ms: float = 0.0
    count: int = 1

    def __post_init__(self) -> None:
        for name in ("ms", "spread_ms"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite non-negative number, got {v!r}")
            object.__setattr__(self, name, float(v))
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0:
            raise ValueError(f"count must be a non-negative integer, got {self.count!r}")


@dataclass
class LatencyTable:
    """Ordered key -> Entry, plus what the numbers are (`stat`, `spread`) and free-form metadata."""

    entries: dict[str, Entry] = field(default_factory=dict)
    stat: str = "mean"  # "mean" (OFA) or "median" (devprof)
    spread: str = "std"  # "std" (OFA), "var" (stored as std here), or "iqr" (devprof)
    meta: dict = field(default_factory=dict)
    #: key -> the devprof spec behind it (canonical JSON), where known: tables devprof writes carry
    #: it so that importing them gives back real kernel records that can be fitted again
    specs: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def __getitem__(self, key: str) -> Entry:
        return self.entries[key]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencyTable):
            return NotImplemented
        return self.entries == other.entries

    def add(self, key: str, ms: float, spread_ms: float = 0.0, count: int = 1, spec: str | None = None) -> None:
        if not isinstance(key, str) or not key or "\n" in key:
            raise ValueError(f"bad table key {key!r}")
        self.entries[key] = Entry(ms, spread_ms, count)
        if spec:
            self.specs[key] = spec

    def ms(self, key: str) -> float:
        """Latency of `key` in ms; a one-line UsageError naming the key when it is missing."""
        e = self.entries.get(key)
        if e is None:
            raise UsageError(f"the table has no entry {key!r}")
        return e.ms

    def total_ms(self, keys: Iterable[str]) -> float:
        return sum(self.ms(k) for k in keys)

    def items(self):
        return self.entries.items()

    @classmethod
    def from_mapping(cls, rows: Mapping[str, tuple[float, float, int]], **kw) -> "LatencyTable":
        t = cls(**kw)
        for k, (ms, sp, n) in rows.items():
            t.add(k, ms, sp, n)
        return t

    def diff(self, other: "LatencyTable") -> list[str]:
        """Human-readable differences (for tests and `--check` messages); empty when equal."""
        out = []
        for k in self.entries.keys() - other.entries.keys():
            out.append(f"only in first: {k}")
        for k in other.entries.keys() - self.entries.keys():
            out.append(f"only in second: {k}")
        for k in self.entries.keys() & other.entries.keys():
            if self.entries[k] != other.entries[k]:
                out.append(f"{k}: {self.entries[k]} != {other.entries[k]}")
        return sorted(out)
