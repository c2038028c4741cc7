"""A new device's bundle from a few measurements on it plus other devices' bundles
(`devprof fit-predictor --transfer-from SRC... DATA`), and which kernels to measure first
(`devprof profile --adaptive --transfer-from SRC...`).

The fitting is `predictors.transfer` (numpy); this module reads the inputs and writes bundles:

* **Whole-model sources** — from-models bundles (their `from_models.json` table), transfer
  bundles made by this module, or whole-model timings (a model-timings / nn-Meter file, or a
  dataset of `--model` runs, fitted here with `devprof.from_models.fit`). The target DATA is
  whole-model timings too. The result is a from-models bundle (`devprof.from_models.make_bundle`)
  whose table is the transferred one.
* **Kernel sources** — ordinary kernel bundles. The target DATA is a dataset with kernel records.
  The result is a kernel bundle: a lookup table of every kernel any source's table holds (the
  target's own measurements where it has them, the transfer model's estimate elsewhere) and, for
  misses, the regressors of the source that carries the most weight, rescaled per group.

Every transfer bundle's metadata (`metrics.transfer`) names its sources, how many target samples
it saw, its leave-one-out figures on them (and held-out figures on the target timings it was
not given, with `--samples`), and whether the samples overruled the sources' prior.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .errors import UsageError

MIN_SAMPLES = 3


@dataclass
class KernelSource:
    name: str
    path: Path
    predictor: Any  # predictors.Predictor


def _is_bundle(p: Path) -> bool:
    return p.is_dir() and (p / "metadata.json").is_file()


def _bundle_name(p: Path, meta: dict[str, Any]) -> str:
    loc = meta.get("location") or {}
    if loc.get("device") and loc.get("runtime"):
        return f"{loc['device']}/{loc['runtime']}"
    return str((meta.get("device") or {}).get("name") or p.name)


def load_sources(paths: Sequence[str | Path], device: str | None = None):
    """("table", [TableSource], {layer id: KernelSpec}) or ("kernel", [KernelSource], {})."""
    from predictors.bundle import read_metadata
    from predictors.transfer import TableSource

    from . import from_models as fm

    if not paths:
        raise UsageError("--transfer-from: give at least one source bundle or dataset")
    tables: list[TableSource] = []
    kernels: list[KernelSource] = []
    specs: dict[str, Any] = {}
    seen: dict[str, str] = {}

    def add_name(name: str, where: str) -> None:
        if name in seen:
            raise UsageError(f"duplicate source name {name!r} ({seen[name]} and {where})")
        seen[name] = where

    for raw in paths:
        p = Path(raw)
        if _is_bundle(p):
            meta = read_metadata(p)
            name = _bundle_name(p, meta)
            add_name(name, str(p))
            if "from_models.json" in (meta.get("files") or {}):
                lm = fm.load_model(p)
                tables.append(TableSource(name, lm.table(), float(lm.overhead_us)))
                specs.update(_bundle_specs(p, lm.keys))
            else:
                import predictors

                kernels.append(KernelSource(name, p, predictors.load(p)))
            continue
        if not p.exists():
            raise UsageError(f"source {p} not found")
        for ts in fm.read_timings(p, device):
            name = f"{ts.device.get('name') or 'device'}/{ts.runtime.get('key') or ts.runtime.get('name') or ''}"
            add_name(name, str(p))
            if len(ts.models) < 5:
                raise UsageError(f"source {p}: {len(ts.models)} models for {ts.device.get('name')}; need at least 5")
            lm = fm.fit(ts.models)
            tables.append(TableSource(name, lm.table(), float(lm.overhead_us)))
            for m in ts.models:
                specs.update(m.specs)
    if tables and kernels:
        raise UsageError("--transfer-from mixes kernel bundles with whole-model tables: a transfer uses one kind")
    return ("table", tables, specs) if tables else ("kernel", kernels, {})


def _bundle_specs(path: Path, keys: list[str]) -> dict[str, Any]:
    """Layer id -> KernelSpec from a from-models bundle's table (its rows follow the table's keys)."""
    from .records import KernelSpec

    try:
        import predictors

        lut = predictors.load(path).lut
        if len(lut) != len(keys) or "spec_json" not in lut:
            return {}
        out = {}
        for k, s in zip(keys, lut["spec_json"]):
            spec = KernelSpec.from_dict(json.loads(s))
            if spec.op != "other":
                out[k] = spec
        return out
    except (ValueError, TypeError, KeyError):
        return {}


def _pick(names: Sequence[str], k: int | None, seed: int) -> tuple[list[int], list[int]]:
    """The k samples used (a seeded hash order of their names: stable under reordering), the rest."""
    order = sorted(range(len(names)), key=lambda i: hashlib.sha256(f"{seed}:{names[i]}".encode()).hexdigest())
    if k is None:
        return order, []
    return order[:k], order[k:]


def _check_k(k: int | None, have: int) -> None:
    if k is not None and k < 1:
        raise UsageError(f"--samples must be at least 1, got {k}")
    if have < MIN_SAMPLES:
        raise UsageError(f"{have} target sample(s): transfer needs at least {MIN_SAMPLES}")


# ---- whole-model (table) transfer ------------------------------------------------------------------
def _group_of(specs: dict[str, Any]) -> Callable[[str], str]:
    from predictors.transfer import default_group

    def g(k: str) -> str:
        s = specs.get(k)
        return s.op if s is not None and s.op != "other" else default_group(k)

    return g


def _choice_text(ch: dict[str, Any]) -> str:
    """The cross-validated choice in words: which table was kept."""
    a = ch.get("transfer_weight")
    if ch.get("chosen") == "blend" and a is not None:
        return f"blend ({a:g} x penalised fit + {1 - a:g} x averaged sources)"
    return str(ch.get("chosen") or "penalised fit")


def transfer_models(sources, specs, data: str | Path, samples: int | None = None, seed: int = 0,
                    device: str | None = None, log: Callable[[str], None] = lambda s: None):
    """(bundle, TableTransfer, report dict) for whole-model target timings in DATA."""
    from predictors.metrics import summary
    from predictors.transfer import TransferError, fit_table

    from . import from_models as fm

    sets = fm.read_timings(data, device)
    if len(sets) != 1:
        raise UsageError(f"{data} holds timings of {len(sets)} devices: choose the target with --device")
    ts = sets[0]
    if samples is not None and samples < 1:
        raise UsageError(f"--samples must be at least 1, got {samples}")
    use, rest = _pick([m.name for m in ts.models], samples, seed)
    _check_k(samples, len(use))
    train = [ts.models[i] for i in use]
    test = [ts.models[i] for i in rest]
    allspecs = dict(specs)
    for m in ts.models:
        allspecs.update(m.specs)
    try:
        tr = fit_table([(m.layers, m.latency_us) for m in train], sources, group_of=_group_of(allspecs),
                       min_samples=MIN_SAMPLES)
    except TransferError as e:
        raise UsageError(str(e)) from None
    held = summary(tr.predict([m.layers for m in test]), np.array([m.latency_us for m in test])) if test else {"n": 0}
    lm = fm.LayerModel(tr.keys, tr.latency_us, tr.overhead_us, unseen_us=tr.unseen_us)
    preds = {"model": [m.name for m in test], "measured_us": [float(m.latency_us) for m in test],
             "predicted_us": [float(v) for v in tr.predict([m.layers for m in test])]}
    rep = fm.FitReport(lm, held if test else tr.loo, len(train), len(test), tr.loo, preds)
    for m in train:  # layers the target samples name get their specs; the sources' layers too
        m.specs = {k: allspecs[k] for k in m.layers if k in allspecs}
    carrier = fm.ModelTiming("transfer-layers", [k for k in tr.keys], 1.0,
                             {k: allspecs[k] for k in tr.keys if k in allspecs})
    b = fm.make_bundle(train + [carrier], ts.device, ts.runtime, rep, seed, ts.source)
    for c in ("repeats", "records"):  # the carrier is no timing
        b.lut[c] = b.lut[c] - 1
    info = tr.info()
    info["heldout"] = held if test else None
    b.metrics["transfer"] = info
    b.metrics["model"]["loo"] = tr.loo
    b.metrics["model"]["method"] = "transfer:" + info["method"]
    if not test:
        b.metrics["model"]["overall"] = tr.loo
        b.metrics["model"]["held_out"] = False
        b.metrics["model"]["note"] = "leave-one-out on the target samples (no timings held out)"
    b.dataset["records"] = b.dataset["model_records"] = len(train)
    b.dataset["transfer_sources"] = list(tr.sources)
    b.selection = {"*": {"estimator": "transfer:" + info["method"], "n_train": len(train), "n_test": len(test)}}
    b.location = (b.location[0], b.location[1].replace("-from-models", "-transfer"))
    log(f"{len(tr.keys)} layers transferred from {len(tr.sources)} source(s) with {len(train)} target timings; "
        f"{tr.choice.get('cv') or 'leave-one-out'} within ±10%: {tr.loo['within_10']:.1%}"
        + (f"; held out ({len(test)}): {held['within_10']:.1%}" if test else ""))
    if tr.prior_shrunk_away:
        log("the target samples contradict every source: the prior was shrunk away (see metrics.transfer)")
    report = {"device": ts.device.get("name"), "runtime": ts.runtime.get("key"), "mode": "models",
              "samples": len(train), "held_out": len(test), "loo": tr.loo, "heldout": held if test else None,
              "best_single_source": tr.best_single, "prior_shrunk_away": tr.prior_shrunk_away,
              "sources": info["source_weights"], "cv": tr.choice.get("cv"),
              "choice": _choice_text(tr.choice)}
    return b, tr, report


# ---- kernel transfer ----------------------------------------------------------------------------------
def _kernel_features(specs: list) -> np.ndarray:
    from predictors.spectable import col, encode

    d = encode(specs).data
    return np.stack([np.log1p(d[:, col("flops")]), np.log1p(d[:, col("params")]),
                     np.log1p(d[:, col("out_h")] * d[:, col("out_w")] * d[:, col("cout")])], axis=1)


def _predict_sources(sources: list[KernelSource], specs: list) -> np.ndarray:
    return np.stack([np.asarray(s.predictor.predict(specs).latency_us, dtype=np.float64) for s in sources], axis=1)


def _read_target_kernels(paths: Sequence[str | Path], statistic: str):
    from devprof.store import read_datasets

    from .records import KernelSpec

    df = read_datasets(paths)
    if len(df):
        df = df[df["kind"] == "kernel"]
    if not len(df):
        raise UsageError("no kernel records in " + ", ".join(map(str, paths)))
    if df["device_id"].nunique() > 1 or df["runtime_key"].nunique() > 1:
        raise UsageError("the target data holds several devices or runtimes: give one (device, runtime)'s datasets")
    stat = "min_us" if statistic == "min" and "min_us" in df else "median_us"
    g = df.groupby("spec_key", sort=True).agg(lat=(stat, "median"), spec_json=("spec_json", "first"),
                                               records=("spec_key", "size"))
    specs = [KernelSpec.from_dict(json.loads(s)) for s in g["spec_json"]]
    first = df.iloc[0]
    dev = json.loads(first["device_json"])
    dev["id"] = first["device_id"]
    rt = {"name": first["runtime"], "version": first["runtime_version"], "threads": int(first["threads"]),
          "options": json.loads(first["runtime_options"] or "{}"), "key": first["runtime_key"]}
    return specs, g["lat"].to_numpy(dtype=np.float64), g["records"].to_numpy(), dev, rt, [str(p) for p in paths]


def transfer_kernels(sources: list[KernelSource], data: Sequence[str | Path], samples: int | None = None,
                     seed: int = 0, statistic: str = "median", log: Callable[[str], None] = lambda s: None):
    """(bundle, KernelTransfer, report dict) for kernel records of the target in DATA."""
    from predictors.metrics import summary
    from predictors.transfer import TransferError, fit_kernels

    specs, y, records, dev, rt, srcs = _read_target_kernels(data, statistic)
    if samples is not None and samples < 1:
        raise UsageError(f"--samples must be at least 1, got {samples}")
    use, rest = _pick([s.key for s in specs], samples, seed)
    _check_k(samples, len(use))
    groups = [f"{s.op}/{s.sparsity.scheme}" for s in specs]
    names = [s.name for s in sources]
    P = _predict_sources(sources, specs)
    F = _kernel_features(specs)
    iu = np.array(use)
    try:
        kt = fit_kernels(P[iu], y[iu], [groups[i] for i in use], names, F[iu], min_samples=MIN_SAMPLES)
    except TransferError as e:
        raise UsageError(str(e)) from None
    ir = np.array(rest, dtype=np.int64)
    held = summary(kt.predict(P[ir], [groups[i] for i in rest], F[ir]), y[ir]) if len(rest) else None
    b = _kernel_bundle(sources, kt, [specs[i] for i in use], y[iu], records[iu], dev, rt, srcs, seed, statistic,
                       held, (ir, specs, y, P, F, groups))
    report = {"device": dev.get("name"), "runtime": rt.get("key"), "mode": "kernels", "samples": len(use),
              "held_out": len(rest), "loo": kt.loo, "heldout": held, "best_single_source": kt.best_single,
              "sources": kt.info()["source_weights"], "method": kt.info()["method"]}
    log(f"{kt.info()['method']} from {len(use)} target kernels; leave-one-out within ±10%: "
        f"{kt.loo['within_10']:.1%}")
    return b, kt, report


def _kernel_bundle(sources, kt, specs, y, records, dev, rt, srcs, seed, statistic, held, rest):
    from predictors import bundle as bmod
    from predictors.bundle import NPZ, read_predictor, read_verified
    from predictors.fit import FittedBundle, _clean
    from predictors.transfer import scale_model
    from predictors.trees import resolve_groups

    from . import from_models as fm
    from .records import KernelSpec

    # every kernel some source's table holds, predicted by the transfer model; the target's own
    # measurements where it has them
    have = {s.key for s in specs}
    pool: dict[str, Any] = {}
    for s in sources:
        lut = s.predictor.lut
        for sj in lut["spec_json"]:
            spec = KernelSpec.from_dict(json.loads(sj))
            if spec.key not in have and spec.op not in ("model", "other"):
                pool.setdefault(spec.key, spec)
    extra = list(pool.values())
    gx = [f"{s.op}/{s.sparsity.scheme}" for s in extra]
    est = kt.predict(_predict_sources(sources, extra), gx, _kernel_features(extra)) if extra else np.zeros(0)
    keys = [s.key for s in specs] + [s.key for s in extra]
    lm = fm.LayerModel(keys, np.concatenate([y, est]), 0.0)
    counts = {s.key: int(r) for s, r in zip(specs, records)}
    lut = fm._lut_frame(lm, {k: s for k, s in zip(keys, specs + extra)}, counts)
    lut["min_us"] = lut["median_us"]
    # misses: the regressors of the source with the most weight, rescaled per group by how the
    # transfer model relates to it on the table's rows
    top = int(np.argmax(kt.weights))
    src = sources[top]
    smeta, blobs = read_verified(src.path, ("predictor.json", NPZ))
    pj = read_predictor(src.path, smeta, blobs, encoded=True)
    allspecs = specs + extra
    allg = [f"{s.op}/{s.sparsity.scheme}" for s in allspecs]
    ptop = np.asarray(src.predictor.predict(allspecs).latency_us, dtype=np.float64)
    ratio = np.concatenate([y, est]) / np.maximum(ptop, 1e-12)
    overall = float(np.exp(np.median(np.log(ratio)))) if len(ratio) else 1.0
    ga = np.array(allg)
    groups = {}
    for name, d in resolve_groups(pj.get("groups") or {}).items():
        sel = ga == name
        s = float(np.exp(np.median(np.log(ratio[sel])))) if sel.any() else overall
        groups[name] = scale_model(dict(d), s)
    pj = dict(pj)
    pj["groups"] = groups
    if pj.get("fallback"):
        pj["fallback"] = scale_model(dict(pj["fallback"]), overall)
    mo = dict(pj.get("model_overhead") or {"scale": 1.0, "per_layer_us": 0.0, "intercept_us": 0.0})
    mo["per_layer_us"] = float(mo.get("per_layer_us", 0.0)) * overall
    mo["intercept_us"] = float(mo.get("intercept_us", 0.0)) * overall
    pj["model_overhead"] = mo
    pj.pop("layers", None)  # in-model layer timings are the source's, not the target's
    pj["statistic"] = statistic  # the table's median_us and min_us columns both hold the target's figure
    info = kt.info()
    info["heldout"] = held
    info["regressors_from"] = src.name
    info["regressor_scale"] = overall

    ir, aspecs, ay, P, F, agroups = rest
    hk = {"key": [aspecs[i].key for i in ir], "op": [aspecs[i].op for i in ir],
          "scheme": [aspecs[i].sparsity.scheme for i in ir], "group": [agroups[i] for i in ir],
          "flops": [float(aspecs[i].flops) for i in ir], "measured_us": [float(ay[i]) for i in ir],
          "predicted_us": [float(v) for v in (kt.predict(P[ir], [agroups[i] for i in ir], F[ir]) if len(ir) else [])]}
    heldout = {"format": "devprof-heldout", "version": 1, "kernels": hk,
               "models": {"model": [], "family": [], "layers": [], "measured_us": [], "predicted_us": [],
                          "layers_sum_us": []}}
    overall_fig = held if held else kt.loo
    metrics = {"statistic": statistic,
               "kernel": {"overall": overall_fig, "per_op": {}, "per_group": {}, "held_out": bool(held),
                          "note": "transfer: held-out target kernels" if held else
                                  "transfer: leave-one-out on the target samples"},
               "model": {"overall": None, "held_out": False, "n_train_models": 0, "n_test_models": 0},
               "split": {"seed": seed}, "transfer": info}
    dataset = {"sha256": hashlib.sha256(json.dumps(sorted(zip(keys[:len(y)], y.tolist()))).encode()).hexdigest(),
               "records": int(records.sum()), "kernel_records": int(records.sum()), "lut_rows": int(len(lut)),
               "model_records": 0, "sources": srcs, "runtime_versions": [str(rt.get("version", ""))],
               "transfer_sources": [s.name for s in sources]}
    loc = (bmod.slug(dev.get("name") or "device"),
           bmod.runtime_slug(str(rt.get("name", "runtime")), int(rt.get("threads", 1)), rt.get("options") or {})
           + "-transfer")
    return FittedBundle(loc, _clean(dev), _clean(rt), lut, _clean(pj), _clean(heldout), _clean(metrics),
                        _clean(dataset), {"*": {"estimator": "transfer:" + info["method"], "n_train": len(y)}})


# ---- what to measure first ------------------------------------------------------------------------------
def choose_kernels(sources: list[KernelSource], specs: list, k: int, exclude: Sequence[str] = ()) -> list:
    """The k specs (of `specs`) to measure first on a new device: where the sources disagree most,
    spread over the kernels' features."""
    from predictors.transfer import TransferError, choose_informative

    if k < 1:
        raise UsageError(f"--budget must be at least 1, got {k}")
    if not sources:
        raise UsageError("--transfer-from: give at least one source bundle")
    specs = list(specs)
    ex = {s for s in exclude}
    idx_ex = [i for i, s in enumerate(specs) if s.key in ex]
    P = _predict_sources(sources, specs)
    X = np.hstack([np.log(np.maximum(P, 1e-12)), _kernel_features(specs)])
    try:
        picks = choose_informative(P, k, X, idx_ex)
    except TransferError as e:
        raise UsageError(str(e)) from None
    return [specs[i] for i in picks]
