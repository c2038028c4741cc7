"""BERT-style encoders as ONNX graphs, in the form PyTorch's exporter writes them (opset 17).

Each layer: Q/K/V projections (MatMul + bias Add, Reshape into heads, Transpose), Q K^T scaled
by 1/sqrt(d_head), Softmax, the context MatMul, Transpose + Reshape back, the output projection,
residual Add and LayerNormalization; then the FFN (MatMul + Add, GELU as its erf formula,
MatMul + Add), residual Add and LayerNormalization. The input is the embedded sequence
(batch 1, seq, hidden): token embedding lookups are a gather, not what a phone search tunes.

Config keys: `layers`, `hidden`, `heads`, `ffn`, `seq`. The reference sizes are the compact
BERTs of Turc et al. ("Well-Read Students Learn Better", 2019): tiny, mini, small, medium, base.
"""
from __future__ import annotations

import numpy as np
import onnx

from ..errors import UsageError

OPSET = 17

SIZES = {
    "bert_tiny": dict(layers=2, hidden=128, heads=2, ffn=512),
    "bert_mini": dict(layers=4, hidden=256, heads=4, ffn=1024),
    "bert_small": dict(layers=4, hidden=512, heads=8, ffn=2048),
    "bert_medium": dict(layers=8, hidden=512, heads=8, ffn=2048),
    "bert_base": dict(layers=12, hidden=768, heads=12, ffn=3072),
}


def reference(size: str, seq: int = 128) -> dict:
    return {**SIZES[size], "seq": int(seq)}


def check_config(cfg: dict) -> None:
    """One-line errors for configs no encoder can have (before any graph is built)."""
    for k in ("layers", "hidden", "heads", "ffn", "seq"):
        v = cfg.get(k)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise UsageError(f"bert config: {k} must be a positive integer, got {v!r}")
    if cfg["hidden"] % cfg["heads"]:
        raise UsageError(f"bert config: heads ({cfg['heads']}) must divide hidden ({cfg['hidden']})")


def bert_net(cfg: dict) -> onnx.ModelProto:
    from onnx import TensorProto, helper, numpy_helper

    check_config(cfg)
    L, H, A, F, S = (cfg[k] for k in ("layers", "hidden", "heads", "ffn", "seq"))
    d = H // A
    rng = np.random.default_rng(int(cfg.get("seed", 0)))
    nodes: list = []
    inits: list = []

    def const(name: str, arr) -> str:
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(op: str, ins: list[str], name: str, **attrs) -> str:
        nodes.append(helper.make_node(op, ins, [name], name=name, **attrs))
        return name

    def linear(x: str, cin: int, cout: int, name: str) -> str:
        w = (rng.standard_normal((cin, cout)) / np.sqrt(cin)).astype(np.float32)
        b = (0.02 * rng.standard_normal(cout)).astype(np.float32)
        y = node("MatMul", [x, const(f"{name}.weight", w)], f"{name}/MatMul")
        return node("Add", [y, const(f"{name}.bias", b)], f"{name}/Add")

    def layernorm(x: str, name: str) -> str:
        return node("LayerNormalization", [x, const(f"{name}.weight", np.ones(H, np.float32)),
                                           const(f"{name}.bias", np.zeros(H, np.float32))],
                    f"{name}/LayerNormalization", axis=-1, epsilon=1e-12)

    split = const("shape.heads", np.array([1, S, A, d], np.int64))
    merge = const("shape.merge", np.array([1, S, H], np.int64))
    x = "input"
    for i in range(L):
        p = f"encoder.layer.{i}"
        heads = {}
        for part, perm in (("query", [0, 2, 1, 3]), ("key", [0, 2, 3, 1]), ("value", [0, 2, 1, 3])):
            y = linear(x, H, H, f"{p}.attention.self.{part}")
            y = node("Reshape", [y, split], f"{p}.attention.self.{part}/Reshape")
            heads[part] = node("Transpose", [y], f"{p}.attention.self.{part}/Transpose", perm=perm)
        s = node("MatMul", [heads["query"], heads["key"]], f"{p}.attention.self/MatMul")
        s = node("Div", [s, const(f"{p}.scale", np.float32(np.sqrt(d)))], f"{p}.attention.self/Div")
        s = node("Softmax", [s], f"{p}.attention.self/Softmax", axis=-1)
        c = node("MatMul", [s, heads["value"]], f"{p}.attention.self/MatMul_1")
        c = node("Transpose", [c], f"{p}.attention.self/Transpose", perm=[0, 2, 1, 3])
        c = node("Reshape", [c, merge], f"{p}.attention.self/Reshape")
        o = linear(c, H, H, f"{p}.attention.output.dense")
        o = node("Add", [o, x], f"{p}.attention.output/Add")
        x = layernorm(o, f"{p}.attention.output.LayerNorm")
        f = linear(x, H, F, f"{p}.intermediate.dense")
        g = node("Div", [f, const(f"{p}.sqrt2", np.float32(np.sqrt(2.0)))], f"{p}.intermediate/Div")
        g = node("Erf", [g], f"{p}.intermediate/Erf")
        g = node("Add", [g, const(f"{p}.one", np.float32(1.0))], f"{p}.intermediate/Add")
        g = node("Mul", [f, g], f"{p}.intermediate/Mul")
        g = node("Mul", [g, const(f"{p}.half", np.float32(0.5))], f"{p}.intermediate/Mul_1")
        o = linear(g, F, H, f"{p}.output.dense")
        o = node("Add", [o, x], f"{p}.output/Add")
        x = layernorm(o, f"{p}.output.LayerNorm")
    nodes.append(helper.make_node("Identity", [x], ["output"], name="output/Identity"))
    graph = helper.make_graph(
        nodes, cfg.get("name", "bert"),
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, S, H])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, S, H])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="devprof")
    m.ir_version = 8
    return m


def sample(ref: dict, rng: np.random.Generator) -> dict:
    """A variant for search: depth, width (64 per head), FFN ratio and sequence length."""
    heads = int(rng.choice([2, 4, 6, 8, 12]))
    return {"layers": int(rng.integers(2, 9)), "hidden": 64 * heads, "heads": heads,
            "ffn": 64 * heads * int(rng.choice([2, 3, 4])), "seq": int(rng.choice([64, 128, 256]))}
