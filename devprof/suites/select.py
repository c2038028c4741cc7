"""Choosing part of a suite (`profile --where`), measuring it under another weight draw (`--draw`)
or in another data type (`--dtype`).

Why `--draw`: a sparse spec names a scheme and a ratio, not the weights that survive pruning.
devprof prunes one seeded random dense tensor per layer, so one campaign times *one* draw. Where a
layer has few pruning units (a handful of output rows or 4x16 blocks), which of them survive moves
the time by 10-30%; a table value from one draw is that draw's latency, not the spec's. A spec
measured under several draws (``attrs.draw = N``, a different seed for the dense tensor) gives the
lookup table a median over draws (`predictors.lut.build`), the figure a query by spec asks for.
"""
from __future__ import annotations

import operator
import re
from typing import Callable, Sequence

from ..errors import UsageError
from predictors.spec import DRAW_ATTR, without_draw  # noqa: F401  re-exported for devprof's callers

from ..records import DTYPES, KernelSpec

_OPS: dict[str, Callable] = {"<=": operator.le, ">=": operator.ge, "!=": operator.ne, "=": operator.eq,
                             "<": operator.lt, ">": operator.gt}
_NUMERIC = ("n", "h", "w", "cin", "cout", "kh", "kw", "stride", "padding", "groups", "dilation", "out_h", "out_w",
            "ratio", "flops", "params")
_TEXT = ("op", "scheme", "activation", "dtype")
_COND = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|!=|=|<|>)\s*([A-Za-z0-9_.+-]+)\s*$")


def _value(spec: KernelSpec, name: str):
    if name == "scheme":
        return spec.sparsity.scheme
    if name == "ratio":
        return spec.sparsity.ratio
    if name == "params":
        return spec.params_count
    return getattr(spec, name)


def parse_where(expr: str) -> Callable[[KernelSpec], bool]:
    """A predicate from ``"op=pwconv,scheme!=dense,cout<=32"``: comma-separated conditions, all of
    which must hold. Fields: the spec's shape fields, out_h / out_w, flops, params, ratio (the
    sparsity ratio), and op / scheme / activation / dtype (= and != only). Nothing is evaluated."""
    conds = []
    for part in (p for p in expr.split(",") if p.strip()):
        m = _COND.match(part)
        if not m:
            raise UsageError(f"--where: cannot read {part.strip()!r} (expected FIELD OP VALUE, OP one of "
                             "= != < <= > >=, e.g. 'op=pwconv,cout<=32')")
        name, op, raw = m.groups()
        if name in _TEXT:
            if op not in ("=", "!="):
                raise UsageError(f"--where: {name} compares with = or != only, not {op}")
            value: object = raw
        elif name in _NUMERIC:
            try:
                value = float(raw)
            except ValueError:
                raise UsageError(f"--where: {name} needs a number, got {raw!r}") from None
        else:
            raise UsageError(f"--where: unknown field {name!r} (known: {', '.join(_TEXT + _NUMERIC)})")
        conds.append((name, _OPS[op], value))
    if not conds:
        raise UsageError("--where: no condition given (e.g. 'op=pwconv,cout<=32')")
    return lambda spec: all(f(_value(spec, n), v) for n, f, v in conds)


def with_draw(spec: KernelSpec, draw: int) -> KernelSpec:
    """`spec` pruned from weight draw `draw` (sparse specs only: a dense kernel's time does not
    depend on its values, and its key stays as it was). Draw 0 is the spec without the attribute."""
    if spec.sparsity.scheme == "dense":
        return spec
    base = without_draw(spec)
    return base.replace(attrs={**base.a, DRAW_ATTR: int(draw)}) if draw else base


def check_dtype(value: object, where: str) -> str:
    """`value` when it names a data type devprof measures, else a one-line UsageError listing them."""
    if value not in DTYPES:
        raise UsageError(f"{where}: unknown dtype {value!r} (known: {', '.join(DTYPES)})")
    return str(value)


def with_dtype(specs: Sequence[KernelSpec], dtype: str) -> tuple[KernelSpec, ...]:
    """Every spec in data type `dtype` (the suite-wide `--dtype` override of the suite's own dtype
    fields), in order; specs that differed only in their dtype are kept once. Runtimes that
    cannot run a spec in that dtype skip it with their reason, as for any unsupported spec."""
    check_dtype(dtype, "--dtype")
    seen: set[str] = set()
    out = []
    for spec in specs:
        s = spec if spec.dtype == dtype else spec.replace(dtype=dtype)
        if s.id not in seen:
            seen.add(s.id)
            out.append(s)
    return tuple(out)
