"""A bundle's training domain: what it measured, so that what it extrapolates can be said.

A regressor answers anything, including an fc layer from a bundle that only ever saw convs, or
a sparse spec from a runtime that was timed dense. Those answers are guesses, and a search loop
that trusts them picks wrong. The domain is read from the bundle's own lookup table (every
kernel the bundle was fitted on is a row of it), so it needs no extra file and bundles of every
format have one: per (op, sparsity scheme, dtype) the number of kernels and the range of each
dimension. A prediction is *in domain* when it is a table hit, or when its (op, scheme, dtype)
was measured, its op has a regressor of its own (not the all-ops fallback), and each of its
dimensions lies within the measured range of that group.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .errors import UserError
from .spec import DTYPES, OPS, SCHEMES
from .spectable import SpecTable, col

#: Dimensions whose measured range bounds the domain (FLOPs bounds the size as a whole).
RANGE_COLUMNS = ("n", "h", "w", "cin", "cout", "kh", "kw", "stride", "groups", "ratio", "flops")
_RC = np.array([col(c) for c in RANGE_COLUMNS])
_NS, _ND = len(SCHEMES), len(DTYPES)


class OutOfDomain(UserError):
    """A strict query asked for a prediction outside the bundle's training domain."""


def group_keys(data: np.ndarray) -> np.ndarray:
    """One integer per row for its (op, scheme, dtype)."""
    op = data[:, col("op")].astype(np.int64)
    scheme = data[:, col("scheme")].astype(np.int64)
    dtype = data[:, col("dtype")].astype(np.int64)
    return (op * _NS + scheme) * _ND + dtype


def regressor_codes(data: np.ndarray) -> np.ndarray:
    """The regressor slot of each encoded row: (op, scheme) for fp32, as bundles before dtypes
    numbered them; another dtype's groups come after every fp32 slot, so an int8 row never lands
    on an fp32 regressor."""
    slot = data[:, col("op")].astype(np.int64) * _NS + data[:, col("scheme")].astype(np.int64)
    return data[:, col("dtype")].astype(np.int64) * (len(OPS) * _NS) + slot


def regressor_name(code: int) -> str:
    """The group name of a regressor slot: ``op/scheme``, or ``op/scheme/dtype`` beyond fp32."""
    dtype, slot = divmod(int(code), len(OPS) * _NS)
    op, scheme = divmod(slot, _NS)
    return f"{OPS[op]}/{SCHEMES[scheme]}" + (f"/{DTYPES[dtype]}" if dtype else "")


def describe_group(key: int) -> str:
    op, rest = divmod(int(key), _NS * _ND)
    scheme, dtype = divmod(rest, _ND)
    return f"{OPS[op]}/{SCHEMES[scheme]}/{DTYPES[dtype]}"


class Domain:
    """Per (op, scheme, dtype) group of the training table: kernel count and each range column's
    [min, max]. `has_regressor(op_code, scheme_code)` says which groups the bundle fitted."""

    def __init__(self, table: SpecTable, regressor_groups: set[int]) -> None:
        data = table.data
        keys = group_keys(data) if len(data) else np.zeros(0, dtype=np.int64)
        self.keys, inv, self.counts = np.unique(keys, return_inverse=True, return_counts=True)
        inv = inv.reshape(-1)
        vals = data[:, _RC] if len(data) else np.zeros((0, len(_RC)))
        g = len(self.keys)
        self.lo = np.full((g, len(_RC)), np.inf)
        self.hi = np.full((g, len(_RC)), -np.inf)
        np.minimum.at(self.lo, inv, vals)
        np.maximum.at(self.hi, inv, vals)
        # (op, scheme, dtype) slots with a regressor of their own, as the predictor numbers them
        self.regressor_groups = np.array(sorted(regressor_groups), dtype=np.int64)

    def _locate(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = group_keys(data)
        i = np.searchsorted(self.keys, k)
        i = np.minimum(i, max(len(self.keys) - 1, 0))
        found = (self.keys[i] == k) if len(self.keys) else np.zeros(len(k), dtype=bool)
        return i, found

    def contains(self, data: np.ndarray) -> np.ndarray:
        """Whether each encoded row lies in the domain of the bundle's regressors."""
        if not len(data):
            return np.zeros(0, dtype=bool)
        i, found = self._locate(data)
        vals = data[:, _RC]
        inside = ((vals >= self.lo[i]) & (vals <= self.hi[i])).all(axis=1)
        has_reg = np.isin(regressor_codes(data), self.regressor_groups)
        return found & inside & has_reg

    def why_not(self, row: np.ndarray) -> str:
        """Why one encoded row is outside the domain, in words."""
        row = np.asarray(row, dtype=np.float64).reshape(1, -1)
        key = int(group_keys(row)[0])
        name = describe_group(key)
        i, found = self._locate(row)
        if not found[0]:
            known = ", ".join(describe_group(k) for k in self.keys[:8]) + (" ..." if len(self.keys) > 8 else "")
            return f"{name} was never measured for this bundle (it knows {known or 'nothing'})"
        j = int(i[0])
        reg = int(regressor_codes(row)[0])
        if reg not in set(self.regressor_groups.tolist()):
            return (f"{name}: only {int(self.counts[j])} kernel(s) measured, too few for a regressor of its own "
                    "(answered by the all-ops fallback)")
        for c, v, lo, hi in zip(RANGE_COLUMNS, row[0, _RC], self.lo[j], self.hi[j]):
            if not lo <= v <= hi:
                return f"{name}: {c} = {_num(v)} outside the measured {_num(lo)}..{_num(hi)}"
        return f"{name}: in domain"

    def to_json(self) -> dict[str, Any]:
        """The domain as plain data (for `devprof predict --json` and docs)."""
        return {describe_group(k): {"kernels": int(n), **{c: [_num(a), _num(b)]
                                                          for c, a, b in zip(RANGE_COLUMNS, lo, hi)}}
                for k, n, lo, hi in zip(self.keys, self.counts, self.lo, self.hi)}


def _num(v: float) -> Any:
    v = float(v)
    return int(v) if v.is_integer() else round(v, 6)
