"""Whole models on a phone, through the phone's own runtimes: `onnxruntime_perf_test` (ONNX
Runtime) and TFLite's `benchmark_model` (LiteRT), the Android builds docs/phones.md configures.

ONNX Runtime and LiteRT cannot run in this process for a phone, so the phone's own benchmark
binaries time the model there, and their profiles are mapped onto the same layer walk `local` uses,
into the same records (`devprof.model_profiling.profile` describes them): one ``model`` record (end to
end), one ``layer`` record per layer that ran, and the ``(overhead)`` term.

The flow, per model and runtime:

1. On this host: the model is walked (`walk`, with ORT's fusion for ORT; the .tflite walk for
   LiteRT), and checked: ORT must load and run it; the .tflite devprof converts must compute what
   ORT computes (as on `local`). Only then does anything go to the phone.
2. The tool binary and the model are pushed once, together, into one content-addressed folder.
3. One shell call runs R rounds, each a *clean* invocation (no profiling: its mean time per run
   is one end-to-end sample) followed by a *profiled* one (ORT's ``-p`` Chrome-trace profile, or
   ``--enable_op_profiling=true``), so the layer samples and the end-to-end samples saw the same
   phone, as the interleaved clean runs do on `local`.
4. Layers: ORT's ``*_kernel_time`` events go through the same mapping as `local`
   (`ort_layers_from_events`): one sample per profiled run. benchmark_model's "Run Order" rows
   are named ``[output tensors]:node``; the output tensors name the walk's layer, and each
   round's per-row average (over its ``count`` runs) is one sample. A delegate row (XNNPACK runs
   a whole fp32 CNN as one ``TfLiteXNNPackDelegate`` node) spans several layers and cannot be
   split: it is written as one ``(delegate)`` layer record naming the layers it covers; per-layer
   rows of a LiteRT model need ``-r litert-builtin`` (``--use_xnnpack=false``).
5. The overhead term: per profiled run (ORT) or round (benchmark_model), its wall time minus the
   time inside kernels, as on `local`.
"""
from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import DeviceError, KernelError, UsageError, one_line
from ..measure import Protocol
from ..records import KernelSpec, Measurement, RuntimeInfo
from ..runtimes.phone_tools import (ToolOutputError, parse_benchmark_model, parse_ort_profile, split_reps,
                                    tool_path, _tool_version)
from ..models.walk import Layer, ModelLayers, walk

if TYPE_CHECKING:
    from .profile import ModelProfiler
    from .runs import ModelRun
    from ..models.sources import ModelSource


@dataclass(frozen=True)
class PhoneTool:
    """What a runtime name means for a whole model on a phone."""

    runtime: str  # the records' runtime name (the kernel path's name for the same tool)
    tool: str  # the binary: benchmark_model | onnxruntime_perf_test
    xnnpack: bool = True
    ext: str = ""

    @property
    def env(self) -> str:
        return "DEVPROF_BENCHMARK_MODEL" if self.tool == "benchmark_model" else "DEVPROF_ORT_PERF_TEST"

    @property
    def label(self) -> str:
        return self.runtime + ("" if self.xnnpack or self.tool != "benchmark_model" else " (builtin ops)")


_ORT = PhoneTool("ort-perf-test", "onnxruntime_perf_test", ext=".onnx")
_TFL = PhoneTool("tflite-benchmark", "benchmark_model", True, ".tflite")
_TFL_BUILTIN = PhoneTool("tflite-benchmark", "benchmark_model", False, ".tflite")
#: Runtime names `--model` accepts on a phone: the local names and the phone tools' own.
PHONE_MODEL_RUNTIMES: dict[str, PhoneTool] = {
    "onnxruntime": _ORT, "ort-perf-test": _ORT, "litert": _TFL, "tflite-benchmark": _TFL,
    "litert-builtin": _TFL_BUILTIN,
}
_REP = "@@devprof-rep"
_PROFILE = "@@devprof-profile"
_CLEAN = "@@devprof-clean"


def missing_tool(tool: PhoneTool) -> str | None:
    """Why `tool` cannot run (its binary is not configured or not there), or None."""
    p = tool_path(tool.tool)
    if not p:
        from ..devices.table import config_path

        return (f"set ${tool.env} to an Android {tool.tool} build, or [tools] {tool.tool} = '/path' in "
                f"{config_path()} (docs/phones.md)")
    if not Path(p).is_file():
        return f"{tool.tool} not found at {p} (${tool.env} or [tools] {tool.tool})"
    return None


def phone_runtimes(device, requested: Sequence[str] | None) -> list[str]:
    """The runtimes to run models with on phone `device`: the requested ones, each checked (one
    line naming what is missing and how to configure it), or by default every one whose tool is
    configured."""
    if not requested:
        have = [r for r in ("onnxruntime", "litert") if missing_tool(PHONE_MODEL_RUNTIMES[r]) is None]
        if not have:
            raise UsageError(f"whole models on {device.name} run through the phone's onnxruntime_perf_test "
                             f"(-r onnxruntime) or benchmark_model (-r litert): "
                             f"{missing_tool(_ORT)}; {missing_tool(_TFL)}")
        return have
    for rt in requested:
        tool = PHONE_MODEL_RUNTIMES.get(rt)
        if tool is None:
            why = ("devprof-c times a model's conv/FC layers with --prune SCHEME:RATIO"
                   if rt == "devprof-c" else f"{rt} has no whole-model runner on phones")
            raise UsageError(f"whole models on {device.name} run through onnxruntime (onnxruntime_perf_test) or "
                             f"litert / litert-builtin (benchmark_model), not {rt}: {why}")
        why = missing_tool(tool)
        if why:
            raise UsageError(f"{rt} on {device.name} (whole models) runs the phone's {tool.tool}: {why}")
    return list(dict.fromkeys(requested))


def rounds(protocol: Protocol) -> int:
    """Clean + profiled invocation pairs per model: the phone tools' kernel repeats."""
    return max(3, min(protocol.min_repeats, 10))


def runs_per_call(protocol: Protocol) -> int:
    return max(10, protocol.min_repeats)


# ---------------------------------------------------------------------------------------- commands
# One shell call: R rounds of (clean invocation, profiled invocation); markers split the output.
# Arguments stay argv items ("$@"), never shell text.
_ORT_SCRIPT = (
    'n=$1; r=$2; p=$3; m=$4; shift 4; i=0\n'
    'while [ "$i" -lt "$n" ]; do\n'
    '  echo "' + _REP + ' $i"; echo "' + _CLEAN + '"\n'
    '  "$@" -m times -r "$r" "$m" || exit $?\n'
    '  rm -f prof_*.json\n'
    '  "$@" -m times -r "$p" -p prof "$m" >/dev/null || exit $?\n'
    '  f=$(ls -t prof_*.json | head -n 1); echo "' + _PROFILE + '"; cat "$f"; echo; rm -f "$f"\n'
    '  i=$((i+1))\n'
    'done\n')
_TFL_SCRIPT = (
    'n=$1; shift; i=0\n'
    'while [ "$i" -lt "$n" ]; do\n'
    '  echo "' + _REP + ' $i"; echo "' + _CLEAN + '"\n'
    '  "$@" --enable_op_profiling=false || exit $?\n'
    '  echo "' + _PROFILE + '"\n'
    '  "$@" --enable_op_profiling=true || exit $?\n'
    '  i=$((i+1))\n'
    'done\n')


def ort_command(tool: str, model: str, threads: int, protocol: Protocol) -> list[str]:
    r = runs_per_call(protocol)
    n = rounds(protocol)
    p = max(2, math.ceil(r / n)) + 1  # the first profiled run of each call is its warm-up
    return ["sh", "-c", _ORT_SCRIPT, "sh", str(n), str(r), str(p), model, tool, "-e", "cpu", "-x", str(threads),
            "-y", "1", "-I"]


def tflite_command(tool: str, model: str, threads: int, xnnpack: bool, protocol: Protocol) -> list[str]:
    return ["sh", "-c", _TFL_SCRIPT, "sh", str(rounds(protocol)), tool, f"--graph={model}",
            f"--num_threads={threads}", f"--use_xnnpack={'true' if xnnpack else 'false'}",
            f"--warmup_runs={max(1, protocol.min_warmups)}", f"--warmup_min_secs={protocol.warmup_s}",
            f"--num_runs={runs_per_call(protocol)}", f"--min_secs={protocol.min_time_s}",
            f"--max_secs={protocol.max_time_s}"]


def _halves(chunk: str) -> tuple[str, str]:
    """A round's output -> (clean invocation's, profiled invocation's)."""
    _, c, rest = chunk.partition(_CLEAN)
    clean, p, prof = rest.partition(_PROFILE)
    if not c or not p:
        raise ToolOutputError("a round of the phone run printed no clean/profiled split (output cut short?)")
    return clean, prof


_ORT_AVG = re.compile(r"Average inference time cost:\s*([-+0-9.eE]+)\s*ms")
_ORT_N = re.compile(r"Total inference requests:\s*(\d+)")


def parse_ort_clean(text: str) -> tuple[float, int]:
    """(mean µs per run, runs) from `onnxruntime_perf_test -m times` stdout."""
    m = _ORT_AVG.search(text)
    if not m:
        raise ToolOutputError("onnxruntime_perf_test printed no 'Average inference time cost': "
                              + one_line((text.strip().splitlines() or ["empty output"])[-1], 160))
    us = float(m.group(1)) * 1000.0
    if not (math.isfinite(us) and us >= 0):
        raise ToolOutputError(f"onnxruntime_perf_test: bad average {m.group(1)!r}")
    n = _ORT_N.search(text)
    return us, int(n.group(1)) if n else 1


# ---------------------------------------------------------------------------------------- parsing
@dataclass
class PhoneModelResult:
    e2e: Measurement
    rows: list[tuple[Layer, Measurement | None]]
    framework: tuple[float, ...]
    profiled_us: float
    unmapped: list[str]


def _measure(tool: str, samples: Sequence[float], warmups: int = 0, number: int = 1) -> Measurement:
    try:
        return Measurement(tuple(samples), warmups=warmups, number=number)
    except ValueError as e:
        raise ToolOutputError(f"{tool}: unusable timings ({e})") from None


def parse_ort_run(stdout: str, model, ml: ModelLayers) -> PhoneModelResult:
    """The rounds of `ort_command` -> end-to-end samples and per-layer samples on `ml`."""
    from .profile import ort_layers_from_events

    clean: list[float] = []
    number = 1
    samples: dict[int, list[float]] = {l.index: [] for l in ml.layers}
    framework: list[float] = []
    profiled: list[float] = []
    unmapped: set[str] = set()
    for chunk in split_reps(stdout):
        c, p = _halves(chunk)
        us, number = parse_ort_clean(c)
        clean.append(us)
        parse_ort_profile(p)  # validates: a one-line ToolOutputError on anything unreadable
        events = json.loads(p)
        events = events.get("traceEvents", []) if isinstance(events, dict) else events
        events = [{"cat": e.get("cat"), "name": str(e.get("name", "")), "ts": float(e.get("ts", 0)),
                   "dur": float(e.get("dur", 0))}
                  for e in events if isinstance(e, dict) and e.get("cat") in ("Session", "Node")]
        nruns = sum(1 for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
        if not nruns:
            raise ToolOutputError("ORT profile holds no model_run events")
        got = ort_layers_from_events(events, model, ml, 1 if nruns > 2 else 0)
        for idx, v in got.layer_samples.items():
            samples[idx].extend(v)
        framework.extend(got.framework_us)
        profiled.extend(got.profiled_us)
        unmapped.update(got.unmapped)
    if not clean:
        raise ToolOutputError("onnxruntime_perf_test printed nothing")
    rows = [(l, _measure("onnxruntime_perf_test", samples[l.index]) if samples[l.index] and max(samples[l.index]) > 0
             else None) for l in ml.layers]
    return PhoneModelResult(_measure("onnxruntime_perf_test", clean, 1, number), rows, tuple(framework),
                            float(np.median(profiled)) if profiled else float("nan"), sorted(unmapped))


_ROW_NAME = re.compile(r"^\[(.*)\]:(\d+)$")


@dataclass
class _Group:
    """A delegate row mapped onto the walk: the layers it ran, which its time cannot be split among."""

    first: int
    last: int
    node_type: str
    samples: list[float]


def _round_layers(rows, ml: ModelLayers, by_node: dict[str, int], unmapped: set[str]) -> dict[tuple, float]:
    """One round's op rows (run order) -> µs per target: ("L", layer index) for a row of one layer
    (rows of the same layer add up: a folded PAD with its conv), ("D", first, last, node type) for
    a delegate spanning several. A row naming no tensor of the walk (a view the walk folded away)
    goes to the row before it, or the one after when it comes first."""
    per: dict[tuple, float] = {}
    done, last, pending = -1, None, 0.0
    for r in rows:
        us = r.avg_ms * 1000.0
        if r.name.startswith("Delegate/"):  # an operator inside a delegate, whose own row holds its time
            unmapped.add(r.name)
            continue
        m = _ROW_NAME.match(r.name)
        idx = [by_node[t.strip()] for t in m.group(1).split(",") if t.strip() in by_node] if m else []
        if not idx:
            unmapped.add(r.name)
            if last is None:
                pending += us
            else:
                per[last] = per.get(last, 0.0) + us
            continue
        hi = max(idx)
        lo = min(min(idx), done + 1) if "delegate" in r.node_type.lower() else hi
        target: tuple = ("D", lo, hi, r.node_type) if lo < hi else ("L", hi)
        per[target] = per.get(target, 0.0) + us + pending
        pending, last, done = 0.0, target, max(done, hi)
    if pending and last is not None:
        per[last] += pending
    return per


def parse_tflite_run(stdout: str, ml: ModelLayers) -> tuple[PhoneModelResult, list[_Group]]:
    """The rounds of `tflite_command` -> end-to-end samples, per-layer samples, delegate groups."""
    clean: list[float] = []
    number = 1
    per_round: list[dict[tuple, float]] = []
    framework: list[float] = []
    profiled: list[float] = []
    unmapped: set[str] = set()
    by_node = ml.by_node()
    for chunk in split_reps(stdout):
        c, p = _halves(chunk)
        rc = parse_benchmark_model(c)
        if rc.runs is None:
            raise ToolOutputError("benchmark_model printed no timing line for the clean runs")
        clean.append(rc.runs.avg_us)
        number = rc.runs.count
        rp = parse_benchmark_model(p)
        if not rp.ops:
            raise ToolOutputError("benchmark_model printed no operator profile (--enable_op_profiling ignored?)")
        per = _round_layers(rp.ops, ml, by_node, unmapped)
        per_round.append(per)
        inside = sum(per.values())
        wall = rp.runs.avg_us if rp.runs else (rp.profiled_runs.avg_us if rp.profiled_runs else inside)
        profiled.append(wall)
        framework.append(max(0.0, wall - inside))
    if not clean:
        raise ToolOutputError("benchmark_model printed nothing")
    targets = {t for per in per_round for t in per}
    samples = {t: [per.get(t, 0.0) for per in per_round] for t in targets}
    delegates = [_Group(t[1], t[2], t[3], samples[t]) for t in sorted(x for x in targets if x[0] == "D")]
    covered = {i for g in delegates for i in range(g.first, g.last + 1)}
    rows: list[tuple[Layer, Measurement | None]] = []
    for l in ml.layers:
        if l.index in covered:
            continue
        s = samples.get(("L", l.index))
        rows.append((l, _measure("benchmark_model", s, number=number) if s and max(s) > 0 else None))
    return PhoneModelResult(_measure("benchmark_model", clean, 1, number), rows, tuple(framework),
                            float(np.median(profiled)), sorted(unmapped)), delegates


def delegate_layer(src: "ModelSource", g: _Group, ml: ModelLayers) -> Layer:
    """A delegate's span as a pseudo-layer (index -1): its time cannot be split among the layers."""
    names = f"{ml.layers[g.first].name} .. {ml.layers[g.last].name}"
    spec = KernelSpec(op="other", bias=False, attrs={"term": "delegate", "delegate": g.node_type, "model": src.name,
                                                      "hash": src.content_hash, "first": g.first, "last": g.last})
    return Layer(-1, f"({g.node_type}: layers {g.first}-{g.last}, {names})", spec, [], [g.node_type])


# ---------------------------------------------------------------------------------------- running
def profile_on_phone(prof: "ModelProfiler", src: "ModelSource") -> list["ModelRun"]:
    """Every requested runtime on one model on the phone; records saved as each run finishes.
    A phone that stops answering ends the run (DeviceError): what was saved stays, --resume
    completes it."""
    from ..runtimes.model_check import CHECKED, compare, graph_rtol, reference_output
    from .profile import _litert_interpreter, named_nodes
    from .runs import OVERHEAD_NAME, LayerRow, ModelRun, model_spec, overhead_spec, run_error
    from ..models.sources import model_input as _input
    from ..models.sources import tflite_of

    device, protocol, threads = prof.device, prof.protocol, prof.threads
    rts = [r for r in prof.runtimes if src.onnx is not None or PHONE_MODEL_RUNTIMES[r].tool != "onnxruntime_perf_test"]
    if not rts:
        raise UsageError(f"{src.name} is a .tflite model: it runs on litert or litert-builtin, not onnxruntime")
    out: list[ModelRun] = []
    want: list = []  # the numpy reference output of the ONNX graph, computed once

    def check(got, what: str) -> None:
        """On this host, before anything is pushed: `got` must be the numpy reference's answer."""
        if not want:
            name, x = _input(src.onnx)
            want.append(reference_output(src.onnx, {name: x}))
        bad = compare(got, want[0], graph_rtol(src.onnx))
        if bad:
            raise KernelError(f"{what} computes a different answer for {src.name} on this host: {bad}")

    for rt in rts:
        tool = PHONE_MODEL_RUNTIMES[rt]
        if rt not in prof._infos:
            prof._infos[rt] = RuntimeInfo(tool.runtime, _tool_version(tool_path(tool.tool)), threads,
                                          {"ep": "CPUExecutionProvider"} if tool.ext == ".onnx"
                                          else {"xnnpack": tool.xnnpack})
        run = ModelRun(src.name, tool.label, uuid.uuid4().hex[:16], src.content_hash)
        out.append(run)
        t0 = time.time()
        try:
            # 1. walk (what the run is keyed by), then check on this host
            if tool.ext == ".onnx":
                ml = walk(src.onnx, fusion="onnxruntime", name=src.name)
                named = named_nodes(src.onnx)  # the profiler names kernels after nodes
                data = named.SerializeToString()
            else:
                data = tflite_of(src, rt)
                ml = walk(data, name=src.name)
            spec = model_spec(src, ml)
            if prof.already(spec, rt, src.name):  # refused without --resume
                run.skipped = True
                continue
            if tool.ext == ".onnx":
                check(_host_ort(src), "ONNX Runtime")
            elif src.onnx is not None:  # the .tflite devprof converted must compute the ONNX graph's answer
                it = _litert_interpreter(data, 1, tool.xnnpack)
                inp = it.get_input_details()[0]
                _, x = _input(src.onnx)
                it.set_tensor(inp["index"], np.ascontiguousarray(x.transpose(0, 2, 3, 1) if x.ndim == 4 else x,
                                                                 dtype=np.float32))
                it.invoke()
                z = it.get_tensor(it.get_output_details()[0]["index"])
                check(z.transpose(0, 3, 1, 2) if z.ndim == 4 else z, "LiteRT")
            checked = CHECKED if src.onnx is not None else ""  # a .tflite-only model: no graph to evaluate
            prof._cool()
            # 2. push tool and model once, together; 3. one shell call for every round
            with tempfile.TemporaryDirectory(prefix="devprof-phone-model-") as tmp:
                bp = Path(tmp) / tool.tool
                shutil.copy2(tool_path(tool.tool), bp)
                bp.chmod(0o755)
                mp = Path(tmp) / f"model{tool.ext}"
                mp.write_bytes(data)
                remote = device.stage([bp, mp])
            exe = f"{remote}/{tool.tool}"
            argv = (ort_command(exe, mp.name, threads, protocol) if tool.ext == ".onnx"
                    else tflite_command(exe, mp.name, threads, tool.xnnpack, protocol))
            res = device.execute(argv, remote, timeout_s=max(300.0, protocol.max_time_s * 20 * rounds(protocol)),
                                 cpus=protocol.cpus)
            if res.timed_out:
                raise KernelError(f"{tool.tool} timed out on {src.name}")
            if res.returncode != 0:
                tail = (res.stderr.strip() or res.stdout.strip()).splitlines()[-1:] or [""]
                raise KernelError(f"{tool.tool} exited {res.returncode} on {src.name}: {one_line(tail[0], 200)}")
            # 4. parse onto the walk
            delegates: list[_Group] = []
            if tool.ext == ".onnx":
                got = parse_ort_run(res.stdout, named, ml)
            else:
                got, delegates = parse_tflite_run(res.stdout, ml)
            from ..runtimes.conditions import conditions_from

            before, after = getattr(res, "state_before", None), getattr(res, "state_after", None)
            cond = conditions_from(before, after, protocol.cpus) if before and after else \
                conditions_from(device.state(), device.state(), protocol.cpus)
            run.e2e = got.e2e
            run.unmapped = got.unmapped
            run.interleaved_us = got.e2e.median_us
            run.profiled_us = got.profiled_us
            run.framework_us = float(np.median(got.framework)) if got.framework else float("nan")
            for layer, m in got.rows:
                run.rows.append(LayerRow(layer, m))
            for g in delegates:
                run.rows.append(LayerRow(delegate_layer(src, g, ml),
                                         _measure(tool.tool, g.samples, number=got.e2e.number)))
            run.overhead_us = run.reference_us - run.layer_sum_us
            recs = [prof._record("model", spec, rt, run.e2e, run.run_id, src.name, -1, "", cond, t0, checked)]
            for r in run.rows:
                if r.measurement is not None:
                    recs.append(prof._record("layer", r.layer.spec, rt, r.measurement, run.run_id, src.name,
                                             r.layer.index, r.layer.name, cond, t0, checked))
            if got.framework:
                recs.append(prof._record("layer", overhead_spec(src), rt, _measure(tool.tool, got.framework),
                                         run.run_id, src.name, -1, OVERHEAD_NAME, cond, t0, checked))
            prof.session.save(recs)
            run.records = recs
        except DeviceError:
            raise  # the phone went away: stop; what is saved stays (--resume)
        except Exception as e:
            run.error = run_error(e)
        if run.error:
            prof.session.fail({"runtime": tool.runtime, "device_id": prof.dinfo.id, "model": src.name,
                               "hash": src.content_hash, "error": run.error})
    return out


def _host_ort(src: "ModelSource"):
    """ONNX Runtime's answer on this host: the model must load and run before it goes to the phone."""
    import onnxruntime as ort

    from ..runtimes.onnxruntime import session_options
    from ..models.sources import model_input as _input

    try:
        sess = ort.InferenceSession(src.onnx.SerializeToString(), session_options(1),
                                    providers=["CPUExecutionProvider"])
        name, x = _input(src.onnx)
        return sess.run(None, {name: x})[0]
    except Exception as e:
        raise KernelError(f"{src.name} does not run in ONNX Runtime on this host: "
                          f"{one_line((str(e).splitlines() or [''])[0], 200)}") from None
