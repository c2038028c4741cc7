"""Pruned models (``--prune SCHEME:RATIO``): a model's conv/FC layers under a sparsity scheme, each
timed as a generated sparse kernel by the native harness (runtime ``devprof-c``), next to the
generated dense kernel of the same layer — the compiler-aware pruning use case.

The layers come from the graph walk with ``litert`` fusion (BN and ReLU/ReLU6 folded into the
conv, as the generated kernels' epilogue does). Pruned: ``conv2d``, ``pwconv`` and ``fc`` layers
(``pattern`` only applies to 3x3 convs; depthwise convs stay dense). Every layer devprof-c can
generate is timed, dense and pruned, in harness batches.

End to end: the harness runs kernels one after another in one process, but does not yet feed one
kernel's output to the next, so the model record for ``devprof-c`` is the *composed* chain — per
repetition, the sum of the layers' samples — over the layers devprof-c covers (attrs
``composed="sum-of-layers"``, ``covered`` and ``uncovered`` layer counts). Layers it cannot run
(pools, adds, concats, standalone activations) are listed, not guessed.
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Callable, Sequence


from .. import __version__
from ..errors import UsageError
from ..measure import Protocol
from ..records import KernelSpec, Measurement, Record, Sparsity, record_key
from .walk import walk

PRUNABLE = ("conv2d", "pwconv", "fc")
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {"bcr": {"block": (4, 16)}, "block": {"block": (4, 1)},
                                              "pattern": {"patterns": 8}, "nm": {}, "unstructured": {}}


def parse_prune(text: str) -> Sparsity:
    """``SCHEME:RATIO[:k=v,...]`` -> Sparsity, e.g. ``bcr:0.9``, ``block:0.8:block=8x1``, ``nm:0.5:n=2,m=4``."""
    parts = text.split(":")
    if len(parts) < 2 or parts[0] not in DEFAULT_PARAMS:
        raise UsageError(f"--prune {text!r}: expected SCHEME:RATIO with SCHEME one of {', '.join(DEFAULT_PARAMS)} "
                         "(e.g. bcr:0.9, nm:0.5:n=2,m=4)")
    scheme = parts[0]
    try:
        ratio = float(parts[1])
    except ValueError:
        raise UsageError(f"--prune {text!r}: ratio {parts[1]!r} is not a number") from None
    if not 0.0 < ratio < 1.0:
        raise UsageError(f"--prune {text!r}: ratio must be in (0, 1)")
    params = dict(DEFAULT_PARAMS[scheme])
    for kv in ":".join(parts[2:]).split(",") if len(parts) > 2 else []:
        k, _, v = kv.partition("=")
        if not k or not v:
            raise UsageError(f"--prune {text!r}: bad parameter {kv!r} (expected key=value)")
        try:
            params[k.strip()] = tuple(int(x) for x in v.split("x")) if "x" in v else int(v)
        except ValueError:
            raise UsageError(f"--prune {text!r}: parameter {k} must be an integer or RxC") from None
    try:
        return Sparsity(scheme, ratio, params)
    except ValueError as e:
        raise UsageError(f"--prune {text!r}: {e}") from None


def pruned_spec(spec: KernelSpec, sp: Sparsity) -> KernelSpec | None:
    """The layer under `sp`, or None when the scheme does not apply to it (it stays dense)."""
    if spec.op not in PRUNABLE:
        return None
    if sp.scheme == "pattern" and (spec.op != "conv2d" or (spec.kh, spec.kw) != (3, 3)):
        return None
    return spec.replace(sparsity=sp)


def _chain(ms: list[Measurement]) -> Measurement:
    """Per repetition i, the sum over layers of their i-th sample (shortest length wins)."""
    n = min(m.repeats for m in ms)
    return Measurement(tuple(float(sum(m.samples_us[i] for m in ms)) for i in range(n)))


def profile_pruned(models: Sequence[Any], device, threads: int, out, resume: bool, protocol: Protocol, suite: str,
                   prune: str, on_model: Callable | None = None) -> list:
    from ..runtimes import get_runtime
    from ..store import Dataset
    from .profile import LayerRow, ModelRun, _sources

    sp = parse_prune(prune)
    rt = get_runtime("devprof-c")
    why = rt.available(device)
    if why:
        raise UsageError(f"--prune needs the devprof-c runtime (generated sparse kernels): {why}")
    if threads != 1:
        raise UsageError("--prune: devprof-c kernels are single-threaded; use --threads 1")
    info = rt.info(device, 1)
    dinfo = device.info()
    results: list = []
    with Dataset(out) as ds:
        for src in _sources(models):
            if src.onnx is None:
                raise UsageError(f"--prune needs an ONNX model or a built-in family ({src.name} is .tflite)")
            ml = walk(src.onnx, fusion="litert", name=src.name)
            runs = []
            for label, variant in (("dense", None), (sp.label(), sp)):
                name = f"{src.name}|{label}"
                specs: dict[int, KernelSpec] = {}
                for layer in ml.layers:
                    s = layer.spec if variant is None else (pruned_spec(layer.spec, variant) or layer.spec)
                    if rt.supports(s) is None:
                        specs[layer.index] = s
                uncovered = [l.index for l in ml.layers if l.index not in specs]
                mspec = KernelSpec(op="model", bias=False, attrs={
                    "model": src.name, "hash": src.content_hash, "prune": label, "composed": "sum-of-layers",
                    "covered": len(specs), "uncovered": len(uncovered), "fusion": ml.fusion})
                run = ModelRun(name, "devprof-c", uuid.uuid4().hex[:16], src.content_hash)
                runs.append(run)
                if record_key("model", mspec.id, dinfo.id, info.key, name) in ds.keys():
                    if not resume:
                        raise UsageError(f"{ds.path} already holds {name} on devprof-c; pass --resume to skip it")
                    run.skipped = True
                    continue
                t0 = time.time()
                by_spec: dict[str, list[int]] = {}
                for idx, s in specs.items():
                    by_spec.setdefault(s.id, []).append(idx)
                unique = {s.id: s for s in specs.values()}
                got: dict[str, Measurement] = {}
                errors: list[str] = []
                todo = list(unique.values())
                for i in range(0, len(todo), rt.batch_size):
                    for o in rt.measure(device, todo[i:i + rt.batch_size], 1, protocol):
                        if o.ok:
                            got[o.spec.id] = o.measurement
                        else:
                            errors.append(f"{o.spec.key}: {o.error}")
                            ds.log_failure({"time": time.time(), "runtime": info.key, "device_id": dinfo.id,
                                            "model": name, "spec_key": o.spec.key, "error": o.error})
                recs, chain = [], []
                for layer in ml.layers:
                    s = specs.get(layer.index)
                    m = got.get(s.id) if s is not None else None
                    row = LayerRow(layer.__class__(layer.index, layer.name, s or layer.spec, layer.nodes, layer.ops,
                                                   layer.output), m)
                    run.rows.append(row)
                    if m is not None:
                        chain.append(m)
                        recs.append(Record(s, dinfo, info, m, "layer", started_at=t0, finished_at=time.time(),
                                           devprof_version=__version__, model_run_id=run.run_id, model_name=name,
                                           layer_index=layer.index, layer_name=layer.name, suite=suite))
                if errors:
                    run.error = f"{len(errors)} layer(s) failed, e.g. {errors[0][:200]}"
                if chain:
                    run.e2e = _chain(chain)
                    recs.append(Record(mspec, dinfo, info, run.e2e, "model", started_at=t0, finished_at=time.time(),
                                       devprof_version=__version__, model_run_id=run.run_id, model_name=name,
                                       suite=suite))
                    ds.append(recs)
                    run.records = recs
                run.unmapped = [f"layer {i} ({ml.layers[i].spec.op}) not run by devprof-c" for i in uncovered]
            results.extend(runs)
            if on_model:
                on_model(runs)
        ds.compact()
    return results
