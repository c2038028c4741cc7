"""A small evolutionary architecture search over an MBConv space, the way NAS front ends use devprof.

Plain Python: the search itself needs only numpy and PyYAML (for the OFA-style latency table) or
onnxruntime (for the ONNX predictor). It never imports devprof; devprof only *produces* its inputs:

    # 1. describe the space for devprof and measure every block of it on this machine
    python examples/evolution_search.py --write-space space.toml
    devprof profile --space space.toml -o space-data          # -> space-data/example-mbconv.yaml

    # 2. search with the OFA-style table (latency of a network = sum of its blocks)
    python examples/evolution_search.py --table space-data/example-mbconv.yaml

    # 3. search with a predictor learned from whole-model timings, exported as ONNX
    devprof fit-predictor --from-models timings.jsonl -o bundles
    devprof export-table -b bundles/<device>/<runtime> -f onnx -o lt.onnx
    python examples/evolution_search.py --onnx lt.onnx [--compare-bundle bundles/<device>/<runtime>]

With --compare-bundle the same search also runs with devprof's Python predictor
(devprof.from_models.load_model, imported only for this comparison) and the script checks that
both give the same top candidates in the same order.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

# ---- the search space (what the front end owns) --------------------------------------------------
RES = 32
STEM = 8
STAGES = [(16, 2, 2), (24, 2, 2), (32, 2, 2)]  # (channels, depth, stride of the first block)
EXPAND = (3, 6)
KERNEL = (3, 5)


def make_divisible(v: float, d: int = 8) -> int:
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


def shape(t) -> str:
    return "x".join(str(int(x)) for x in t)


def positions() -> list[dict]:
    """Each position: name and its choices; a choice is a block dict (type, shapes, params) or None (skip)."""
    h = (RES + 1) // 2
    out = [{"name": "first_conv", "choices": [{"type": "Conv", "input": [RES, RES, 3], "output": [h, h, STEM]}]}]
    c = STEM
    for si, (cout, depth, stride) in enumerate(STAGES):
        for j in range(depth):
            s = stride if j == 0 else 1
            ho = (h - 1) // s + 1
            idskip = int(s == 1 and c == cout)
            ch = [{"type": "expanded_conv", "input": [h, h, c], "output": [ho, ho, cout],
                   "expand": make_divisible(c * e), "kernel": k, "stride": s, "idskip": idskip, "se": 0, "hs": 0}
                  for e in EXPAND for k in KERNEL]
            if j > 0:
                ch.append(None)  # depth choice: leave the block out
            out.append({"name": f"stage{si + 1}.{j}", "choices": ch})
            h, c = ho, cout
    return out


def block_key(b: dict) -> str:
    """The OFA/ProxylessNAS table key of a block (as their latency tables are keyed)."""
    parts = [b["type"], f"input:{shape(b['input'])}", f"output:{shape(b['output'])}"]
    if b["type"] == "expanded_conv":
        parts += [f"expand:{b['expand']}", f"kernel:{b['kernel']}", f"stride:{b['stride']}",
                  f"idskip:{b['idskip']}", f"se:{b['se']}", f"hs:{b['hs']}"]
    return "-".join(parts)


def write_space(path: Path) -> None:
    """The space in devprof's space-file format (TOML), every choice explicit."""
    lines = ['[space]', 'name = "example-mbconv"', 'style = "ofa"', 'format = "ofa-yaml"', ""]
    for p in positions():
        blocks = []
        for b in p["choices"]:
            if b is None:
                prev = p["choices"][0]
                blocks.append(f'{{ type = "skip", input = {prev["input"]}, output = {prev["input"]} }}')
            else:
                fields = ", ".join(f"{k} = {json.dumps(v)}" for k, v in b.items())
                blocks.append("{ " + fields + " }")
        lines += ["[[position]]", f'name = "{p["name"]}"', "blocks = [", *[f"  {b}," for b in blocks], "]", ""]
    path.write_text("\n".join(lines))


# ---- latency backends (a network is a tuple of choice indices) ------------------------------------
def arch_blocks(pos: list[dict], arch: tuple) -> list[tuple[str, dict]]:
    return [(p["name"], p["choices"][c]) for p, c in zip(pos, arch) if p["choices"][c] is not None]


class YamlTable:
    """OFA-style: latency = sum of the table's block means (ms)."""

    def __init__(self, path: Path) -> None:
        import yaml

        self.lut = yaml.safe_load(path.read_text())

    def __call__(self, pos, archs) -> np.ndarray:
        return np.array([sum(self.lut[block_key(b)]["mean"] for _, b in arch_blocks(pos, a)) for a in archs])


class OnnxPredictor:
    """A devprof layer-table predictor exported as ONNX: features = (position/block) counts, then
    adjacent-pair counts, in the order of the sidecar features.json; output latency_ms."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        meta = json.loads(path.with_suffix(".features.json").read_text())
        self.index = {k: i for i, k in enumerate(meta["layer_ids"])}
        self.pairs = {tuple(p): len(self.index) + i for i, p in enumerate(meta["pairs"])}
        self.width = len(self.index) + len(self.pairs)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        self.sess = ort.InferenceSession(path.read_bytes(), so, providers=["CPUExecutionProvider"])

    def __call__(self, pos, archs) -> np.ndarray:
        X = np.zeros((len(archs), self.width))
        for r, a in enumerate(archs):
            ids = [f"{n}/{block_key(b)}" for n, b in arch_blocks(pos, a)]
            for k in ids:
                if k in self.index:
                    X[r, self.index[k]] += 1
            for pair in zip(ids[:-1], ids[1:]):
                j = self.pairs.get(pair)
                if j is not None:
                    X[r, j] += 1
        return self.sess.run(None, {"features": X})[0][:, 0]


class DevprofPredictor:
    """devprof's Python predictor of a from-models bundle (only for the comparison)."""

    def __init__(self, bundle: Path) -> None:
        from devprof.from_models import load_model

        self.model = load_model(bundle)

    def __call__(self, pos, archs) -> np.ndarray:
        return self.model.predict([[f"{n}/{block_key(b)}" for n, b in arch_blocks(pos, a)] for a in archs]) / 1000.0


# ---- the search -----------------------------------------------------------------------------------
def score(pos, arch) -> float:
    """A stand-in for accuracy (a real front end trains or uses an accuracy predictor): wider and
    larger-kernel, deeper networks score higher."""
    return sum(math.log2(b["expand"] * b["kernel"] ** 2) if b["type"] == "expanded_conv" else 0.0
               for _, b in arch_blocks(pos, arch))


def evolve(latency, budget_ms: float | None = None, population: int = 32, generations: int = 15, seed: int = 0,
           top: int = 5) -> tuple[list[tuple], dict, float]:
    pos = positions()
    rng = np.random.default_rng(seed)
    sizes = [len(p["choices"]) for p in pos]
    sample = lambda: tuple(int(rng.integers(s)) for s in sizes)  # noqa: E731
    cache: dict[tuple, float] = {}

    def lat(archs):
        todo = [a for a in dict.fromkeys(archs) if a not in cache]
        if todo:
            for a, v in zip(todo, latency(pos, todo)):
                cache[a] = float(v)
        return [cache[a] for a in archs]

    pop = [sample() for _ in range(population)]
    probe = [sample() for _ in range(64)]  # drawn either way, so every backend sees the same random stream
    if budget_ms is None:  # the median latency of random networks: a budget that bites
        budget_ms = float(np.median(lat(probe)))

    def fitness(a):
        return (lat([a])[0] <= budget_ms, score(pos, a))

    for _ in range(generations):
        lat(pop)
        ranked = sorted(dict.fromkeys(pop), key=lambda a: (*fitness(a), a), reverse=True)
        parents = ranked[: max(2, population // 4)]
        children = []
        while len(children) < population - len(parents):
            a, b = parents[rng.integers(len(parents))], parents[rng.integers(len(parents))]
            child = tuple(x if rng.random() < 0.5 else y for x, y in zip(a, b))
            child = tuple(int(rng.integers(s)) if rng.random() < 0.15 else c for c, s in zip(child, sizes))
            children.append(child)
        pop = parents + children
    lat(pop)
    feasible = [a for a in dict.fromkeys(pop) if lat([a])[0] <= budget_ms]
    best = sorted(feasible, key=lambda a: (-score(pos, a), lat([a])[0], a))[:top]
    return best, {a: cache[a] for a in best}, budget_ms


def show(title: str, best, lats, pos) -> None:
    print(title)
    for i, a in enumerate(best):
        print(f"  {i + 1}. {a}  score {score(pos, a):6.2f}  latency {lats[a]:.4f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description="evolutionary search over an MBConv space with a latency table")
    ap.add_argument("--write-space", type=Path, help="write the space for `devprof profile --space` and exit")
    ap.add_argument("--table", type=Path, help="OFA-style YAML latency table (devprof profile --space)")
    ap.add_argument("--onnx", type=Path, help="layer-table predictor as ONNX (devprof export-table -f onnx)")
    ap.add_argument("--compare-bundle", type=Path, help="also search with devprof's Python predictor of this "
                                                        "from-models bundle and compare the top candidates")
    ap.add_argument("--budget-ms", type=float, default=None)
    ap.add_argument("--generations", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.write_space:
        write_space(args.write_space)
        print(f"space written: {args.write_space}")
        return 0
    pos = positions()
    if args.table:
        best, lats, budget = evolve(YamlTable(args.table), args.budget_ms, generations=args.generations, seed=args.seed)
        show(f"top candidates, OFA YAML table (budget {budget:.4f} ms):", best, lats, pos)
    if args.onnx:
        best, lats, budget = evolve(OnnxPredictor(args.onnx), args.budget_ms, generations=args.generations,
                                    seed=args.seed)
        show(f"top candidates, ONNX predictor (budget {budget:.4f} ms):", best, lats, pos)
        if args.compare_bundle:
            py = DevprofPredictor(args.compare_bundle)
            best2, lats2, _ = evolve(py, budget, generations=args.generations, seed=args.seed)
            show("top candidates, devprof Python predictor (same budget):", best2, lats2, pos)
            order_py = sorted(best, key=lambda a: (py(pos, [a])[0], a))
            order_onnx = sorted(best, key=lambda a: (lats[a], a))
            same = best == best2 and order_py == order_onnx
            worst = max(abs(lats[a] - lats2[a]) / lats2[a] for a in best) if best == best2 else float("nan")
            print(f"same top candidates and ranking (ONNX vs Python predictor): {'yes' if same else 'NO'} "
                  f"(largest latency difference {worst:.1e} relative)")
            return 0 if same else 1
    if not (args.table or args.onnx):
        ap.error("give --table or --onnx (or --write-space)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
