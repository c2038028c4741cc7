"""Synthetic kernel records for the predictor tests and benchmarks (built with the record model).

The latencies follow a simple roofline (FLOPs at a per-scheme efficiency, bytes at a bandwidth,
a fixed call cost) with seeded multiplicative noise: enough structure for the regressors to learn,
no device needed. Real measurements come from `devprof profile`.
"""
from __future__ import annotations

import numpy as np

from devprof.records import DeviceInfo, KernelSpec, Measurement, Record, RuntimeInfo, Sparsity

DEVICE = DeviceInfo(kind="local", name="local", model="Synthetic CPU", cpu="Synthetic CPU", cores=2,
                    isa=("avx2", "fma"), os="Linux", kernel="6.1")
RUNTIME = RuntimeInfo("onnxruntime", "1.32.0", threads=1)
_EFF = {"dense": 1.0, "unstructured": 0.25, "bcr": 0.7, "block": 0.6, "nm": 0.5, "pattern": 0.65}


def true_latency_us(s: KernelSpec) -> float:
    eff = _EFF[s.sparsity.scheme]
    flops = s.flops * (1 - s.sparsity.ratio)
    bytes_ = 4 * (s.input_elems + s.output_elems + s.params_count * (1 - s.sparsity.ratio))
    gflops = 40.0 * eff * (0.3 if s.op == "dwconv2d" else 1.0) * min(1.0, s.cin / 32 + 0.2)
    return 2.0 + flops / (gflops * 1e3) + bytes_ / 10e3


def random_specs(n: int, seed: int = 0, sparse: bool = True) -> list[KernelSpec]:
    rng = np.random.default_rng(seed)
    out: list[KernelSpec] = []
    seen = set()
    while len(out) < n:
        op = rng.choice(["conv2d", "dwconv2d", "pwconv", "fc"])
        hw = int(rng.choice([7, 14, 28, 56]))
        c = int(rng.choice([16, 24, 32, 48, 64, 96, 128]))
        co = int(rng.choice([16, 24, 32, 48, 64, 96, 128]))
        sp = Sparsity()
        if sparse and op in ("conv2d", "pwconv", "fc") and rng.random() < 0.5:
            scheme = str(rng.choice(["bcr", "nm", "unstructured"]))
            params = {"bcr": {"block": [4, int(rng.choice([8, 16]))]}, "nm": {"n": 2, "m": 4}}.get(scheme, {})
            ratio = 0.5 if scheme == "nm" else float(rng.choice([0.5, 0.75, 0.9]))
            sp = Sparsity(scheme, ratio, params)
        if op == "conv2d":
            k = int(rng.choice([3, 5]))
            s = KernelSpec(op, h=hw, w=hw, cin=c, cout=co, kh=k, kw=k, stride=int(rng.choice([1, 2])),
                           padding=k // 2, activation="relu", sparsity=sp)
        elif op == "dwconv2d":
            k = int(rng.choice([3, 5]))
            s = KernelSpec(op, h=hw, w=hw, cin=c, cout=c, groups=c, kh=k, kw=k, stride=int(rng.choice([1, 2])),
                           padding=k // 2, activation="relu6")
        elif op == "pwconv":
            s = KernelSpec(op, h=hw, w=hw, cin=c, cout=co, sparsity=sp)
        else:
            s = KernelSpec(op, n=int(rng.choice([1, 8])), cin=c * 8, cout=co * 8, sparsity=sp)
        if s.key not in seen:
            seen.add(s.key)
            out.append(s)
    return out


def records(specs: list[KernelSpec], seed: int = 0, noise: float = 0.01, runtime: RuntimeInfo = RUNTIME
            ) -> list[Record]:
    rng = np.random.default_rng(seed)
    out = []
    for s in specs:
        t = true_latency_us(s)
        samples = tuple(float(x) for x in t * np.exp(rng.normal(0, noise, 7)))
        out.append(Record(spec=s, device=DEVICE, runtime=runtime, measurement=Measurement(samples, 3, 10),
                          started_at=1.7e9, finished_at=1.7e9 + 1, devprof_version="0.1.0"))
    return out


def model_records(n_models: int, seed: int = 0, runtime: RuntimeInfo = RUNTIME) -> list[Record]:
    """Whole-model records (kind "model") with their per-layer records (kind "layer")."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_models):
        specs = random_specs(int(rng.integers(8, 20)), seed=seed * 1000 + i, sparse=False)
        name = f"synthnet-v{i}"
        run = f"run{seed}-{i}"
        total = 0.0
        for j, s in enumerate(specs):
            t = true_latency_us(s) * 0.9
            total += t
            out.append(Record(spec=s, device=DEVICE, runtime=runtime, kind="layer",
                              measurement=Measurement((t, t * 1.01, t * 0.99)), model_run_id=run,
                              model_name=name, layer_index=j, layer_name=f"l{j}"))
        e2e = total * 1.05 + 30.0 + 2.0 * len(specs)
        ms = KernelSpec("model", attrs={"name": name})
        out.append(Record(spec=ms, device=DEVICE, runtime=runtime, kind="model",
                          measurement=Measurement((e2e, e2e * 1.01, e2e * 0.99)), model_run_id=run,
                          model_name=name))
    return out
