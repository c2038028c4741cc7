"""Synthetic but physically plausible datasets for the report tests, built with the record model.

Latencies follow a simple machine model (FLOPs over an op- and runtime-specific rate, plus a
per-call overhead, with log-normal sample noise), so every section of the report has realistic
shapes to draw: slope-1 lines on log-log axes, sparse speedups that cross 1, models whose layers
sum close to their end-to-end time.
"""
from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Iterable

import numpy as np
import pytest

from devprof.records import Conditions, DeviceInfo, KernelSpec, Measurement, Record, RuntimeInfo, Sparsity
from devprof.store import Dataset

LOCAL = DeviceInfo(kind="local", name="local", model="AMD EPYC 9B14", cpu="AMD EPYC 9B14", abi="x86_64", cores=2,
                   isa=("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl"),
                   os="Debian GNU/Linux 12 (bookworm)", kernel="6.1.0-27-cloud-amd64",
                   extra={"memory_gib": 7.8, "max_freq_khz": -1, "python": "3.11.2"})
S20 = DeviceInfo(kind="adb", name="Galaxy S20 5G", model="SM-G981U", serial="R3CN30ABCDE", soc="SM8250",
                 abi="arm64-v8a", cpu="4x1.80+3x2.42+1x2.84 GHz (little/mid/prime)", cores=8,
                 isa=("asimd", "asimddp", "fphp"),
                 os="Android 13", kernel="4.19.113-perf", build="samsung/x1quex/x1q:13/TP1A.220624.014/G981USQU:user",
                 extra={"clusters": "little=0-3@1804800;mid=4-6@2419200;prime=7@2841600",  # as devices/adb.py
                        "governor": "performance", "memory_gib": 11.2})

ORT = RuntimeInfo("onnxruntime", "1.32.0", 1)
LITERT = RuntimeInfo("litert", "2.3.0", 1, {"xnnpack": True})
# devprof-c's options as `devprof.runtimes.harness` records them: the compiler string differs per device,
# so a label built from the options would never match a phone with the host
DEVC_OPTIONS = {
    "local": {"cc": "cc (Debian 12.2.0-14+deb12u1) 12.2.0", "toolchain": "host", "isa": "x86-64-v4",
              "vector_floats": 16, "layout": "nchw"},
    "adb": {"cc": "Android (11349228, +pgo, +bolt, +lto, -mlgo, based on r487747e) clang version 17.0.2 "
                  "(toolchain/llvm-project d9f89f4d16663d5012e5c09495f3b30ece3d2362)",
            "toolchain": "ndk-r26c", "isa": "armv8.2-a+dotprod", "vector_floats": 4, "layout": "nchw"},
}


def devc(dev: DeviceInfo) -> RuntimeInfo:
    return RuntimeInfo("devprof-c", "0.1.0", 1, DEVC_OPTIONS[dev.kind])


DEVC = devc(LOCAL)

# sustained GFLOP/s per (device, runtime, op) for large kernels; small ones pay `OVERHEAD_US`
RATE = {("local", "onnxruntime"): {"conv2d": 48, "pwconv": 55, "dwconv2d": 6, "fc": 50, "avgpool": 3, "add": 2},
        ("local", "litert"): {"conv2d": 55, "pwconv": 60, "dwconv2d": 9, "fc": 45, "avgpool": 4, "add": 3},
        ("local", "devprof-c"): {"conv2d": 40, "pwconv": 45, "fc": 40},
        ("adb", "onnxruntime"): {"conv2d": 14, "pwconv": 17, "dwconv2d": 2, "fc": 12, "avgpool": 1.2, "add": 0.8},
        ("adb", "litert"): {"conv2d": 19, "pwconv": 21, "dwconv2d": 3, "fc": 15, "avgpool": 1.5, "add": 1.1},
        ("adb", "devprof-c"): {"conv2d": 11, "pwconv": 12, "fc": 10}}
OVERHEAD_US = {"onnxruntime": 6.0, "litert": 3.0, "devprof-c": 0.8}
# sparse efficiency: time = dense_c * (fixed + (1 - ratio) * per_weight)
SPARSE = {"bcr": (0.06, 1.05), "block": (0.07, 1.1), "nm": (0.25, 0.95), "pattern": (0.08, 1.15),
          "unstructured": (0.10, 2.6)}
SPARSE_PARAMS = {"bcr": {"block": [4, 16]}, "block": {"block": [8, 1]}, "nm": {"n": 2, "m": 4},
                 "pattern": {"patterns": 8}, "unstructured": {}}


def dense_specs(rng: np.random.Generator, count: int) -> list[KernelSpec]:
    specs: list[KernelSpec] = []
    while len(specs) < count:
        op = rng.choice(["conv2d", "pwconv", "dwconv2d", "fc", "avgpool", "add"], p=[.3, .25, .15, .15, .08, .07])
        hw = int(rng.choice([7, 14, 28, 56]))
        c = int(rng.choice([16, 24, 32, 64, 96, 128]))
        co = int(rng.choice([16, 32, 64, 128]))
        if op == "conv2d":
            k, s = int(rng.choice([3, 5])), int(rng.choice([1, 2]))
            spec = KernelSpec("conv2d", h=hw, w=hw, cin=c, cout=co, kh=k, kw=k, stride=s, padding=k // 2)
        elif op == "pwconv":
            spec = KernelSpec("pwconv", h=hw, w=hw, cin=c, cout=co)
        elif op == "dwconv2d":
            k = int(rng.choice([3, 5]))
            spec = KernelSpec("dwconv2d", h=hw, w=hw, cin=c, cout=c, groups=c, kh=k, kw=k, padding=k // 2,
                              stride=int(rng.choice([1, 2])))
        elif op == "fc":
            spec = KernelSpec("fc", n=int(rng.choice([1, 8, 64])), cin=c * 8, cout=co * 8)
        elif op == "avgpool":
            spec = KernelSpec("avgpool", h=hw, w=hw, cin=c, cout=c, kh=2, kw=2, stride=2)
        else:
            spec = KernelSpec("add", h=hw, w=hw, cin=c, cout=c)
        if spec not in specs:
            specs.append(spec)
    return specs


def _samples(rng: np.random.Generator, median: float, noise: float, n: int = 25) -> tuple[float, ...]:
    return tuple(float(x) for x in median * np.exp(rng.normal(0, noise, n)))


def _latency(spec: KernelSpec, dev: DeviceInfo, rt: RuntimeInfo, rng: np.random.Generator) -> float:
    rate = RATE[(dev.kind, rt.name)].get(spec.op)
    if rate is None:
        return math.nan
    small = 1.0 / (1.0 + 2e5 / max(spec.flops, 1))  # small kernels run below the sustained rate
    return OVERHEAD_US[rt.name] + spec.flops / (rate * 1e3 * small) * float(np.exp(rng.normal(0, 0.08)))


def record(spec: KernelSpec, dev: DeviceInfo, rt: RuntimeInfo, median: float, rng: np.random.Generator, *,
           kind: str = "kernel", t0: float = 1_763_900_000.0, suite: str = "synthetic", noise: float = 0.02,
           throttled: bool = False, **ctx) -> Record:
    freq = 2_596_148 if dev.kind == "local" else 2_419_200
    temp = float("nan") if dev.kind == "local" else float(38 + rng.normal(0, 1))
    cond = Conditions(cpus="" if dev.kind == "local" else "4-6", governor="" if dev.kind == "local" else "performance",
                      freq_before_khz=freq, freq_after_khz=int(freq * (0.8 if throttled else 1.0)),
                      temp_before_c=temp, temp_after_c=temp + (6.0 if throttled else 0.4), throttled=throttled)
    m = Measurement(_samples(rng, median, noise), warmups=3, number=max(1, int(5000 / max(median, 1))))
    return Record(spec, dev, rt, m, kind=kind, conditions=cond, started_at=t0, finished_at=t0 + 0.4,
                  devprof_version="0.1.0", harness_version="h1" if rt.name == "devprof-c" else "", suite=suite, **ctx)


def kernels(dev: DeviceInfo, runtimes: Iterable[RuntimeInfo], count: int, seed: int = 0) -> list[Record]:
    rng = np.random.default_rng(seed)
    out = []
    t = 1_763_900_000.0
    for spec in dense_specs(rng, count):
        for rt in runtimes:
            lat = _latency(spec, dev, rt, rng)
            if not math.isfinite(lat):
                continue
            noisy = rng.random() < 0.05
            t += 0.5
            out.append(record(spec, dev, rt, lat, rng, t0=t, noise=0.2 if noisy else 0.02,
                              throttled=bool(rng.random() < 0.02)))
    return out


def sparse(dev: DeviceInfo, seed: int = 1, ratios=(0.5, 0.75, 0.9, 0.95), dtype: str = "fp32") -> list[Record]:
    rng = np.random.default_rng(seed)
    shapes = [KernelSpec("conv2d", h=28, w=28, cin=64, cout=64, kh=3, kw=3, padding=1, dtype=dtype),
              KernelSpec("pwconv", h=14, w=14, cin=96, cout=160, dtype=dtype),
              KernelSpec("fc", n=8, cin=512, cout=1024, dtype=dtype),
              KernelSpec("conv2d", h=56, w=56, cin=32, cout=32, kh=3, kw=3, stride=2, padding=1, dtype=dtype)]
    out = []
    for spec in shapes:
        dense_c = _latency(spec, dev, devc(dev), rng)
        out.append(record(spec, dev, devc(dev), dense_c, rng, suite="sparse-sweep"))
        out.append(record(spec, dev, ORT, _latency(spec, dev, ORT, rng), rng, suite="sparse-sweep"))
        for scheme, (fixed, per) in SPARSE.items():
            if scheme == "pattern" and spec.kh != 3:
                continue
            for r in ratios:
                if scheme == "nm" and r != 0.5:
                    continue
                sp = spec.replace(sparsity=Sparsity(scheme, r, SPARSE_PARAMS[scheme]))
                lat = dense_c * (fixed + (1 - r) * per) * float(np.exp(rng.normal(0, 0.05)))
                out.append(record(sp, dev, devc(dev), lat, rng, suite="sparse-sweep"))
    return out


def models(dev: DeviceInfo, rt: RuntimeInfo, seed: int = 2, variants: int = 2) -> list[Record]:
    """MobileNetV2-like runs: layer records plus one end-to-end record per run, linked by run id."""
    rng = np.random.default_rng(seed)
    out = []
    for fam in ("mobilenetv2", "fsrcnn"):
        for v in range(variants):
            name = f"{fam}-v{v}"
            run_id = uuid.UUID(int=int(rng.integers(1 << 62))).hex
            layers: list[KernelSpec] = []
            if fam == "mobilenetv2":
                layers.append(KernelSpec("conv2d", h=224, w=224, cin=3, cout=32, kh=3, kw=3, stride=2, padding=1))
                hw, c = 112, 32
                for t, co, s in ((1, 16, 1), (6, 24, 2), (6, 32, 2), (6, 64, 2), (6, 96, 1), (6, 160, 2)):
                    e = c * t
                    if t != 1:
                        layers.append(KernelSpec("pwconv", h=hw, w=hw, cin=c, cout=e, activation="relu6"))
                    layers.append(KernelSpec("dwconv2d", h=hw, w=hw, cin=e, cout=e, groups=e, kh=3, kw=3,
                                             stride=s, padding=1, activation="relu6"))
                    hw //= s
                    layers.append(KernelSpec("pwconv", h=hw, w=hw, cin=e, cout=co + 8 * v))
                    c = co + 8 * v
                layers.append(KernelSpec("global_avgpool", h=hw, w=hw, cin=c, cout=c))
                layers.append(KernelSpec("fc", cin=c, cout=1000))
            else:
                h, w = 360, 640
                layers += [KernelSpec("conv2d", h=h, w=w, cin=1, cout=56 - 8 * v, kh=5, kw=5, padding=2),
                           KernelSpec("pwconv", h=h, w=w, cin=56 - 8 * v, cout=12)]
                layers += [KernelSpec("conv2d", h=h, w=w, cin=12, cout=12, kh=3, kw=3, padding=1)] * 4
                layers += [KernelSpec("pwconv", h=h, w=w, cin=12, cout=56 - 8 * v),
                           KernelSpec("conv2d", h=h, w=w, cin=56 - 8 * v, cout=4, kh=3, kw=3, padding=1),
                           KernelSpec("depth_to_space", h=h, w=w, cin=4, cout=1, attrs={"block": 2})]
            total = 0.0
            for i, spec in enumerate(layers):
                lat = _latency(spec, dev, rt, rng)
                if not math.isfinite(lat):
                    lat = 2.0 + spec.input_elems / 2e3
                total += lat
                out.append(record(spec, dev, rt, lat, rng, kind="layer", suite="models", model_run_id=run_id,
                                  model_name=name, layer_index=i, layer_name=f"{spec.op}_{i}"))
            overhead = 0.04 * total  # the framework's per-run time outside the kernels (devprof.model_profiling.profile)
            out.append(record(KernelSpec("other", attrs={"model": name, "term": "overhead"}), dev, rt, overhead, rng,
                              kind="layer", suite="models", model_run_id=run_id, model_name=name, layer_index=-1,
                              layer_name="(overhead)"))
            mspec = KernelSpec("model", attrs={"model": name, "family": fam, "layers": len(layers)})
            out.append(record(mspec, dev, rt, total * 1.06, rng, kind="model", suite="models", model_run_id=run_id,
                              model_name=name))
            # the same model end to end on LiteRT (no per-layer profile there)
            lrun = uuid.UUID(int=int(rng.integers(1 << 62))).hex
            lspec = KernelSpec("model", attrs={"model": name, "family": fam, "fusion": "litert"})
            out.append(record(lspec, dev, LITERT, total * 0.93, rng, kind="model", suite="models", model_run_id=lrun,
                              model_name=name))
    return out


def programs(dev: DeviceInfo, seed: int = 3) -> list[Record]:
    """`--prune bcr:0.9` on mobilenetv2-v0 (whose dense runs `models` writes on ORT and LiteRT): its
    layers alone, the pruned and the dense model as one generated program (devprof.model_profiling.prune)."""
    rng = np.random.default_rng(seed)
    name, setting, out = "mobilenetv2-v0", "bcr(block=4x16)@0.9", []
    layers = [KernelSpec("conv2d", h=224, w=224, cin=3, cout=32, kh=3, kw=3, stride=2, padding=1),
              KernelSpec("dwconv2d", h=112, w=112, cin=32, cout=32, groups=32, kh=3, kw=3, padding=1),
              KernelSpec("pwconv", h=112, w=112, cin=32, cout=16), KernelSpec("fc", cin=16, cout=1000)]
    for label, factor in ((setting, 1.0), (f"{setting}|program", 1.08), ("dense|program", 3.1)):
        run_id = uuid.UUID(int=int(rng.integers(1 << 62))).hex
        total = 0.0
        for i, spec in enumerate(layers):
            lat = (2.0 + spec.flops / 2e4) * factor * (0.3 if spec.op in ("pwconv", "fc") else 1.0)
            total += lat
            attrs = {"in_model": 1} if label.endswith("|program") else {}
            out.append(record(spec.replace(attrs=attrs), dev, devc(dev), lat, rng, kind="layer", suite="", model_run_id=run_id,
                              model_name=f"{name}|{label}", layer_index=i, layer_name=f"{spec.op}_{i}"))
        composed = "program" if label.endswith("|program") else "sum-of-layers"
        out.append(record(KernelSpec("model", attrs={"model": name, "prune": label.split("|")[0], "composed": composed}),
                          dev, devc(dev), total, rng, kind="model", model_run_id=run_id, model_name=f"{name}|{label}"))
    return out


def full(dev: DeviceInfo = LOCAL, count: int = 40, seed: int = 0) -> list[Record]:
    return (kernels(dev, (ORT, LITERT), count, seed) + sparse(dev, seed + 1) + models(dev, ORT, seed + 2)
            + programs(dev, seed + 3))


def write(path: Path, records: Iterable[Record]) -> Path:
    ds = Dataset(path)
    ds.create()
    recs = list(records)
    if recs:
        with ds:
            ds.append(recs)
    return path


# ---- session fixtures shared by the report tests (imported by tests/conftest.py) -----------------
@pytest.fixture(scope="session")
def report_data(tmp_path_factory) -> dict[str, Path]:
    """Datasets written through the real store: two devices, empty, one record, mixed devices."""
    root = tmp_path_factory.mktemp("report-data")
    out = {
        "local": write(root / "local", full(LOCAL, 40)),
        "s20": write(root / "s20", kernels(S20, (ORT, LITERT), 40) + sparse(S20, 3)
                   + models(S20, LITERT, 4)),
        "empty": write(root / "empty", []),
    }
    rng = np.random.default_rng(5)
    spec = KernelSpec("conv2d", h=28, w=28, cin=32, cout=32, kh=3, kw=3, padding=1)
    out["single"] = write(root / "single", [record(spec, LOCAL, ORT, 812.0, rng)])
    mixed = kernels(LOCAL, (ORT,), 15, seed=7) + kernels(S20, (ORT,), 15, seed=7)
    out["mixed"] = write(root / "mixed", mixed)
    return out


@pytest.fixture(scope="session")
def report_bundle(report_data, tmp_path_factory) -> Path:
    """A real bundle fitted on the local ORT records (linear estimator only, to stay fast)."""
    from predictors.estimators import FlopsLinear
    from predictors.fit import fit_bundles

    df = Dataset(report_data["local"]).read()
    fitted = fit_bundles(df[df["runtime"] == "onnxruntime"], candidates={"flops_linear": FlopsLinear()})
    assert len(fitted) == 1
    return fitted[0].write_to(tmp_path_factory.mktemp("bundle") / "local-ort")




@pytest.fixture(scope="session")
def report_full(report_data, report_bundle, tmp_path_factory):
    """The full HTML report (two devices, sparse sweeps, models, a bundle), built once per session."""
    from devprof.report import build_report

    page = tmp_path_factory.mktemp("report") / "report.html"
    return build_report([report_data["local"], report_data["s20"]], [report_bundle], out=page, strict=True)
