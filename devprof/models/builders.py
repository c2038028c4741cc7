"""Model families built by devprof as ONNX graphs: random weights, seeded, no downloads.

Every family is a function ``config -> onnx.ModelProto``; its config is a plain JSON-able dict
(so the variant generator can sample it and records can name it). `FAMILIES` maps the family
name to its builder and its reference configuration (the published architecture).
``build(family, config=None, seed=0, res=None)`` is the one entry point.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

import onnx

from ..errors import UsageError
from ..records import content_id
from . import bert
from .dsl import Net, T


def make_div(v: float, d: int = 8) -> int:
    """Round channels to a multiple of `d` (never down by more than 10%), as MobileNet does."""
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


# ---- classification heads and blocks ---------------------------------------------------------
def _classifier(n: Net, x: T, classes: int, hidden: int = 0, act: str = "relu") -> T:
    with n.scope("classifier"):
        x = n.flatten(n.gap(x))
        if hidden:
            x = n.act(n.fc(x, hidden), act)
        return n.fc(x, classes)


def _mbconv(n: Net, x: T, exp: int, cout: int, k: int, s: int, se: int, act: str, gate: str) -> T:
    """Inverted residual (MobileNetV2/V3, EfficientNet, MnasNet, ProxylessNAS, FBNet)."""
    y = x
    if exp != x.c:
        y = n.conv(y, exp, k=1, act=act, base="expand")
    y = n.dw(y, k=k, s=s, act=act)
    if se:
        y = n.se(y, se, inner_act="relu" if gate == "hsigmoid" else act, gate=gate)
    y = n.conv(y, cout, k=1, act="none", base="project")
    return n.add(y, x) if s == 1 and x.c == cout else y


def mbnet(cfg: dict) -> onnx.ModelProto:
    """Generic MBConv network: stem conv, a list of blocks, 1x1 head conv, classifier.

    ``blocks``: ``[exp_channels, cout, k, stride, se_channels, act]`` each (se 0 = none).
    """
    n = Net(cfg["name"], cfg.get("seed", 0))
    h, w = cfg["res"]
    x = n.input(3, h, w)
    stem_c, stem_act = cfg["stem"]
    with n.scope("stem"):
        x = n.conv(x, stem_c, k=3, s=2, act=stem_act)
    for i, (exp, cout, k, s, se, act) in enumerate(cfg["blocks"]):
        with n.scope(f"blocks.{i}"):
            x = _mbconv(n, x, exp, cout, k, s, se, act, cfg.get("gate", "sigmoid"))
    head_c, head_act = cfg["head"]
    if head_c:
        with n.scope("head"):
            x = n.conv(x, head_c, k=1, act=head_act)
    return n.model(_classifier(n, x, cfg.get("classes", 1000), cfg.get("hidden", 0), head_act))


def _ratio_blocks(cin: int, stages: list, width: float = 1.0, se_ratio: float = 0.0,
                  se_of_input: bool = True) -> list:
    """Expand stage rows ``[e, c, n, s, k, se(bool), act]`` into per-block rows for `mbnet`."""
    out = []
    for e, c, reps, s, k, se, act in stages:
        cout = make_div(c * width)
        for j in range(reps):
            exp = cin if e == 1 else make_div(cin * e)
            se_c = max(1, int((cin if se_of_input else exp) * se_ratio)) if se else 0
            out.append([exp, cout, k, s if j == 0 else 1, se_c, act])
            cin = cout
    return out


def mobilenetv2(width: float = 1.0, res: int = 224, kernels: list | None = None,
                expansions: list | None = None, depths: list | None = None) -> dict:
    stages = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
              [6, 320, 1, 1]]
    rows = []
    for i, (e, c, d, s) in enumerate(stages):
        rows.append([(expansions or [None] * 7)[i] or e, c, (depths or [None] * 7)[i] or d, s,
                     (kernels or [3] * 7)[i], False, "relu6"])
    stem = make_div(32 * width)
    return {"name": "mobilenetv2", "res": [res, res], "stem": [stem, "relu6"],
            "blocks": _ratio_blocks(stem, rows, width), "head": [make_div(1280 * max(1.0, width)), "relu6"]}


def mobilenetv3(width: float = 1.0, res: int = 224) -> dict:
    rows = [(3, 16, 16, 0, "relu", 1), (3, 64, 24, 0, "relu", 2), (3, 72, 24, 0, "relu", 1),
            (5, 72, 40, 1, "relu", 2), (5, 120, 40, 1, "relu", 1), (5, 120, 40, 1, "relu", 1),
            (3, 240, 80, 0, "hswish", 2), (3, 200, 80, 0, "hswish", 1), (3, 184, 80, 0, "hswish", 1),
            (3, 184, 80, 0, "hswish", 1), (3, 480, 112, 1, "hswish", 1), (3, 672, 112, 1, "hswish", 1),
            (5, 672, 160, 1, "hswish", 2), (5, 960, 160, 1, "hswish", 1), (5, 960, 160, 1, "hswish", 1)]
    blocks = []
    for k, e, c, se, act, s in rows:
        exp = make_div(e * width)
        blocks.append([exp, make_div(c * width), k, s, make_div(exp / 4) if se else 0, act])
    return {"name": "mobilenetv3", "res": [res, res], "stem": [make_div(16 * width), "hswish"], "blocks": blocks,
            "head": [make_div(960 * width), "hswish"], "hidden": 1280, "gate": "hsigmoid"}


def efficientnet_b0(width: float = 1.0, res: int = 224) -> dict:
    rows = [[1, 16, 1, 1, 3, True, "swish"], [6, 24, 2, 2, 3, True, "swish"], [6, 40, 2, 2, 5, True, "swish"],
            [6, 80, 3, 2, 3, True, "swish"], [6, 112, 3, 1, 5, True, "swish"], [6, 192, 4, 2, 5, True, "swish"],
            [6, 320, 1, 1, 3, True, "swish"]]
    stem = make_div(32 * width)
    return {"name": "efficientnet_b0", "res": [res, res], "stem": [stem, "swish"],
            "blocks": _ratio_blocks(stem, rows, width, se_ratio=0.25), "head": [make_div(1280 * width), "swish"]}


def mnasnet_a1(width: float = 1.0, res: int = 224) -> dict:
    rows = [[1, 16, 1, 1, 3, False, "relu"], [6, 24, 2, 2, 3, False, "relu"], [3, 40, 3, 2, 5, True, "relu"],
            [6, 80, 4, 2, 3, False, "relu"], [6, 112, 2, 1, 3, True, "relu"], [6, 160, 3, 2, 5, True, "relu"],
            [6, 320, 1, 1, 3, False, "relu"]]
    stem = make_div(32 * width)
    return {"name": "mnasnet", "res": [res, res], "stem": [stem, "relu"],
            "blocks": _ratio_blocks(stem, rows, width, se_ratio=0.25, se_of_input=False), "head": [1280, "relu"]}


def proxylessnas_mobile(width: float = 1.0, res: int = 224) -> dict:
    """ProxylessNAS (mobile) style: per-block kernel 3/5/7 and expansion 3/6 choices."""
    per_block = [(1, 16, 3, 1), (3, 32, 5, 2), (3, 32, 3, 1), (3, 40, 7, 2), (3, 40, 3, 1), (3, 40, 5, 1),
                 (3, 40, 5, 1), (6, 80, 7, 2), (3, 80, 5, 1), (3, 80, 5, 1), (3, 80, 5, 1), (6, 96, 5, 1),
                 (3, 96, 5, 1), (3, 96, 5, 1), (3, 96, 5, 1), (6, 192, 7, 2), (6, 192, 7, 1), (3, 192, 7, 1),
                 (3, 192, 7, 1), (6, 320, 7, 1)]
    stem = make_div(32 * width)
    rows = [[e, c, 1, s, k, False, "relu6"] for e, c, k, s in per_block]
    return {"name": "proxylessnas", "res": [res, res], "stem": [stem, "relu6"],
            "blocks": _ratio_blocks(stem, rows, width), "head": [make_div(1280 * max(1.0, width)), "relu6"]}


def fbnet_a(width: float = 1.0, res: int = 224) -> dict:
    """FBNet style: relu, kernel 3/5, expansion 1/3/6 per block (FBNet-A-like)."""
    per_block = [(1, 16, 3, 1), (3, 24, 3, 2), (1, 24, 3, 1), (3, 32, 5, 2), (3, 32, 3, 1), (1, 32, 5, 1),
                 (6, 64, 5, 2), (3, 64, 3, 1), (1, 64, 5, 1), (6, 112, 5, 1), (3, 112, 3, 1), (6, 112, 5, 1),
                 (6, 184, 5, 2), (3, 184, 5, 1), (6, 184, 5, 1), (6, 352, 3, 1)]
    stem = make_div(16 * width)
    rows = [[e, c, 1, s, k, False, "relu"] for e, c, k, s in per_block]
    return {"name": "fbnet", "res": [res, res], "stem": [stem, "relu"],
            "blocks": _ratio_blocks(stem, rows, width), "head": [1504, "relu"]}


def mobilenetv1_net(cfg: dict) -> onnx.ModelProto:
    n = Net(cfg["name"], cfg.get("seed", 0))
    x = n.input(3, *cfg["res"])
    with n.scope("stem"):
        x = n.conv(x, cfg["stem"], k=3, s=2)
    for i, (c, s) in enumerate(cfg["layers"]):
        with n.scope(f"layers.{i}"):
            x = n.conv(n.dw(x, k=cfg.get("k", 3), s=s), c, k=1, base="pw")
    return n.model(_classifier(n, x, cfg.get("classes", 1000)))


def mobilenetv1(width: float = 1.0, res: int = 224) -> dict:
    rows = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    return {"name": "mobilenetv1", "res": [res, res], "stem": make_div(32 * width),
            "layers": [[make_div(c * width), s] for c, s in rows]}


def resnet_net(cfg: dict) -> onnx.ModelProto:
    n = Net(cfg["name"], cfg.get("seed", 0))
    x = n.input(3, *cfg["res"])
    with n.scope("stem"):
        x = n.maxpool(n.conv(x, cfg["stem"], k=7, s=2))
    bottleneck = cfg["block"] == "bottleneck"
    for si, (reps, width) in enumerate(zip(cfg["layers"], cfg["widths"])):
        for bi in range(reps):
            s = 2 if bi == 0 and si > 0 else 1
            with n.scope(f"layer{si + 1}.{bi}"):
                cout = width * 4 if bottleneck else width
                if bottleneck:
                    y = n.conv(x, width, k=1)
                    y = n.conv(y, width, k=3, s=s)
                    y = n.conv(y, cout, k=1, act="none")
                else:
                    y = n.conv(x, width, k=3, s=s)
                    y = n.conv(y, width, k=3, act="none")
                sc = n.conv(x, cout, k=1, s=s, act="none", base="downsample") if (s != 1 or x.c != cout) else x
                x = n.act(n.add(y, sc), "relu")
    return n.model(_classifier(n, x, cfg.get("classes", 1000)))


def resnet18(width: float = 1.0, res: int = 224) -> dict:
    return {"name": "resnet18", "res": [res, res], "block": "basic", "layers": [2, 2, 2, 2], "stem": make_div(64 * width),
            "widths": [make_div(c * width) for c in (64, 128, 256, 512)]}


def resnet50(width: float = 1.0, res: int = 224) -> dict:
    return {"name": "resnet50", "res": [res, res], "block": "bottleneck", "layers": [3, 4, 6, 3],
            "stem": make_div(64 * width), "widths": [make_div(c * width) for c in (64, 128, 256, 512)]}


def shufflenet_net(cfg: dict) -> onnx.ModelProto:
    n = Net(cfg["name"], cfg.get("seed", 0))
    x = n.input(3, *cfg["res"])
    k = cfg.get("k", 3)
    with n.scope("stem"):
        x = n.maxpool(n.conv(x, cfg["stem"], k=3, s=2))
    for si, (c, reps) in enumerate(zip(cfg["stages"], cfg["repeats"])):
        for bi in range(reps):
            with n.scope(f"stage{si + 2}.{bi}"):
                half = c // 2
                if bi == 0:  # stride 2: both branches see the whole input
                    with n.scope("branch1"):
                        a = n.conv(n.dw(x, k=k, s=2, act="none"), half, k=1)
                    b = x
                    s = 2
                else:
                    a, b = n.split2(x)
                    s = 1
                with n.scope("branch2"):
                    b = n.conv(b, half, k=1)
                    b = n.dw(b, k=k, s=s, act="none")
                    b = n.conv(b, half, k=1)
                x = n.shuffle(n.concat([a, b]))
    with n.scope("conv5"):
        x = n.conv(x, cfg["last"], k=1)
    return n.model(_classifier(n, x, cfg.get("classes", 1000)))


def shufflenetv2(width: float = 1.0, res: int = 224) -> dict:
    stages = {0.5: [48, 96, 192], 1.0: [116, 232, 464], 1.5: [176, 352, 704], 2.0: [244, 488, 976]}
    ch = stages.get(width) or [make_div(c * width, 4) for c in (116, 232, 464)]
    return {"name": "shufflenetv2", "res": [res, res], "stem": 24, "stages": ch, "repeats": [4, 8, 4],
            "last": 2048 if width >= 2.0 else 1024}


def squeezenet_net(cfg: dict) -> onnx.ModelProto:
    n = Net(cfg["name"], cfg.get("seed", 0))
    x = n.input(3, *cfg["res"])
    with n.scope("stem"):
        x = n.maxpool(n.conv(x, cfg["stem"], k=3, s=2, bn=False, p=0), k=3, s=2, p=0)
    for i, f in enumerate(cfg["fires"]):
        if f == "pool":
            x = n.maxpool(x, k=3, s=2, p=0)
            continue
        sq, ex = f
        with n.scope(f"fire{i}"):
            s = n.conv(x, sq, k=1, bn=False, base="squeeze")
            x = n.concat([n.conv(s, ex, k=1, bn=False, base="expand1x1"),
                          n.conv(s, ex, k=3, bn=False, base="expand3x3")])
    with n.scope("classifier"):
        x = n.conv(x, cfg.get("classes", 1000), k=1, bn=False)
        return n.model(n.flatten(n.gap(x)))


def squeezenet(width: float = 1.0, res: int = 224) -> dict:
    fires = [(16, 64), (16, 64), "pool", (32, 128), (32, 128), "pool", (48, 192), (48, 192), (64, 256), (64, 256)]
    return {"name": "squeezenet", "res": [res, res], "stem": make_div(64 * width),
            "fires": [f if f == "pool" else [make_div(f[0] * width), make_div(f[1] * width)] for f in fires]}


# ---- super-resolution nets (input = the low-resolution frame, 360p by default) -------------------
def fsrcnn_net(cfg: dict) -> onnx.ModelProto:
    n = Net(cfg["name"], cfg.get("seed", 0))
    x = n.input(cfg.get("colors", 1), *cfg["res"])
    r = cfg["scale"]
    x = n.conv(x, cfg["d"], k=5, act="prelu", bn=False, base="feature")
    x = n.conv(x, cfg["s"], k=1, act="prelu", bn=False, base="shrink")
    for i in range(cfg["m"]):
        x = n.conv(x, cfg["s"], k=3, act="prelu", bn=False, base=f"map{i}")
    x = n.conv(x, cfg["d"], k=1, act="prelu", bn=False, base="expand")
    return n.model(n.deconv(x, cfg.get("colors", 1), k=9, s=r, p=4, op=r - 1))


def espcn_net(cfg: dict) -> onnx.ModelProto:
    n = Net(cfg["name"], cfg.get("seed", 0))
    c, r = cfg.get("colors", 1), cfg["scale"]
    x = n.input(c, *cfg["res"])
    x = n.conv(x, cfg["f1"], k=5, bn=False)
    x = n.conv(x, cfg["f2"], k=3, bn=False)
    x = n.conv(x, c * r * r, k=3, act="none", bn=False)
    return n.model(n.depth_to_space(x, r))


def edsr_net(cfg: dict) -> onnx.ModelProto:
    n = Net(cfg["name"], cfg.get("seed", 0))
    c, r, f = cfg.get("colors", 3), cfg["scale"], cfg["feats"]
    x = n.input(c, *cfg["res"])
    head = n.conv(x, f, k=3, act="none", bn=False, base="head")
    y = head
    for i in range(cfg["blocks"]):
        with n.scope(f"body.{i}"):
            z = n.conv(n.conv(y, f, k=3, bn=False), f, k=3, act="none", bn=False, gain=0.1)
            if cfg.get("res_scale", 1.0) != 1.0:
                z = n.scale(z, cfg["res_scale"])
            y = n.add(z, y)
    y = n.add(n.conv(y, f, k=3, act="none", bn=False, base="body_end"), head)
    y = n.depth_to_space(n.conv(y, f * r * r, k=3, act="none", bn=False, base="upsample"), r)
    return n.model(n.conv(y, c, k=3, act="none", bn=False, base="tail"))


def wdsr_net(cfg: dict) -> onnx.ModelProto:
    """WDSR-A: wide activation (expansion before ReLU), pixel-shuffle tail plus a 5x5 skip branch."""
    n = Net(cfg["name"], cfg.get("seed", 0))
    c, r, f = cfg.get("colors", 3), cfg["scale"], cfg["feats"]
    x = n.input(c, *cfg["res"])
    y = n.conv(x, f, k=3, act="none", bn=False, base="head")
    for i in range(cfg["blocks"]):
        with n.scope(f"body.{i}"):
            z = n.conv(n.conv(y, f * cfg["expansion"], k=3, bn=False), f, k=3, act="none", bn=False, gain=0.1)
            y = n.add(z, y)
    y = n.depth_to_space(n.conv(y, c * r * r, k=3, act="none", bn=False, base="tail"), r)
    s = n.depth_to_space(n.conv(x, c * r * r, k=5, act="none", bn=False, base="skip"), r)
    return n.model(n.add(y, s))


def fsrcnn(res: tuple = (360, 640)) -> dict:
    return {"name": "fsrcnn", "res": list(res), "scale": 2, "d": 56, "s": 12, "m": 4, "colors": 1}


def espcn(res: tuple = (360, 640)) -> dict:
    return {"name": "espcn", "res": list(res), "scale": 2, "f1": 64, "f2": 32, "colors": 1}


def edsr_baseline(res: tuple = (360, 640)) -> dict:
    return {"name": "edsr", "res": list(res), "scale": 2, "feats": 64, "blocks": 16, "colors": 3}


def wdsr_a(res: tuple = (360, 640)) -> dict:
    return {"name": "wdsr", "res": list(res), "scale": 2, "feats": 32, "expansion": 4, "blocks": 8, "colors": 3}


# ---- registry ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Family:
    name: str
    net: Callable[[dict], onnx.ModelProto]  # config -> model
    reference: Callable[..., dict]  # the published architecture's config
    kind: str = "classification"  # or "sr", "transformer" (its `res` is the sequence length)


FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("mobilenetv1", mobilenetv1_net, mobilenetv1),
    Family("mobilenetv2", mbnet, mobilenetv2),
    Family("mobilenetv3", mbnet, mobilenetv3),
    Family("efficientnet_b0", mbnet, efficientnet_b0),
    Family("mnasnet", mbnet, mnasnet_a1),
    Family("proxylessnas", mbnet, proxylessnas_mobile),
    Family("fbnet", mbnet, fbnet_a),
    Family("resnet18", resnet_net, resnet18),
    Family("resnet50", resnet_net, resnet50),
    Family("shufflenetv2", shufflenet_net, shufflenetv2),
    Family("squeezenet", squeezenet_net, squeezenet),
    Family("fsrcnn", fsrcnn_net, fsrcnn, "sr"),
    Family("espcn", espcn_net, espcn, "sr"),
    Family("edsr", edsr_net, edsr_baseline, "sr"),
    Family("wdsr", wdsr_net, wdsr_a, "sr"),
    *[Family(size, bert.bert_net, (lambda size: lambda res=128: bert.reference(size, res))(size), "transformer")
      for size in bert.SIZES],
]}


def family(name: str) -> Family:
    f = FAMILIES.get(name.lower().replace("-", "_"))
    if f is None:
        raise UsageError(f"unknown model family {name!r} (known: {', '.join(FAMILIES)})")
    return f


#: Input sizes each kind of family is built at: (smallest, largest) side in pixels, or sequence
#: length. Below the smallest, a network's pooling leaves nothing to classify; above the largest,
#: the activations alone outgrow a phone's (and most hosts') memory, so the build would end in
#: MemoryError long after the user's typo.
RES_LIMITS = {"classification": (32, 2048), "sr": (8, 4096), "transformer": (1, 4096)}


def check_res(name: str, res: Any) -> None:
    """A one-line error, before anything is built, for a resolution family `name` cannot have."""
    fam = family(name)
    lo, hi = RES_LIMITS.get(fam.kind, RES_LIMITS["classification"])
    sides = list(res) if isinstance(res, (list, tuple)) else [res]
    what = "sequence length" if fam.kind == "transformer" else "resolution"
    if fam.kind != "sr" and len(sides) != 1:
        raise UsageError(f"{fam.name}: the {what} is one number (e.g. {fam.name}@{lo * 4 if lo > 1 else 128}), "
                         f"got {'x'.join(map(str, sides))}")
    if len(sides) not in (1, 2) or any(not isinstance(v, int) or isinstance(v, bool) for v in sides):
        raise UsageError(f"{fam.name}: bad {what} {res!r}")
    bad = [v for v in sides if not lo <= v <= hi]
    if bad:
        raise UsageError(f"{fam.name}@{'x'.join(map(str, sides))}: the {what} must be between {lo} and {hi}")


def reference_config(name: str, res: Any = None) -> dict:
    """The published architecture of family `name`, optionally at another input resolution."""
    fam = family(name)
    if res is None:
        return copy.deepcopy(fam.reference())
    check_res(name, res)
    if fam.kind == "sr":
        return fam.reference(res=tuple(res) if isinstance(res, (list, tuple)) else (res, res))
    return fam.reference(res=int(res))


def config_hash(cfg: dict) -> str:
    return content_id(cfg, 10)


def build(name: str, config: dict | None = None, seed: int = 0, res: Any = None) -> onnx.ModelProto:
    """Build family `name` from `config` (default: its reference architecture) with seeded weights."""
    fam = family(name)
    cfg = copy.deepcopy(config) if config is not None else reference_config(name, res)
    if res is not None and config is not None:
        check_res(name, res)
        cfg["res"] = list(res) if isinstance(res, (list, tuple)) else [int(res), int(res)]
    cfg.setdefault("name", fam.name)
    cfg["seed"] = seed
    m = fam.net(cfg)
    m.doc_string = f"devprof {fam.name} config {config_hash(cfg)}"
    meta = m.metadata_props.add()
    meta.key, meta.value = "devprof.family", fam.name
    meta = m.metadata_props.add()
    import json

    meta.key, meta.value = "devprof.config", json.dumps(cfg, sort_keys=True)
    return m
