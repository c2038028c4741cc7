"""Dense baselines on phones: TFLite's `benchmark_model` and ONNX Runtime's `onnxruntime_perf_test`.

ONNX Runtime and LiteRT run in-process on `local` only; on a phone the field's own benchmark
binaries are the honest dense baselines. When the user points devprof at Android builds of them
(``[tools]`` in the device config, or $DEVPROF_BENCHMARK_MODEL / $DEVPROF_ORT_PERF_TEST), each
kernel's single-op model (the same one the local runtimes time) is first checked on this machine
against the numpy reference with the in-process runtime, then pushed with the binary and run on
the phone in one shell call. The tools' outputs are parsed here:

* `benchmark_model --enable_op_profiling=true`: the "Operator-wise Profiling Info for Regular
  Benchmark Runs" table (per-node average ms over `count` runs) and the ``count=... avg=...``
  timing line. devprof runs the tool `repeats` times in that one shell call; each run's op time
  is one sample (the mean of `count` calls), as `Measurement` defines a sample.
* `onnxruntime_perf_test -p FILE`: ORT's Chrome-trace profile JSON; every ``*_kernel_time`` Node
  event carries a per-run duration (µs), summed per ``model_run`` into raw samples (ReorderInput /
  ReorderOutput nodes that the optimiser inserts are part of the kernel's cost, as on `local`).
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..devices.base import Device
from ..errors import DevprofError, one_line
from ..measure import Protocol
from ..records import KernelSpec, Measurement, RuntimeInfo
from .base import CHECKED, Outcome, Runtime


class ToolOutputError(DevprofError):
    """A phone tool printed something devprof cannot read (truncated, garbage, another format)."""

    exit_code = 3


# ----------------------------------------------------------------------------- benchmark_model
@dataclass(frozen=True)
class OpRow:
    node_type: str
    first_ms: float
    avg_ms: float
    percent: float
    times_called: int
    name: str


@dataclass(frozen=True)
class RunStats:
    """A ``count=N first=F curr=C min=A max=B avg=M std=S`` line (µs)."""

    count: int
    avg_us: float
    min_us: float = float("nan")
    max_us: float = float("nan")
    std_us: float = float("nan")
    first_us: float = float("nan")


@dataclass
class BenchmarkModelReport:
    ops: list[OpRow] = field(default_factory=list)  # regular-run op profile, run order
    runs: RunStats | None = None  # the last "count=... avg=..." line before the profiles (the timed runs)
    warmup: RunStats | None = None
    profiled_runs: RunStats | None = None  # "Timings (microseconds):" of the op-profiling section

    @property
    def op_us(self) -> float:
        """Sum of the per-node averages: the kernel time without the interpreter's own overhead."""
        return sum(o.avg_ms for o in self.ops) * 1000.0

    @property
    def count(self) -> int:
        for s in (self.profiled_runs, self.runs):
            if s and s.count > 0:
                return s.count
        return 1


_STATS_RE = re.compile(r"count=(\d+)((?:\s+\w+=[-+0-9.eE]+)*)")
_FIELD_RE = re.compile(r"(\w+)=([-+0-9.eE]+)")


def _stats(line: str) -> RunStats | None:
    m = _STATS_RE.search(line)
    if not m:
        return None
    f: dict[str, float] = {}
    for k, v in _FIELD_RE.findall(m.group(2)):
        try:
            f[k] = float(v)
        except ValueError:
            continue
    avg = f.get("avg", f.get("curr", float("nan")))
    return RunStats(int(m.group(1)), avg, f.get("min", float("nan")), f.get("max", float("nan")),
                    f.get("std", float("nan")), f.get("first", float("nan")))


def _num(s: str) -> float:
    return float(s.strip().rstrip("%"))


def parse_benchmark_model(text: str) -> BenchmarkModelReport:
    """Parse one `benchmark_model` run's output (with ``--enable_op_profiling=true``)."""
    rep = BenchmarkModelReport()
    section = ""
    table = ""
    timed: list[RunStats] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Operator-wise Profiling Info for Regular Benchmark Runs"):
            section, table = "regular", ""
            continue
        if line.startswith("Profiling Info for Benchmark Initialization"):
            section, table = "init", ""
            continue
        if line.startswith("=====") and "=====" in line[5:]:
            table = line.strip("= ").lower()
            continue
        if section == "" and "count=" in line:
            st = _stats(line)
            if st:
                timed.append(st)
            continue
        if section == "regular" and line.startswith("Timings (microseconds)"):
            rep.profiled_runs = _stats(line)
            continue
        if section == "regular" and table == "run order" and line and not line.startswith("["):
            cols = [c for c in raw.split("\t") if c.strip()]
            if len(cols) < 8:
                continue
            try:
                rep.ops.append(OpRow(cols[0].strip(), _num(cols[1]), _num(cols[2]), _num(cols[3]),
                                     int(_num(cols[6])), cols[7].strip()))
            except ValueError:
                raise ToolOutputError(f"benchmark_model: unreadable op-profiling row {line[:120]!r}") from None
    if timed:
        rep.runs = timed[-1]
        rep.warmup = timed[0] if len(timed) > 1 else None
    if not rep.ops and rep.runs is None:
        raise ToolOutputError("benchmark_model printed no timings (no 'count=' line, no op profile): "
                              + one_line((text.strip().splitlines() or ["empty output"])[-1], 160))
    for o in rep.ops:
        if not (math.isfinite(o.avg_ms) and o.avg_ms >= 0):
            raise ToolOutputError(f"benchmark_model: bad op time in {o.name!r}")
    return rep


# ------------------------------------------------------------------------------ ORT profile
@dataclass
class OrtProfile:
    """Per-run kernel time (µs) and per-node samples from an ORT profile."""

    run_kernel_us: list[float]  # one value per model_run: sum of its nodes' kernel times
    node_us: dict[str, list[float]]  # node name -> kernel time per run
    node_ops: dict[str, str]  # node name -> op type (Conv, ReorderInput, ...)
    run_total_us: list[float]  # model_run durations (includes ORT's per-run overhead)


def parse_ort_profile(data: str | bytes) -> OrtProfile:
    """Parse the Chrome-trace JSON that ``onnxruntime_perf_test -p`` / ``enable_profiling`` writes."""
    try:
        events = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # RecursionError: "[[[[..." nesting
        raise ToolOutputError(f"ORT profile is not JSON ({str(e)[:120]})") from None
    if isinstance(events, dict):
        events = events.get("traceEvents")
    if not isinstance(events, list):
        raise ToolOutputError("ORT profile: expected a list of trace events")
    runs: list[tuple[float, float]] = []
    nodes: list[tuple[float, str, str, float]] = []
    for e in events:
        if not isinstance(e, dict):
            continue
        try:
            name, cat = str(e.get("name", "")), e.get("cat")
            ts, dur = float(e.get("ts", 0)), float(e.get("dur", 0))
        except (TypeError, ValueError, OverflowError):
            raise ToolOutputError("ORT profile: an event has a non-numeric ts/dur") from None
        if not (math.isfinite(ts) and math.isfinite(dur)) or dur < 0:
            raise ToolOutputError("ORT profile: an event has an invalid ts/dur")
        if cat == "Session" and name == "model_run":
            runs.append((ts, dur))
        elif cat == "Node" and name.endswith("_kernel_time"):
            args = e.get("args") if isinstance(e.get("args"), dict) else {}
            nodes.append((ts, name[: -len("_kernel_time")], str(args.get("op_name", "")), dur))
    if not nodes:
        raise ToolOutputError("ORT profile holds no node kernel times (was profiling enabled?)")
    runs.sort()
    nodes.sort()
    if not runs:  # older builds: no model_run events; one run per first node's repetition
        first = nodes[0][1]
        starts = [n[0] for n in nodes if n[1] == first]
        runs = [(s, (starts[i + 1] - s) if i + 1 < len(starts) else math.inf) for i, s in enumerate(starts)]
    run_kernel = [0.0] * len(runs)
    node_us: dict[str, list[float]] = {}
    ops: dict[str, str] = {}
    ri = 0
    for ts, name, op, dur in nodes:
        while ri < len(runs) and ts > runs[ri][0] + runs[ri][1]:
            ri += 1
        if ri >= len(runs) or ts < runs[ri][0]:
            continue  # a node outside every run (initialisation): not a kernel sample
        run_kernel[ri] += dur
        node_us.setdefault(name, []).append(dur)
        ops[name] = op
    kept = [i for i, v in enumerate(run_kernel) if v > 0]
    return OrtProfile([run_kernel[i] for i in kept], node_us, ops,
                      [runs[i][1] for i in kept if math.isfinite(runs[i][1])])


# ------------------------------------------------------------------------------- runtimes
def tool_path(kind: str) -> str:
    """Where the user keeps an Android tool: env var, else ``[tools]`` in the device config."""
    env = {"benchmark_model": "DEVPROF_BENCHMARK_MODEL", "onnxruntime_perf_test": "DEVPROF_ORT_PERF_TEST"}[kind]
    if os.environ.get(env):
        return os.environ[env]
    from ..devices.table import load_config

    tools = load_config().get("tools", {})
    v = tools.get(kind, "") if isinstance(tools, dict) else ""
    return str(v) if v else ""


class _PhoneTool(Runtime):
    """Shared flow: check the single-op model on the host, push model + tool, run it on the phone."""

    tool = ""
    ext = ""
    batch_size = 1

    def available(self, device: Device) -> str | None:
        p = tool_path(self.tool)
        if not p:
            return (f"set the path of an Android {self.tool} build ($DEVPROF_{'BENCHMARK_MODEL' if self.tool == 'benchmark_model' else 'ORT_PERF_TEST'}"
                    f" or [tools] {self.tool} = '...' in {_cfg()})")
        if not Path(p).is_file():
            return f"{self.tool} not found at {p}"
        return None

    def build_checked(self, spec: KernelSpec) -> tuple[bytes, str]:
        """The model bytes, or ('', error) when the model does not compute the reference answer."""
        raise NotImplementedError

    def command(self, tool: str, model: str, threads: int, protocol: Protocol) -> list[str]:
        raise NotImplementedError

    def parse(self, stdout: str, protocol: Protocol) -> Measurement:
        raise NotImplementedError

    def measure(self, device: Device, specs: Sequence[KernelSpec], threads: int,
                protocol: Protocol) -> Iterator[Outcome]:
        from .conditions import conditions_from

        with tempfile.TemporaryDirectory(prefix="devprof-tool-") as tmp:
            bp = Path(tmp) / self.tool
            shutil.copy2(tool_path(self.tool), bp)
            bp.chmod(0o755)
            tool = f"{device.stage([bp])}/{self.tool}"  # pushed once; content-addressed
        for spec in specs:
            started = time.time()
            model, err = self.build_checked(spec)
            if err:
                yield Outcome(spec, error=err, started_at=started, finished_at=time.time())
                continue
            with tempfile.TemporaryDirectory(prefix="devprof-model-") as tmp:
                mp = Path(tmp) / f"model{self.ext}"
                mp.write_bytes(model)
                remote = device.stage([mp])
            argv = self.command(tool, f"model{self.ext}", threads, protocol)
            res = device.execute(argv, remote, timeout_s=max(60.0, protocol.max_time_s * 10 * self.repeats(protocol)),
                                 cpus=protocol.cpus)
            if res.timed_out:
                yield Outcome(spec, error=f"{self.tool} timed out", started_at=started, finished_at=time.time())
                continue
            if res.returncode != 0:
                tail = (res.stderr.strip() or res.stdout.strip()).splitlines()[-1:] or [""]
                yield Outcome(spec, error=f"{self.tool} exited {res.returncode}: {one_line(tail[0], 200)}",
                              started_at=started, finished_at=time.time())
                continue
            try:
                m = self.parse(res.stdout, protocol)
            except ToolOutputError as e:
                yield Outcome(spec, error=str(e), started_at=started, finished_at=time.time())
                continue
            before, after = getattr(res, "state_before", None), getattr(res, "state_after", None)
            cond = conditions_from(before, after, protocol.cpus) if before and after else None
            kw: dict[str, Any] = {"conditions": cond} if cond else {}
            yield Outcome(spec, m, started_at=started, finished_at=time.time(), checked=CHECKED, **kw)

    @staticmethod
    def repeats(protocol: Protocol) -> int:
        return max(3, min(protocol.min_repeats, 10))


def _cfg() -> str:
    from ..devices.table import config_path

    return str(config_path())


_REP = "@@devprof-rep"
# Run the tool N times in one shell call; each run prints a marker first. Arguments stay argv items.
_LOOP = 'n=$1; shift; i=0; while [ "$i" -lt "$n" ]; do echo "' + _REP + ' $i"; "$@" || exit $?; i=$((i+1)); done'


class TFLiteBenchmark(_PhoneTool):
    """TFLite's `benchmark_model` on the phone (XNNPACK on, as in LiteRT's default)."""

    name = "tflite-benchmark"
    tool = "benchmark_model"
    ext = ".tflite"
    xnnpack = True

    def supports(self, spec: KernelSpec) -> str | None:
        from ..artifacts import tflite_ops

        return _fp32_only(self.name, spec) or tflite_ops.supports(spec)

    def info(self, device: Device, threads: int) -> RuntimeInfo:
        return RuntimeInfo(self.name, _tool_version(tool_path(self.tool)), threads, {"xnnpack": self.xnnpack})

    def build_checked(self, spec: KernelSpec) -> tuple[bytes, str]:
        import numpy as np

        from ..artifacts import tflite_ops
        from .reference import check_output, make_tensors, reference
        from .litert import LiteRT

        try:
            tensors = make_tensors(spec)
            model, feeds, pads = tflite_ops.build_model(spec, tensors)
            it = LiteRT().interpreter(model, 1)
            for d, arr in zip(it.get_input_details(), feeds.values()):
                it.set_tensor(d["index"], np.ascontiguousarray(arr, dtype=np.float32))
            it.invoke()
            y = it.get_tensor(it.get_output_details()[0]["index"])
        except Exception as e:  # this kernel's model failed, not the run
            return b"", f"tflite model failed on the host check: {one_line((str(e).splitlines() or [''])[0], 200)}"
        bad = check_output(spec, y, reference(spec, tensors, pads))
        return (b"", bad) if bad else (bytes(model), "")

    def command(self, tool: str, model: str, threads: int, protocol: Protocol) -> list[str]:
        runs = max(10, protocol.min_repeats)
        return ["sh", "-c", _LOOP, "sh", str(self.repeats(protocol)), tool, f"--graph={model}",
                f"--num_threads={threads}", f"--use_xnnpack={'true' if self.xnnpack else 'false'}",
                "--enable_op_profiling=true", f"--warmup_runs={max(1, protocol.min_warmups)}",
                f"--warmup_min_secs={protocol.warmup_s}", f"--num_runs={runs}", f"--min_secs={protocol.min_time_s}",
                f"--max_secs={protocol.max_time_s}"]

    def parse(self, stdout: str, protocol: Protocol) -> Measurement:
        samples, count, warm = [], 1, 0
        for chunk in split_reps(stdout):
            rep = parse_benchmark_model(chunk)
            samples.append(rep.op_us if rep.ops else rep.runs.avg_us)  # type: ignore[union-attr]
            count = rep.count
            warm = rep.warmup.count if rep.warmup else warm
        if not samples:
            raise ToolOutputError("benchmark_model printed nothing")
        return _measurement("benchmark_model", samples, warm, count)


class OrtPerfTest(_PhoneTool):
    """ONNX Runtime's `onnxruntime_perf_test` on the phone (CPU EP), timed from its profile."""

    name = "ort-perf-test"
    tool = "onnxruntime_perf_test"
    ext = ".onnx"

    def supports(self, spec: KernelSpec) -> str | None:
        from ..artifacts import onnx_ops

        return _fp32_only(self.name, spec) or onnx_ops.supports(spec)

    def info(self, device: Device, threads: int) -> RuntimeInfo:
        return RuntimeInfo(self.name, _tool_version(tool_path(self.tool)), threads, {"ep": "CPUExecutionProvider"})

    def build_checked(self, spec: KernelSpec) -> tuple[bytes, str]:
        from ..artifacts import onnx_ops
        from .reference import check_output, make_tensors, reference
        from .onnxruntime import OnnxRuntime

        try:
            tensors = make_tensors(spec)
            model, feeds = onnx_ops.build_model(spec, tensors)
            data = model.SerializeToString()
            y = OnnxRuntime().session(data, 1).run(None, feeds)[0]
        except Exception as e:  # this kernel's model failed, not the run
            return b"", f"onnx model failed on the host check: {one_line((str(e).splitlines() or [''])[0], 200)}"
        bad = check_output(spec, onnx_ops.output_to_nhwc(spec, y), reference(spec, tensors))
        return (b"", bad) if bad else (data, "")

    def command(self, tool: str, model: str, threads: int, protocol: Protocol) -> list[str]:
        runs = max(10, protocol.min_repeats)
        # one shell: run with profiling into prof_*.json, then print the newest profile to stdout
        script = ('rm -f prof_*.json; "$@" >/dev/null || exit $?; f=$(ls -t prof_*.json | head -n 1); '
                  'echo "@@devprof-profile"; cat "$f"')
        return ["sh", "-c", script, "sh", tool, "-e", "cpu", "-x", str(threads), "-y", "1",
                "-m", "times", "-r", str(runs), "-I", "-p", "prof", model]

    def parse(self, stdout: str, protocol: Protocol) -> Measurement:
        _, sep, js = stdout.partition("@@devprof-profile")
        if not sep:
            raise ToolOutputError("onnxruntime_perf_test wrote no profile")
        prof = parse_ort_profile(js)
        samples = prof.run_kernel_us
        warm = 1 if len(samples) > 3 else 0  # the first run pays for allocation: a warm-up
        if not samples[warm:]:
            raise ToolOutputError("ORT profile holds no timed run")
        return _measurement("onnxruntime_perf_test", samples[warm:], warm, 1)


def _fp32_only(tool: str, spec: KernelSpec) -> str | None:
    """Phone tools time fp32 single-op models only so far (int8 and fp16 models are checked on the
    host by the local runtimes; their phone runs come with devprof's int8 kernels)."""
    if spec.dtype != "fp32":
        return f"{tool} times fp32 models only so far, not {spec.dtype}"
    return None


def _measurement(tool: str, samples: Sequence[float], warmups: int, number: int) -> Measurement:
    """A tool's timings as a Measurement; negative, NaN or overflowing times are the tool's fault."""
    try:
        return Measurement(tuple(samples), warmups=warmups, number=number)
    except ValueError as e:
        raise ToolOutputError(f"{tool}: unusable timings ({e})") from None


def split_reps(stdout: str) -> list[str]:
    """Split the output of the repeat loop into one chunk per tool run."""
    parts = re.split(rf"^{re.escape(_REP)} \d+\s*$", stdout, flags=re.M)
    return [p for p in parts[1:] if p.strip()] if len(parts) > 1 else ([stdout] if stdout.strip() else [])


def _tool_version(path: str) -> str:
    """Content hash of the tool binary: the version that matters for comparing records."""
    if not path or not Path(path).is_file():
        return "unknown"
    import hashlib

    h = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    return f"sha256:{h}"
