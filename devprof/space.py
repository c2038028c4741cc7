"""Search spaces: positions, each with candidate blocks — what a NAS front end searches over.

A space file (TOML or JSON) lists positions in network order. Each position either lists its
candidate blocks explicitly (OFA/ProxylessNAS vocabulary: Conv, expanded_conv, Conv_1, AvgPool2D,
Conv_2, Logits — see devprof.formats.ofa) or gives a grid that is crossed::

    [space]
    name = "mbconv-small"
    style = "ofa"          # "ofa": keys carry se/hs, expand = middle channels (MobileNetV3/OFA)
                           # "proxyless": keys end at idskip, expand = expansion ratio
    act = "relu6"          # activation of non-hs blocks in proxyless style, and of the stem/head
    format = "ofa-yaml"    # what `devprof profile --space` writes: ofa-yaml | csv | json

    [[position]]
    name = "first_conv"
    blocks = [{ type = "Conv", input = [64, 64, 3], output = [32, 32, 16] }]

    [[position]]
    name = "stage1.0"
    input = [32, 32, 16]
    output = [16, 16, 24]
    stride = 2
    expand = [3, 6]        # expansion ratios (the middle width: ratio x input channels, multiple of 8)
    kernel = [3, 5, 7]
    se = [0, 1]            # style "ofa" only (default [0]); hs likewise (default [0])
    skip = false           # true: the block may be left out (input == output, stride 1 only)

Every choice at a position has the same input and output shapes, so any combination of choices
is a valid network. `devprof profile --space FILE` measures every distinct block once (each as a
single-block ONNX model, end to end, on `local` with ONNX Runtime) and writes the table in the
front end's format; `Space.sample`/`Space.model` make whole networks of the space (for
end-to-end timings and `devprof.from_models`).
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import UsageError
from .formats.ofa import SKIP, Block

STYLES = ("ofa", "proxyless")
TABLE_FORMATS = ("ofa-yaml", "csv", "json")


@dataclass(frozen=True)
class Position:
    name: str
    choices: tuple[Block, ...]

    @property
    def input(self) -> tuple:
        return self.choices[0].input


@dataclass
class Space:
    name: str
    positions: list[Position]
    style: str = "ofa"
    act: str = "relu6"
    format: str = "ofa-yaml"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise UsageError(f"space {self.name}: unknown style {self.style!r} (use {' or '.join(STYLES)})")
        if self.format not in TABLE_FORMATS:
            raise UsageError(f"space {self.name}: unknown format {self.format!r} (known: {', '.join(TABLE_FORMATS)})")
        if not self.positions:
            raise UsageError(f"space {self.name} has no positions")
        names = [p.name for p in self.positions]
        if len(set(names)) != len(names):
            raise UsageError(f"space {self.name}: position names must be unique")
        prev_out = None
        for p in self.positions:
            if not p.choices:
                raise UsageError(f"space {self.name}: position {p.name} has no candidate blocks")
            ins = {b.input for b in p.choices}
            outs = {b.output for b in p.choices}
            if len(ins) != 1 or len(outs) != 1:
                raise UsageError(f"space {self.name}: the choices at {p.name} differ in input or output shape")
            if prev_out is not None and p.input != prev_out:
                raise UsageError(f"space {self.name}: {p.name} takes {'x'.join(map(str, p.input))} but the position "
                                 f"before gives {'x'.join(map(str, prev_out))}")
            prev_out = next(iter(outs))
            if len(prev_out) != 3 and p is not self.positions[-1]:
                raise UsageError(f"space {self.name}: only the last position may end in a classifier")

    # ---- size and blocks -------------------------------------------------------------------------
    @property
    def size(self) -> int:
        n = 1
        for p in self.positions:
            n *= len(p.choices)
        return n

    def blocks(self) -> list[Block]:
        """Every distinct (non-skip) block of the space, in position order."""
        seen: dict[str, Block] = {}
        for p in self.positions:
            for b in p.choices:
                if b.type != SKIP:
                    seen.setdefault(b.key, b)
        return list(seen.values())

    def arch_blocks(self, arch: Sequence[int]) -> list[Block]:
        if len(arch) != len(self.positions):
            raise UsageError(f"an architecture of {self.name} has {len(self.positions)} choices, got {len(arch)}")
        return [p.choices[int(c)] for p, c in zip(self.positions, arch)]

    def arch_keys(self, arch: Sequence[int]) -> list[str]:
        """The OFA keys of an architecture's blocks (skips left out): what a YAML table sums."""
        return [b.key for b in self.arch_blocks(arch) if b.type != SKIP]

    def layer_ids(self, arch: Sequence[int]) -> list[str]:
        """Per-(position, block) ids of an architecture (skips left out): what from_models learns."""
        return [f"{p.name}/{b.key}" for p, b in zip(self.positions, self.arch_blocks(arch)) if b.type != SKIP]

    def layer_spec(self, layer_id: str):
        """The KernelSpec standing for a (position, block) id in a bundle's lookup table."""
        pos, _, key = layer_id.partition("/")
        from .formats.ofa import block_spec, parse_key

        return block_spec(parse_key(key), position=pos)

    def sample(self, rng: np.random.Generator) -> tuple[int, ...]:
        return tuple(int(rng.integers(len(p.choices))) for p in self.positions)

    def all_archs(self) -> Iterable[tuple[int, ...]]:
        return itertools.product(*(range(len(p.choices)) for p in self.positions))

    def model(self, arch: Sequence[int], seed: int = 0):
        """The ONNX model of one architecture (its blocks in sequence)."""
        from .formats.ofa import blocks_model

        blocks = [b for b in self.arch_blocks(arch) if b.type != SKIP]
        return blocks_model(blocks, name=f"{self.name}", act=self.act, seed=seed)

    # ---- files -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"space": {"name": self.name, "style": self.style, "act": self.act, "format": self.format, **self.meta},
                "position": [{"name": p.name, "blocks": [b.to_dict() for b in p.choices]} for p in self.positions]}

    def dump(self, path: str | Path) -> Path:
        """Write the space as JSON (every choice explicit)."""
        from .formats.ofa import _atomic_write

        p = Path(path)
        _atomic_write(p, json.dumps(self.to_dict(), indent=1) + "\n")
        return p

    @classmethod
    def from_dict(cls, d: Any, where: str = "space") -> "Space":
        if not isinstance(d, dict):
            raise UsageError(f"{where}: a space is a table with [space] and [[position]] entries")
        head = d.get("space") or {}
        if not isinstance(head, dict):
            raise UsageError(f"{where}: [space] must be a table")
        bad = set(d) - {"space", "position"}
        if bad:
            raise UsageError(f"{where}: unknown section(s) {', '.join(sorted(bad))}")
        style = str(head.get("style", "ofa"))
        positions = []
        for i, pd in enumerate(d.get("position") or []):
            if not isinstance(pd, dict):
                raise UsageError(f"{where}: position {i} must be a table")
            name = str(pd.get("name") or f"p{i}")
            try:
                positions.append(Position(name, tuple(_choices(pd, style))))
            except (ValueError, TypeError) as e:
                raise UsageError(f"{where}: position {name}: {e}") from None
        meta = {k: v for k, v in head.items() if k not in ("name", "style", "act", "format")}
        return cls(str(head.get("name") or "space"), positions, style, str(head.get("act", "relu6")),
                   str(head.get("format", "ofa-yaml")), meta)


_GRID_KEYS = {"name", "input", "output", "stride", "expand", "kernel", "se", "hs", "skip", "type"}


def _choices(pd: dict, style: str) -> list[Block]:
    if "blocks" in pd:
        extra = set(pd) - {"name", "blocks"}
        if extra:
            raise ValueError(f"give either blocks or a grid, not {', '.join(sorted(extra))} beside blocks")
        bl = pd["blocks"]
        if not isinstance(bl, list) or not bl:
            raise ValueError("blocks must be a non-empty list")
        out = []
        for b in bl:
            if not isinstance(b, dict):
                raise ValueError("each block is a table")
            out.append(Block.from_dict(b))
        return out
    bad = set(pd) - _GRID_KEYS
    if bad:
        raise ValueError(f"unknown field(s) {', '.join(sorted(bad))}")
    if str(pd.get("type", "expanded_conv")) != "expanded_conv":
        raise ValueError("a grid position makes expanded_conv blocks; list other blocks under blocks = [...]")
    try:
        inp, outp = tuple(pd["input"]), tuple(pd["output"])
    except KeyError as e:
        raise ValueError(f"a grid position needs {e.args[0]}") from None
    stride = int(pd.get("stride", 1))
    expand = _list(pd.get("expand", [6]), "expand")
    kernel = _list(pd.get("kernel", [3]), "kernel")
    idskip = int(stride == 1 and inp == outp)
    out: list[Block] = []
    if style == "ofa":
        from .models.builders import make_div

        for e, k, se, hs in itertools.product(expand, kernel, _list(pd.get("se", [0]), "se"),
                                              _list(pd.get("hs", [0]), "hs")):
            mid = make_div(inp[2] * e) if e != 1 else inp[2]
            out.append(Block("expanded_conv", inp, outp, expand=mid, kernel=int(k), stride=stride, idskip=idskip,
                             se=int(se), hs=int(hs)))
    else:
        if "se" in pd or "hs" in pd:
            raise ValueError("se/hs choices need style = \"ofa\"")
        for e, k in itertools.product(expand, kernel):
            if int(e) != e:
                raise ValueError("proxyless keys need integer expansion ratios")
            out.append(Block("expanded_conv", inp, outp, expand=int(e), kernel=int(k), stride=stride, idskip=idskip))
    if pd.get("skip", False):
        if not idskip:
            raise ValueError("skip is only possible where input == output and stride is 1")
        out.append(Block(SKIP, inp, inp))
    return out


def _list(v: Any, name: str) -> list:
    v = v if isinstance(v, list) else [v]
    if not v or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in v):
        raise ValueError(f"{name} must be a number or a non-empty list of numbers")
    return v


def load_space(path: str | Path) -> Space:
    """Read a space file (.toml or .json); one-line UsageError when it is malformed."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"space file {p} not found") from None
    except OSError as e:
        raise UsageError(f"cannot read space file {p}: {e.strerror or e}") from None
    try:
        if p.suffix.lower() == ".json":
            d = json.loads(raw)
        else:
            try:
                import tomllib
            except ImportError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            d = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"space file {p} is malformed ({str(e).splitlines()[0][:120]})") from None
    return Space.from_dict(d, str(p))


def mbconv_space(res: int = 64, name: str = "mbconv", stages: Sequence[tuple[int, int, int]] | None = None,
                 expand: Sequence[int] = (3, 6), kernel: Sequence[int] = (3, 5, 7), se: Sequence[int] = (0,),
                 style: str = "ofa", stem: int = 16, head: int = 0, classes: int = 0) -> Space:
    """A ProxylessNAS/OFA-like MBConv space: stem conv, then per stage (channels, depth, stride)
    positions whose first block has a fixed stride and whose later blocks may be skipped (depth
    choice); optional 1x1 head conv and classifier."""
    stages = stages or [(24, 2, 2), (40, 3, 2), (80, 3, 2)]
    h = (res + 1) // 2
    d: dict[str, Any] = {"space": {"name": name, "style": style, "act": "relu6", "format": "ofa-yaml",
                                   "resolution": res},
                         "position": [{"name": "first_conv", "blocks": [
                             {"type": "Conv", "input": [res, res, 3], "output": [h, h, stem]}]}]}
    c = stem
    for si, (cout, depth, stride) in enumerate(stages):
        for j in range(depth):
            s = stride if j == 0 else 1
            ho = (h - 1) // s + 1
            pos = {"name": f"stage{si + 1}.{j}", "input": [h, h, c], "output": [ho, ho, cout], "stride": s,
                   "expand": list(expand), "kernel": list(kernel)}
            if style == "ofa":
                pos["se"] = list(se)
            if j > 0:
                pos["skip"] = True
            d["position"].append(pos)
            h, c = ho, cout
    if head:
        d["position"].append({"name": "final_expand", "blocks": [{"type": "Conv_1", "input": [h, h, c],
                                                                 "output": [h, h, head]}]})
        c = head
    if classes:
        d["position"].append({"name": "classifier", "blocks": [{"type": "Logits", "input": [h, h, c],
                                                               "output": [classes]}]})
    return Space.from_dict(d, name)
