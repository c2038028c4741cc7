"""The record model: the single source of truth for what devprof measures and stores.

Every stage shares these types and nothing else: suites and model walkers produce
`KernelSpec`s, runtimes turn them into `Measurement`s, and a `Record` binds a measurement to
the conditions it was taken under (device fingerprint, runtime, threads, temperature...).
The Parquet layout (`ARROW_SCHEMA`) is derived from these types here and nowhere else; its
version is `SCHEMA_VERSION` and is documented in docs/dataset-schema.md.

This module imports only the standard library, numpy and (lazily) pyarrow, so that
`predictors` can use it on a machine with no compiler, no adb and no torch.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

SCHEMA_VERSION = 3
"""Bump when a column is added, removed or changes meaning; readers refuse newer versions."""

#: Columns added after version 1: name -> (version that added it, value in older parts).
#: `conform` fills them in when an older part is read, so every reader sees one layout.
ADDED_COLUMNS = {
    "emulated": (2, False),
    "cooldown_timed_out": (2, False),
    "kernel": (2, ""),
    "checked": (3, ""),
}

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


# ---- measurement -------------------------------------------------------------------------
NOISY_REL_IQR = 0.10
"""IQR / median above which a measurement is flagged as too noisy to trust (as torch.utils.benchmark)."""


@dataclass(frozen=True)
class Measurement:
    """Timing samples of one kernel and their statistics; immutable.

    Each sample is one round of the protocol (`devprof.measure`): the fastest of the round's
    timings, each the mean of `number` back-to-back calls (µs per call), so that very short kernels
    are timed above the clock's resolution. Samples from tools that only report their runs
    (benchmark_model, onnxruntime_perf_test, ORT's per-layer profile) are those runs. `warmups`
    calls ran before.
    """

    samples_us: tuple[float, ...]
    warmups: int = 0
    number: int = 1

    def __post_init__(self) -> None:
        s = tuple(float(x) for x in self.samples_us)
        if not s:
            raise ValueError("a measurement needs at least one sample")
        if not all(math.isfinite(x) and x >= 0 for x in s):
            raise ValueError("samples must be finite and non-negative")
        object.__setattr__(self, "samples_us", s)

    @property
    def repeats(self) -> int:
        return len(self.samples_us)

    @property
    def median_us(self) -> float:
        return float(np.median(self.samples_us))

    @property
    def mean_us(self) -> float:
        return float(np.mean(self.samples_us))

    @property
    def min_us(self) -> float:
        return float(np.min(self.samples_us))

    @property
    def iqr_us(self) -> float:
        q1, q3 = np.percentile(self.samples_us, [25, 75])
        return float(q3 - q1)

    @property
    def mad_us(self) -> float:
        med = self.median_us
        return float(np.median(np.abs(np.asarray(self.samples_us) - med)))

    @property
    def cv(self) -> float:
        m = self.mean_us
        return float(np.std(self.samples_us) / m) if m > 0 else 0.0

    @property
    def noisy(self) -> bool:
        med = self.median_us
        return med > 0 and self.iqr_us / med > NOISY_REL_IQR

    def __str__(self) -> str:
        flag = " (noisy)" if self.noisy else ""
        return f"{self.median_us:.1f} µs median, IQR {self.iqr_us:.1f} µs, {self.repeats}x{self.number}{flag}"


# ---- provenance --------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceInfo:
    """Fingerprint of the machine the kernel ran on. `id` hashes only what decides speed."""

    kind: str  # "local" | "adb"
    name: str  # marketing name or host name, e.g. "Galaxy S20 5G" / "local"
    model: str = ""  # model code (SM-G981U) or CPU model string for local
    serial: str = ""
    soc: str = ""
    abi: str = ""
    cpu: str = ""
    cores: int = 0
    isa: tuple = ()
    os: str = ""
    kernel: str = ""
    build: str = ""  # ro.build.fingerprint on phones
    extra: tuple = ()  # clusters, frequencies, memory...: informative, not part of the id
    #: An emulator (or a loopback phone under qemu): its timings say nothing about a real phone,
    #: so it is part of the id and records say so.
    emulated: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "isa", tuple(self.isa))
        object.__setattr__(self, "extra", _frozen_items(self.extra))

    @property
    def id(self) -> str:
        parts = [self.kind, self.model, self.soc, self.abi, self.cpu, self.cores, sorted(self.isa), self.os,
                 self.kernel, self.build, self.serial if self.kind != "local" else ""]
        if self.emulated:  # only when true, so the ids of real devices never change
            parts.append("emulated")
        return content_id(parts)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["isa"] = list(self.isa)
        d["extra"] = {k: v for k, v in self.extra}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DeviceInfo":
        d = dict(d)
        d["extra"] = d.get("extra") or {}
        return cls(**d)


@dataclass(frozen=True)
class RuntimeInfo:
    """What executed the kernel: name, version, threads and backend options."""

    name: str  # "onnxruntime" | "litert" | "devprof-c" | "tflite-benchmark" | ...
    version: str
    threads: int = 1
    options: tuple = ()  # e.g. (("xnnpack", True),)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", _frozen_items(self.options))

    @property
    def key(self) -> str:
        """Human-readable runtime key used for dedup and grouping, e.g. ``litert[xnnpack=True]/t1``."""
        opts = ",".join(f"{k}={v}" for k, v in self.options)
        return f"{self.name}{'[' + opts + ']' if opts else ''}@{self.version}/t{self.threads}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "threads": self.threads,
                "options": {k: v for k, v in self.options}}


@dataclass(frozen=True)
class Conditions:
    """The state of the device around a measurement (read before and after on phones)."""

    cpus: str = ""  # pinned CPU list, e.g. "4-7"; "" = not pinned
    governor: str = ""
    freq_before_khz: int = -1
    freq_after_khz: int = -1
    temp_before_c: float = float("nan")
    temp_after_c: float = float("nan")
    throttled: bool = False
    #: The cooldown before this measurement gave up waiting for the temperature/timeout target.
    cooldown_timed_out: bool = False


@dataclass(frozen=True)
class Record:
    """A measurement with the conditions it was taken under: one row of a dataset."""

    spec: KernelSpec
    device: DeviceInfo
    runtime: RuntimeInfo
    measurement: Measurement
    kind: str = "kernel"
    conditions: Conditions = field(default_factory=Conditions)
    started_at: float = 0.0  # unix seconds
    finished_at: float = 0.0
    devprof_version: str = ""
    harness_version: str = ""
    model_run_id: str = ""  # links layer records to their model record (and that one to itself)
    model_name: str = ""
    layer_index: int = -1
    layer_name: str = ""
    suite: str = ""
    #: The runtime's own kernel that computed it, where the runtime reports it (not part of the key).
    kernel: str = ""
    #: What the output was compared with before it was timed ("numpy reference"); "" where nothing
    #: could be (a .tflite-only model, records imported from tables, parts older than schema 3).
    checked: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown record kind {self.kind!r}")

    @property
    def key(self) -> str:
        """Dedup key: (kind, spec id, model context, device fingerprint, runtime)."""
        return record_key(self.kind, self.spec.id, self.device.id, self.runtime.key, self.model_name,
                          self.layer_index, self.layer_name)


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


def record_key(kind: str, spec_id: str, device_id: str, runtime_key: str, model_name: str = "",
               layer_index: int = -1, layer_name: str = "") -> str:
    """The dedup key of a record, computable before measuring (so `--resume` can skip work)."""
    return content_id([kind, spec_id, model_name, layer_index, layer_name, device_id, runtime_key], 24)


# ---- Parquet layout ----------------------------------------------------------------------
_SPEC_SCALARS = ("n", "h", "w", "cin", "cout", "kh", "kw", "stride", "padding", "groups", "dilation")


def _columns():
    import pyarrow as pa

    cols = [
        ("schema_version", pa.int16()), ("record_key", pa.string()), ("kind", pa.string()),
        ("spec_id", pa.string()), ("spec_key", pa.string()), ("op", pa.string()),
        *[(c, pa.int32()) for c in _SPEC_SCALARS],
        ("out_h", pa.int32()), ("out_w", pa.int32()), ("bias", pa.bool_()), ("activation", pa.string()),
        ("dtype", pa.string()), ("scheme", pa.string()), ("sparsity_ratio", pa.float64()),
        ("sparsity_params", pa.string()), ("attrs", pa.string()), ("flops", pa.int64()),
        ("params", pa.int64()), ("spec_json", pa.string()),
        ("device_id", pa.string()), ("device_kind", pa.string()), ("device_name", pa.string()),
        ("device_model", pa.string()), ("device_serial", pa.string()), ("device_json", pa.string()),
        ("runtime", pa.string()), ("runtime_version", pa.string()), ("threads", pa.int16()),
        ("runtime_options", pa.string()), ("runtime_key", pa.string()),
        ("samples_us", pa.list_(pa.float64())), ("warmups", pa.int32()), ("number", pa.int32()),
        ("repeats", pa.int32()), ("median_us", pa.float64()), ("mean_us", pa.float64()),
        ("min_us", pa.float64()), ("iqr_us", pa.float64()), ("mad_us", pa.float64()), ("cv", pa.float64()),
        ("noisy", pa.bool_()),
        ("cpus", pa.string()), ("governor", pa.string()), ("freq_before_khz", pa.int64()),
        ("freq_after_khz", pa.int64()), ("temp_before_c", pa.float64()), ("temp_after_c", pa.float64()),
        ("throttled", pa.bool_()),
        ("started_at", pa.timestamp("us", tz="UTC")), ("finished_at", pa.timestamp("us", tz="UTC")),
        ("devprof_version", pa.string()), ("harness_version", pa.string()),
        ("model_run_id", pa.string()), ("model_name", pa.string()), ("layer_index", pa.int32()),
        ("layer_name", pa.string()), ("suite", pa.string()),
        ("emulated", pa.bool_()), ("cooldown_timed_out", pa.bool_()), ("kernel", pa.string()),
        ("checked", pa.string()),
    ]
    return cols


def arrow_schema():
    """The explicit Arrow schema of a dataset's Parquet files (version `SCHEMA_VERSION`)."""
    import pyarrow as pa

    return pa.schema(_columns(), metadata={b"devprof.schema_version": str(SCHEMA_VERSION).encode()})


def conform(table, version: int):
    """An Arrow table read from a part of schema `version` in today's layout.

    Columns added since `version` get their documented old value; a column missing from a part
    of a version that should have it is an error (the part was not written by devprof)."""
    import pyarrow as pa

    schema = arrow_schema()
    for name, (added_in, old_value) in ADDED_COLUMNS.items():
        if name in table.column_names:
            continue
        if version >= added_in:
            raise ValueError(f"column {name!r} missing from a schema-{version} part")
        table = table.append_column(name, pa.array([old_value] * table.num_rows, type=schema.field(name).type))
    return table.select(schema.names).cast(schema)


def record_to_row(r: Record) -> dict[str, Any]:
    s, m, c, d, rt = r.spec, r.measurement, r.conditions, r.device, r.runtime
    row: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "record_key": r.key, "kind": r.kind,
        "spec_id": s.id, "spec_key": s.key, "op": s.op,
        **{k: getattr(s, k) for k in _SPEC_SCALARS},
        "out_h": s.out_h, "out_w": s.out_w, "bias": s.bias, "activation": s.activation, "dtype": s.dtype,
        "scheme": s.sparsity.scheme, "sparsity_ratio": s.sparsity.ratio,
        "sparsity_params": _canon(s.sparsity.to_dict()["params"]), "attrs": _canon(s.to_dict()["attrs"]),
        "flops": s.flops, "params": s.params_count, "spec_json": s.to_json(),
        "device_id": d.id, "device_kind": d.kind, "device_name": d.name, "device_model": d.model,
        "device_serial": d.serial, "device_json": _canon(d.to_dict()),
        "runtime": rt.name, "runtime_version": rt.version, "threads": rt.threads,
        "runtime_options": _canon(rt.to_dict()["options"]), "runtime_key": rt.key,
        "samples_us": list(m.samples_us), "warmups": m.warmups, "number": m.number, "repeats": m.repeats,
        "median_us": m.median_us, "mean_us": m.mean_us, "min_us": m.min_us, "iqr_us": m.iqr_us,
        "mad_us": m.mad_us, "cv": m.cv, "noisy": m.noisy,
        "cpus": c.cpus, "governor": c.governor, "freq_before_khz": c.freq_before_khz,
        "freq_after_khz": c.freq_after_khz, "temp_before_c": c.temp_before_c, "temp_after_c": c.temp_after_c,
        "throttled": c.throttled,
        "started_at": int(r.started_at * 1e6), "finished_at": int(r.finished_at * 1e6),
        "devprof_version": r.devprof_version, "harness_version": r.harness_version,
        "model_run_id": r.model_run_id, "model_name": r.model_name, "layer_index": r.layer_index,
        "layer_name": r.layer_name, "suite": r.suite,
        "emulated": d.emulated, "cooldown_timed_out": c.cooldown_timed_out, "kernel": r.kernel,
        "checked": r.checked,
    }
    return row


def records_to_table(records: Iterable[Record]):
    import pyarrow as pa

    rows = [record_to_row(r) for r in records]
    schema = arrow_schema()
    arrays = []
    for f in schema:
        vals = [row[f.name] for row in rows]
        if pa.types.is_timestamp(f.type):
            arrays.append(pa.array(vals, type=pa.int64()).cast(f.type))
        else:
            arrays.append(pa.array(vals, type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def row_to_record(row: Mapping[str, Any]) -> Record:
    """Rebuild a `Record` from a dataset row (a dict or a pandas Series)."""

    def ts(v: Any) -> float:
        if v is None:
            return 0.0
        if hasattr(v, "timestamp"):
            return float(v.timestamp())
        return float(v) / 1e6

    rt_opts = json.loads(row["runtime_options"] or "{}")
    return Record(
        spec=KernelSpec.from_dict(json.loads(row["spec_json"])),
        device=DeviceInfo.from_dict(json.loads(row["device_json"])),
        runtime=RuntimeInfo(row["runtime"], row["runtime_version"], int(row["threads"]), rt_opts),
        measurement=Measurement(tuple(row["samples_us"]), int(row["warmups"]), int(row["number"])),
        kind=row["kind"],
        conditions=Conditions(row["cpus"], row["governor"], int(row["freq_before_khz"]),
                              int(row["freq_after_khz"]), float(row["temp_before_c"]),
                              float(row["temp_after_c"]), bool(row["throttled"]),
                              bool(row.get("cooldown_timed_out", False))),
        started_at=ts(row["started_at"]), finished_at=ts(row["finished_at"]),
        devprof_version=row["devprof_version"], harness_version=row["harness_version"],
        model_run_id=row["model_run_id"], model_name=row["model_name"], layer_index=int(row["layer_index"]),
        layer_name=row["layer_name"], suite=row["suite"], kernel=row.get("kernel", "") or "",
        checked=row.get("checked", "") or "",
    )
