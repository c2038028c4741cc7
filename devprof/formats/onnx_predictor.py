"""Predictors as ONNX graphs (features in, milliseconds out) for ONNX Runtime in any language.

Search front ends written in C++, Java or JavaScript cannot import `predictors`, but they all
have ONNX Runtime. Two kinds of graph are written with `onnx.helper` (no skl2onnx needed):

1. **Layer-table predictor** (`layer_model_onnx`) — a table learned by `devprof.from_models` (or
   any per-layer table): input ``features`` (double, N x F) holds, per candidate network, how
   many times each layer id occurs (F_layers columns) followed by how many times each adjacent
   pair occurs (F_pairs columns); output ``latency_ms`` (double, N x 1) =
   ``(counts . t + overhead) * (1 + pair_counts . g) / 1000``. The column order is stored in the
   model's metadata (``devprof.layer_ids``, ``devprof.pairs``, JSON) and in a sidecar JSON.
   Double precision throughout, so it ranks candidates exactly as the Python predictor does.
2. **Kernel regressors of a bundle** (`regressor_onnx`) — one graph per (op, scheme[, dtype])
   group and one for the fallback: input ``features`` (float, N x 55: `predictors.features.FEATURES` in
   order, computed with the bundle's ``kernel_geometry``, repeated in index.json) and
   ``linear_features`` (float, N x 8: `predictors.features.LINEAR_TERMS` in order —
   effective FLOPs, bytes moved, then the generated kernels' cost terms); output
   ``latency_ms`` (float). Tree ensembles become ``ai.onnx.ml.TreeEnsembleRegressor`` whose
   float32 thresholds are the bundle's (predictors.trees evaluates ``float32(x) <= float32(t)``,
   and so does ONNX Runtime on float32 inputs); the boosted scale is folded into the leaf weights.
   A ``switch`` computes both its branches and picks per row with ``Where(features[:, f] <= t)``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import UsageError

OPSET = 17
ML_OPSET = 3


def _model(graph, doc: str, meta: Mapping[str, str], ml: bool = False):
    import onnx
    from onnx import helper

    ops = [helper.make_opsetid("", OPSET)]
    if ml:
        ops.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    m = helper.make_model(graph, opset_imports=ops, producer_name="devprof")
    m.ir_version = 8
    m.doc_string = doc
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(m)
    return m


# ---- 1. layer tables ---------------------------------------------------------------------------------
def layer_model_onnx(model, name: str = "devprof-layer-table"):
    """ONNX graph of a `devprof.from_models.LayerModel` (see the module docstring)."""
    from onnx import TensorProto, helper, numpy_helper

    K, P = len(model.keys), len(model.pairs)
    W = np.zeros((K + P, 2), dtype=np.float64)
    W[:K, 0] = model.latency_us / 1000.0
    if P:
        W[K:, 1] = model.pair_rel
    inits = [numpy_helper.from_array(W, "weights"),
             numpy_helper.from_array(np.array([model.overhead_us / 1000.0]), "overhead_ms"),
             numpy_helper.from_array(np.array([1.0]), "one"),
             numpy_helper.from_array(np.array([1, 1], dtype=np.int64), "split")]
    nodes = [helper.make_node("MatMul", ["features", "weights"], ["y"]),
             helper.make_node("Split", ["y", "split"], ["additive", "pairs"], axis=1),
             helper.make_node("Add", ["additive", "overhead_ms"], ["base_ms"]),
             helper.make_node("Add", ["pairs", "one"], ["factor"]),
             helper.make_node("Mul", ["base_ms", "factor"], ["latency_ms"])]
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("features", TensorProto.DOUBLE, ["N", K + P])],
                          [helper.make_tensor_value_info("latency_ms", TensorProto.DOUBLE, ["N", 1])], inits)
    meta = {"devprof.kind": "layer-table", "devprof.layer_ids": json.dumps(list(model.keys)),
            "devprof.pairs": json.dumps([list(p) for p in model.pairs]), "devprof.unit": "ms"}
    return _model(g, "per-layer latency table: features = layer counts then adjacent-pair counts", meta)


def layer_features(layers_list: Sequence[Sequence[str]], layer_ids: Sequence[str],
                   pairs: Sequence[Sequence[str]] = ()) -> np.ndarray:
    """The input matrix of a layer-table graph for candidate networks given as layer-id lists
    (a front end computes the same counts in its own language)."""
    ki = {k: i for i, k in enumerate(layer_ids)}
    pi = {tuple(p): len(layer_ids) + i for i, p in enumerate(pairs)}
    X = np.zeros((len(layers_list), len(layer_ids) + len(pairs)))
    for r, layers in enumerate(layers_list):
        for k in layers:
            if k in ki:
                X[r, ki[k]] += 1
        for p in zip(layers[:-1], layers[1:]):
            j = pi.get(p)
            if j is not None:
                X[r, j] += 1
    return X


def write_layer_model(model, path: str | Path) -> Path:
    """Write the graph and a sidecar ``<name>.features.json`` (column order)."""
    p = Path(path)
    m = layer_model_onnx(model)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(m.SerializeToString())
        p.with_suffix(".features.json").write_text(json.dumps(
            {"input": "features", "output": "latency_ms", "layer_ids": list(model.keys),
             "pairs": [list(x) for x in model.pairs]}, indent=1) + "\n")
    except OSError as e:
        raise UsageError(f"cannot write {p}: {e.strerror or e}") from None
    return p


# ---- 2. kernel regressors ------------------------------------------------------------------------------
def _tree_node(m, out: str = "raw"):
    """TreeEnsembleRegressor node from a compiled `predictors.trees.TreeEnsemble` (so any storage
    of the node arrays the bundle format uses is decoded by predictors itself)."""
    from onnx import helper

    feat, thr, left, right = m.feature, np.asarray(m.threshold, dtype=np.float32), m.left, m.right
    val, scale = np.asarray(m.value, dtype=np.float64), float(m.scale)
    a: dict[str, list] = {k: [] for k in ("treeids", "nodeids", "featureids", "values", "modes", "true", "false")}
    t_tree, t_node, t_w = [], [], []
    for tree, root in enumerate(m.roots.tolist()):
        local: dict[int, int] = {}
        order = [int(root)]
        while order:  # breadth-first: local node ids in visiting order
            n = order.pop(0)
            if n in local:
                continue
            local[n] = len(local)
            if left[n] != n or right[n] != n:
                order += [int(left[n]), int(right[n])]
        for n, i in local.items():
            leaf = left[n] == n and right[n] == n
            a["treeids"].append(tree)
            a["nodeids"].append(i)
            a["featureids"].append(0 if leaf else int(feat[n]))
            a["values"].append(0.0 if leaf else float(thr[n]))
            a["modes"].append("LEAF" if leaf else "BRANCH_LEQ")
            a["true"].append(0 if leaf else local[int(left[n])])
            a["false"].append(0 if leaf else local[int(right[n])])
            if leaf:
                t_tree.append(tree)
                t_node.append(i)
                t_w.append(float(np.float32(scale * val[n])))
    return helper.make_node(
        "TreeEnsembleRegressor", ["features"], [out], domain="ai.onnx.ml", n_targets=1, aggregate_function="SUM",
        base_values=[float(m.base)], post_transform="NONE",
        nodes_treeids=a["treeids"], nodes_nodeids=a["nodeids"], nodes_featureids=a["featureids"],
        nodes_values=a["values"], nodes_modes=a["modes"], nodes_truenodeids=a["true"],
        nodes_falsenodeids=a["false"], nodes_hitrates=[1.0] * len(a["nodeids"]),
        nodes_missing_value_tracks_true=[0] * len(a["nodeids"]),
        target_ids=[0] * len(t_w), target_nodeids=t_node, target_treeids=t_tree, target_weights=t_w)


def _linear_nodes(lin, out: str, prefix: str):
    """Nodes of a compiled `predictors.trees.Linear`: max(intercept + L . coef, floor)."""
    from onnx import helper, numpy_helper

    from predictors.features import LINEAR_TERMS

    # the input holds every linear term; a model's coefficients sit at its inputs' columns
    coef = np.zeros((len(LINEAR_TERMS), 1), dtype=np.float32)
    for t, v in zip(lin.inputs, lin.coef):
        coef[LINEAR_TERMS.index(t), 0] = v
    inits = [numpy_helper.from_array(coef, f"{prefix}coef"),
             numpy_helper.from_array(np.array([lin.intercept], dtype=np.float32), f"{prefix}intercept"),
             numpy_helper.from_array(np.array([lin.floor_us], dtype=np.float32), f"{prefix}floor")]
    nodes = [helper.make_node("MatMul", ["linear_features", f"{prefix}coef"], [f"{prefix}mm"]),
             helper.make_node("Add", [f"{prefix}mm", f"{prefix}intercept"], [f"{prefix}lin"]),
             helper.make_node("Max", [f"{prefix}lin", f"{prefix}floor"], [out])]
    return nodes, inits


def _model_nodes(m, out: str, prefix: str):
    """Nodes computing a compiled regressor's µs into `out`; names inside start with `prefix`."""
    from onnx import helper, numpy_helper

    from predictors.trees import Linear, Switch

    if isinstance(m, Linear):
        return _linear_nodes(m, out, prefix)
    if isinstance(m, Switch):
        # both branches on every row, then each row takes its own: Where(x[:, f] <= t, le, gt)
        nodes, inits = [], [numpy_helper.from_array(np.array([m.feature], dtype=np.int64), f"{prefix}f0"),
                            numpy_helper.from_array(np.array([m.feature + 1], dtype=np.int64), f"{prefix}f1"),
                            numpy_helper.from_array(np.array([1], dtype=np.int64), f"{prefix}axis"),
                            numpy_helper.from_array(np.array([m.threshold], dtype=np.float32), f"{prefix}thr")]
        for side, branch in (("le", m.le), ("gt", m.gt)):
            n, i = _model_nodes(branch, f"{prefix}{side}_us", f"{prefix}{side}_")
            nodes += n
            inits += i
        nodes += [helper.make_node("Slice", ["features", f"{prefix}f0", f"{prefix}f1", f"{prefix}axis"],
                                   [f"{prefix}x"]),
                  helper.make_node("LessOrEqual", [f"{prefix}x", f"{prefix}thr"], [f"{prefix}cond"]),
                  helper.make_node("Where", [f"{prefix}cond", f"{prefix}le_us", f"{prefix}gt_us"], [out])]
        return nodes, inits
    nodes, inits = [_tree_node(m, f"{prefix}raw")], []
    lin = m.times_linear
    nodes.append(helper.make_node("Exp" if m.target == "log_us" else "Identity", [f"{prefix}raw"],
                                  [f"{prefix}trees_us" if lin is not None else out]))
    if lin is not None:
        n, i = _linear_nodes(lin, f"{prefix}lin_us", f"{prefix}t_")
        nodes += n + [helper.make_node("Mul", [f"{prefix}trees_us", f"{prefix}lin_us"], [out])]
        inits += i
    return nodes, inits


def regressor_onnx(d: Mapping[str, Any], name: str = "devprof-regressor"):
    """ONNX graph of one regressor of a bundle's predictor.json (tree ensemble, linear or switch)."""
    from onnx import TensorProto, helper, numpy_helper

    from predictors.features import FEATURES, LINEAR_TERMS
    from predictors.trees import Linear, ModelFormatError, compile_model

    try:
        m = compile_model(d)  # validates and decodes, exactly as the Python predictor does
    except ModelFormatError as e:
        raise UsageError(f"cannot export a malformed regressor ({e})") from None
    nodes, inits = _model_nodes(m, "us", "")
    inits.append(numpy_helper.from_array(np.array([1000.0], dtype=np.float32), "us_per_ms"))
    is_tree = not isinstance(m, Linear)
    nodes.append(helper.make_node("Div", ["us", "us_per_ms"], ["latency_ms"]))
    inputs = [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", len(FEATURES)]),
              helper.make_tensor_value_info("linear_features", TensorProto.FLOAT, ["N", len(LINEAR_TERMS)])]
    used = {i for n in nodes for i in n.input}
    inputs = [v for v in inputs if v.name in used]
    g = helper.make_graph(nodes, name, inputs, [helper.make_tensor_value_info("latency_ms", TensorProto.FLOAT,
                                                                              ["N", 1])], inits)
    meta = {"devprof.kind": "kernel-regressor", "devprof.features": json.dumps(list(FEATURES)),
            "devprof.linear_features": json.dumps(list(LINEAR_TERMS)), "devprof.unit": "ms"}
    return _model(g, f"devprof {d.get('estimator', d.get('kind'))} latency regressor", meta, ml=is_tree)


def export_bundle(bundle: str | Path, dest: str | Path) -> list[Path]:
    """Every regressor of a bundle as ONNX: DEST/<op>__<scheme>.onnx, DEST/fallback.onnx, plus
    DEST/index.json (group -> file, feature names)."""
    from predictors.bundle import NPZ, read_predictor, read_verified
    from predictors.features import FEATURES, LINEAR_TERMS, kernel_geometry_of

    meta, blobs = read_verified(bundle, ("predictor.json", NPZ))
    pj = read_predictor(bundle, meta, blobs)
    out = Path(dest)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot write {out}: {e.strerror or e}") from None
    written, index = [], {}
    from predictors.trees import ModelFormatError, resolve_groups

    try:
        items = list(resolve_groups(pj.get("groups") or {}).items())
    except ModelFormatError as e:
        raise UsageError(f"bundle {bundle}: predictor.json is malformed ({e})") from None
    if pj.get("fallback"):
        items.append(("*", pj["fallback"]))
    try:
        geometry = kernel_geometry_of(pj.get("kernel_geometry"))
    except ValueError as e:
        raise UsageError(f"bundle {bundle}: predictor.json is malformed ({e})") from None
    done: dict[int, dict[str, Any]] = {}  # a regressor pooled over schemes: one file, every group names it
    for group, d in items:
        if id(d) in done:
            index[group] = done[id(d)]
            continue
        fname = "fallback.onnx" if group == "*" else group.replace("/", "__") + ".onnx"
        m = regressor_onnx(d, f"devprof-{group}")
        (out / fname).write_bytes(m.SerializeToString())
        sname = fname[:-len(".onnx")] + ".spec.onnx"
        (out / sname).write_bytes(with_spec_inputs(m, geometry).SerializeToString())
        index[group] = done[id(d)] = {"file": fname, "inputs": [i.name for i in m.graph.input], "spec_file": sname}
        written += [out / fname, out / sname]
    from predictors.spectable import COLUMNS

    from .onnx_features import features_graph

    fm = _model(features_graph(**geometry), "devprof features: spec columns -> features, linear_features",
                {"devprof.kind": "features", "devprof.spec_columns": json.dumps(list(COLUMNS))})
    (out / "features.onnx").write_bytes(fm.SerializeToString())
    written.append(out / "features.onnx")
    (out / "index.json").write_text(json.dumps({"features": list(FEATURES), "linear_features": list(LINEAR_TERMS),
                                                "kernel_geometry": geometry, "output": "latency_ms",
                                                "spec_columns": list(COLUMNS), "spec_codes": spec_codes(),
                                                "groups": index}, indent=1) + "\n")
    return written


def spec_codes() -> dict[str, Any]:
    """How a caller outside Python fills the ``spec`` input's coded columns (index.json)."""
    from predictors.spec import ACTIVATIONS, DTYPES, OPS, SCHEMES
    from predictors.spectable import canon, str_hash

    return {"op": {o: i for i, o in enumerate(OPS)}, "scheme": {x: i for i, x in enumerate(SCHEMES)},
            "dtype": {x: i for i, x in enumerate(DTYPES)}, "activation": {x: i for i, x in enumerate(ACTIVATIONS)},
            "bias": {"false": 0, "true": 1},
            "attrs": {"{}": str_hash(canon({})), "note": "48-bit hash of the canonical JSON of a spec's attrs "
                      "(predictors.spectable.str_hash); plain kernels have none: the value given for {}"},
            "sparsity_params": {"{}": str_hash(canon({})), "note": "as attrs; the features read p1 and p2 instead"},
            "p1": "block rows (block, bcr), n (nm), pattern library size (pattern), else 0",
            "p2": "block columns (block, bcr), m (nm), pattern connectivity share (pattern), else 0",
            "derived": "out_h, out_w, flops (dense-equivalent), params: as KernelSpec computes them"}


def with_spec_inputs(regressor, geometry: Mapping[str, int]):
    """One graph from the spec columns to milliseconds: the features graph joined in front of
    `regressor` (its ``features`` / ``linear_features`` inputs fed by the features graph; the
    features graph's own names all start with ``ff_``, so nothing collides)."""
    from onnx import checker, compose

    from predictors.spectable import COLUMNS

    from .onnx_features import features_graph

    feats = _model(features_graph(**geometry), "features", {})
    used = [i.name for i in regressor.graph.input]
    merged = compose.merge_models(feats, regressor, io_map=[(n, n) for n in used],
                                  outputs=[o.name for o in regressor.graph.output])
    merged.graph.name = regressor.graph.name + "-spec"
    merged.doc_string = regressor.doc_string + " (input: spec columns, devprof.spec_columns)"
    del merged.metadata_props[:]
    for k, v in [(m.key, m.value) for m in regressor.metadata_props] + [("devprof.spec_columns",
                                                                          json.dumps(list(COLUMNS)))]:
        m = merged.metadata_props.add()
        m.key, m.value = k, v
    checker.check_model(merged)
    return merged


def ort_session(path_or_model: Any):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    data = path_or_model.SerializeToString() if hasattr(path_or_model, "SerializeToString") else \
        Path(path_or_model).read_bytes()
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
