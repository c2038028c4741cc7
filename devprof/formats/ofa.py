"""Once-for-All / ProxylessNAS lookup tables: block keys, YAML files, and the blocks themselves.

The MIT Han Lab search code (ProxylessNAS, OFA) estimates a network's latency by summing the
latencies of its blocks read from a YAML table. Each entry is keyed by the block's type and
shapes, joined with '-':

    Conv-input:224x224x3-output:112x112x32                         first 3x3 stride-2 conv
    expanded_conv-input:112x112x24-output:56x56x32-expand:144-kernel:5-stride:2-idskip:0-se:0-hs:0
    Conv_1-input:7x7x160-output:7x7x960                            final 1x1 expand conv
    AvgPool2D-input:7x7x960-output:1x1x960                         global average pool
    Conv_2-input:1x1x960-output:1x1x1280                           feature-mix 1x1 conv
    Logits-input:1x1x1280-output:1000                              classifier

and each value is ``{count: N, mean: ms, std: ms}``. Two dialects exist: MobileNetV3-style
(OFA) keys carry ``se`` and ``hs`` and ``expand`` is the *middle channel count*; ProxylessNAS
keys stop at ``idskip`` and ``expand`` is the *expansion ratio*. `Block` represents both and
formats a key back exactly as it was parsed.

This module reads YAML with ``yaml.safe_load`` only (a table can never construct objects) and
writes floats at full precision, so export -> import reproduces a table bit for bit.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..errors import UsageError
from .table import LatencyTable

TYPES = ("Conv", "expanded_conv", "Conv_1", "AvgPool2D", "Conv_2", "Logits")
"""The block types of OFA/ProxylessNAS tables, in network order. `skip` (no block) is ours."""
SKIP = "skip"
_FIELDS = ("expand", "kernel", "stride", "idskip", "se", "hs")
_SHAPE = re.compile(r"^\d+(x\d+)*$")
MAX_TABLE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Block:
    """One block of an OFA-style space. `input`/`output` are (h, w, c) (Logits output: (classes,)).

    expanded_conv: `expand` is the middle channels when `se`/`hs` are set (OFA MobileNetV3 keys),
    the expansion ratio when they are None (ProxylessNAS keys); `idskip` 1 = residual add.
    """

    type: str
    input: tuple
    output: tuple
    expand: int | None = None
    kernel: int | None = None
    stride: int | None = None
    idskip: int | None = None
    se: int | None = None
    hs: int | None = None

    def __post_init__(self) -> None:
        if self.type not in TYPES and self.type != SKIP:
            raise ValueError(f"unknown block type {self.type!r} (known: {', '.join(TYPES)}, {SKIP})")
        for name in ("input", "output"):
            raw = getattr(self, name)
            if not isinstance(raw, (tuple, list)) or any(isinstance(x, bool) or not isinstance(x, int) for x in raw):
                raise ValueError(f"block {name} must be a list of integers, got {raw!r}")
            v = tuple(int(x) for x in raw)
            if not v or any(x < 1 for x in v):
                raise ValueError(f"block {name} shape must be positive integers, got {v}")
            object.__setattr__(self, name, v)
        if len(self.input) != 3:
            raise ValueError(f"block input must be HxWxC, got {'x'.join(map(str, self.input))}")
        if self.type != "Logits" and len(self.output) != 3:
            raise ValueError(f"{self.type} output must be HxWxC")
        if self.type == "expanded_conv":
            if None in (self.expand, self.kernel, self.stride, self.idskip):
                raise ValueError("expanded_conv needs expand, kernel, stride and idskip")
            if (self.se is None) != (self.hs is None):
                raise ValueError("expanded_conv: give both se and hs (OFA) or neither (ProxylessNAS)")
        for f in _FIELDS:
            v = getattr(self, f)
            if v is not None:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v or v < 0:
                    raise ValueError(f"{f} must be a non-negative integer, got {v!r}")
                object.__setattr__(self, f, int(v))
        if self.type == "expanded_conv":
            if self.kernel < 1 or self.stride < 1 or self.expand < 1:
                raise ValueError("expanded_conv: expand, kernel and stride must be >= 1")
            if self.idskip and (self.stride != 1 or self.input != self.output):
                raise ValueError("expanded_conv: idskip:1 needs stride 1 and equal input/output shapes")
        if self.type == SKIP and self.input != self.output:
            raise ValueError("a skip block keeps its input shape")

    # ---- dialect facts ---------------------------------------------------------------------------
    @property
    def ofa_style(self) -> bool:
        """MobileNetV3-style key (se/hs present, expand = middle channels)."""
        return self.se is not None

    @property
    def mid(self) -> int:
        """Middle (expanded) channels of an expanded_conv."""
        if self.type != "expanded_conv":
            return self.input[2]
        return int(self.expand) if self.ofa_style else int(round(self.input[2] * self.expand))

    @property
    def key(self) -> str:
        if self.type == SKIP:
            return f"{SKIP}-input:{_shape(self.input)}"
        parts = [self.type, f"input:{_shape(self.input)}", f"output:{_shape(self.output)}"]
        for f in _FIELDS:
            v = getattr(self, f)
            if v is not None:
                parts.append(f"{f}:{v}")
        return "-".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type, "input": list(self.input), "output": list(self.output)}
        for f in _FIELDS:
            if getattr(self, f) is not None:
                d[f] = getattr(self, f)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Block":
        known = {"type", "input", "output", *_FIELDS}
        bad = set(d) - known
        if bad:
            raise ValueError(f"unknown block field(s): {', '.join(sorted(bad))}")
        return cls(**{k: (tuple(v) if k in ("input", "output") else v) for k, v in d.items()})


def _shape(t: Iterable[int]) -> str:
    return "x".join(str(int(x)) for x in t)


def parse_key(key: str) -> Block:
    """An OFA/ProxylessNAS key -> Block; ValueError when it is not one (or not canonical)."""
    if not isinstance(key, str):
        raise ValueError("a block key must be a string")
    parts = key.split("-")
    typ, fields = parts[0], {}
    for p in parts[1:]:
        name, sep, val = p.partition(":")
        if not sep or name in fields:
            raise ValueError(f"bad key part {p!r}")
        fields[name] = val
    if typ == SKIP:
        if set(fields) != {"input"} or not _SHAPE.match(fields["input"]):
            raise ValueError(f"bad skip key {key!r}")
        s = tuple(int(x) for x in fields["input"].split("x"))
        b = Block(SKIP, s, s)
    else:
        for need in ("input", "output"):
            if need not in fields or not _SHAPE.match(fields[need]):
                raise ValueError(f"key {key!r} has no valid {need} shape")
        extra = set(fields) - {"input", "output", *_FIELDS}
        if extra:
            raise ValueError(f"key {key!r} has unknown field(s) {', '.join(sorted(extra))}")
        kw = {}
        for f in _FIELDS:
            if f in fields:
                if not fields[f].isdigit():
                    raise ValueError(f"key {key!r}: {f} must be an integer")
                kw[f] = int(fields[f])
        b = Block(typ, tuple(int(x) for x in fields["input"].split("x")),
                  tuple(int(x) for x in fields["output"].split("x")), **kw)
    if b.key != key:
        raise ValueError(f"key {key!r} is not in canonical form (expected {b.key!r})")
    return b


# ---- YAML tables ---------------------------------------------------------------------------------
def dumps(table: LatencyTable, spread: str = "std") -> str:
    """The table as OFA YAML text: ``key: {count, mean, std}`` (or ``var`` with spread="var")."""
    import yaml

    if spread not in ("std", "var"):
        raise UsageError("OFA tables carry std or var")
    doc = {}
    for k, e in table.items():
        v = e.spread_ms if spread == "std" else e.spread_ms ** 2
        doc[k] = {"count": int(e.count), "mean": float(e.ms), spread: float(v)}
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1 << 16)


def write(table: LatencyTable, path: str | Path, spread: str = "std") -> Path:
    p = Path(path)
    _atomic_write(p, dumps(table, spread))
    return p


def loads(text: str, where: str = "table") -> LatencyTable:
    """Parse OFA YAML text. Entries need `mean`; `std` or `var` (-> std) and `count` are optional."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else "syntax error"
        raise UsageError(f"{where} is not valid YAML ({first})") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise UsageError(f"{where}: an OFA latency table is a mapping of block keys to entries")
    t = LatencyTable(stat="mean", spread="std", meta={"format": "ofa-yaml"})
    has_var = False
    for k, v in doc.items():
        if not isinstance(k, str) or not isinstance(v, dict):
            raise UsageError(f"{where}: entry {str(k)[:80]!r} is not 'key: {{count, mean, std}}'")
        try:
            mean = v["mean"]
            if "std" in v:
                sp = v["std"]
            elif "var" in v:
                has_var = True
                var = v["var"]
                if isinstance(var, bool) or not isinstance(var, (int, float)) or not (var >= 0):
                    raise ValueError(f"var must be non-negative, got {var!r}")
                sp = math.sqrt(var)
            else:
                sp = 0.0
            count = v.get("count", 1)
            if isinstance(count, float) and count.is_integer():
                count = int(count)
            t.add(k, mean, sp, count)
        except KeyError:
            raise UsageError(f"{where}: entry {k[:80]!r} has no mean") from None
        except (ValueError, TypeError) as e:
            raise UsageError(f"{where}: entry {k[:80]!r}: {e}") from None
    if has_var:
        t.spread = "var"
    return t


def read(path: str | Path) -> LatencyTable:
    return loads(_read_text(path), str(path))


def _read_text(path: str | Path) -> str:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_TABLE_BYTES:
            raise UsageError(f"{p} is too large for a lookup table")
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{p} not found") from None
    except UnicodeDecodeError:
        raise UsageError(f"{p} is not UTF-8 text") from None
    except OSError as e:
        raise UsageError(f"cannot read {p}: {e.strerror or e}") from None


def _atomic_write(p: Path, text: str) -> None:
    import os
    import uuid

    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.parent / f".{p.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, p)
    except OSError as e:
        raise UsageError(f"cannot write {p}: {e.strerror or e}") from None


# ---- blocks as ONNX graphs (what `profile --space` times) -----------------------------------------
def block_act(b: Block, style_act: str = "relu6") -> str:
    """The activation of a block: hs:1 -> hswish; OFA keys with hs:0 -> relu; ProxylessNAS -> relu6."""
    if b.hs is not None:
        return "hswish" if b.hs else "relu"
    return style_act


def add_block(n, x, b: Block, act: str = "relu6"):
    """Append block `b` to a devprof.models.dsl.Net at tensor `x` (NCHW handle); returns the output.

    Structure as in OFA/ProxylessNAS: expanded_conv = [1x1 expand] -> kxk depthwise -> [SE] ->
    1x1 project (linear) -> [+ input]; SE squeezes to mid/4 channels (multiple of 8) with ReLU and
    a hard-sigmoid gate, as in MobileNetV3."""
    from ..models.builders import make_div

    if (x.h, x.w, x.c) != b.input:
        raise ValueError(f"{b.key}: input {x.h}x{x.w}x{x.c} does not match the block")
    t = b.type
    a = block_act(b, act)
    if t == SKIP:
        return x
    if t == "Conv":
        s = max(1, math.ceil(b.input[0] / b.output[0]))
        return n.conv(x, b.output[2], k=3, s=s, act=a, base="first_conv")
    if t in ("Conv_1", "Conv_2"):
        return n.conv(x, b.output[2], k=1, act=a, base=t.lower())
    if t == "AvgPool2D":
        return n.gap(x)
    if t == "Logits":
        if x.h > 1 or x.w > 1:
            x = n.gap(x)
        return n.fc(n.flatten(x), b.output[-1])
    y = x
    mid = b.mid
    if mid != x.c:
        y = n.conv(y, mid, k=1, act=a, base="expand")
    y = n.dw(y, k=b.kernel, s=b.stride, act=a)
    if b.se:
        y = n.se(y, make_div(mid / 4), inner_act="relu", gate="hsigmoid")
    y = n.conv(y, b.output[2], k=1, act="none", base="project")
    if (y.h, y.w, y.c) != b.output:
        raise ValueError(f"{b.key}: the block computes {y.h}x{y.w}x{y.c}, not its declared output")
    return n.add(y, x) if b.idskip else y


def blocks_model(blocks: list[Block], name: str = "blocks", act: str = "relu6", seed: int = 0):
    """An ONNX ModelProto running `blocks` in sequence (one block: what `profile --space` times)."""
    from ..models.dsl import Net

    if not blocks:
        raise ValueError("no blocks")
    n = Net(name, seed)
    h, w, c = blocks[0].input
    x = n.input(c, h, w)
    for i, b in enumerate(blocks):
        with n.scope(f"blocks.{i}"):
            x = add_block(n, x, b, act)
    if x.name == "input":  # a lone skip block: keep the graph valid
        x = n.act(x, "relu")
    return n.model(x)


def block_spec(b: Block, position: str | None = None):
    """The devprof KernelSpec standing for a whole block in records and lookup tables: op "other"
    with the block's shapes and ``attrs["block"]`` = its OFA key (plus the position, when the
    table is per (position, block))."""
    from ..records import KernelSpec

    attrs = {"block": b.key}
    if position is not None:
        attrs["position"] = position
    k = b.kernel or 1
    return KernelSpec("other", h=b.input[0], w=b.input[1], cin=b.input[2], cout=b.output[-1], kh=k, kw=k,
                      stride=b.stride or 1, padding=k // 2, bias=False, attrs=attrs)
