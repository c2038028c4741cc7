"""Seeded variants within each family (widths, kernel sizes, expansion ratios, depths), as nn-Meter
built its model benchmark: the same generator with the same seed gives the same models anywhere.

`variants(family, count, seed, res)` returns ``[(name, config)]``; `expand_entry` turns a suite's
``[[model]]`` table into ``[(name, onnx.ModelProto)]`` for `devprof.model_profiling.profile`.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from . import bert
from .builders import FAMILIES, build, config_hash, family, make_div, reference_config

MBNETS = ("mobilenetv2", "mobilenetv3", "efficientnet_b0", "mnasnet", "proxylessnas", "fbnet")


def _pick(rng: np.random.Generator, xs: list) -> Any:
    return xs[int(rng.integers(len(xs)))]


def _mbnet(ref: dict, rng: np.random.Generator) -> dict:
    cfg = copy.deepcopy(ref)
    width = _pick(rng, [0.5, 0.75, 1.0, 1.25])
    cfg["stem"][0] = make_div(cfg["stem"][0] * width)
    cin = cfg["stem"][0]
    blocks, stage_scale, prev_ref = [], 1.0, None
    for exp, cout, k, s, se, act in ref["blocks"]:
        if cout != prev_ref:  # a new stage: new width, and its first block always stays
            stage_scale, prev_ref, first = _pick(rng, [0.75, 1.0, 1.25]) * width, cout, True
        else:
            first = False
        if not first and rng.random() < 0.25:  # depth: drop a repeated (stride 1) block
            continue
        c = make_div(cout * stage_scale)
        e = 1 if exp == cin and len(blocks) == 0 else _pick(rng, [3, 4, 6])
        x = cin if e == 1 else make_div(cin * e)
        kk = _pick(rng, [3, 5, 7])
        se_c = max(8, make_div(x / 4)) if se else 0
        blocks.append([x, c, kk, s, se_c, act])
        cin = c
    cfg["blocks"] = blocks
    cfg["head"][0] = make_div(cfg["head"][0] * max(width, 1.0))
    return cfg


def _sample(name: str, ref: dict, rng: np.random.Generator) -> dict:
    if name in MBNETS:
        return _mbnet(ref, rng)
    if name in bert.SIZES:
        return bert.sample(ref, rng)
    cfg = copy.deepcopy(ref)
    if name == "mobilenetv1":
        w = _pick(rng, [0.25, 0.5, 0.75, 1.0])
        cfg["stem"] = make_div(32 * w)
        cfg["layers"] = [[make_div(c * w * _pick(rng, [0.75, 1.0, 1.25])), s] for c, s in ref["layers"]
                         if s == 2 or rng.random() > 0.2]
        cfg["k"] = _pick(rng, [3, 5])
    elif name in ("resnet18", "resnet50"):
        cfg["widths"] = [make_div(c * _pick(rng, [0.5, 0.75, 1.0])) for c in ref["widths"]]
        cfg["layers"] = [max(1, d + int(rng.integers(-1, 2))) for d in ref["layers"]]
        cfg["stem"] = make_div(ref["stem"] * _pick(rng, [0.5, 1.0]))
    elif name == "shufflenetv2":
        w = _pick(rng, [0.5, 0.75, 1.0, 1.5])
        cfg["stages"] = [make_div(c * w, 4) for c in (116, 232, 464)]
        cfg["repeats"] = [max(1, d + int(rng.integers(-2, 2))) for d in ref["repeats"]]
        cfg["k"] = _pick(rng, [3, 5, 7])
    elif name == "squeezenet":
        w = _pick(rng, [0.5, 0.75, 1.0, 1.25])
        cfg["fires"] = [f if f == "pool" else [make_div(f[0] * w), make_div(f[1] * w * _pick(rng, [0.75, 1.0, 1.25]))]
                        for f in ref["fires"]]
    elif name == "fsrcnn":
        cfg.update(d=_pick(rng, [32, 48, 56]), s=_pick(rng, [12, 16]), m=int(rng.integers(2, 5)))
    elif name == "espcn":
        cfg.update(f1=_pick(rng, [32, 48, 64]), f2=_pick(rng, [16, 32]))
    elif name == "edsr":
        cfg.update(feats=_pick(rng, [16, 24, 32]), blocks=int(rng.integers(2, 9)))
    elif name == "wdsr":
        cfg.update(feats=_pick(rng, [16, 24, 32]), expansion=_pick(rng, [2, 4]), blocks=int(rng.integers(2, 9)))
    return cfg


def variants(name: str, count: int, seed: int = 0, res: Any = None, reference: bool = False) -> list[tuple[str, dict]]:
    """`count` seeded configs of family `name` (the reference architecture first if `reference`).

    `res` is one resolution or a list to draw from (classification: side; SR: [h, w] of the LR frame).
    """
    fam = family(name)
    rng = np.random.default_rng([seed, sorted(FAMILIES).index(fam.name)])
    out: list[tuple[str, dict]] = []
    if fam.kind == "sr":  # [h, w] is one resolution; [[h, w], ...] a list to draw from
        choices = res if isinstance(res, list) and res and isinstance(res[0], list) else [res]
    else:
        choices = res if isinstance(res, list) and res else [res]
    for i in range(count):
        r = _pick(rng, choices)
        ref = reference_config(fam.name, r)
        cfg = ref if (reference and i == 0) else _sample(fam.name, ref, rng)
        tag = "ref" if (reference and i == 0) else f"v{seed}.{i}"
        res_tag = "x".join(map(str, cfg["res"]))
        out.append((f"{fam.name}-{tag}-{res_tag}-{config_hash(cfg)[:6]}", cfg))
    return out


def expand_entry(entry: dict, where: str = "suite") -> list[tuple[str, Any]]:
    """A suite's ``[[model]]`` table -> ``[(name, onnx.ModelProto or .tflite path)]``.

    Keys: ``family`` with ``variants`` (count, default 1), ``seed`` (0), ``res`` (one or a list),
    ``reference`` (true: the first is the published architecture), ``max_gmacs`` (skip variants
    above this many GMACs: keeps a suite's run time bounded); or ``path`` to a model file. Both
    take ``dtype`` ("fp32" or "int8": quantized statically, `devprof.models.quantize`), which the
    caller applies.
    """
    if "path" in entry:
        p = Path(entry["path"])
        return [(entry.get("name") or p.stem, p)]
    unknown = set(entry) - {"family", "variants", "seed", "res", "reference", "name", "max_gmacs", "dtype"}
    if unknown:
        raise UsageError(f"{where}: model entry has unknown key(s) {', '.join(sorted(unknown))}")
    try:
        count = int(entry.get("variants", 1))
        seed = int(entry.get("seed", 0))
    except (TypeError, ValueError):
        raise UsageError(f"{where}: model entry variants/seed must be integers") from None
    if count < 1:
        raise UsageError(f"{where}: model entry variants must be >= 1")
    budget = entry.get("max_gmacs")
    if budget is not None and not isinstance(budget, (int, float)):
        raise UsageError(f"{where}: model entry max_gmacs must be a number")
    out = []
    # with a compute budget, draw more candidates and keep the first `count` that fit it
    pool = variants(str(entry["family"]), count if budget is None else 20 * count, seed, entry.get("res"),
                    bool(entry.get("reference", False)))
    seen: set[str] = set()
    for name, cfg in pool:
        if name.rsplit("-", 1)[-1] in seen:  # the same architecture drawn twice
            continue
        seen.add(name.rsplit("-", 1)[-1])
        m = build(cfg.get("name", entry["family"]), cfg, seed=seed)
        if budget is not None:
            from .walk import walk

            if sum(s.macs for s in walk(m).specs) > float(budget) * 1e9:
                continue
        out.append((name, m))
        if len(out) == count:
            break
    return out
