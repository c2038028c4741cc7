"""Profile whole models: per-layer timings from ONNX Runtime's profiler, end-to-end timings from
ONNX Runtime and LiteRT, written as linked records.

For each model and runtime one *model run* writes:

- a ``kind="model"`` record: the end-to-end latency (spec ``op="model"``, attrs naming the model,
  its content hash, layer count and the walk's fusion), measured with the common `Protocol`;
- ``kind="layer"`` records (ONNX Runtime only): one per layer of the ``onnxruntime`` walk, each
  sample the summed ``dur`` of that layer's kernels in one profiled run;
- one ``kind="layer"`` record named ``(overhead)`` (``op="other"``, ``attrs.term="overhead"``,
  layer_index -1): the per-model overhead term — in each profiled run, its wall time minus the
  time spent inside kernels (session dispatch, input/output copies, allocation). So
  end-to-end ≈ Σ layer medians + overhead median; the gap between the two sides is printed and
  returned (`ModelRun.gap`), measured against clean runs interleaved with the profiled ones so
  that both saw the same machine load.

They share one ``model_run_id``. Kernels ONNX Runtime inserts (``ReorderInput``/``ReorderOutput``
of its NCHWc layout) are attributed to the layer they serve: the next kernel that runs, which
consumes their output. Kernels named by no node of the model (decomposed activations) go to the
kernel that ran before them, whose output they take.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import KernelError, UsageError
from ..measure import Protocol, measure_callable
from ..records import KernelSpec, Measurement, Record, RuntimeInfo, record_key
from ..runtimes.model_check import CHECKED, compare, graph_rtol, reference_output
from ..runtimes.onnxruntime import session_options
from ..models.layers import ModelLayers
from .runs import OVERHEAD_NAME, LayerRow, ModelRun, model_spec, overhead_spec, run_error
from ..models.sources import ModelSource, iter_sources, tflite_of
from ..models.sources import resolve_model, torch_to_onnx  # noqa: F401 - the documented import path
from ..models.sources import model_input as _input
from ..models.quantize import as_dtype, is_quantized
from ..models.walk import walk

MODEL_RUNTIMES = ("onnxruntime", "litert", "litert-builtin")


# ---- running models --------------------------------------------------------------------------
def _runs_for(per_run_s: float, protocol: Protocol) -> int:
    """How many profiled runs: the protocol's repeats, bounded by its time budget (>= 3)."""
    want = max(protocol.min_repeats, int(np.ceil(protocol.min_time_s / max(per_run_s, 1e-6))))
    budget = max(3, int(protocol.max_time_s / max(per_run_s, 1e-6)))
    return int(max(3, min(want, protocol.max_repeats, budget)))


_SUFFIXES = re.compile(r"(_nchwc|_fused.*|_token_\d+)$")
_FUSION_TAG = re.compile(r"/\w*Fusion\w*/?$")


def _resolver(by_node: dict[str, int]) -> Callable[[str], int | str]:
    """Profile kernel name -> layer index, or "next" (reorders) / "prev" (nameless helpers)."""
    cache: dict[str, int | str] = {}

    def resolve(kernel: str) -> int | str:
        if kernel in cache:
            return cache[kernel]
        base = _FUSION_TAG.sub("", kernel)  # "stem.swish/QuickGeluFusion/" -> "stem.swish"
        out: int | str = "prev"
        for cand in (kernel, base, _SUFFIXES.sub("", base), _SUFFIXES.sub("", _SUFFIXES.sub("", base))):
            if cand in by_node:
                out = by_node[cand]
                break
        else:
            if base.startswith("Reorder") or base.split("/")[-1].startswith("Reorder"):
                out = "next"
        cache[kernel] = out
        return out

    return resolve


@dataclass
class OrtProfile:
    layer_samples: dict[int, list[float]]  # layer index -> µs per profiled run
    reorder_us: dict[int, float]  # layer index -> median µs of reorders attributed to it
    unmapped: list[str]  # kernel names that resolved to nothing (their time went to a neighbour)
    runs: int
    output: np.ndarray | None = None
    clean_us: list[float] = field(default_factory=list)  # interleaved unprofiled end-to-end runs
    profiled_us: list[float] = field(default_factory=list)  # the profiled runs' own wall time
    framework_us: list[float] = field(default_factory=list)  # per profiled run: time outside kernels
    clean_cpu_us: list[float] = field(default_factory=list)  # CPU time of the interleaved clean runs

def named_nodes(model):
    """`model` with every unnamed node named as the graph walk names it (``{op_type}_{index}``).

    ONNX Runtime's profiler reports a kernel under its node's name, and the walk's layers list
    their nodes by name; an unnamed node (exporters may leave ``name`` empty, `onnx.helper` does)
    would otherwise match no layer. Returns `model` itself when every node has a name."""
    if all(n.name for n in model.graph.node):
        return model
    import onnx

    named = onnx.ModelProto()
    named.CopyFrom(model)
    for k, n in enumerate(named.graph.node):
        if not n.name:
            n.name = f"{n.op_type}_{k}"
    return named


def profile_ort_layers(model, ml: ModelLayers, threads: int, runs: int, warmups: int = 2,
                       clean: Callable[[], Any] | None = None) -> OrtProfile:
    """Run `model` `warmups + runs` times under ONNX Runtime's profiler; per-layer µs per run.

    With `clean` (one run of an unprofiled session), each profiled run is followed by a timed clean
    run, so the end-to-end samples it returns saw the same machine load as the layer samples.
    """
    import onnxruntime as ort

    model = named_nodes(model)  # the profiler names kernels after nodes: an unnamed one's time would be lost
    name, x = _input(model)
    clean_us: list[float] = []
    clean_cpu_us: list[float] = []  # CPU time of this thread (ORT runs 1-thread sessions on it)
    with tempfile.TemporaryDirectory(prefix="devprof-ortprof-") as tmp:
        sess = ort.InferenceSession(model.SerializeToString(), session_options(threads, os.path.join(tmp, "p")),
                                    providers=["CPUExecutionProvider"])
        y = None
        for i in range(warmups + runs):
            y = sess.run(None, {name: x})[0]
            if clean is not None and i >= warmups:
                t, c = time.perf_counter(), time.thread_time()
                clean()
                clean_us.append((time.perf_counter() - t) * 1e6)
                clean_cpu_us.append((time.thread_time() - c) * 1e6)
        path = sess.end_profiling()
        with open(path) as f:
            events = json.load(f)
    prof = ort_layers_from_events(events, model, ml, warmups)
    prof.output, prof.clean_us, prof.clean_cpu_us = y, clean_us, clean_cpu_us
    return prof


def ort_layers_from_events(events: list, model, ml: ModelLayers, warmups: int) -> OrtProfile:
    """Per-layer µs per run from ONNX Runtime's profile events (Chrome trace), after `warmups`
    runs: the one mapping of ORT's kernels onto the walk's layers, for the profile of an in-process
    session and for the one `onnxruntime_perf_test -p` writes on a phone."""
    model_runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                        if e.get("cat") == "Session" and e.get("name") == "model_run")[warmups:]
    run_windows = model_runs
    kernels = sorted((e["ts"], e["name"][: -len("_kernel_time")], float(e["dur"])) for e in events
                     if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time"))
    by_node = ml.by_node()
    names = {o: by_node[n.name] for n in model.graph.node if n.name in by_node for o in n.output if o}
    names.update(by_node)  # ORT names kernels after a node, or (NCHWc) after its output tensor
    resolve = _resolver(names)
    samples: dict[int, list[float]] = {l.index: [] for l in ml.layers}
    reorders: dict[int, list[float]] = {}
    unmapped: set[str] = set()
    framework: list[float] = []  # per run: wall time of the run outside every kernel
    k = 0
    for start, end in run_windows:
        while k < len(kernels) and kernels[k][0] < start:
            k += 1
        per: dict[int, float] = {}
        per_reorder: dict[int, float] = {}
        pending, pending_reorder, last = 0.0, 0.0, None
        while k < len(kernels) and kernels[k][0] <= end:
            _, kname, dur = kernels[k]
            k += 1
            target = resolve(kname)
            if target == "next":
                pending += dur
                pending_reorder += dur
                continue
            if target == "prev":
                unmapped.add(kname)
                if last is None:
                    pending += dur
                    continue
                target = last
            per[target] = per.get(target, 0.0) + dur + pending
            if pending_reorder:
                per_reorder[target] = per_reorder.get(target, 0.0) + pending_reorder
            pending = pending_reorder = 0.0
            last = target
        if pending and last is not None:  # trailing reorders serve the graph output: the last layer
            per[last] = per.get(last, 0.0) + pending
        for idx in samples:
            samples[idx].append(per.get(idx, 0.0))
        framework.append(max(0.0, (end - start) - sum(per.values()) - pending))
        for idx, v in per_reorder.items():
            reorders.setdefault(idx, []).append(v)
    n = len(run_windows)
    reorder_med = {i: float(np.median(v + [0.0] * (n - len(v)))) for i, v in reorders.items()}
    return OrtProfile(samples, reorder_med, sorted(u for u in unmapped if not u.startswith("Reorder")), n, None,
                      [], [float(b - a) for a, b in run_windows], framework, [])


def _litert_interpreter(tfl: bytes, threads: int, xnnpack: bool):
    from ..runtimes.litert import new_interpreter

    return new_interpreter(tfl, threads, xnnpack)


class ModelProfiler:
    """What to measure of a whole model on each runtime; the `Session` it is given (entered by the
    caller) cools, records with full conditions, logs failures and applies the --resume rule."""

    def __init__(self, device, session, runtimes: Sequence[str] = ("onnxruntime", "litert"), threads: int = 1,
                 protocol: Protocol = Protocol()) -> None:
        if not device.in_process:  # a phone: its own runtimes' binaries (devprof.model_profiling.phone)
            from .phone import phone_runtimes

            runtimes = phone_runtimes(device, runtimes)
        bad = [r for r in runtimes if r not in MODEL_RUNTIMES and device.in_process]
        if bad:
            raise UsageError(f"whole models run on {', '.join(MODEL_RUNTIMES)} (not {', '.join(bad)}); "
                             "pruned models use --prune")
        self.device, self.session, self.runtimes = device, session, list(runtimes)
        self.threads, self.protocol = threads, protocol
        self._first = True  # the first model run of the session: --max-temp is waited for, no pause
        self.dinfo = device.info()
        self._infos: dict[str, RuntimeInfo] = {}

    def info(self, rt: str) -> RuntimeInfo:
        if rt not in self._infos:
            from ..runtimes import get_runtime

            self._infos[rt] = get_runtime(rt).info(self.device, self.threads)
        return self._infos[rt]

    def _record(self, kind: str, spec: KernelSpec, rt: str, m: Measurement, run_id: str, name: str, idx: int,
                lname: str, cond, t0: float, checked: str) -> Record:
        return self.session.record(spec, self.dinfo, self.info(rt), m, kind, conditions=cond, started_at=t0,
                                   checked=checked, model_run_id=run_id, model_name=name, layer_index=idx,
                                   layer_name=lname)

    def already(self, spec: KernelSpec, rt: str, name: str) -> bool:
        """True when --resume skips this model run (refused without --resume)."""
        return self.session.skip(record_key("model", spec.id, self.dinfo.id, self.info(rt).key, name),
                                 f"{name} on {rt}")

    def _cool(self) -> None:
        self.session.cool(self.device, first=self._first)
        self._first = False

    def profile(self, src: ModelSource) -> list[ModelRun]:
        """Every requested runtime on one model; records are saved as each run finishes."""
        from ..runtimes.conditions import conditions_around

        if not self.device.in_process:
            from .phone import profile_on_phone

            return profile_on_phone(self, src)

        ml_ort = walk(src.onnx, fusion="onnxruntime", name=src.name) if src.onnx is not None else None
        out: list[ModelRun] = []
        x_name, x = _input(src.onnx) if src.onnx is not None else ("", None)
        want: list = []  # the numpy reference output, computed once for all runtimes

        def check(got, rt: str) -> str:
            """What `got` was checked against ("" for a .tflite-only model, or a graph the numpy
            evaluator cannot run, such as ONNX Runtime's contrib ops: the records say so); a wrong
            answer is an error, never a timing."""
            if src.onnx is None:
                return ""
            if not want:
                try:
                    want.append(reference_output(src.onnx, {x_name: x}))
                except Exception:  # noqa: BLE001 - an op onnx.reference lacks: timed, marked unchecked
                    want.append(None)
            if want[0] is None:
                return ""
            bad = compare(got, want[0], graph_rtol(src.onnx))
            if bad:
                from ..runtimes.hostcpu import x86_without_vnni

                if is_quantized(src.onnx) and x86_without_vnni():
                    bad += ("; on x86 without VNNI ONNX Runtime's u8 x s8 kernels saturate with full 8-bit weights "
                            "(quantize with reduce_range, 7-bit weights, as --dtype int8 does)")
                raise KernelError(f"{rt} computes a different answer for {src.name}: {bad}")
            return CHECKED
        rts = [r for r in self.runtimes if src.onnx is not None or r != "onnxruntime"]  # .tflite: LiteRT only
        if not rts:
            raise UsageError(f"{src.name} is a .tflite model: it runs on litert or litert-builtin, not onnxruntime")
        for rt in rts:
            run = ModelRun(src.name, rt, uuid.uuid4().hex[:16], src.content_hash)
            out.append(run)
            t0 = time.time()
            try:
                if rt == "onnxruntime":
                    spec = model_spec(src, ml_ort)
                    if self.already(spec, rt, src.name):
                        run.skipped = True
                        continue
                    import onnxruntime as ort

                    sess = ort.InferenceSession(src.onnx.SerializeToString(), session_options(self.threads),
                                                providers=["CPUExecutionProvider"])
                    feeds = {x_name: x}
                    checked = check(sess.run(None, feeds)[0], rt)
                    self._cool()
                    with conditions_around(self.device) as cond:
                        run.e2e = measure_callable(lambda: sess.run(None, feeds), self.protocol)
                    nruns = _runs_for(run.e2e.median_us / 1e6, self.protocol)
                    prof = profile_ort_layers(src.onnx, ml_ort, self.threads, nruns, self.protocol.min_warmups,
                                              clean=lambda: sess.run(None, feeds))
                    run.unmapped = prof.unmapped
                    run.interleaved_us = float(np.median(prof.clean_us))
                    run.profiled_us = float(np.median(prof.profiled_us))
                    run.framework_us = float(np.median(prof.framework_us))
                    if self.threads == 1 and prof.clean_cpu_us:
                        run.cpu_us = float(np.median(prof.clean_cpu_us))
                    for layer in ml_ort.layers:
                        s = prof.layer_samples[layer.index]
                        m = Measurement(tuple(s), warmups=self.protocol.min_warmups) if s and max(s) > 0 else None
                        run.rows.append(LayerRow(layer, m, prof.reorder_us.get(layer.index, 0.0)))
                    run.overhead_us = run.reference_us - run.layer_sum_us
                    recs = [self._record("model", spec, rt, run.e2e, run.run_id, src.name, -1, "", cond.result, t0,
                                         checked)]
                    for r in run.rows:
                        if r.measurement is not None:
                            recs.append(self._record("layer", r.layer.spec, rt, r.measurement, run.run_id, src.name,
                                                     r.layer.index, r.layer.name, cond.result, t0, checked))
                    over = tuple(prof.framework_us)  # measured inside each profiled run
                    recs.append(self._record("layer", overhead_spec(src), rt, Measurement(over, self.protocol.min_warmups),
                                             run.run_id, src.name, -1, OVERHEAD_NAME, cond.result, t0, checked))
                else:  # LiteRT end to end
                    tfl = tflite_of(src, rt)
                    ml = walk(tfl, name=src.name)
                    spec = model_spec(src, ml)
                    if self.already(spec, rt, src.name):
                        run.skipped = True
                        continue
                    it = _litert_interpreter(tfl, self.threads, rt == "litert")
                    inp = it.get_input_details()[0]
                    xin = (x.transpose(0, 2, 3, 1).copy() if x.ndim == 4 else x) if x is not None else \
                        np.random.default_rng(0).random(inp["shape"], dtype=np.float32)
                    it.set_tensor(inp["index"], np.ascontiguousarray(xin, dtype=np.float32))
                    it.invoke()
                    z = it.get_tensor(it.get_output_details()[0]["index"])
                    checked = check(z.transpose(0, 3, 1, 2) if z.ndim == 4 else z, rt)
                    self._cool()
                    with conditions_around(self.device) as cond:
                        run.e2e = measure_callable(it.invoke, self.protocol)
                    recs = [self._record("model", spec, rt, run.e2e, run.run_id, src.name, -1, "", cond.result, t0,
                                         checked)]
                self.session.save(recs)
                run.records = recs
            except Exception as e:
                run.error = run_error(e)
            if run.error:
                self.session.fail({"runtime": rt, "device_id": self.dinfo.id, "model": src.name,
                                   "hash": src.content_hash, "error": run.error})
        return out


def profile_model(model: str | ModelSource, device=None, runtimes: Sequence[str] | None = None, threads: int = 1,
                  out: str | os.PathLike = "devprof-data", resume: bool = False, protocol: Protocol = Protocol(),
                  suite: str = "", prune: str = "", **session_kw) -> list[ModelRun]:
    """Profile one model (path, family name, module:factory or `ModelSource`) into dataset `out`
    (``dtype="int8"``: statically quantized first, see `devprof.models.quantize`)."""
    return profile_models([model], device, runtimes, threads, out, resume, protocol, suite, prune, **session_kw)


def profile_models(models: Sequence[Any], device=None, runtimes: Sequence[str] | None = None, threads: int = 1,
                   out: str | os.PathLike = "devprof-data", resume: bool = False, protocol: Protocol = Protocol(),
                   suite: str = "", prune: str = "",
                   on_model: Callable[[list[ModelRun]], None] | None = None, *, cooldown_s: float = 0.0,
                   max_temp_c: float | None = None, cooldown_timeout_s: float | None = None,
                   on_note: Callable[[str], None] | None = None, dtype: str = "fp32") -> list[ModelRun]:
    """Profile models (strings as for `resolve_model`, `ModelSource`s, or suite ``[[model]]`` dicts)
    in one `Session` on `out`: locked, pinned to ``protocol.cpus`` on local, cooled before each run.
    ``dtype="int8"``: float models are quantized statically (QDQ, calibrated on random inputs) and
    run on ONNX Runtime; with `prune`, the layers are timed as generated int8 kernels."""
    if dtype not in ("fp32", "int8"):
        raise UsageError(f"--dtype {dtype}: whole models run in fp32 or int8 (fp16 applies to kernel suites)")
    from ..devices import resolve_device
    from ..session import DEFAULT_COOLDOWN_TIMEOUT_S, Session

    device = device or resolve_device("local")
    session = Session(out, suite=suite, resume=resume, cooldown_s=cooldown_s, max_temp_c=max_temp_c,
                      cooldown_timeout_s=cooldown_timeout_s or DEFAULT_COOLDOWN_TIMEOUT_S, on_note=on_note)
    if prune:
        from .prune import profile_pruned

        pruned = profile_pruned(models, device, threads, session, protocol, prune, on_model, dtype=dtype,
                                on_note=on_note)
        others = [r for r in (runtimes or []) if r != "devprof-c"]
        if not others:
            return pruned
        # the dense model on the other runtimes named, for the comparison the search wants (into
        # the dataset the pruned run just wrote: hence resume)
        return pruned + profile_models(models, device, others, threads, out, True, protocol, suite, "", on_model,
                                       cooldown_s=cooldown_s, max_temp_c=max_temp_c,
                                       cooldown_timeout_s=cooldown_timeout_s, on_note=on_note, dtype=dtype)
    if threads < 1:
        raise UsageError("--threads must be >= 1")
    # lazily: a suite's models are built (and quantized) one entry at a time
    from ..runtimes.hostcpu import x86_without_vnni

    # 7-bit weights where this host's ORT saturates, as ORT's own quantizer does: every model is
    # checked by ORT here, a phone's before it is pushed (7-bit weights run as fast on a phone)
    reduce = dtype == "int8" and x86_without_vnni()
    sources = (as_dtype(s, dtype, reduce) for s in iter_sources(models))
    rts = list(runtimes) if runtimes else (
        (["onnxruntime"] if dtype == "int8" else ["onnxruntime", "litert"]) if device.in_process else [])
    results: list[ModelRun] = []
    with session, session.pinned(device, protocol.cpus):
        prof = ModelProfiler(device, session, rts, threads, protocol)
        for src in sources:
            runs = prof.profile(src)
            results.extend(runs)
            if on_model:
                on_model(runs)
        session.compact()
    return results
