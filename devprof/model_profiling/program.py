"""A whole model as one generated program: every layer in sequence, in one call, on planned buffers.

Isolated kernels miss what a network costs when its layers run back to back (caches, the glue ops
between convs), and a search is judged by the end-to-end latency of the pruned model. So the
graph walk's layers (``litert`` fusion: BN and ReLU/ReLU6 folded into the conv, as the generated
kernels' epilogue does) become one C function that the native harness checks and times like any
kernel:

* conv / depthwise / pointwise / fc layers are generated kernels (``devprof.sparse.codegen``) of
  the layer's spec, pruned under a scheme or dense; depthwise convs and layers the scheme does not
  apply to stay dense;
* the glue ops of the built-in families (add, mul by a per-channel scale, activations, max/avg
  pool, global average pool, concat, depth-to-space) are small C loops here;
* activations are NCHW throughout (what the conv kernels read and write), so consecutive layers
  never copy; views (Flatten, Reshape) are free. Buffers are planned once by liveness (a freed
  buffer is reused by the next layer that fits in it); each kernel keeps its own workspace
  (padded input copies rely on their zero borders).

The generated kernels use devprof's deterministic weights (``sparse.weights``), not the model's,
so the reference is the same network with those weights: `reference_model` rewrites the ONNX
graph (each conv/fc chain replaced by a Conv/Gemm with the pruned weights and its activation,
glue nodes kept as they are) and ONNX Runtime's output on the harness's input becomes the samples
the harness checks before timing. Every layer is timed inside every call (``dp_now_us`` around
it), so per-layer times come from the same runs as the end-to-end time.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UsageError
from ..records import KernelSpec, Sparsity
from ..sparse.codegen import ACT_CODES, GeneratedKernel, generate, pruned_weights
from ..sparse.weights import input_values
from ..models.walk import ModelLayers, load_onnx, walk

KERNEL_OPS = ("conv2d", "dwconv2d", "pwconv", "fc")
GLUE_OPS = ("add", "mul", "activation", "maxpool", "avgpool", "global_avgpool", "concat", "depth_to_space")
GLUE_ACTS = ("none", "relu", "relu6", "hswish", "hsigmoid", "sigmoid", "tanh")
REF_SAMPLES = 512


@dataclass
class Step:
    """One layer of the program: what runs, on which buffers (-1: the program's input)."""

    index: int
    name: str
    op: str
    spec: KernelSpec  # the spec that runs (pruned for kernels under a scheme)
    inputs: list[int]
    output: int  # buffer id; the last step writes the program's output
    elems: int  # output floats
    in_sizes: list[int] = field(default_factory=list)  # floats of each input tensor
    kernel: GeneratedKernel | None = None


@dataclass
class Program:
    """A planned program: steps, buffers, its C sources and data, and the ONNX reference."""

    name: str
    model: str
    steps: list[Step]
    buffers: list[int]  # floats per buffer
    input_shape: tuple[int, ...]
    output_elems: int
    reference: Any  # onnx.ModelProto with the pruned weights
    sparsity: Sparsity
    seed: int = 0x0D5E7A11
    arrays: list[np.ndarray] = field(default_factory=list)
    source: str = ""
    units: list[tuple[str, str]] = field(default_factory=list)  # the layer kernels' C files
    ws_floats: int = 0
    variant: str = "program"

    # -- what build_batch and the harness registry read (a GeneratedKernel's surface)
    @property
    def symbol(self) -> str:
        return f"dpk_{self.name}"

    @property
    def layer_symbol(self) -> str:
        return f"dp_layer_us_{self.name}"

    @property
    def nlayers(self) -> int:
        return len(self.steps)

    @property
    def in_elems(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def out_elems(self) -> int:
        return self.output_elems

    @property
    def spec(self) -> KernelSpec:
        """A stand-in spec for the registry line: the model's first layer."""
        return self.steps[0].spec

    def input(self) -> np.ndarray:
        return input_values(self.seed, self.in_elems).reshape(self.input_shape)


def _unsupported(layer, sp: KernelSpec) -> str | None:
    op = sp.op
    if op in KERNEL_OPS:
        if sp.activation not in ACT_CODES:
            return f"activation {sp.activation}"
        return None
    if op not in GLUE_OPS:
        return sp.a.get("onnx_op", op)
    if op == "activation" and sp.a.get("kind") not in GLUE_ACTS:
        return f"activation {sp.a.get('kind')}"
    if op in ("add", "mul") and sp.a.get("operand") in ("scalar", "const"):
        return f"{op} with a constant"
    if op in ("add", "mul", "concat", "maxpool", "avgpool", "global_avgpool") and sp.activation not in GLUE_ACTS:
        return f"{op} with activation {sp.activation}"
    if op == "depth_to_space" and sp.a.get("mode", "DCR") not in ("DCR", "CRD"):
        return f"depth_to_space mode {sp.a.get('mode')}"
    return None


def plan(model: Any, sparsity: Sparsity | None = None, *, name: str = "prog", vector_floats: int = 8,
         vector_regs: int = 16) -> Program:
    """Walk `model` (ONNX: path, bytes or ModelProto), generate each layer and plan the buffers.

    Raises UsageError naming the first layer the generated program cannot run."""
    from .prune import pruned_spec

    onnx_model = load_onnx(model)
    ml: ModelLayers = walk(onnx_model, fusion="litert")
    sp = sparsity or Sparsity()
    g = onnx_model.graph
    inits = {i.name for i in g.initializer} | {n.output[0] for n in g.node if n.op_type == "Constant"}
    by_name = {n.name: n for n in g.node}
    if len(g.output) != 1 or len(g.input) - sum(1 for i in g.input if i.name in inits) != 1:
        raise UsageError(f"{ml.name}: a generated program needs one input and one output")
    x_name = next(i.name for i in g.input if i.name not in inits)
    dims = tuple(d.dim_value for d in next(i for i in g.input if i.name == x_name).type.tensor_type.shape.dim)
    if len(dims) != 4 or min(dims) < 1:
        raise UsageError(f"{ml.name}: a generated program needs a fixed NCHW input (got {dims})")
    # identity copies of a tensor (views folded into no layer) resolve to their source
    alias: dict[str, str] = {}
    for n in g.node:
        if n.op_type in ("Identity", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Dropout") and n.input:
            alias[n.output[0]] = n.input[0]

    def source_of(t: str) -> str:
        seen = 0
        while t in alias and t not in produced and seen < 1000:
            t, seen = alias[t], seen + 1
        return t

    steps: list[Step] = []
    produced: dict[str, int] = {x_name: -1}  # tensor -> step index (-1: program input)
    for layer in ml.layers:
        why = _unsupported(layer, layer.spec)
        if why:
            raise UsageError(f"{ml.name}: layer {layer.name} ({why}) cannot run in a generated program "
                             "(runtimes that can: onnxruntime, litert)")
        node = by_name.get(layer.name)
        if node is None:
            raise UsageError(f"{ml.name}: layer {layer.name} has no node of that name (name every node)")
        ins = [source_of(i) for i in node.input if i and i not in inits]
        if any(i not in produced for i in ins):
            raise UsageError(f"{ml.name}: layer {layer.name} reads a tensor no earlier layer writes")
        spec = layer.spec
        if spec.op in KERNEL_OPS and spec.sparsity.scheme == "dense" and sp.scheme != "dense":
            spec = pruned_spec(spec, sp) or spec
        steps.append(Step(len(steps), layer.name, spec.op, spec, [produced[i] for i in ins], -1,
                          _out_elems(spec)))
        out = layer.output or node.output[0]
        produced[out] = len(steps) - 1
        for n in layer.nodes:  # every tensor a folded node wrote is this layer's output
            for o in by_name[n].output if n in by_name else ():
                produced.setdefault(o, len(steps) - 1)
    final = source_of(g.output[0].name)
    if produced.get(final) != len(steps) - 1:
        raise UsageError(f"{ml.name}: the model's output is not its last layer's")
    # buffers by liveness: step i's output lives until its last reader
    last_use = {i: i for i in range(len(steps))}
    for s in steps:
        for j in s.inputs:
            if j >= 0:
                last_use[j] = max(last_use[j], s.index)
    buffers: list[int] = []
    free: list[int] = []
    owner: dict[int, int] = {}  # step -> buffer
    for s in steps:
        if s.index == len(steps) - 1:
            s.output = -2  # the program's output (y)
        else:
            fit = [b for b in free if buffers[b] >= s.elems]
            if fit:
                b = min(fit, key=lambda b: buffers[b])
                free.remove(b)
            else:
                b = len(buffers)
                buffers.append(s.elems)
            owner[s.index] = b
            s.output = b
        for j in set(s.inputs):  # released after this step read them
            if j >= 0 and last_use[j] == s.index:
                free.append(owner[j])
        s.in_sizes = [steps[j].elems if j >= 0 else int(np.prod(dims)) for j in s.inputs]
        s.inputs = [owner[j] if j >= 0 else -1 for j in s.inputs]
    prog = Program(name, ml.name, steps, buffers, dims, steps[-1].elems,
                   reference_model(onnx_model, ml, steps), sp)
    _emit(prog, vector_floats, vector_regs)
    return prog


def _out_elems(spec: KernelSpec) -> int:
    if spec.op == "fc":
        return spec.n * spec.cout
    if spec.op == "global_avgpool":
        return spec.n * spec.cout
    if spec.op == "depth_to_space":
        r = int(spec.a.get("block", 1))
        return spec.n * spec.cout * spec.h * r * spec.w * r
    if spec.op == "concat":
        return spec.n * spec.cout * spec.h * spec.w
    if spec.op in ("add", "mul", "activation"):
        return spec.n * spec.cin * spec.h * spec.w
    return spec.n * spec.cout * spec.out_h * spec.out_w


# ---- the reference: the same network with the generated kernels' weights ---------------------------
def reference_model(model: Any, ml: ModelLayers, steps: list[Step]) -> Any:
    """`model` with each conv/fc layer's chain (Conv, BN, activation, views) replaced by one
    Conv/Gemm with the (pruned) weights the generated kernel uses, and its activation."""
    import onnx
    from onnx import helper, numpy_helper

    m = copy.deepcopy(model)
    g = m.graph
    by_layer = {l.name: l for l in ml.layers}
    nodes = list(g.node)
    new_nodes, inits = [], []
    replaced: dict[str, list] = {}
    drop: set[str] = set()
    for s in steps:
        if s.op not in KERNEL_OPS:
            continue
        layer = by_layer[s.name]
        first = next(n for n in nodes if n.name == layer.name)
        w, b, _ = pruned_weights(s.spec)
        sp = s.spec
        wn, bn = f"devprof_w{s.index}", f"devprof_b{s.index}"
        out = layer.output or first.output[0]
        mid = out if sp.activation == "none" else f"devprof_pre{s.index}"
        if sp.op == "fc":
            inits += [numpy_helper.from_array(w.reshape(sp.cout, sp.cin), wn), numpy_helper.from_array(b, bn)]
            src = first.input[0]
            chain = [helper.make_node("Flatten", [src], [f"devprof_flat{s.index}"], name=f"devprof_flat{s.index}"),
                     helper.make_node("Gemm", [f"devprof_flat{s.index}", wn, bn], [mid], name=layer.name, transB=1)]
        else:
            inits += [numpy_helper.from_array(np.ascontiguousarray(w.transpose(0, 3, 1, 2)), wn),
                      numpy_helper.from_array(b, bn)]
            p = sp.padding
            chain = [helper.make_node("Conv", [first.input[0], wn, bn], [mid], name=layer.name,
                                      kernel_shape=[sp.kh, sp.kw], strides=[sp.stride] * 2, pads=[p] * 4,
                                      group=sp.groups)]
        chain += _act_nodes(sp.activation, mid, out, s.index, inits)
        replaced[layer.name] = chain
        drop |= set(layer.nodes)
    for n in nodes:
        if n.name in replaced:
            new_nodes += replaced[n.name]
        elif n.name not in drop:
            new_nodes.append(n)
    del g.node[:]
    g.node.extend(new_nodes)
    used = {i for n in g.node for i in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep + inits)
    del g.value_info[:]
    onnx.checker.check_model(m)
    return m


def _act_nodes(act: str, src: str, out: str, i: int, inits: list) -> list:
    from onnx import helper, numpy_helper

    if act == "none":
        return []
    if act == "relu":
        return [helper.make_node("Relu", [src], [out], name=f"devprof_act{i}")]
    if act == "hswish":
        return [helper.make_node("HardSwish", [src], [out], name=f"devprof_act{i}")]
    if act == "relu6":
        lo, hi = f"devprof_lo{i}", f"devprof_hi{i}"
        inits += [numpy_helper.from_array(np.array(0.0, np.float32), lo),
                  numpy_helper.from_array(np.array(6.0, np.float32), hi)]
        return [helper.make_node("Clip", [src, lo, hi], [out], name=f"devprof_act{i}")]
    raise UsageError(f"activation {act} has no reference node")


def reference_output(prog: Program) -> np.ndarray:
    """ONNX Runtime's output of the reference model on the harness's input (1 thread)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(prog.reference.SerializeToString(), so, providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {sess.get_inputs()[0].name: prog.input()})
    return np.asarray(y, np.float32).reshape(-1)


# ---- C emission -----------------------------------------------------------------------------------
_ACT_C = {"none": "{v}", "relu": "({v} > 0.f ? {v} : 0.f)", "relu6": "({v} < 0.f ? 0.f : ({v} > 6.f ? 6.f : {v}))",
          "hswish": "dp_act({v}, 3)", "hsigmoid": "dp_hsig({v})", "sigmoid": "(1.f / (1.f + expf(-{v})))",
          "tanh": "tanhf({v})"}

_GLUE_C = r"""
#include <math.h>
static inline float dp_hsig(float v) { float t = v * (1.f / 6.f) + 0.5f; return t < 0.f ? 0.f : (t > 1.f ? 1.f : t); }
"""


def _glue(s: Step, ins: list[str], y: str) -> list[str]:
    sp = s.spec
    act = sp.a.get("kind", "none") if sp.op == "activation" else sp.activation
    A = _ACT_C[act]
    n, c, h, w = sp.n, sp.cin, sp.h, sp.w
    if sp.op == "activation":
        return [f"for (size_t i = 0; i < {s.elems}; i++) {{ const float v = {ins[0]}[i]; {y}[i] = {A.format(v='v')}; }}"]
    if sp.op in ("add", "mul"):
        o = "+" if sp.op == "add" else "*"
        big = s.elems
        if sp.a.get("operand") == "broadcast":  # x (n,c,h,w) op s (n,c,1,1): which input is the scale
            return [f"{{ const float *xa = {ins[0]}, *xb = {ins[1]};",
                    f"  if (DP_PROG_SMALL_{s.index}) {{ const float *t = xa; xa = xb; xb = t; }}",
                    f"  for (size_t nc = 0; nc < {n * c}; nc++) {{ const float sc = xb[nc];",
                    f"    for (size_t p = 0; p < {h * w}; p++) {{ const float v = xa[nc * {h * w} + p] {o} sc; "
                    f"{y}[nc * {h * w} + p] = {A.format(v='v')}; }} }} }}"]
        return [f"for (size_t i = 0; i < {big}; i++) {{ const float v = {ins[0]}[i] {o} {ins[1]}[i]; {y}[i] = {A.format(v='v')}; }}"]
    if sp.op == "global_avgpool":
        return [f"for (size_t nc = 0; nc < {n * c}; nc++) {{ float acc = 0.f; const float *p = {ins[0]} + nc * {h * w};",
                f"  for (size_t i = 0; i < {h * w}; i++) acc += p[i];",
                f"  const float v = acc * {1.0 / (h * w)!r}f; {y}[nc] = {A.format(v='v')}; }}"]
    if sp.op in ("maxpool", "avgpool"):
        k, st, p, oh, ow = sp.kh, sp.stride, sp.padding, sp.out_h, sp.out_w
        mx = sp.op == "maxpool"
        init = "-INFINITY" if mx else "0.f"
        upd = "acc = v > acc ? v : acc;" if mx else "acc += v; cnt++;"
        fin = "acc" if mx else "acc / (float)cnt"
        return [f"for (size_t nc = 0; nc < {n * c}; nc++) {{ const float *src = {ins[0]} + nc * {h * w}; "
                f"float *dst = {y} + nc * {oh * ow};",
                f"  for (int oy = 0; oy < {oh}; oy++) for (int ox = 0; ox < {ow}; ox++) {{",
                f"    float acc = {init}; int cnt = 0; (void)cnt;",
                f"    for (int ky = 0; ky < {k}; ky++) {{ const int iy = oy * {st} - {p} + ky; if (iy < 0 || iy >= {h}) continue;",
                f"      for (int kx = 0; kx < {k}; kx++) {{ const int ix = ox * {st} - {p} + kx; if (ix < 0 || ix >= {w}) continue;",
                f"        const float v = src[iy * {w} + ix]; {upd} }} }}",
                f"    {{ const float v = {fin}; dst[oy * {ow} + ox] = {A.format(v='v')}; }} }} }}"]
    if sp.op == "concat":
        chans = [int(x) for x in str(sp.a.get("channels", "")).split(",") if x]
        L = [f"for (size_t b = 0; b < {n}; b++) {{ float *dst = {y} + b * {sp.cout * h * w};"]
        off = 0
        for src, ch in zip(ins, chans):
            L += [f"  for (size_t i = 0; i < {ch * h * w}; i++) {{ const float v = {src}[b * {ch * h * w} + i]; "
                  f"dst[{off * h * w} + i] = {A.format(v='v')}; }}"]
            off += ch
        return L + ["}"]
    if sp.op == "depth_to_space":
        r, co = int(sp.a.get("block", 1)), sp.cout
        dcr = sp.a.get("mode", "DCR") == "DCR"
        ch = f"(i * {r} + j) * {co} + cc" if dcr else f"cc * {r * r} + i * {r} + j"
        return [f"for (int b = 0; b < {n}; b++) for (int cc = 0; cc < {co}; cc++) for (int i = 0; i < {r}; i++)",
                f"  for (int yy = 0; yy < {h}; yy++) {{ float *dst = {y} + (((size_t)b * {co} + cc) * {h * r} + (size_t)yy * {r} + i) * {w * r};",
                f"    for (int j = 0; j < {r}; j++) {{ const float *src = {ins[0]} + (((size_t)b * {c} + {ch}) * {h} + yy) * {w};",
                f"      for (int xx = 0; xx < {w}; xx++) dst[xx * {r} + j] = src[xx]; }} }}"]
    raise AssertionError(sp.op)


def _emit(prog: Program, vl: int, regs: int) -> None:
    units, arrays, decls, body, defines = [], [], [], [], []
    offs, o = [], 0
    for b in prog.buffers:
        offs.append(o)
        o += -(-b // 16) * 16  # 64-byte aligned buffers
    ws = o
    aoff = 2
    for s in prog.steps:
        ins = ["x" if b == -1 else f"B{b}" for b in s.inputs]
        y = "y" if s.output == -2 else f"B{s.output}"
        if s.op in KERNEL_OPS:
            variant = "dense" if s.spec.sparsity.scheme == "dense" else "sparse"
            k = generate(s.spec, variant, vector_floats=vl, vector_regs=regs, name=f"{prog.name}_L{s.index}",
                         with_reference=False)
            s.kernel = k
            units.append((k.name, k.source))
            decls.append(f"void {k.symbol}(const float *x, float *y, float *ws, const dp_array *a);")
            body.append(f"    {k.symbol}({ins[0]}, {y}, ws + {ws}, a + {aoff - 2});")
            arrays += k.arrays[2:]
            aoff += len(k.arrays) - 2
            ws += -(-k.ws_floats // 16) * 16
        else:
            if s.spec.a.get("operand") == "broadcast":
                defines.append(f"#define DP_PROG_SMALL_{s.index} {int(s.in_sizes[0] < s.in_sizes[1])}")
            body.append("    " + "\n    ".join(_glue(s, ins, y)))
        body.append(f"    t1 = dp_now_us(); {prog.layer_symbol}[{s.index}] += t1 - t0; t0 = t1;")
    bufs = [f"    float *B{i} = ws + {offs[i]};" for i in range(len(prog.buffers))]
    src = "\n".join([
        f"/* generated by devprof: {prog.model} as one program; {prog.sparsity.label()} */",
        f"#define DP_VL {vl}", '#include "dp_harness.h"', _GLUE_C, *defines, *decls,
        f"double {prog.layer_symbol}[{len(prog.steps)}];",
        f"void {prog.symbol}(const float *restrict x, float *restrict y, float *restrict ws, const dp_array *restrict a);",
        f"void {prog.symbol}(const float *restrict x, float *restrict y, float *restrict ws, const dp_array *restrict a) {{",
        *bufs, "    double t0 = dp_now_us(), t1;", *body, "    (void)t1;", "}", ""])
    ref = reference_output(prog)
    idx = np.unique(np.linspace(0, ref.size - 1, min(REF_SAMPLES, ref.size)).astype(np.int64)).astype(np.int32)
    prog.arrays = [idx, ref[idx].astype(np.float32), *arrays]
    prog.source, prog.units, prog.ws_floats = src, units, ws

