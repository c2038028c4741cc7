"""Kernel specs: what a layer is (op, shapes, activation, data type, sparsity), shared by devprof
and `predictors`.

A spec is the unit both sides speak: devprof's suites and model walkers produce `KernelSpec`s and
measure them; a predictor bundle answers queries phrased as `KernelSpec`s. The types live here,
in `predictors`, so that `predictors` stands alone (standard library and numpy only) and devprof
imports them from here (`devprof.records` re-exports them), never the reverse.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

#: Operators a spec may name. Shape fields are interpreted per op (see `KernelSpec`).
OPS = (
    "conv2d",  # dense or grouped convolution, NHWC activations, OHWI weights (groups in `groups`)
    "dwconv2d",  # depthwise convolution: groups == cin == cout (channel multiplier 1)
    "pwconv",  # 1x1 convolution (kernel 1, groups 1); kept apart because kernels differ
    "fc",  # fully connected / GEMM: n rows of cin features -> cout features (h = w = 1)
    "maxpool",
    "avgpool",
    "global_avgpool",
    "add",  # elementwise add of two n x h x w x cin tensors
    "mul",
    "concat",  # channel concat; attrs["channels"] lists the inputs' channels
    "activation",  # standalone activation; attrs["kind"] names it
    "depth_to_space",  # pixel shuffle (ESPCN); attrs["block"]
    "resize",
    "model",  # a whole model end to end; attrs name it (model records)
    "other",  # a layer devprof could not map (attrs["onnx_op"] says which)
    # Transformer ops (appended, so the codes of the ops above never change). Tokens are rows:
    # a (batch, seq, hidden) activation is n = batch, h = seq, w = 1, cin = hidden.
    "matmul",  # batched activation x activation: (n, h, cin) @ (n, cin, cout) -> (n, h, cout)
    "softmax",  # over the last axis (cin)
    "layernorm",  # over the last axis, with learned scale and shift (cin each); attrs["eps"]
    "gelu",  # elementwise; attrs["approximate"] = "none" (erf) or "tanh"
    "attention",  # multi-head self-attention block: Q/K/V projections, softmax(QK^T/sqrt(d))V,
    #             output projection; attrs["heads"] divides cin (the hidden size)
)
#: Ops whose output has the input's shape (cout == cin).
SHAPE_PRESERVING = ("softmax", "layernorm", "gelu", "attention")
CONV_OPS = ("conv2d", "dwconv2d", "pwconv")
ACTIVATIONS = ("none", "relu", "relu6", "hswish", "hsigmoid", "sigmoid", "swish", "prelu", "leakyrelu")
DTYPES = ("fp32", "fp16", "int8")
SCHEMES = ("dense", "unstructured", "bcr", "block", "nm", "pattern")
KINDS = ("kernel", "layer", "model")
"""`kernel`: a single-op artifact timed alone; `layer`: one layer timed inside a whole-model run;
`model`: the end-to-end time of a whole model (its layers point at it through `model_run_id`)."""


def _canon(obj: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace. Content hashes are taken over this."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_jsonable)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def content_id(obj: Any, n: int = 16) -> str:
    return hashlib.sha256(_canon(obj).encode()).hexdigest()[:n]


def _frozen_items(d: Mapping[str, Any] | Iterable | None) -> tuple:
    """Freeze a mapping into a sorted tuple of (key, value) with lists turned into tuples."""
    if d is None:
        return ()
    items = d.items() if isinstance(d, Mapping) else d
    out = []
    for k, v in items:
        if isinstance(v, list):
            v = tuple(v)
        out.append((str(k), v))
    return tuple(sorted(out))


@dataclass(frozen=True)
class Sparsity:
    """How a kernel's weights are pruned.

    `params` carry the scheme's parameters: bcr ``block=(rows, cols)``; block ``block=(r, c)``;
    nm ``n=2, m=4``; pattern ``patterns=8`` (library size) and ``connectivity`` (share of whole
    kernels dropped). `ratio` is the share of weights that are zero (0 for dense).
    """

    scheme: str = "dense"
    ratio: float = 0.0
    params: tuple = ()

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown sparsity scheme {self.scheme!r} (known: {', '.join(SCHEMES)})")
        if not (0.0 <= float(self.ratio) < 1.0):
            raise ValueError(f"sparsity ratio must be in [0, 1), got {self.ratio}")
        object.__setattr__(self, "ratio", round(float(self.ratio), 6))
        object.__setattr__(self, "params", _frozen_items(self.params))

    @property
    def p(self) -> dict[str, Any]:
        return dict(self.params)

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "ratio": self.ratio, "params": {k: v for k, v in self.params}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "Sparsity":
        d = d or {}
        return cls(d.get("scheme", "dense"), d.get("ratio", 0.0), d.get("params") or {})

    def label(self) -> str:
        """Short human label such as ``bcr(4x16)@0.9`` or ``dense``."""
        if self.scheme == "dense":
            return "dense"
        ps = ",".join(f"{k}={'x'.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in self.params)
        return f"{self.scheme}({ps})@{self.ratio:g}" if ps else f"{self.scheme}@{self.ratio:g}"


@dataclass(frozen=True)
class KernelSpec:
    """One kernel (a layer's computation) with everything that decides its latency.

    Activations are NHWC: `n, h, w, cin` is the input; `cout` the output channels. For `fc`,
    `n` is the number of rows (batch x tokens), `cin`/`cout` the features and h = w = 1.
    `padding` is the symmetric top/left pad in pixels. `attrs` hold op-specific extras
    (pool kind, concat channels, model name...). The `id` is a stable content hash.
    """

    op: str
    n: int = 1
    h: int = 1
    w: int = 1
    cin: int = 1
    cout: int = 1
    kh: int = 1
    kw: int = 1
    stride: int = 1
    padding: int = 0
    groups: int = 1
    dilation: int = 1
    bias: bool = True
    activation: str = "none"
    dtype: str = "fp32"
    sparsity: Sparsity = field(default_factory=Sparsity)
    attrs: tuple = ()

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown op {self.op!r} (known: {', '.join(OPS)})")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}")
        for name in ("n", "h", "w", "cin", "cout", "kh", "kw", "stride", "groups", "dilation"):
            v = getattr(self, name)
            if int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
            object.__setattr__(self, name, int(v))
        if self.padding < 0:
            raise ValueError("padding must be >= 0")
        object.__setattr__(self, "padding", int(self.padding))
        object.__setattr__(self, "bias", bool(self.bias) and self.op not in ("matmul", "softmax", "gelu"))
        if isinstance(self.sparsity, Mapping):
            object.__setattr__(self, "sparsity", Sparsity.from_dict(self.sparsity))
        object.__setattr__(self, "attrs", _frozen_items(self.attrs))
        if self.op in CONV_OPS or self.op in ("maxpool", "avgpool"):
            if self.out_h < 1 or self.out_w < 1:
                raise ValueError(f"{self.op}: kernel larger than padded input ({self.h}x{self.w})")
        if self.op == "dwconv2d" and not (self.groups == self.cin == self.cout):
            raise ValueError("dwconv2d needs groups == cin == cout")
        if self.op == "pwconv" and (self.kh, self.kw, self.groups) != (1, 1, 1):
            raise ValueError("pwconv is a 1x1 convolution with groups 1")
        if self.op == "conv2d" and (self.cin % self.groups or self.cout % self.groups):
            raise ValueError("conv2d: cin and cout must be divisible by groups")
        if self.op in SHAPE_PRESERVING and self.cout != self.cin:
            raise ValueError(f"{self.op} keeps its input's shape: cout must equal cin ({self.cin}), got {self.cout}")
        if self.op in ("matmul", "softmax", "layernorm", "gelu", "attention") and self.w != 1:
            raise ValueError(f"{self.op}: tokens are rows (h = sequence length); w must be 1, got {self.w}")
        if self.op == "attention":
            heads = self.a.get("heads")
            if not isinstance(heads, int) or isinstance(heads, bool) or heads < 1:
                raise ValueError(f"attention needs attrs.heads, a positive integer (got {heads!r})")
            if self.cin % heads:
                raise ValueError(f"attention: heads ({heads}) must divide the hidden size cin ({self.cin})")
        if self.op == "gelu" and self.a.get("approximate", "none") not in ("none", "tanh"):
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {self.a.get('approximate')!r}")

    # ---- derived shape facts (one place) -------------------------------------------------
    @property
    def out_h(self) -> int:
        if self.op in ("fc", "global_avgpool"):
            return 1
        if self.op == "depth_to_space":
            return self.h * int(self.a.get("block", 1))
        if self.op in CONV_OPS or self.op in ("maxpool", "avgpool"):
            return (self.h + 2 * self.padding - self.dilation * (self.kh - 1) - 1) // self.stride + 1
        return self.h

    @property
    def out_w(self) -> int:
        if self.op in ("fc", "global_avgpool"):
            return 1
        if self.op == "depth_to_space":
            return self.w * int(self.a.get("block", 1))
        if self.op in CONV_OPS or self.op in ("maxpool", "avgpool"):
            return (self.w + 2 * self.padding - self.dilation * (self.kw - 1) - 1) // self.stride + 1
        return self.w

    @property
    def a(self) -> dict[str, Any]:
        return dict(self.attrs)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """OHWI for convs (I = cin/groups), (cout, cin) for fc, () for weightless ops."""
        if self.op in CONV_OPS:
            return (self.cout, self.kh, self.kw, self.cin // self.groups)
        if self.op == "fc":
            return (self.cout, self.cin)
        if self.op == "layernorm":
            return (self.cin,)  # the scale; the shift is the "bias"
        if self.op == "attention":
            return (4, self.cin, self.cin)  # Q, K, V and output projections, each (out, in)
        return ()

    @property
    def params_count(self) -> int:
        ws = self.weight_shape
        nbias = 4 * self.cout if self.op == "attention" else self.cout
        return (int(np.prod(ws)) + (nbias if self.bias else 0)) if ws else 0

    @property
    def macs(self) -> int:
        """Dense multiply-accumulates (the sparsity ratio is not applied; see `effective_macs`)."""
        if self.op in CONV_OPS:
            return self.n * self.out_h * self.out_w * self.cout * self.kh * self.kw * (self.cin // self.groups)
        if self.op == "fc":
            return self.n * self.cin * self.cout
        if self.op == "matmul":
            return self.n * self.h * self.cin * self.cout
        if self.op == "attention":  # four projections, then QK^T and (softmax)V over all heads
            return 4 * self.n * self.h * self.cin * self.cin + 2 * self.n * self.h * self.h * self.cin
        return 0

    @property
    def flops(self) -> int:
        """Dense-equivalent FLOPs (2 per MAC; elementwise ops count one per output element)."""
        if self.macs:
            return 2 * self.macs
        if self.op in ("maxpool", "avgpool"):
            return self.n * self.out_h * self.out_w * self.cin * self.kh * self.kw
        if self.op in ("global_avgpool",):
            return self.n * self.h * self.w * self.cin
        if self.op in ("add", "mul", "activation", "softmax", "layernorm", "gelu"):
            return self.n * self.h * self.w * self.cin
        return 0

    @property
    def effective_macs(self) -> int:
        return int(round(self.macs * (1.0 - self.sparsity.ratio)))

    @property
    def input_elems(self) -> int:
        return self.n * self.h * self.w * self.cin

    @property
    def output_elems(self) -> int:
        return self.n * self.out_h * self.out_w * self.cout

    # ---- identity ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["sparsity"] = self.sparsity.to_dict()
        d["attrs"] = {k: v for k, v in self.attrs}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "KernelSpec":
        d = dict(d)
        d["sparsity"] = Sparsity.from_dict(d.get("sparsity"))
        d["attrs"] = d.get("attrs") or {}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown KernelSpec field(s): {', '.join(sorted(unknown))}")
        return cls(**d)

    def to_json(self) -> str:
        return _canon(self.to_dict())

    @property
    def id(self) -> str:
        """Stable content hash of every field: equal specs have equal ids across runs and hosts."""
        return content_id(self.to_dict())

    @property
    def key(self) -> str:
        """Canonical human-readable key (lookup tables are keyed by it). Unique per spec."""
        parts = [self.op, f"n{self.n}", f"{self.h}x{self.w}x{self.cin}", f"o{self.cout}"]
        if self.op in CONV_OPS or self.op in ("maxpool", "avgpool"):
            parts += [f"k{self.kh}x{self.kw}", f"s{self.stride}", f"p{self.padding}"]
            if self.groups != 1:
                parts.append(f"g{self.groups}")
            if self.dilation != 1:
                parts.append(f"d{self.dilation}")
        if self.weight_shape and not self.bias:
            parts.append("nobias")
        if self.activation != "none":
            parts.append(self.activation)
        if self.dtype != "fp32":
            parts.append(self.dtype)
        if self.sparsity.scheme != "dense":
            parts.append(self.sparsity.label())
        if self.attrs:
            parts.append(",".join(f"{k}={v}" for k, v in self.attrs))
        return "-".join(parts)

    def replace(self, **changes: Any) -> "KernelSpec":
        return dataclasses.replace(self, **changes)



def expand_shorthand(d: dict) -> None:
    """`hw` -> h, w; `k` -> kh, kw; `c` -> cin, cout; per-op defaults (dw groups, fc h=w=1, padding)."""
    if "hw" in d:
        d["h"] = d["w"] = d.pop("hw")
    if "k" in d:
        d["kh"] = d["kw"] = d.pop("k")
    if "c" in d:
        d["cin"] = d["cout"] = d.pop("c")
    op = d.get("op")
    if op == "dwconv2d":
        d.setdefault("cout", d.get("cin", 1))
        d.setdefault("cin", d.get("cout", 1))
        d["groups"] = d["cin"]
    if op == "pwconv":
        d["kh"] = d["kw"] = 1
    if op in ("maxpool", "avgpool", "add", "mul", "activation", "global_avgpool", "depth_to_space"):
        d.setdefault("bias", False)
        if op != "depth_to_space":
            d.setdefault("cout", d.get("cin", 1))
    if op in SHAPE_PRESERVING:  # layer norm's shift and attention's biases are on unless said
        d.setdefault("cout", d.get("cin", 1))
    if op in ("conv2d", "dwconv2d", "maxpool", "avgpool") and "padding" not in d:
        d["padding"] = (d.get("kh", 1) - 1) // 2 * d.get("dilation", 1)


#: What a spec given by hand must say, per op (the rest has a meaningful default); checked by
#: `spec_from_user`, so a dict missing a dimension is refused instead of silently becoming 1.
REQUIRED_FIELDS = {
    "conv2d": ("h", "w", "cin", "cout", "kh"), "dwconv2d": ("h", "w", "cin", "kh"), "pwconv": ("h", "w", "cin", "cout"),
    "fc": ("cin", "cout"), "maxpool": ("h", "w", "cin", "kh"), "avgpool": ("h", "w", "cin", "kh"),
    "global_avgpool": ("h", "w", "cin"), "add": ("h", "w", "cin"), "mul": ("h", "w", "cin"),
    "activation": ("h", "w", "cin"), "matmul": ("h", "cin", "cout"), "softmax": ("h", "cin"),
    "layernorm": ("h", "cin"), "gelu": ("h", "cin"), "attention": ("h", "cin"),
}


def spec_from_user(d: Mapping[str, Any]) -> "KernelSpec":
    """A spec written by hand (Python dict, ``predict --spec``): the suites' shorthand and per-op
    defaults (``hw``, ``k``, ``c``; a depthwise conv's ``cin`` alone), and every dimension the op
    needs present. Raises ValueError naming what is missing."""
    d = dict(d)
    op = d.get("op")
    if op not in OPS:
        raise ValueError(f"unknown op {op!r} (known: {', '.join(OPS)})")
    given = set(d) | ({"h", "w"} if "hw" in d else set()) | ({"kh", "kw"} if "k" in d else set()) | (
        {"cin", "cout"} if "c" in d else set())
    missing = [f for f in REQUIRED_FIELDS.get(op, ()) if f not in given]
    if missing:
        need = ", ".join(REQUIRED_FIELDS[op])
        raise ValueError(f"a {op} spec needs {need} (missing: {', '.join(missing)})")
    expand_shorthand(d)
    if "kh" in d and "kw" not in d:
        d["kw"] = d["kh"]
    return KernelSpec.from_dict(d)

DRAW_ATTR = "draw"
"""The spec attribute naming the weight draw (absent = draw 0, the tensor every campaign without
`--draw` measures). It seeds the dense tensor devprof generates and is dropped from the lookup
table's key: a query names a scheme and a ratio, not the weights that survived pruning."""


def without_draw(spec: KernelSpec) -> KernelSpec:
    """The spec a lookup table keys a draw's record by: the same spec with no draw attribute."""
    if DRAW_ATTR not in spec.a:
        return spec
    return spec.replace(attrs={k: v for k, v in spec.attrs if k != DRAW_ATTR})
