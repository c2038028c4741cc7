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

import dataclasses
import time
import uuid
from typing import Any, Callable, Sequence


from ..errors import UsageError, one_line
from ..measure import Protocol
from ..records import Conditions, KernelSpec, Measurement, Sparsity, record_key
from ..runtimes.base import CHECKED, Outcome
from .runs import LayerRow, ModelRun
from ..models.sources import iter_sources
from ..models.walk import walk

PRUNABLE = ("conv2d", "pwconv", "fc")
#: Layers timed in int8 under ``--dtype int8`` (the ops the generated int8 kernels cover).
INT8_OPS = ("conv2d", "dwconv2d", "pwconv", "fc")
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


def profile_pruned(models: Sequence[Any], device, threads: int, session, protocol: Protocol, prune: str,
                   on_model: Callable | None = None, *, dtype: str = "fp32",
                   on_note: Callable[[str], None] | None = None) -> list:
    """Time each model's layers dense and under `prune` with generated kernels, in `session`
    (not yet entered): every layer built, checked against the numpy reference and timed by the
    harness; the session records them with their conditions and applies the --resume rule."""
    from ..runtimes import get_runtime

    sp = parse_prune(prune)
    requested = dtype
    rt = get_runtime("devprof-c")
    why = rt.available(device)
    if why:
        raise UsageError(f"--prune needs the devprof-c runtime (generated sparse kernels): {why}")
    if threads != 1:
        raise UsageError("--prune times a whole-model program on one thread; use --threads 1")
    info = rt.info(device, 1)
    dinfo = device.info()
    results: list = []
    first = True
    with session, session.pinned(device, protocol.cpus):
        for src in iter_sources(models):
            if src.onnx is None:
                raise UsageError(f"--prune needs an ONNX model or a built-in family ({src.name} is .tflite)")
            ml = walk(src.onnx, fusion="litert", name=src.name)
            from ..models.quantize import is_quantized

            dtype = "int8" if is_quantized(src.onnx) else (src.dtype or requested)  # a QDQ model: int8 layers
            runs, programs = [], []  # isolated layers (dense, pruned), then the same as one program each
            for label, variant in (("dense", None), (sp.label(), sp)):
                name = f"{src.name}|{label}"
                specs: dict[int, KernelSpec] = {}
                for layer in ml.layers:
                    s = layer.spec if variant is None else (pruned_spec(layer.spec, variant) or layer.spec)
                    if dtype != "fp32" and s.op in INT8_OPS:
                        s = s.replace(dtype=dtype)
                    if rt.supports(s) is None:
                        specs[layer.index] = s
                uncovered = [l.index for l in ml.layers if l.index not in specs]
                mspec = KernelSpec(op="model", bias=False, dtype=dtype, attrs={
                    "model": src.name, "hash": src.content_hash, "prune": label, "composed": "sum-of-layers",
                    "covered": len(specs), "uncovered": len(uncovered), "fusion": ml.fusion})
                run = ModelRun(name, "devprof-c", uuid.uuid4().hex[:16], src.content_hash)
                runs.append(run)
                if session.skip(record_key("model", mspec.id, dinfo.id, info.key, name), f"{name} on devprof-c"):
                    run.skipped = True
                    continue
                t0 = time.time()
                unique = {s.id: s for s in specs.values()}
                got: dict[str, Outcome] = {}
                errors: list[str] = []
                todo = list(unique.values())
                for i in range(0, len(todo), rt.batch_size):
                    session.cool(device, first=first)
                    first = False
                    for o in session.measure(device, rt, todo[i:i + rt.batch_size], 1, protocol):
                        if o.ok:  # flagged now: a later batch's cooldown is not this one's
                            got[o.spec.id] = dataclasses.replace(o, conditions=dataclasses.replace(
                                o.conditions, cooldown_timed_out=o.conditions.cooldown_timed_out
                                or session.cooldown_timed_out))
                        else:
                            errors.append(f"{o.spec.key}: {o.error}")
                            session.fail({"runtime": info.key, "device_id": dinfo.id, "model": name,
                                          "spec_key": o.spec.key, "error": o.error})
                recs, chain = [], []
                for layer in ml.layers:
                    s = specs.get(layer.index)
                    o = got.get(s.id) if s is not None else None
                    row = LayerRow(layer.__class__(layer.index, layer.name, s or layer.spec, layer.nodes, layer.ops,
                                                   layer.output), o.measurement if o else None)
                    run.rows.append(row)
                    if o is not None:
                        chain.append(o)
                        recs.append(session.record_outcome(o, dinfo, info, kind="layer", model_run_id=run.run_id,
                                                           model_name=name, layer_index=layer.index,
                                                           layer_name=layer.name, cooldown_timed_out=False))
                if errors:
                    run.error = f"{len(errors)} layer(s) failed, e.g. {one_line(errors[0], 200)}"
                if chain:
                    run.e2e = _chain([o.measurement for o in chain])
                    # composed of checked layers only; its conditions span the layers' batches
                    recs.append(session.record(mspec, dinfo, info, run.e2e, "model", conditions=_span(chain),
                                               started_at=t0, checked=CHECKED, harness_version=chain[0].harness_version,
                                               cooldown_timed_out=False, model_run_id=run.run_id, model_name=name))
                    session.save(recs)
                    run.records = recs
                run.unmapped = [f"layer {i} ({ml.layers[i].spec.op}) not run by devprof-c" for i in uncovered]
                if dtype != "fp32":  # the generated program is fp32 only
                    if on_note and variant is not None:
                        on_note(f"{src.name}: no one-program run in {dtype} (the generated program computes "
                                "fp32); its layers are timed alone")
                    continue
                programs.append(_program_run(src, ml, variant or Sparsity(), label, device, rt, info, dinfo, session,
                                             protocol))
            runs += programs
            results.extend(runs)
            if on_model:
                on_model(runs)
        session.compact()
    return results


def _span(outcomes: Sequence[Outcome]) -> Conditions:
    """The conditions around a chain of outcomes: the first one's state before, the last one's
    after, throttled or timed out if any was."""
    a, b = outcomes[0].conditions, outcomes[-1].conditions
    return Conditions(a.cpus, a.governor or b.governor, a.freq_before_khz, b.freq_after_khz, a.temp_before_c,
                      b.temp_after_c, any(o.conditions.throttled for o in outcomes),
                      any(o.conditions.cooldown_timed_out for o in outcomes))


PROGRAM_SUFFIX = "program"


def _program_run(src, ml, sp: Sparsity, label: str, device, rt, info, dinfo, session, protocol: Protocol):
    """The model as one generated program (devprof.model_profiling.program), timed end to end with its
    layers timed inside the same calls: a ModelRun named ``<model>|<label>|program`` with a model
    record (attrs ``composed="program"``) and one ``in_model`` layer record per layer; None with a
    note on the run when the program cannot run the model."""
    from ..runtimes.harness import measure_program
    from ..models.layers import Layer

    name = f"{src.name}|{label}|{PROGRAM_SUFFIX}"
    run = ModelRun(name, "devprof-c", uuid.uuid4().hex[:16], src.content_hash)
    mspec = KernelSpec(op="model", bias=False, attrs={"model": src.name, "hash": src.content_hash, "prune": label,
                                                       "composed": "program", "layers": len(ml.layers),
                                                       "fusion": ml.fusion})
    if session.skip(record_key("model", mspec.id, dinfo.id, info.key, name), f"{name} on devprof-c"):
        run.skipped = True
        return run
    session.cool(device)
    try:
        o, layers, prog = measure_program(rt, device, src.onnx, sp, protocol, name="prog_" + src.content_hash[:12])
    except UsageError as e:
        run.error = f"no generated program: {e}"
        return run
    if not o.ok:
        run.error = o.error
        session.fail({"runtime": info.key, "device_id": dinfo.id, "model": name, "spec_key": "program",
                      "error": o.error})
        return run
    recs = []
    for step, lm in zip(prog.steps, layers):
        layer = ml.layers[step.index]
        lspec = step.spec.replace(attrs={**dict(step.spec.attrs), "in_model": 1})
        run.rows.append(LayerRow(Layer(layer.index, layer.name, step.spec, layer.nodes, layer.ops, layer.output), lm))
        recs.append(session.record(lspec, dinfo, info, lm, "layer", conditions=o.conditions, started_at=o.started_at,
                                   finished_at=o.finished_at, checked=o.checked, harness_version=o.harness_version,
                                   cooldown_timed_out=session.cooldown_timed_out, model_run_id=run.run_id,
                                   model_name=name, layer_index=layer.index, layer_name=layer.name))
    run.e2e = o.measurement
    recs.append(session.record(mspec, dinfo, info, o.measurement, "model", conditions=o.conditions,
                               started_at=o.started_at, finished_at=o.finished_at, checked=o.checked,
                               harness_version=o.harness_version, cooldown_timed_out=session.cooldown_timed_out,
                               model_run_id=run.run_id, model_name=name))
    session.save(recs)
    run.records = recs
    return run
