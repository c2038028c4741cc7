"""`devprof-c`: generated C kernels run by the native harness, on any Device.

A batch of specs becomes one harness binary plus one data file per kernel
(devprof.sparse.codegen -> devprof.artifacts.harness_build), staged with `Device.stage` and run with
ONE `Device.execute` call, so the same code serves `local` and phones over adb. The harness checks
every kernel's output against the shipped reference before timing it and prints one JSON line per
kernel; `parse_harness_output` turns those lines into results and never trusts them blindly.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from ..errors import DevprofError, one_line
from ..measure import Protocol
from ..records import Conditions, KernelSpec, Measurement, RuntimeInfo
from .base import CHECKED, Outcome, Runtime

if TYPE_CHECKING:  # pragma: no cover
    from ..devices.base import Device

HARNESS_VERSION = "devprof-harness/1.2"
CODEGEN_VERSION = "16"  # 2: fc panels, direct depthwise kernel, whole-model programs; 3: chunked entry points;
# 4: vector width and register count from the target ISA table; 5: rows with no kept weight written in the
# chunks (a unit of every tile), prep chunks by row band, one pool job per call; 6: contiguous epilogue where
# no junk columns, the last partial tile after direct ones priced higher; 7: NEON one-row
# kernels take 4 kept columns a step; 8: prep chunks by input row where threads split an image's tiles (else
# by channel), unit-major chunks in calls of at most 4 tiles; 9: int8 requantization proven per target
# form, AVX-512 int16 packs; 10: AVX-512 one-row and pattern kernels channel-blocked where a tile's panel outgrows L1;
# 11: int8 VNNI kernels read a stride-1 unpadded input in place; 12: threads that split units, not tiles, each
# copy the whole input privately (no prep barrier)
# 13: AVX-512 channel blocking from 4 nonzeros per block on layers of 64+ rows; 14: AVX-512 stride-1 convs
# with 2+ output channels per input channel read column-shifted input copies (codegen.column_shifted), and
# one-row 1x1 kernels copy channels of whole vectors (codegen.channels_padded); 15: AVX-512 one-row kernels of
# stride-1 convs with whole-vector output rows unrolled, weights in the code (sparse/unrolled.py); 16: AVX-512 one-row
# 1x1 kernels that copy channels of whole vectors, where each thread reads all of the input, stage it per
# channel block and tile into an L1 buffer inside each range call (codegen.staged_input; one part per thread)
MAX_LINE = 1 << 20  # longer lines are refused unread
MAX_SAMPLES = 100_000


@dataclass(frozen=True)
class HarnessLine:
    """One kernel's result line, validated."""

    kernel: str
    status: str  # "ok" | "mismatch" | "error"
    spec_id: str = ""
    variant: str = ""
    harness: str = ""
    error: str = ""
    samples_us: tuple[float, ...] = ()
    warmups: int = 0
    number: int = 1
    checksum: float = float("nan")
    max_abs_err: float = float("nan")
    layers_us: tuple[tuple[float, ...], ...] = ()  # programs: per layer, its per-call mean per round


@dataclass
class HarnessOutput:
    lines: dict[str, HarnessLine]
    started: bool = False
    ended: bool = False
    rejected: int = 0  # lines that were not valid harness JSON (garbage, truncated, wrong types)


def _num(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError("not a number")
    return float(v)


def _int(v: Any, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ValueError("bad integer")
    return v


def _str(v: Any, limit: int = 500) -> str:
    if not isinstance(v, str):
        raise ValueError("not a string")
    return v[:limit]


def parse_line(line: str) -> HarnessLine | str | None:
    """A kernel line -> HarnessLine; an event line -> its name ("start"/"end"); else None."""
    line = line.strip()
    if not line.startswith("{") or len(line) > MAX_LINE:
        return None
    try:
        d = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(d, dict):
        return None
    try:
        if "event" in d:
            ev = _str(d["event"], 20)
            return ev if ev in ("start", "end") else None
        kernel, status = _str(d["kernel"], 200), _str(d["status"], 20)
        common = dict(kernel=kernel, status=status, spec_id=_str(d.get("spec_id", ""), 64),
                      variant=_str(d.get("variant", ""), 20), harness=_str(d.get("harness", ""), 64))
        if status != "ok":
            if status not in ("mismatch", "error"):
                return None
            return HarnessLine(**common, error=" ".join(_str(d.get("error", "unknown error")).split()))
        raw = d["samples_us"]
        if not isinstance(raw, list) or not raw or len(raw) > MAX_SAMPLES:
            return None
        samples = tuple(_num(x) for x in raw)
        if not all(math.isfinite(x) and x >= 0 for x in samples):
            return None
        layers: tuple[tuple[float, ...], ...] = ()
        if "layers_us" in d:
            rawl = d["layers_us"]
            if not isinstance(rawl, list) or len(rawl) > MAX_SAMPLES:
                return None
            layers = tuple(tuple(_num(x) for x in row) for row in rawl)
            if any(len(row) != len(samples) or not all(math.isfinite(x) and x >= 0 for x in row) for row in layers):
                return None
        return HarnessLine(**common, samples_us=samples, layers_us=layers, warmups=_int(d.get("warmups", 0), 0),
                           number=_int(d.get("number", 1), 1), checksum=_num(d.get("checksum", float("nan"))),
                           max_abs_err=_num(d.get("max_abs_err", float("nan"))))
    except (KeyError, ValueError, TypeError, OverflowError):
        return None


def parse_harness_output(text: str) -> HarnessOutput:
    """Parse the harness's stdout. Robust to garbage, truncation and duplicates: invalid lines are
    counted in `rejected`, and the first valid line of a kernel wins."""
    out = HarnessOutput({})
    if not isinstance(text, str):
        return out
    for raw in text.splitlines():
        if not raw.strip():
            continue
        r = parse_line(raw)
        if r is None:
            out.rejected += 1
        elif r == "start":
            out.started = True
        elif r == "end":
            out.ended = True
        elif isinstance(r, HarnessLine):
            out.lines.setdefault(r.kernel, r)
    return out


def variant_for(spec: KernelSpec) -> str:
    """The scheme's own kernel, or the one `attrs.kernel` names: "csr" (same-compiler CSR baseline
    on the scheme's mask) or "dense" (the generated dense kernel, zeros included)."""
    asked = spec.a.get("kernel")
    if asked in ("csr", "dense", "sparse"):
        return str(asked)
    return "dense" if spec.sparsity.scheme == "dense" else "sparse"


class DevprofC(Runtime):
    """Generated sparse/dense C kernels timed by the native harness (fp32, one or more threads:
    the harness's pool, one thread pinned per CPU of --cores, each kernel split by nonzero count)."""

    name = "devprof-c"
    batch_size = 24
    phone_batch_size = 128
    #: False where the kernels have no chunked entry points (one thread only).
    multithreaded = True

    def thread_args(self, device: "Device", threads: int, cpus: str) -> list[str]:
        """The harness arguments for `threads`. More threads than the CPUs the run may use
        (`Device.available_cpus`) got past `Device.check_threads` only with --oversubscribe, so
        the harness is told to share CPUs instead of refusing."""
        from ..errors import UsageError

        if threads == 1:
            return []
        if not self.multithreaded:
            raise UsageError(f"{self.name} runs one thread here; use --threads 1")
        over = threads > device.available_cpus(cpus)
        return [f"--threads={threads}", *(["--oversubscribe"] if over else [])]

    def batch_size_for(self, device: "Device") -> int:
        return self.batch_size if device.in_process else self.phone_batch_size

    def available(self, device: "Device") -> str | None:
        try:
            from ..artifacts.harness_build import toolchain_for

            tc = toolchain_for(device)
        except DevprofError as e:
            return str(e)
        return tc.available()

    def supports(self, spec: KernelSpec) -> str | None:
        from ..sparse.codegen import VARIANTS, unsupported

        if "kernel" in spec.a and spec.a["kernel"] not in VARIANTS:
            return f"attrs.kernel must be one of {', '.join(VARIANTS)}"
        if spec.dtype == "int8":
            from ..sparse import codegen_int8

            return codegen_int8.unsupported(spec)
        if spec.dtype == "fp16":
            from ..sparse import codegen_fp16

            return codegen_fp16.unsupported(spec)
        return unsupported(spec)

    def info(self, device: "Device", threads: int) -> RuntimeInfo:
        from ..artifacts.harness_build import toolchain_for
        from ..artifacts.isa import isa_of
        from ..artifacts.toolchains import _compiler_version

        tc = toolchain_for(device)
        isa = isa_of(tc)
        return RuntimeInfo(self.name, f"{HARNESS_VERSION.split('/')[1]}+cg{CODEGEN_VERSION}", threads,
                           {"cc": _compiler_version(tc.cc), "toolchain": tc.kind, "isa": isa.name,
                            "vector_floats": isa.vector_floats, "layout": "nchw"})

    def toolchain(self, device: "Device"):
        """The compiler for `device` (a seam: the OpenBLAS baseline adds its library)."""
        from ..artifacts.harness_build import toolchain_for

        return toolchain_for(device)

    def generate_kernel(self, spec: KernelSpec, variant: str, vl: int, regs: int, name: str):
        """One kernel's C source and data (a seam: the OpenBLAS baseline generates GEMM calls)."""
        from ..sparse.codegen import generate

        if spec.dtype == "int8":
            from ..sparse import codegen_int8

            return codegen_int8.generate(spec, variant, name=name)
        if spec.dtype == "fp16":
            from ..sparse import codegen_fp16

            return codegen_fp16.generate(spec, variant, name=name)
        return generate(spec, variant, vector_floats=vl, vector_regs=regs, name=name)

    def measure(self, device: "Device", specs: Sequence[KernelSpec], threads: int,
                protocol: Protocol) -> Iterator[Outcome]:
        from ..artifacts.harness_build import build_batch, vector_shape
        from .conditions import conditions_around, conditions_from

        started = time.time()
        targs = self.thread_args(device, threads, protocol.cpus)
        tc = self.toolchain(device)
        vl, regs = vector_shape(tc)
        # int8 and fp16 kernels are built for what the device's CPU has (+dotprod, +fp16)
        features = device.cpu_features if any(s.dtype != "fp32" for s in specs) else frozenset()
        kernels, by_name = [], {}
        for s in specs:
            name = f"k{s.id}_{variant_for(s)}"
            if s.dtype == "fp16" and (why := _fp16_unsupported_on(tc, features)):
                yield Outcome(s, error=f"devprof-c: {why}", started_at=started, finished_at=time.time())
                continue
            if name in by_name:
                by_name[name].append(s)
                continue
            try:
                k = self.generate_kernel(s, variant_for(s), vl, regs, name)
            except (ValueError, MemoryError) as e:
                yield Outcome(s, error=f"devprof-c: cannot generate: {e}", started_at=started, finished_at=time.time())
                continue
            if s.dtype == "int8":
                from ..sparse.codegen_int8 import cflags_for

                k.cflags = cflags_for(tc.abi, tc.kind == "host", features)
            kernels.append(k)
            by_name[name] = [s]
        if not kernels:
            return
        try:
            batch = build_batch(kernels, tc)
            remote = device.stage(batch.files)
        except DevprofError as e:
            for k in kernels:
                for s in by_name[k.name]:
                    yield Outcome(s, error=str(e), started_at=started, finished_at=time.time())
            return
        argv = [f"{remote}/devprof-harness", *protocol.harness_args(), *targs]
        lost: DevprofError | None = None
        per_kernel = protocol.max_time_s + 20 * protocol.warmup_s + 10.0
        timeout = 30.0 + per_kernel * len(kernels)
        if device.kind == "local":
            with conditions_around(device, protocol.cpus) as cond:
                res = device.execute(argv, remote, timeout, cpus=protocol.cpus)
            conditions = cond.result
        else:
            try:
                res = device.execute(argv, remote, timeout, cpus=protocol.cpus)
            except DevprofError as e:  # the phone went away midway: keep the kernels it finished
                res = getattr(e, "partial", None)
                if res is None:
                    raise
                lost = e
            before, after = getattr(res, "state_before", None), getattr(res, "state_after", None)
            conditions = conditions_from(before, after, protocol.cpus) if before and after else Conditions(cpus=protocol.cpus)
        finished = time.time()
        parsed = parse_harness_output(res.stdout)
        why_missing = ("timed out" if res.timed_out else f"exited with {res.returncode}") + (
            f": {one_line(res.stderr.strip().splitlines()[-1], 200)}" if res.stderr.strip() else "")
        for k in kernels:
            line = parsed.lines.get(k.name)
            for s in by_name[k.name]:
                if line is None and lost is not None:
                    continue  # never ran: not a failure; --resume measures it
                if line is None:
                    err = f"devprof-c: harness gave no result for this kernel ({why_missing})"
                    yield Outcome(s, error=err, conditions=conditions, started_at=started, finished_at=finished)
                elif line.status != "ok":
                    yield Outcome(s, error=f"devprof-c: {line.status}: {line.error}", conditions=conditions,
                                  harness_version=line.harness, started_at=started, finished_at=finished)
                else:
                    m = Measurement(line.samples_us, warmups=line.warmups, number=line.number)
                    yield Outcome(s, m, conditions=conditions, harness_version=line.harness,
                                  started_at=started, finished_at=finished, checked=CHECKED,
                                  kernel=kernel_path(tc, k))
        if lost is not None:
            raise lost


def _fp16_unsupported_on(tc, features: frozenset[str]) -> str | None:
    """Why the device cannot run devprof-c's fp16 kernels (arm64 +fp16 code, on a CPU with
    asimdhp), or None."""
    from ..sparse.codegen_fp16 import unsupported_on

    return unsupported_on(tc.abi, features)


def kernel_path(tc, k) -> str:
    """Which instruction path kernel `k` was built with, for its records (`Record.kernel`): the int8
    path the target's preprocessor picks with the kernel's own flags ("int8 sdot", "int8 portable"),
    "fp16 fmla.8h"; "" for fp32 (one path per ISA, the runtime's ``isa`` option)."""
    dtype = k.spec.dtype
    if dtype == "fp16":
        from ..sparse.codegen_fp16 import PATH

        return PATH
    if dtype != "int8":
        return ""
    from ..artifacts.harness_build import preprocess
    from ..sparse.codegen_int8 import PATH_PROBE, path_from_probe

    try:
        return f"int8 {path_from_probe(preprocess(tc, PATH_PROBE, tuple(getattr(k, 'cflags', ()))))}"
    except (DevprofError, ValueError):
        return ""


#: A whole-model program is checked against ONNX Runtime on the same weights: tens of layers of
#: float32 accumulated in a different order drift further than one kernel does.
PROGRAM_RTOL = 1e-3
PROGRAM_CHECKED = "onnxruntime on the same pruned weights"


def measure_program(runtime: DevprofC, device: "Device", model, sparsity, protocol: Protocol,
                    name: str = "prog") -> tuple[Outcome, list[Measurement], object]:
    """Plan `model` as one generated program (devprof.model_profiling.program), check it against ONNX
    Runtime and time it on `device` with the harness: (end-to-end outcome, per-layer in-model
    measurements in program order, the Program). Raises UsageError when the model has a layer the
    program cannot run."""
    from ..artifacts.harness_build import build_batch, vector_shape
    from ..model_profiling.program import plan
    from .conditions import conditions_around, conditions_from

    tc = runtime.toolchain(device)
    vl, regs = vector_shape(tc)
    prog = plan(model, sparsity, name=name, vector_floats=vl, vector_regs=regs)
    spec = KernelSpec(op="model", bias=False, attrs={"program": prog.model})
    started = time.time()
    try:
        batch = build_batch([prog], tc)
        remote = device.stage(batch.files)
    except DevprofError as e:
        return Outcome(spec, error=str(e), started_at=started, finished_at=time.time()), [], prog
    argv = [f"{remote}/devprof-harness", *protocol.harness_args(), f"--rtol={PROGRAM_RTOL}"]
    timeout = 60.0 + 2 * protocol.max_time_s + 40 * protocol.warmup_s
    if device.kind == "local":
        with conditions_around(device, protocol.cpus) as cond:
            res = device.execute(argv, remote, timeout, cpus=protocol.cpus)
        conditions = cond.result
    else:
        res = device.execute(argv, remote, timeout, cpus=protocol.cpus)
        before, after = getattr(res, "state_before", None), getattr(res, "state_after", None)
        conditions = conditions_from(before, after, protocol.cpus) if before and after else Conditions(cpus=protocol.cpus)
    finished = time.time()
    line = parse_harness_output(res.stdout).lines.get(prog.name)
    if line is None or line.status != "ok":
        why = (f"{line.status}: {line.error}" if line is not None else
               ("timed out" if res.timed_out else f"the harness exited with {res.returncode}"))
        return Outcome(spec, error=f"devprof-c program: {why}", conditions=conditions, started_at=started,
                       finished_at=finished), [], prog
    m = Measurement(line.samples_us, warmups=line.warmups, number=line.number)
    layers = [Measurement(row, warmups=line.warmups, number=line.number) for row in line.layers_us]
    return (Outcome(spec, m, conditions=conditions, harness_version=line.harness, started_at=started,
                    finished_at=finished, checked=PROGRAM_CHECKED), layers, prog)
