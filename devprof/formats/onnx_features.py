"""`predictors.features` as an ONNX graph: spec columns in, the regressors' features out.

The exported regressors (`onnx_predictor.regressor_onnx`) take the 54 features and 8 linear terms
that `predictors.features` computes in numpy: a caller in C++, Java or JavaScript would have to
re-implement them (channel tiles, the generated kernels' expected FMAs and loads, the output-tile
search). This graph computes them from the spec columns themselves — the encoded columns of
`predictors.spectable.COLUMNS` in that order (op / scheme / dtype / activation as codes listed in
index.json, sizes as numbers) — in double precision, following the numpy code line by line (every
masked assignment there is a `Where` here). `onnx_predictor.export_bundle(..., spec_inputs=True)`
joins it in front of each regressor, so one graph maps spec columns to milliseconds.
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np

_ids = itertools.count()


class _Graph:
    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []
        self._consts: dict[float, str] = {}

    def name(self, prefix: str = "t") -> str:
        return f"ff_{prefix}{next(_ids)}"

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        from onnx import helper

        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def const(self, v: float) -> "V":
        from onnx import numpy_helper

        v = float(v)
        if v not in self._consts:
            n = self.name("c")
            self.inits.append(numpy_helper.from_array(np.array(v, dtype=np.float64), n))
            self._consts[v] = n
        return V(self, self._consts[v])


class V:
    """A double tensor of shape [N] in the graph being built, with numpy-like operators."""

    def __init__(self, g: _Graph, name: str, boolean: bool = False) -> None:
        self.g, self.n, self.boolean = g, name, boolean

    def _o(self, other: Any) -> "V":
        return other if isinstance(other, V) else self.g.const(other)

    def _bin(self, op: str, other: Any, rev: bool = False, boolean: bool = False) -> "V":
        o = self._o(other)
        a, b = (o, self) if rev else (self, o)
        return V(self.g, self.g.node(op, [a.n, b.n]), boolean)

    __add__ = lambda s, o: s._bin("Add", o)  # noqa: E731
    __radd__ = lambda s, o: s._bin("Add", o, True)  # noqa: E731
    __sub__ = lambda s, o: s._bin("Sub", o)  # noqa: E731
    __rsub__ = lambda s, o: s._bin("Sub", o, True)  # noqa: E731
    __mul__ = lambda s, o: s._bin("Mul", o)  # noqa: E731
    __rmul__ = lambda s, o: s._bin("Mul", o, True)  # noqa: E731
    __truediv__ = lambda s, o: s._bin("Div", o)  # noqa: E731
    __rtruediv__ = lambda s, o: s._bin("Div", o, True)  # noqa: E731
    __pow__ = lambda s, o: s._bin("Pow", o)  # noqa: E731
    __rpow__ = lambda s, o: s._bin("Pow", o, True)  # noqa: E731
    __lt__ = lambda s, o: s._bin("Less", o, boolean=True)  # noqa: E731
    __le__ = lambda s, o: s._bin("LessOrEqual", o, boolean=True)  # noqa: E731
    __gt__ = lambda s, o: s._bin("Greater", o, boolean=True)  # noqa: E731
    __ge__ = lambda s, o: s._bin("GreaterOrEqual", o, boolean=True)  # noqa: E731

    def eq(self, o: Any) -> "V":
        return self._bin("Equal", o, boolean=True)

    def __and__(self, o: "V") -> "V":
        return V(self.g, self.g.node("And", [self.n, o.n]), True)

    def __or__(self, o: "V") -> "V":
        return V(self.g, self.g.node("Or", [self.n, o.n]), True)

    def __invert__(self) -> "V":
        return V(self.g, self.g.node("Not", [self.n]), True)

    def __neg__(self) -> "V":
        return V(self.g, self.g.node("Neg", [self.n]))

    def un(self, op: str) -> "V":
        return V(self.g, self.g.node(op, [self.n]))

    def as_double(self) -> "V":
        from onnx import TensorProto

        return V(self.g, self.g.node("Cast", [self.n], to=TensorProto.DOUBLE))


def where(c: V, a: Any, b: Any) -> V:
    g = c.g
    a, b = c._o(a), c._o(b)
    return V(g, g.node("Where", [c.n, a.n, b.n]))


def maximum(a: Any, b: Any) -> V:
    v = a if isinstance(a, V) else b
    return V(v.g, v.g.node("Max", [v._o(a).n, v._o(b).n]))


def minimum(a: Any, b: Any) -> V:
    v = a if isinstance(a, V) else b
    return V(v.g, v.g.node("Min", [v._o(a).n, v._o(b).n]))


def log2(x: V) -> V:
    return x.un("Log") / float(np.log(2.0))


def ceil(x: V) -> V:
    return x.un("Ceil")


def floor(x: V) -> V:
    return x.un("Floor")


def rnd(x: V) -> V:
    return x.un("Round")  # half to even, as numpy's round


def clip(x: V, lo: Any, hi: Any) -> V:
    return minimum(maximum(x, lo), hi)


def sqrt(x: V) -> V:
    return x.un("Sqrt")


def nan_to_zero(x: V) -> V:
    """np.nan_to_num(nan=0, posinf=0, neginf=0)."""
    bad = x.un("IsNaN")
    bad = V(x.g, bad.n, True) | V(x.g, x.g.node("IsInf", [x.n]), True)
    return where(bad, 0.0, x)


def features_graph(vector_floats: int, vector_regs: int):
    """The ONNX model: input ``spec`` (double, N x len(COLUMNS)), outputs ``features`` (float,
    N x len(FEATURES)) and ``linear_features`` (float, N x len(LINEAR_TERMS))."""
    from onnx import TensorProto, helper, numpy_helper

    from predictors.features import DENSE_ROWS, FEATURES, FP16_GEOMETRY, LINEAR_TERMS, PIXEL_TILES, TILES
    from predictors.spectable import BYTES_PER_ELEM, COLUMNS, DTYPE_CODE, OP_CODE, SCHEME_CODE

    g = _Graph()
    cols: dict[str, V] = {}
    for i, name in enumerate(COLUMNS):
        idx = g.name("i")
        g.inits.append(numpy_helper.from_array(np.array(i, dtype=np.int64), idx))
        cols[name] = V(g, g.node("Gather", ["spec", idx], axis=1))
    c = cols.__getitem__
    # bytes per element by dtype code: a Gather from a small table
    bpe_tab = g.name("bpe")
    g.inits.append(numpy_helper.from_array(np.asarray(BYTES_PER_ELEM, dtype=np.float64), bpe_tab))
    from onnx import TensorProto as TP

    dcode = g.node("Cast", [c("dtype").n], to=TP.INT64)
    bpe = V(g, g.node("Gather", [bpe_tab, dcode], axis=0))

    ratio = c("ratio")
    density = 1.0 - ratio
    flops = c("flops")
    eff = flops * density
    params = c("params")
    nnz = params * density
    in_b = c("n") * c("h") * c("w") * c("cin") * bpe
    is_matmul = where(c("op").eq(float(OP_CODE["matmul"])), 1.0, 0.0)
    in_b = in_b + is_matmul * c("n") * c("cin") * c("cout") * bpe
    out_pix = c("n") * c("out_h") * c("out_w")
    out_b = out_pix * c("cout") * bpe
    w_b = nnz * bpe
    F: dict[str, V] = {}
    F["log_flops"] = log2(flops + 1.0)
    F["log_eff_flops"] = log2(eff + 1.0)
    F["log_params"] = log2(params + 1.0)
    F["log_nnz"] = log2(nnz + 1.0)
    F["log_in_bytes"] = log2(in_b + 1.0)
    F["log_out_bytes"] = log2(out_b + 1.0)
    F["log_w_bytes"] = log2(w_b + 1.0)
    F["intensity"] = eff / (in_b + out_b + w_b + 1.0)
    F["log_out_pixels"] = log2(out_pix + 1.0)
    for name in ("h", "w", "cin", "cout", "kh", "kw", "stride", "groups", "dilation", "n", "p1", "p2",
                 "op", "scheme", "activation", "bias"):
        F[name] = c(name)
    F["cin_per_group"] = c("cin") / maximum(c("groups"), 1.0)
    a = c("attrs")  # np.mod(x, 2**20) for x >= 0
    F["attrs_code"] = (a - floor(a / 1048576.0) * 1048576.0) / 1048576.0
    F["out_h"] = c("out_h")
    F["out_w"] = c("out_w")
    for ch in ("cout", "cin"):
        v = maximum(c(ch), 1.0)
        for t in TILES:
            F[f"{ch}_pad{t}"] = ceil(v / float(t)) * float(t) / v
    opix = maximum(c("out_h") * c("out_w"), 1.0)
    for t in PIXEL_TILES:
        F[f"opix_pad{t}"] = ceil(opix / float(t)) * float(t) / opix
    F["log_nnz_per_cout"] = log2(nnz / maximum(c("cout"), 1.0) + 1.0)
    s = c("scheme")
    blocked = s.eq(float(SCHEME_CODE["block"])) | s.eq(float(SCHEME_CODE["bcr"]))
    block_rows = where(c("p1") >= 1.0, minimum(c("p1"), float(DENSE_ROWS)), float(DENSE_ROWS))
    F["rows_per_load"] = where(s.eq(float(SCHEME_CODE["dense"])), float(DENSE_ROWS), where(blocked, block_rows, 1.0))
    F["ratio"] = ratio
    F["density"] = density
    st = _kernel_stats(c, SCHEME_CODE, DENSE_ROWS)
    read_b = st["read"] * c("n") * c("h") * c("w") * bpe
    F["log_read_bytes"] = log2(read_b + 1.0)
    F["read_share"] = st["read"] / maximum(c("cin"), 1.0)
    F["log_working_set"] = log2(read_b + out_b + 1.0)
    F["rows_share"] = st["rows"] / maximum(c("cout"), 1.0)
    t, q = _kernel_tile(c, OP_CODE, SCHEME_CODE, DENSE_ROWS, vector_floats, vector_regs)
    # each row's data type picks its kernel's tile (`predictors.features.kernel_tile`)
    th, qh = _kernel_tile(c, OP_CODE, SCHEME_CODE, DENSE_ROWS, *FP16_GEOMETRY)
    ti, qi = _int8_tile(c, OP_CODE)
    half, i8 = c("dtype").eq(float(DTYPE_CODE["fp16"])), c("dtype").eq(float(DTYPE_CODE["int8"]))
    t = where(half, th, where(i8, ti, t))
    q = where(half, qh, where(i8, qi, q))
    qpad = ceil(q / t) * t
    F["tile_positions"] = t
    F["tile_waste"] = qpad / q
    F["log_tiles"] = log2(qpad / t)
    F["dtype"] = c("dtype")
    in_elems = c("n") * c("h") * c("w") * c("cin")
    pos = c("n") * c("out_h") * c("out_w")
    L = {"eff_flops": flops * density,
         "bytes": (in_elems + pos * c("cout") + params * density) * bpe,
         "fma_pos": pos * st["fma"], "load_pos": pos * st["loads"], "out_elems": pos * c("cout"),
         "in_elems": in_elems, "read_elems": c("n") * c("h") * c("w") * st["read"],
         "stream2_pos": pos * (st["read"] + c("cout")) ** 2.0}

    def stack(vals: list[V], out: str) -> None:
        axis1 = g.name("ax")
        g.inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), axis1))
        cols_ = [g.node("Unsqueeze", [v.n, axis1]) for v in vals]
        cat = g.node("Concat", cols_, axis=1)
        g.nodes.append(helper.make_node("Cast", [cat], [out], to=TensorProto.FLOAT))

    stack([F[f] for f in FEATURES], "features")
    stack([L[t] for t in LINEAR_TERMS], "linear_features")
    graph = helper.make_graph(g.nodes, "devprof-features",
                              [helper.make_tensor_value_info("spec", TensorProto.DOUBLE, ["N", len(COLUMNS)])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", len(FEATURES)]),
                               helper.make_tensor_value_info("linear_features", TensorProto.FLOAT,
                                                             ["N", len(LINEAR_TERMS)])], g.inits)
    return graph


def _kernel_stats(c, SCHEME_CODE: dict, DENSE_ROWS: int) -> dict[str, V]:
    """`predictors.features.kernel_stats`, every scheme's branch computed and selected by Where."""
    s = c("scheme")
    r = clip(c("ratio"), 0.0, 1.0)
    dens = 1.0 - r
    G = maximum(c("groups"), 1.0)
    cout, cin = maximum(c("cout"), 1.0), maximum(c("cin"), 1.0)
    cog, cig = maximum(cout / G, 1.0), maximum(cin / G, 1.0)
    taps = maximum(c("kh") * c("kw"), 1.0)
    K = cig * taps
    p1, p2 = c("p1"), c("p2")
    is_ = {k: s.eq(float(v)) for k, v in SCHEME_CODE.items()}
    unset = (p1 < 1.0) | (p2 < 1.0)
    half = (r - 0.5).un("Abs") < 1e-9
    nm_n = where(half, 2.0, 1.0)
    nm_m = where(half, 4.0, maximum(1.0, rnd(1.0 / maximum(dens, 1e-9))))
    p1 = where(unset, where(is_["nm"], nm_n, 4.0), p1)
    p2 = where(unset, where(is_["nm"], nm_m, where(is_["bcr"], 16.0, 1.0)), p2)
    # dense (default)
    fma = cout * K
    groups = G * ceil(cog / float(DENSE_ROWS))
    loads = K * groups
    read = cin
    rows = cout
    # unstructured / pattern
    m = is_["unstructured"] | is_["pattern"]
    fma_u = rnd(dens * cout * K)
    rows_u = cout * (1.0 - r ** K)
    read_u = cin * (1.0 - r ** (cog * taps))
    # N:M
    full = floor(K / p2)
    rem = K - full * p2
    per_row = full * p1 + minimum(rem, ceil(p1 * rem / p2))
    fma_n = cout * per_row
    read_n = cin * (1.0 - (1.0 - minimum(per_row / K, 1.0)) ** (cog * taps))
    # block br x bc
    br, bc = p1, p2
    nbr, nbc = ceil(cog / br), ceil(K / bc)
    nb = nbr * nbc * G
    keep = rnd(dens * nb)
    er, ec = cog - (nbr - 1.0) * br, K - (nbc - 1.0) * bc
    nfull = (nbr - where(er < br, 1.0, 0.0)) * (nbc - where(ec < bc, 1.0, 0.0)) * G
    kf = minimum(keep, nfull)
    fma_b = kf * br * bc + (keep - kf) * minimum(er * bc, br * ec)
    loads_b = kf * bc + (keep - kf) * minimum(bc, ec)
    share = where(nb > 0.0, keep / nb, 0.0)
    live_b = nbr * G * (1.0 - (1.0 - share) ** nbc)
    groups_b = live_b * ceil(minimum(br, cog) / float(DENSE_ROWS))
    rows_b = minimum(cout, live_b * minimum(br, cog))
    read_b = cin * (1.0 - (1.0 - share) ** (nbr * maximum(taps / bc, 1.0)))
    # BCR br x bc
    brc = minimum(p1, cog)
    nbrc = ceil(cog / brc)
    kc = minimum(1.0, dens ** 0.9)
    units = kc * nbrc * G * K
    nnz = rnd(dens * cout * K)
    loads_c = rnd(sqrt(units * nnz / brc))
    fma_c = clip(rnd(nnz * maximum(dens, 1e-9) ** -0.05), loads_c, loads_c * minimum(brc, float(DENSE_ROWS)))
    live_c = nbrc * G * (1.0 - (1.0 - kc) ** K)
    rows_c = minimum(cout, live_c * brc)
    qc = clip(loads_c / (nbrc * G * K), 0.0, 1.0)
    read_c = cin * (1.0 - (1.0 - qc) ** (nbrc * taps))

    def pick(dense, u, n, b, c_):
        return where(m, u, where(is_["nm"], n, where(is_["block"], b, where(is_["bcr"], c_, dense))))

    out = {"fma": pick(fma, fma_u, fma_n, fma_b, fma_c),
           "loads": pick(loads, fma_u, fma_n, loads_b, loads_c),
           "groups": pick(groups, rows_u, cout, groups_b, live_c),
           "read": pick(read, read_u, read_n, read_b, read_c),
           "rows": pick(rows, rows_u, cout, rows_b, rows_c)}
    return {k: nan_to_zero(v) for k, v in out.items()}


def _int8_tile(c, OP_CODE: dict):
    """`predictors.features.kernel_tile`'s int8 rows."""
    from predictors.features import INT8_TILE_BYTES, INT8_TILE_UNITS, INT8_TILE_UNITS_MAX, INT8_UNIT

    s_ = maximum(c("stride"), 1.0)
    wph = ceil((c("w") + 2.0 * c("padding")) / s_)
    q = maximum(where(c("op").eq(float(OP_CODE["fc"])), c("n"), c("out_h") * wph), 1.0)
    units = ceil(q / float(INT8_UNIT))
    k = maximum(maximum(c("cin") / maximum(c("groups"), 1.0), 1.0) * c("kh") * c("kw"), 1.0)
    cap = maximum(minimum(floor(float(INT8_TILE_BYTES) / (float(INT8_UNIT) * k)), float(INT8_TILE_UNITS_MAX)),
                  float(INT8_TILE_UNITS))
    best_pad = best = None
    for tu in range(INT8_TILE_UNITS, INT8_TILE_UNITS_MAX + 1, INT8_TILE_UNITS):
        pad = ceil(units / float(tu)) * float(tu)
        if best_pad is None:  # the first candidate is always allowed (cap >= INT8_TILE_UNITS)
            best_pad, best = pad, units * 0.0 + float(tu)
            continue
        better = (cap >= float(tu)) & (pad <= best_pad)
        best_pad, best = where(better, pad, best_pad), where(better, float(tu), best)
    return where(units <= float(INT8_TILE_UNITS), maximum(units, 1.0), best) * float(INT8_UNIT), q


def _kernel_tile(c, OP_CODE: dict, SCHEME_CODE: dict, DENSE_ROWS: int, vector_floats: int, vector_regs: int):
    """`predictors.features.kernel_tile`, its search over NV unrolled."""
    vl = float(vector_floats)
    s_ = maximum(c("stride"), 1.0)
    wph = ceil((c("w") + 2.0 * c("padding")) / s_)
    fc = c("op").eq(float(OP_CODE["fc"]))
    q = maximum(where(fc, c("n"), c("out_h") * wph), 1.0)
    scheme = c("scheme")
    block_rows = where(c("p1") >= 1.0, c("p1"), 4.0)
    single = (scheme.eq(float(SCHEME_CODE["unstructured"])) | scheme.eq(float(SCHEME_CODE["nm"]))
              | (scheme.eq(float(SCHEME_CODE["block"])) & block_rows.eq(1.0)))
    rmax = where(single, 1.0, float(DENSE_ROWS))
    cap = max(8, 64 // int(vector_floats))
    nv = maximum(1.0, minimum(float(cap), floor((vector_regs - 4) / (rmax + 1.0))))
    nv = where(scheme.eq(float(SCHEME_CODE["pattern"])), float(max(1, min(cap, (vector_regs - 8) // 2))), nv)
    best_pad = None
    best_t = None
    lo = ceil(2.0 * nv / 3.0)
    for k in range(1, cap + 1):
        ok = (lo <= float(k)) & (nv >= float(k))
        pad = ceil(q / (k * vl)) * (k * vl)
        if best_pad is None:
            better = ok
            best_pad = where(better, pad, float("inf"))
            best_t = where(better, k * vl, 0.0)
        else:
            better = ok & (pad <= best_pad)
            best_pad = where(better, pad, best_pad)
            best_t = where(better, k * vl, best_t)
    t = minimum(best_t, ceil(q / vl) * vl)
    gemv = fc & (c("n") <= 1.0)
    dw = (c("op").eq(float(OP_CODE["dwconv2d"])) & c("groups").eq(c("cin")) & c("cout").eq(c("cin"))
          & (c("dilation") <= 1.0) & scheme.eq(float(SCHEME_CODE["dense"])))
    q = where(dw, maximum(c("out_w"), 1.0), q)
    t = where(dw, vl, t)
    return where(gemv, 1.0, t), q
