"""Generated sparse kernels vs dense baselines, side by side in one run (single thread, fp32).

For every conv/FC layer shape of the `sparse-sweep` suite (depthwise layers excluded: no dense
GEMM to compare with), this measures with one protocol:
  * ONNX Runtime dense (the same op: Conv / Gemm, bias and activation, 1 intra-op thread),
  * the generated dense kernel (devprof-c, same compiler as the sparse ones),
  * each scheme's generated sparse kernel at several ratios,
  * scipy.sparse CSR x dense on the same pruned weight (W_csr @ im2col(X), im2col not timed),
and prints speedups, the nonzero-FMA GFLOP/s (work actually done: 2 x nonzero weights x output
positions / time) and the dense-equivalent rate (dense FLOPs / time, a speedup in disguise) next to
this CPU's measured FMA peak, then the figures the sparse-kernel issue targets. Writes a CSV.
On a shared, noisy machine every contender is measured `--rounds` times, interleaved (harness
batch, ORT, scipy), and the lowest median of each is kept — the same rule for all.

    .venv/bin/python bench/sparse_vs_dense.py [--quick] [--rounds N] [--csv PATH] [--suite NAME]
    .venv/bin/python bench/sparse_vs_dense.py --dtype int8 [--quick | --median] [--schemes bcr,...] [--ratios 0.9,...] [--rounds N]
    .venv/bin/python bench/sparse_vs_dense.py --peers [--quick] [--deepsparse-python PATH] [--threads 1,2] [--match S,...]

`--peers` compares the generated kernels (at 1 and 2 threads) with torch dense / CSR / BSR and
DeepSparse on the same pruned weights (`main_peers`); DeepSparse runs in its own environment's
interpreter (bench/peer_deepsparse.py), and an absent peer is skipped with a note. Its rounds are
passes over every layer (built once, up front), so a layer's rounds lie far apart in time.

`--dtype int8` compares the generated int8 kernels (devprof/sparse/codegen_int8.py) with the int8
dense runtimes instead: ONNX Runtime's QDQ model (QLinearConv / MatMulInteger) and LiteRT's
full-integer model (XNNPACK QS8), both built and checked by devprof's runtimes, the faster of the
two being the baseline; no scipy column.

`--suite transformer` takes the linear layers of BERT-style encoders instead: seq 128 x hidden
256 / 512 / 768 GEMMs (projections and the 4x FFN), where ORT's dense kernel is the same MLAS
SGEMM its MatMul runs.

SR layers (360x640) are measured on a 90x160 crop: the same GEMM M and K, N / 16 (per-pixel
work is identical; the crop keeps scipy's im2col matrix in memory).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devprof.artifacts.harness_build import build_batch, host_toolchain, vector_shape  # noqa: E402
from devprof.measure import Protocol, measure_callable  # noqa: E402
from devprof.records import KernelSpec, Sparsity  # noqa: E402
from devprof.runtimes.harness import parse_harness_output  # noqa: E402
from devprof.sparse.codegen import generate, pruned_weights  # noqa: E402
from devprof.sparse.weights import input_tensor  # noqa: E402
from devprof.suites import load_suite  # noqa: E402

SCHEMES = [
    ("unstructured", {}),
    ("bcr", {"block": [4, 16]}),
    ("block", {"block": [4, 1]}),
    ("block", {"block": [8, 1]}),
    ("block", {"block": [1, 4]}),
    ("nm", {}),  # n:m chosen from the ratio (2:4, 1:4, 1:10, 1:20...)
    ("pattern", {"patterns": 8}),
]
RATIOS = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
QUICK_RATIOS = [0.5, 0.7, 0.9]
PROTOCOL = Protocol(warmup_s=0.02, min_warmups=2, sample_s=0.004, rounds=5, round_s=0.012, round_samples=2,
                    max_time_s=0.6)
CROP = (90, 160)

PEAK_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifdef __AVX512F__
#define VL 16
#else
#define VL 8
#endif
typedef float v __attribute__((vector_size(VL * 4)));
int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 50000000L;
    v a0 = {0}, a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3, a4 = a0 + 4, a5 = a0 + 5, a6 = a0 + 6, a7 = a0 + 7;
    v a8 = a0 + 8, a9 = a0 + 9, a10 = a0 + 10, a11 = a0 + 11;
    v b = a0 + 0.999999f, c = a0 + 1e-7f;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < iters; i++) {
        a0 = a0 * b + c; a1 = a1 * b + c; a2 = a2 * b + c; a3 = a3 * b + c; a4 = a4 * b + c; a5 = a5 * b + c;
        a6 = a6 * b + c; a7 = a7 * b + c; a8 = a8 * b + c; a9 = a9 * b + c; a10 = a10 * b + c; a11 = a11 * b + c;
        __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5));
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    v t = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
    printf("%.3f %g\n", iters * 12.0 * VL * 2 / s / 1e9, (double)t[0]);
    return 0;
}
"""


def measure_peak(tc, runs: int = 30) -> float:
    """Single-core fp32 FMA peak (GFLOP/s) of a tight 12-chain FMA loop, best of `runs`."""
    with tempfile.TemporaryDirectory() as d:
        src, exe = Path(d) / "peak.c", Path(d) / "peak"
        src.write_text(PEAK_C)
        subprocess.run([*tc.cc, *tc.cflags, str(src), "-o", str(exe)], check=True)
        best = 0.0
        for _ in range(runs):  # short runs, best of many: a busy machine still gives whole time slices
            out = subprocess.run([str(exe), "400000"], capture_output=True, text=True, check=True).stdout
            best = max(best, float(out.split()[0]))
        return best


def isa_peak() -> float:
    """Paper peak: current MHz x 32 fp32 FLOP/cycle (two 256-bit FMA pipes, as on Zen 4, whose
    AVX-512 is double-pumped; Intel cores with two 512-bit FMA units would reach 64)."""
    try:
        mhz = max(float(l.split(":")[1]) for l in Path("/proc/cpuinfo").read_text().splitlines()
                  if l.startswith("cpu MHz"))
    except (OSError, ValueError):
        return math.nan
    return mhz / 1000 * 32


def bench_shapes(quick: bool, suite: str = "sparse-sweep") -> list[KernelSpec]:
    seen: list[KernelSpec] = []
    for s in load_suite(suite).specs:
        if s.op not in ("conv2d", "pwconv", "fc") or s.sparsity.scheme != "dense":
            continue
        if s.h * s.w > 100_000:
            s = s.replace(h=CROP[0], w=CROP[1], attrs={"crop_of": f"{s.h}x{s.w}"})
        if s not in seen:
            seen.append(s)
    seen.sort(key=lambda s: s.flops)
    if quick:  # the median shape and a spread around it
        mid = len(seen) // 2
        seen = [seen[i] for i in sorted({mid, mid - 3, mid + 3, len(seen) - 1, len(seen) // 5})]
    return seen


def gemm_shape(s: KernelSpec) -> str:
    if s.op == "fc":
        return f"{s.cout}x{s.cin}x{s.n}"
    return f"{s.cout}x{s.kh * s.kw * s.cin // s.groups}x{s.out_h * s.out_w * s.n}"


# ---- baselines -----------------------------------------------------------------------------
def ort_session(s: KernelSpec, w: np.ndarray, b: np.ndarray, threads: int = 1):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(onnx_model(s, w, b).SerializeToString(), so, providers=["CPUExecutionProvider"])


def onnx_model(s: KernelSpec, w: np.ndarray, b: np.ndarray):
    """The layer as a one-node ONNX model (Conv / Gemm, bias, activation) with weights `w` (OHWI)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], [numpy_helper.from_array(b, "b")]
    if s.op == "fc":
        inits.append(numpy_helper.from_array(w, "w"))
        nodes.append(helper.make_node("Gemm", ["x", "w", "b"], ["z"], transB=1))
        xshape = [s.n, s.cin]
    else:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(np.transpose(w, (0, 3, 1, 2))), "w"))
        nodes.append(helper.make_node("Conv", ["x", "w", "b"], ["z"], strides=[s.stride] * 2, pads=[s.padding] * 4,
                                      group=s.groups, kernel_shape=[s.kh, s.kw]))
        xshape = [s.n, s.cin, s.h, s.w]
    if s.activation == "relu":
        nodes.append(helper.make_node("Relu", ["z"], ["y"]))
    elif s.activation == "relu6":
        inits += [numpy_helper.from_array(np.float32(0), "lo"), numpy_helper.from_array(np.float32(6), "hi")]
        nodes.append(helper.make_node("Clip", ["z", "lo", "hi"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", ["z"], ["y"]))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, xshape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8  # readable by the older onnx of a peer's own environment (DeepSparse)
    return m


def im2col(s: KernelSpec, x: np.ndarray) -> np.ndarray:
    """(K, N) matrix with K in OHWI column order, as the pruned weight matrix is laid out."""
    if s.op == "fc":
        return np.ascontiguousarray(x.T)
    p, st_ = s.padding, s.stride
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    oh, ow = s.out_h, s.out_w
    cols = [xp[:, :, i:i + st_ * (oh - 1) + 1:st_, j:j + st_ * (ow - 1) + 1:st_] for i in range(s.kh) for j in range(s.kw)]
    a = np.stack(cols, 0)  # (kh*kw, n, cin, oh, ow)
    a = np.transpose(a, (0, 2, 1, 3, 4)).reshape(s.kh * s.kw * s.cin, -1)
    return np.ascontiguousarray(a.astype(np.float32))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 shapes, ratios 0.5/0.7/0.9 (--peers: a third of the pointwise layers, two SR 3x3 ones)")
    ap.add_argument("--rounds", type=int, default=2, help="measure everything N times, keep the best median")
    ap.add_argument("--csv", default=str(Path(__file__).resolve().parent / "results" / "sparse_vs_dense.csv"))
    ap.add_argument("--suite", default="sparse-sweep",
                    help="whose conv/FC layer shapes to take (transformer: seq x hidden GEMMs)")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "int8"],
                    help="int8: generated int8 kernels vs ORT / LiteRT int8 dense")
    ap.add_argument("--peers", action="store_true",
                    help="compare with torch dense / CSR / BSR and DeepSparse at 1 and 2 threads (extra: .[peers])")
    ap.add_argument("--deepsparse-python", default=os.environ.get("DEVPROF_DEEPSPARSE_PYTHON", sys.executable),
                    metavar="PATH", help="--peers: the interpreter of an environment with deepsparse installed "
                    "(default: $DEVPROF_DEEPSPARSE_PYTHON, else this one)")
    ap.add_argument("--threads", default="1,2", help="--peers: thread counts, comma separated (default 1,2)")
    ap.add_argument("--ratios", default="", help="--peers and --dtype int8: sparsity ratios (default --peers 0.75,0.9)")
    ap.add_argument("--shapes", type=int, default=0, help="--peers: only the N smallest layer shapes")
    ap.add_argument("--match", default="", metavar="S,...",
                    help="--peers: only the layers whose key contains one of these substrings (e.g. 90x160x3-o32)")
    ap.add_argument("--schemes", default="",
                    help="--peers and --dtype int8: only these schemes, comma separated (e.g. bcr,block)")
    ap.add_argument("--median", action="store_true",
                    help="--dtype int8: only the median shape by FLOPs, the one the targets are read on")
    ap.add_argument("--smoke", action="store_true",
                    help="--peers: the quickest protocol, for checking the plumbing (figures mean nothing)")
    args = ap.parse_args()
    if args.dtype == "int8":
        return main_int8(args)
    if args.peers:
        return main_peers(args)
    import scipy
    import scipy.sparse as sps
    import onnxruntime as ort

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        os.sched_setaffinity(0, [sorted(os.sched_getaffinity(0))[-1]])
    except (AttributeError, OSError):
        pass
    tc = host_toolchain()
    vl, regs = vector_shape(tc)
    peak = measure_peak(tc)
    ratios = QUICK_RATIOS if args.quick else RATIOS
    shapes = bench_shapes(args.quick, args.suite)
    print(f"CPU: {_cpu()} | measured 1-core FMA peak {peak:.1f} GFLOP/s (paper {isa_peak():.0f}) | vector {vl} floats | "
          f"onnxruntime {ort.__version__}, scipy {scipy.__version__}, {' '.join(tc.cc)} {' '.join(tc.cflags)}")
    print(f"{len(shapes)} shapes x {len(SCHEMES)} schemes x ratios {ratios}; single thread, fp32\n")
    rows: list[dict] = []
    errors: dict[str, str] = {}
    t_start = time.time()
    for s in shapes:
        # ---- the harness kernels of this shape (one batch)
        kernels, specs = [], {}
        for variant, sp in [("dense", Sparsity())] + [("sparse", Sparsity(sc, r, p)) for sc, p in SCHEMES for r in ratios]:
            spec = s.replace(sparsity=sp)
            if spec.sparsity.scheme == "pattern" and (spec.op == "fc" or (spec.kh, spec.kw) != (3, 3)):
                continue
            k = generate(spec, variant, vector_floats=vl, vector_regs=regs)
            kernels.append(k)
            specs[k.name] = (spec, k)
        batch = build_batch(kernels, tc)
        w, b = pruned_weights(s)[:2]
        x = input_tensor(s)
        sess = ort_session(s, w, b)
        feeds = {"x": x}
        X = im2col(s, x)
        csrs = {k.name: sps.csr_matrix(pruned_weights(k.spec)[0].reshape(k.spec.cout, -1)) for k in kernels[1:]}
        best: dict[str, float] = {}
        ort_us, scipy_best = math.inf, {n: math.inf for n in csrs}
        for _ in range(max(1, args.rounds)):
            p = subprocess.run([str(batch.binary), *PROTOCOL.harness_args()], cwd=batch.folder, capture_output=True,
                               text=True, timeout=3600)
            out = parse_harness_output(p.stdout)
            for name, line in out.lines.items():
                if line.status == "ok":
                    best[name] = min(best.get(name, math.inf), float(np.median(line.samples_us)))
                else:
                    best.setdefault(name, math.nan)
                    errors[name] = line.error
            ort_us = min(ort_us, measure_callable(lambda: sess.run(None, feeds), PROTOCOL).median_us)
            for n, csr in csrs.items():
                scipy_best[n] = min(scipy_best[n], measure_callable(lambda: csr @ X, PROTOCOL).median_us)
        gen_dense_us = best.get(kernels[0].name, math.nan)
        label = s.key + (f" (crop of {s.a['crop_of']})" if s.a.get("crop_of") else "")
        print(f"{label}  GEMM {gemm_shape(s)}  {s.flops / 1e6:.1f} MFLOP")
        print(f"  ORT dense {ort_us:9.1f} us ({s.flops / ort_us / 1e3:5.1f} GF/s) | generated dense {gen_dense_us:9.1f} us "
              f"({s.flops / gen_dense_us / 1e3:5.1f} GF/s, {gen_dense_us / ort_us:.2f}x ORT time)")
        rows.append(dict(shape=label, gemm=gemm_shape(s), op=s.op, flops=s.flops, scheme="dense-generated", params="",
                         ratio=0.0, achieved=0.0, us=gen_dense_us, ort_us=ort_us, scipy_us=math.nan,
                         gen_dense_us=gen_dense_us, speedup_vs_ort=ort_us / gen_dense_us, speedup_vs_scipy=math.nan,
                         speedup_vs_gen_dense=1.0, dense_equiv_gflops=s.flops / gen_dense_us / 1e3,
                         nnz_gflops=s.flops / gen_dense_us / 1e3, peak_gflops=peak))
        for k in kernels[1:]:
            spec = k.spec
            us = best.get(k.name, math.nan)
            if math.isnan(us):
                print(f"  {spec.sparsity.label():32s} FAILED: {errors.get(k.name, 'no result')}")
                continue
            scipy_us = scipy_best[k.name]
            sp = spec.sparsity
            r = dict(shape=label, gemm=gemm_shape(s), op=s.op, flops=s.flops, scheme=sp.scheme,
                     params=json.dumps(sp.to_dict()["params"], sort_keys=True), ratio=sp.ratio,
                     achieved=k.stats["achieved_ratio"], us=us, ort_us=ort_us, scipy_us=scipy_us,
                     gen_dense_us=gen_dense_us, speedup_vs_ort=ort_us / us, speedup_vs_scipy=scipy_us / us,
                     speedup_vs_gen_dense=gen_dense_us / us, dense_equiv_gflops=s.flops / us / 1e3,
                     nnz_gflops=2 * csrs[k.name].nnz * X.shape[1] / us / 1e3, peak_gflops=peak)
            rows.append(r)
            print(f"  {sp.label():32s} {us:9.1f} us  x{r['speedup_vs_ort']:5.2f} ORT  x{r['speedup_vs_scipy']:6.2f} scipy  "
                  f"x{r['speedup_vs_gen_dense']:5.2f} gen-dense  {r['dense_equiv_gflops']:6.1f} dense-eq GF/s  "
                  f"{r['nnz_gflops']:5.1f} nnz GF/s")
        sys.stdout.flush()
    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    summarize(rows, shapes, ratios, peak, 4.0 if args.suite == "transformer" else 3.0)
    print(f"\nCSV: {path}  ({time.time() - t_start:.0f} s)")
    return 0


# ---- peers (--peers) -------------------------------------------------------------------------
PEER_RATIOS = [0.75, 0.9]
PEERS_CSV = Path(__file__).resolve().parent / "results" / "sparse_vs_peers.csv"


def peer_shapes(quick: bool) -> list[KernelSpec]:
    """The layers the peers are compared on: every pointwise conv and the SR 3x3 convs (on the
    crop); `quick`: a third of the pointwise ones and two SR 3x3 ones."""
    pw = [s for s in bench_shapes(False) if s.op == "pwconv"]
    sr = [s for s in bench_shapes(False) if s.op == "conv2d" and (s.kh, s.kw) == (3, 3) and s.a.get("crop_of")]
    if quick:
        pw, sr = pw[1::3], [sr[len(sr) // 2], sr[-1]]
    return sorted(pw + sr, key=lambda s: s.flops)


class DeepSparsePeer:
    """DeepSparse in its own interpreter (bench/peer_deepsparse.py), driven line by line."""

    def __init__(self, python: str):
        self.proc = None
        self.info: dict = {}
        self.note = ""
        worker = Path(__file__).resolve().parent / "peer_deepsparse.py"
        try:
            self.proc = subprocess.Popen([python, str(worker)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, bufsize=1)
        except OSError as e:
            self.note = f"cannot start {python}: {e.strerror or e}"
            return
        rep = self.ask({"op": "info"})
        if "error" in rep:
            self.note = f"{python}: {rep['error']}"
            self.close()
        else:
            self.info = rep

    @property
    def ok(self) -> bool:
        return self.proc is not None

    def ask(self, req: dict) -> dict:
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        try:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except OSError as e:
            return {"error": f"worker gone: {e}"}
        if not line:
            err = (self.proc.stderr.read() if self.proc.stderr else "").strip().splitlines()
            return {"error": "worker exited" + (f": {err[-1]}" if err else "")}
        return json.loads(line)

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
            self.proc = None


def _reference(s: KernelSpec, w2: np.ndarray, b: np.ndarray, X: np.ndarray) -> np.ndarray:
    """The layer's output from the im2col GEMM (float64), in ONNX's layout (NCHW / (n, cout))."""
    y = w2.astype(np.float64) @ X.astype(np.float64) + b.astype(np.float64)[:, None]
    if s.activation in ("relu", "relu6"):
        y = np.maximum(y, 0)
    if s.activation == "relu6":
        y = np.minimum(y, 6)
    if s.op == "fc":
        return y.T
    return y.reshape(s.cout, s.n, s.out_h, s.out_w).transpose(1, 0, 2, 3)


class PeerRun:
    """What every layer of one `--peers` run shares: toolchain, peak, protocol, the peers."""

    def __init__(self, tc, vl, regs, peak, threads, protocol, schemes, ratios, ds, torch, tmp: Path):
        self.tc, self.vl, self.regs, self.peak = tc, vl, regs, peak
        self.threads, self.protocol, self.schemes, self.ratios = threads, protocol, schemes, ratios
        self.ds, self.torch, self.tmp = ds, torch, tmp
        self.cpus_all = sorted(os.sched_getaffinity(0))

    def cpu_list(self, t: int) -> list[int]:
        """The CPUs every contender at `t` threads is pinned to: the last one alone, else the first t."""
        return self.cpus_all[-1:] if t == 1 else self.cpus_all[:t]

    def cpus(self, t: int) -> str:
        return ",".join(map(str, self.cpu_list(t)))


class PeerLayer:
    """One layer's kernels and its peers' callables, built once and measured once per round;
    keeps the lowest median of every (contender, threads, kernel)."""

    def __init__(self, ctx: PeerRun, si: int, s: KernelSpec):
        self.ctx, self.si, self.s = ctx, si, s
        vl, regs = ctx.vl, ctx.regs
        kernels = [generate(s, "dense", vector_floats=vl, vector_regs=regs)]
        for sc, p in SCHEMES:
            if sc == "pattern" and (s.op == "fc" or (s.kh, s.kw) != (3, 3)) or (ctx.schemes and sc not in ctx.schemes):
                continue
            for r in ctx.ratios:
                kernels.append(generate(s.replace(sparsity=Sparsity(sc, r, p)), "sparse", vector_floats=vl,
                                        vector_regs=regs))
        self.kernels = kernels
        self.batch = build_batch(kernels, ctx.tc)
        self.x = x = input_tensor(s)
        X = im2col(s, x)
        self.ncols = X.shape[1]
        self.dense_fma = s.cout * X.shape[0] * self.ncols
        ws = {k.name: pruned_weights(k.spec)[:2] for k in kernels}
        w2 = {n: w.reshape(s.cout, -1) for n, (w, _) in ws.items()}
        self.nnz = {n: int(np.count_nonzero(m)) for n, m in w2.items()}
        self.nnz[kernels[0].name] = self.dense_fma // self.ncols
        self.sessions = {}
        for t in ctx.threads:  # ORT starts its threads now: with the CPUs it is timed on
            os.sched_setaffinity(0, ctx.cpu_list(t))
            self.sessions[t] = ort_session(s, *ws[kernels[0].name], threads=t)
        os.sched_setaffinity(0, ctx.cpus_all)
        self.calls: dict[tuple[str, str], object] = {}  # (contender, kernel name) -> callable
        torch = ctx.torch
        if torch is not None:
            import torch.nn.functional as F

            xt = torch.from_numpy(x)
            Xt = torch.from_numpy(X)
            wd, bd = ws[kernels[0].name]
            act = {"relu": torch.relu, "relu6": lambda z: torch.clamp(z, 0, 6)}.get(s.activation, lambda z: z)
            if s.op == "fc":
                wt, bt = torch.from_numpy(wd), torch.from_numpy(bd)
                self.calls[("torch-dense", kernels[0].name)] = lambda: act(F.linear(xt, wt, bt))
            else:
                wt = torch.from_numpy(np.ascontiguousarray(np.transpose(wd, (0, 3, 1, 2))))
                bt = torch.from_numpy(bd)
                self.calls[("torch-dense", kernels[0].name)] = lambda: act(
                    F.conv2d(xt, wt, bt, stride=s.stride, padding=s.padding, groups=s.groups))
            with warnings_quiet():
                for k in kernels[1:]:
                    m = torch.from_numpy(w2[k.name])
                    ref = w2[k.name] @ X
                    self.calls[("torch-csr", k.name)] = (lambda c=m.to_sparse_csr(): c @ Xt)
                    if k.spec.sparsity.scheme in ("block", "bcr") and s.cout % 4 == 0 and X.shape[0] % 4 == 0:
                        self.calls[("torch-bsr4x4", k.name)] = (lambda c=m.to_sparse_bsr((4, 4)): c @ Xt)
                    for c in ("torch-csr", "torch-bsr4x4"):
                        if (c, k.name) in self.calls and not np.allclose(self.calls[(c, k.name)]().numpy(), ref,
                                                                          rtol=1e-3, atol=1e-3):
                            print(f"  {c} {k.spec.sparsity.label()}: output differs from the GEMM; left out")
                            del self.calls[(c, k.name)]
        self.ds_models: dict[str, tuple[Path, np.ndarray]] = {}
        self.xp = ctx.tmp / f"x{si}.npy"
        if ctx.ds.ok:
            import onnx

            np.save(self.xp, x)
            for k in kernels[1:]:
                mp = ctx.tmp / f"{k.name}.onnx"
                onnx.save(onnx_model(s, *ws[k.name]), mp)
                self.ds_models[k.name] = (mp, _reference(s, w2[k.name], ws[k.name][1], X))
        self.ds_bad: set[tuple[int, str]] = set()
        self.best: dict[tuple[str, int, str], float] = {}

    def _ds_load(self, t: int) -> dict[str, str]:
        """DeepSparse engines of this layer at `t` threads (only these alive while they are timed:
        idle engines of the other thread count would keep threads of their own)."""
        keys = {}
        for name, (mp, ref) in self.ds_models.items():
            if (t, name) in self.ds_bad:
                continue
            key = f"{name}@{t}"
            rep = self.ctx.ds.ask({"op": "load", "key": key, "model": str(mp), "x": str(self.xp), "threads": t,
                                   "cpus": self.ctx.cpu_list(t)})
            label_ = next(k for k in self.kernels if k.name == name).spec.sparsity.label()
            if "error" in rep:
                print(f"  DeepSparse {label_} at {t} thread(s): {rep['error']}")
            elif not np.allclose(np.load(rep["y"]), ref, rtol=1e-3, atol=1e-3):
                print(f"  DeepSparse {label_} at {t} thread(s): output differs from the GEMM; left out")
            else:
                keys[key] = name
                continue
            self.ds_bad.add((t, name))
        return keys

    def _keep(self, contender: str, t: int, name: str, us: float) -> None:
        self.best[(contender, t, name)] = min(self.best.get((contender, t, name), math.inf), us)

    def measure_round(self) -> None:
        """Every contender once at every thread count, interleaved."""
        ctx, protocol, torch = self.ctx, self.ctx.protocol, self.ctx.torch
        for t in ctx.threads:
            os.sched_setaffinity(0, ctx.cpu_list(t))  # ORT and torch here, like the harness and DeepSparse
            p = subprocess.run([str(self.batch.binary), *protocol.harness_args(), f"--threads={t}",
                                f"--cpus={ctx.cpus(t)}"], cwd=self.batch.folder, capture_output=True, text=True,
                               timeout=3600)
            for name, line in parse_harness_output(p.stdout).lines.items():
                if line.status == "ok":
                    self._keep("devprof-c", t, name, float(np.median(line.samples_us)))
                else:
                    print(f"\n  devprof-c {name} at {t} thread(s): {line.status}: {line.error}")
            sess, feeds = self.sessions[t], {"x": self.x}
            self._keep("ort-dense", t, self.kernels[0].name,
                       measure_callable(lambda: sess.run(None, feeds), protocol).median_us)
            if torch is not None:
                torch.set_num_threads(t)
                for (c, name), fn in self.calls.items():
                    self._keep(c, t, name, measure_callable(fn, protocol).median_us)
            keys = self._ds_load(t) if self.ds_models else {}
            if keys:
                rep = ctx.ds.ask({"op": "time", "keys": list(keys), "protocol": dataclasses.asdict(protocol)})
                for key, us in rep.get("us", {}).items():
                    self._keep("deepsparse", t, keys[key], us)
                if "error" in rep:
                    print(f"\n  DeepSparse timing at {t} thread(s): {rep['error']}")
            if self.ds_models:
                ctx.ds.ask({"op": "drop"})

    @property
    def label(self) -> str:
        s = self.s
        return s.key + (f" (crop of {s.a['crop_of']})" if s.a.get("crop_of") else "")

    def rows(self) -> list[dict]:
        s, out = self.s, []
        for (c, t, name), us in sorted(self.best.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
            k = next(k for k in self.kernels if k.name == name)
            dense = k is self.kernels[0]
            sp = k.spec.sparsity
            nnz = self.nnz[name]
            out.append(dict(shape=self.label, gemm=gemm_shape(s), op=s.op, kh=s.kh,
                            scheme="dense" if dense else sp.scheme,
                            params="" if dense else json.dumps(sp.to_dict()["params"], sort_keys=True),
                            ratio=0.0 if dense else sp.ratio, achieved=1 - nnz * self.ncols / self.dense_fma,
                            nnz=nnz, threads=t, contender=c, us=us,
                            nnz_gflops=2 * nnz * self.ncols / us / 1e3,
                            dense_equiv_gflops=2 * self.dense_fma / us / 1e3, peak_gflops=self.ctx.peak * t))
        return out

    def print_table(self) -> None:
        best, kernels, peak = self.best, self.kernels, self.ctx.peak
        print(f"{self.label}  GEMM {gemm_shape(self.s)}  {2 * self.dense_fma / 1e6:.1f} MFLOP dense")
        for t in self.ctx.threads:
            dense = " | ".join(f"{c} {best[(c, t, kernels[0].name)]:8.1f} us" for c in ("devprof-c", "ort-dense",
                               "torch-dense") if (c, t, kernels[0].name) in best)
            print(f" {t} thread(s), dense: {dense}")
            print(f"   {'kernel':28s} {'devprof-c':>10s} {'nnz GF/s':>8s} {'%peak':>5s} {'dense-eq':>8s} "
                  f"{'torch CSR':>10s} {'torch BSR':>10s} {'DeepSparse':>10s} {'DS/ours':>7s}")
            for k in kernels[1:]:
                us = best.get(("devprof-c", t, k.name), math.nan)
                g = 2 * self.nnz[k.name] * self.ncols / us / 1e3
                dsu = best.get(("deepsparse", t, k.name), math.nan)
                print(f"   {k.spec.sparsity.label():28s} {us:10.1f} {g:8.1f} {g / (peak * t) * 100:5.0f} "
                      f"{2 * self.dense_fma / us / 1e3:8.1f} {best.get(('torch-csr', t, k.name), math.nan):10.1f} "
                      f"{best.get(('torch-bsr4x4', t, k.name), math.nan):10.1f} {dsu:10.1f} {dsu / us:7.2f}")


def main_peers(args) -> int:
    """Generated kernels vs torch dense / CSR / BSR and DeepSparse, each at 1 and 2 threads.

    Same pruned weights for all (DeepSparse gets them as a pruned ONNX model); every contender is
    measured `--rounds` times, the thread counts and contenders interleaved, lowest median kept.
    Every layer is built first; each round then passes over all of them. Every contender at t
    threads is pinned to the same CPUs (`PeerRun.cpu_list`)."""
    try:
        threads = sorted({int(t) for t in args.threads.split(",") if t.strip()})
        ratios = [float(r) for r in args.ratios.split(",")] if args.ratios else PEER_RATIOS
    except ValueError as e:
        raise SystemExit(f"error: --threads / --ratios: {e}")
    if not threads or not all(0 < r < 1 for r in ratios):
        raise SystemExit("error: --threads needs a count and --ratios values between 0 and 1")
    ncpu = len(os.sched_getaffinity(0))
    if any(t < 1 for t in threads):
        raise SystemExit("error: --threads takes positive counts, e.g. 1,2")
    if max(threads) > ncpu:
        print(f"note: this process may use {ncpu} CPU(s): thread counts above it dropped")
        threads = [t for t in threads if t <= ncpu] or [1]
    protocol = Protocol.quick() if args.smoke else PROTOCOL
    schemes = scheme_filter(args.schemes)
    shapes = peer_shapes(args.quick)
    if args.shapes:
        shapes = shapes[:args.shapes]
    if args.match:
        subs = [m.strip() for m in args.match.split(",") if m.strip()]
        shapes = [s for s in shapes if any(m in s.key for m in subs)]
        if not shapes:
            raise SystemExit(f"error: --match {args.match}: no --peers layer's key contains it")
    import onnxruntime as ort

    try:
        import torch
    except ImportError:
        torch = None
        print("note: torch is not installed (pip install '.[peers]'): no torch dense / CSR / BSR figures")
    torch_threads = torch.get_num_threads() if torch is not None else 0
    tc = host_toolchain()
    vl, regs = vector_shape(tc)
    peak = measure_peak(tc, runs=3 if args.smoke else 30)
    ds = DeepSparsePeer(args.deepsparse_python)
    if not ds.ok:
        print(f"note: DeepSparse skipped ({ds.note}); give an environment with deepsparse: "
              f"--deepsparse-python PATH or DEVPROF_DEEPSPARSE_PYTHON")
    else:
        print(f"DeepSparse {ds.info.get('deepsparse')} (Python {ds.info.get('python')}) in its own process, "
              f"ISA it reports: {ds.info.get('isa', '?')}{' + VNNI' if ds.info.get('vnni') else ''}")
    if torch is not None:
        print(f"torch {torch.__version__} (dense: F.conv2d / F.linear; CSR / BSR: W @ im2col(X), im2col not timed; "
              f"BSR with 4x4 blocks, the square blocks its CPU kernel (MKL) takes, on block schemes)")
    print(f"CPU: {_cpu()} | measured 1-core FMA peak {peak:.1f} GFLOP/s (x threads for the % of peak) | "
          f"vector {vl} floats | onnxruntime {ort.__version__} | {' '.join(tc.cc)} {' '.join(tc.cflags)} | "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{len(shapes)} shapes x {len(SCHEMES)} schemes x ratios {ratios} x threads {threads}, fp32; "
          "GF/s = nonzero FMAs x 2 / time (dense rows: all FMAs)\n")
    path = Path(args.csv) if Path(args.csv) != ap_default_csv() else PEERS_CSV
    if path == PEERS_CSV and (args.quick or args.smoke or args.shapes or args.match or args.schemes or args.ratios
                              or args.threads != "1,2"):
        # a narrowed run never replaces the published figures unless --csv names them
        path = Path(tempfile.gettempdir()) / "devprof-sparse_vs_peers-partial.csv"
    t_start = time.time()
    tmp = tempfile.TemporaryDirectory(prefix="devprof-peers-")
    ctx = PeerRun(tc, vl, regs, peak, threads, protocol, schemes, ratios, ds, torch, Path(tmp.name))
    print(f"preparing {len(shapes)} layers (generate, build, export for the peers) ...", flush=True)
    layers = []
    for si, s in enumerate(shapes):
        layers.append(PeerLayer(ctx, si, s))
        if sys.stdout.isatty():
            print(f"\r  layer {si + 1}/{len(shapes)}   ", end="", flush=True)
    print(f"{chr(13) if sys.stdout.isatty() else ''}  prepared in {time.time() - t_start:.0f} s", flush=True)
    rounds = max(1, args.rounds)
    # A round is one pass over every layer: a layer's rounds lie a whole pass apart, so one noisy
    # stretch of a shared host spoils at most one of them (the best median is kept).
    done, t_meas = 0, time.time()
    for rnd in range(rounds):
        for layer in layers:
            layer.measure_round()
            done += 1
            _write_csv(path, [r for la in layers for r in la.rows()])  # a run stopped early keeps what it measured
            eta = (time.time() - t_meas) / done * (rounds * len(layers) - done)
            if sys.stdout.isatty() or layer is layers[-1]:
                print(f"\r  round {rnd + 1}/{rounds}, layer {layer.si + 1}/{len(layers)}, "
                      f"ETA {eta / 60:.0f} min   ", end="" if sys.stdout.isatty() else "\n", flush=True)
    if sys.stdout.isatty():
        print()
    os.sched_setaffinity(0, ctx.cpus_all)
    rows = [r for la in layers for r in la.rows()]
    for layer in layers:
        layer.print_table()
    ds.close()
    tmp.cleanup()
    if torch is not None:
        torch.set_num_threads(torch_threads)
    summarize_peers(rows, threads)
    print(f"\nCSV: {path}  ({time.time() - t_start:.0f} s)")
    return 0


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)


class warnings_quiet:
    """torch warns once that sparse CSR is in beta; the figures are what matters here."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


def summarize_peers(rows: list[dict], threads: list[int]) -> None:
    idx = {(r["shape"], r["scheme"], r["params"], r["ratio"], r["threads"], r["contender"]): r for r in rows}
    ours = [r for r in rows if r["contender"] == "devprof-c" and r["scheme"] != "dense"]

    def name(r: dict) -> str:
        return _scheme_name(r) + f"@{r['ratio']:g}"

    print("\n=== Against DeepSparse on the same pruned layer (DS time / devprof-c time; > 1: devprof-c faster) ===")
    for t in threads:
        for what, sel in (("pointwise, sparsity >= 0.75", lambda r: r["op"] == "pwconv" and r["ratio"] >= 0.75),
                          ("SR 3x3, sparsity >= 0.9", lambda r: r["op"] == "conv2d" and r["kh"] == 3 and r["ratio"] >= 0.9)):
            pairs = []
            for r in ours:
                if r["threads"] != t or not sel(r):
                    continue
                d = idx.get((r["shape"], r["scheme"], r["params"], r["ratio"], t, "deepsparse"))
                if d is not None:
                    pairs.append((d["us"] / r["us"], r))
            if not pairs:
                print(f"  {t} thread(s), {what}: no DeepSparse figures")
                continue
            lost = sorted((p for p in pairs if p[0] <= 1.0), key=lambda p: p[0])
            ratios_ = [p[0] for p in pairs]
            print(f"  {t} thread(s), {what}: devprof-c faster on {len(pairs) - len(lost)}/{len(pairs)}; "
                  f"geomean {math.exp(np.mean(np.log(ratios_))):.2f}x, median {np.median(ratios_):.2f}x, "
                  f"min {min(ratios_):.2f}x")
            for v, r in lost[:12]:
                print(f"      slower: {name(r):18s} {r['shape']}  {v:.2f}x")
            if len(lost) > 12:
                print(f"      ... and {len(lost) - 12} more (CSV)")
    if len(threads) > 1:
        lo, hi = threads[0], threads[-1]
        print(f"\n=== {hi} threads vs {lo} on layers of >= 50 us at {lo} thread(s) (time at {lo} / time at {hi}) ===")
        for c in ("devprof-c", "deepsparse", "torch-dense", "ort-dense", "torch-csr"):
            sp = []
            for r in rows:
                if r["contender"] != c or r["threads"] != lo or r["us"] < 50:
                    continue
                h = idx.get((r["shape"], r["scheme"], r["params"], r["ratio"], hi, c))
                if h is not None:
                    sp.append(r["us"] / h["us"])
            if sp:
                print(f"  {c:12s} {len(sp):4d} kernels: geomean {math.exp(np.mean(np.log(sp))):.2f}x, "
                      f"median {np.median(sp):.2f}x, min {min(sp):.2f}x, >= 1.6x: {np.mean(np.asarray(sp) >= 1.6) * 100:.0f}%")
    print("\n=== Nonzero-FMA GFLOP/s, best per contender (% of measured peak x threads) ===")
    for t in threads:
        parts = []
        for c in ("devprof-c", "deepsparse", "torch-csr", "torch-bsr4x4", "torch-dense", "ort-dense"):
            rs = [r for r in rows if r["contender"] == c and r["threads"] == t]
            if rs:
                b = max(rs, key=lambda r: r["nnz_gflops"])
                parts.append(f"{c} {b['nnz_gflops']:.1f} ({b['nnz_gflops'] / b['peak_gflops'] * 100:.0f}%)")
        print(f"  {t} thread(s): " + ", ".join(parts))


def scheme_filter(text: str) -> set[str]:
    """--schemes as a set (empty: all), or exit with one line naming the unknown ones."""
    schemes = {x.strip() for x in text.split(",") if x.strip()}
    if schemes - {sc for sc, _ in SCHEMES}:
        raise SystemExit(f"error: --schemes: unknown {', '.join(sorted(schemes - {sc for sc, _ in SCHEMES}))} "
                         f"(known: {', '.join(dict.fromkeys(sc for sc, _ in SCHEMES))})")
    return schemes


def main_int8(args) -> int:
    """The int8 comparison: generated int8 kernels vs the faster of ORT and LiteRT int8 dense."""
    from devprof.runtimes.litert import LiteRT
    from devprof.runtimes.onnxruntime import OnnxRuntime
    from devprof.sparse import codegen_int8

    try:
        os.sched_setaffinity(0, [sorted(os.sched_getaffinity(0))[-1]])
    except (AttributeError, OSError):
        pass
    tc = host_toolchain()
    try:
        ratios = [float(r) for r in args.ratios.split(",")] if args.ratios else QUICK_RATIOS if args.quick else RATIOS
    except ValueError as e:
        raise SystemExit(f"error: --ratios: {e}")
    if not all(0 < r < 1 for r in ratios):
        raise SystemExit("error: --ratios takes values between 0 and 1")
    schemes = scheme_filter(args.schemes)
    shapes = [s.replace(dtype="int8") for s in bench_shapes(args.quick, args.suite)]
    if args.median:
        all_shapes = bench_shapes(False, args.suite)
        shapes = [all_shapes[len(all_shapes) // 2].replace(dtype="int8")]
    csv_path = Path(args.csv) if Path(args.csv) != ap_default_csv() else ap_default_csv().with_name("sparse_vs_dense_int8.csv")
    runtimes = [OnnxRuntime(), LiteRT()]
    print(f"CPU: {_cpu()} | {' '.join(tc.cc)} {' '.join(tc.cflags)} | int8 path: {_int8_path(tc)} | "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{len(shapes)} shapes x {len(schemes) or len(SCHEMES)} schemes x ratios {ratios}; single thread, int8 (uint8 activations)\n")
    rows: list[dict] = []
    t_start = time.time()
    for s in shapes:
        kernels = [codegen_int8.generate(s, "dense")]
        for sc, p in SCHEMES:
            for r in ratios if not schemes or sc in schemes else ():
                spec = s.replace(sparsity=Sparsity(sc, r, p))
                if codegen_int8.unsupported(spec) or (sc == "pattern" and (s.op == "fc" or (s.kh, s.kw) != (3, 3))):
                    continue
                kernels.append(codegen_int8.generate(spec, "sparse"))
        batch = build_batch(kernels, tc)
        calls = {}
        for rt in runtimes:
            call, ran, bad = rt.checked(s, 1)
            if call is None:
                print(f"  {rt.name}: {bad}")
            else:
                calls[rt.name] = call
        best: dict[str, float] = {}
        rt_us = {n: math.inf for n in calls}
        for _ in range(max(1, args.rounds)):
            p = subprocess.run([str(batch.binary), *PROTOCOL.harness_args()], cwd=batch.folder, capture_output=True,
                               text=True, timeout=3600)
            for name, line in parse_harness_output(p.stdout).lines.items():
                if line.status == "ok":
                    best[name] = min(best.get(name, math.inf), float(np.median(line.samples_us)))
                else:
                    print(f"  {name}: {line.status}: {line.error}")
            for n, call in calls.items():
                rt_us[n] = min(rt_us[n], measure_callable(call, PROTOCOL).median_us)
        base_name = min(rt_us, key=rt_us.get)
        base = rt_us[base_name]
        dense_us = best.get(kernels[0].name, math.nan)
        print(f"{s.key}  GEMM {gemm_shape(s)}  " + " | ".join(f"{n} {u:.1f} us" for n, u in rt_us.items()) +
              f" | generated int8 dense {dense_us:.1f} us ({dense_us / base:.2f}x {base_name} time)")
        rows.append(dict(shape=s.key, gemm=gemm_shape(s), op=s.op, scheme="dense-generated", params="", ratio=0.0,
                         us=dense_us, ort_us=rt_us.get("onnxruntime", math.nan), litert_us=rt_us.get("litert", math.nan),
                         base_us=base, speedup_vs_ort=base / dense_us, speedup_vs_gen_dense=1.0))
        for k in kernels[1:]:
            us = best.get(k.name, math.nan)
            sp = k.spec.sparsity
            rows.append(dict(shape=s.key, gemm=gemm_shape(s), op=s.op, scheme=sp.scheme,
                             params=json.dumps(sp.to_dict()["params"], sort_keys=True), ratio=sp.ratio, us=us,
                             ort_us=rt_us.get("onnxruntime", math.nan), litert_us=rt_us.get("litert", math.nan),
                             base_us=base, speedup_vs_ort=base / us, speedup_vs_gen_dense=dense_us / us))
            print(f"  {sp.label():32s} {us:9.1f} us  x{base / us:5.2f} best int8 runtime  x{dense_us / us:5.2f} gen-dense")
        sys.stdout.flush()
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    # the targets ("speedup_vs_ort" holds the speedup over the faster int8 runtime here)
    mid = shapes[len(shapes) // 2]
    sparse = [r for r in rows if r["scheme"] != "dense-generated"]

    def at(n, ratio):
        m = [r for r in sparse if _scheme_name(r) == n and r["ratio"] == ratio and r["shape"] == mid.key]
        return m[0]["speedup_vs_ort"] if m else math.nan
    r90 = 0.9 if 0.9 in ratios else max(ratios)
    print(f"\n=== Targets (int8; median shape by FLOPs: {mid.key}) ===")
    print(f"  BCR(4x16) @ {r90:g} vs the faster int8 runtime: {at('bcr(4x16)', r90):.2f}x (target >= 3x)")
    for n in sorted({_scheme_name(r) for r in sparse}):
        be = None
        for ratio in sorted(ratios, reverse=True):
            if at(n, ratio) >= 1.0:
                be = ratio
            else:
                break
        print(f"  break-even vs the faster int8 runtime, {n:14s}: median shape " +
              (f"from {be:g}" if be is not None else "not reached") + " (target <= 0.75 for block schemes)")
    dense = [r for r in rows if r["scheme"] == "dense-generated"]
    ratios_d = [r["us"] / r["base_us"] for r in dense]
    md = [r for r in dense if r["shape"] == mid.key][0]
    print(f"  generated int8 dense vs the faster int8 runtime: median shape {md['us'] / md['base_us']:.2f}x its time, "
          f"median over shapes {np.median(ratios_d):.2f}x (target <= 1.5)")
    print(f"\nCSV: {csv_path}  ({time.time() - t_start:.0f} s)")
    return 0


def ap_default_csv() -> Path:
    return Path(__file__).resolve().parent / "results" / "sparse_vs_dense.csv"


def _int8_path(tc) -> str:
    """Which dot-product path the int8 kernels compile to with `tc` (the preprocessor's choice)."""
    src = '#include "dp_harness.h"\n' + codegen_int8_isa() + "\nint dp8_which = DP8_PATH;\n"
    p = subprocess.run([*tc.cc, *tc.cflags, "-I", str(Path(__file__).resolve().parents[1] / "devprof" / "harness_android"),
                        "-E", "-dM", "-x", "c", "-"], input=src, capture_output=True, text=True)
    names = {"0": "portable C", "1": "AVX2 16-bit pairs (vpmaddwd)", "2": "AVX-VNNI vpdpbusd",
             "3": "AVX512-VNNI vpdpbusd", "4": "arm64 sdot"}
    for line in p.stdout.splitlines():
        if line.startswith("#define DP8_PATH "):
            return names.get(line.split()[-1], "?")
    return "?"


def codegen_int8_isa() -> str:
    from devprof.sparse.codegen_int8 import _ISA

    return _ISA


def _scheme_name(r: dict) -> str:
    p = json.loads(r["params"]) if r["params"] else {}
    if "block" in p:
        return f"{r['scheme']}({'x'.join(map(str, p['block']))})"
    return r["scheme"]


def summarize(rows: list[dict], shapes: list[KernelSpec], ratios: list[float], peak: float,
              bcr_target: float = 3.0) -> None:
    sparse = [r for r in rows if r["scheme"] not in ("dense-generated",)]
    names = sorted({_scheme_name(r) for r in sparse})
    mid = shapes[len(shapes) // 2]
    mlabel = mid.key + (f" (crop of {mid.a['crop_of']})" if mid.a.get("crop_of") else "")
    print(f"\n=== Summary (median shape by FLOPs: {mlabel}) ===")
    print(f"{'scheme':16s} " + " ".join(f"{r:>6g}" for r in ratios) + "   <- speedup vs ORT dense on the median shape")
    for n in names:
        vals = []
        for ratio in ratios:
            m = [r for r in sparse if _scheme_name(r) == n and r["ratio"] == ratio and r["shape"] == mlabel]
            vals.append(f"{m[0]['speedup_vs_ort']:6.2f}" if m else f"{'-':>6s}")
        print(f"{n:16s} " + " ".join(vals))
    print(f"{'scheme':16s} " + " ".join(f"{r:>6g}" for r in ratios) + "   <- geomean speedup vs ORT over all shapes")
    for n in names:
        vals = []
        for ratio in ratios:
            m = [r["speedup_vs_ort"] for r in sparse if _scheme_name(r) == n and r["ratio"] == ratio]
            vals.append(f"{math.exp(np.mean(np.log(m))):6.2f}" if m else f"{'-':>6s}")
        print(f"{n:16s} " + " ".join(vals))
    # targets
    def at(n, ratio):
        m = [r for r in sparse if _scheme_name(r) == n and r["ratio"] == ratio and r["shape"] == mlabel]
        return m[0]["speedup_vs_ort"] if m else math.nan
    r90 = 0.9 if 0.9 in ratios else max(ratios)
    blocks = [n for n in names if n.startswith("block")]
    best_block = max(blocks, key=lambda n: at(n, r90)) if blocks else None
    print("\nTargets:")
    print(f"  BCR @ {r90:g} vs ORT dense, median shape: {at('bcr(4x16)', r90):.2f}x (target >= {bcr_target:g}x)")
    if best_block:
        print(f"  best block scheme {best_block} @ {r90:g}: {at(best_block, r90):.2f}x (target >= 3x)")
    for n in names:  # lowest ratio from which the scheme stays at least as fast as ORT
        be = None
        for ratio in sorted(ratios, reverse=True):
            if at(n, ratio) >= 1.0:
                be = ratio
            else:
                break
        gm = [ratio for ratio in sorted(ratios) if _geo(sparse, n, ratio) >= 1.0]
        na = all(math.isnan(at(n, ratio)) for ratio in ratios)
        med = "n/a" if na else (f"from {be:g}" if be is not None else "not reached")
        print(f"  break-even vs ORT, {n:14s}: median shape {med}" +
              f"; geomean over shapes from {min(gm) if gm else '-'} (target <= 0.7)")
    vs = [r["speedup_vs_scipy"] for r in sparse if not math.isnan(r["speedup_vs_scipy"])]
    worst = min(sparse, key=lambda r: r["speedup_vs_scipy"])
    print(f"  vs scipy CSR: {np.mean(np.asarray(vs) >= 2.0) * 100:.1f}% of {len(vs)} sparse kernels >= 2x faster; "
          f"min {min(vs):.2f}x ({_scheme_name(worst)}@{worst['ratio']:g} on {worst['shape']}), median {np.median(vs):.2f}x")
    dense = [r for r in rows if r["scheme"] == "dense-generated"]
    worst_d = max(dense, key=lambda r: r["us"] / r["ort_us"])
    print(f"  generated dense vs ORT dense: time ratio median {np.median([r['us'] / r['ort_us'] for r in dense]):.2f}, "
          f"worst {worst_d['us'] / worst_d['ort_us']:.2f} ({worst_d['shape']}) (target <= 2)")
    best = max(sparse, key=lambda r: r["nnz_gflops"])
    best_d = max(sparse, key=lambda r: r["dense_equiv_gflops"])
    print(f"  best nonzero-FMA throughput {best['nnz_gflops']:.0f} GF/s ({_scheme_name(best)}@{best['ratio']:g}, "
          f"{best['nnz_gflops'] / peak * 100:.0f}% of the measured 1-core peak {peak:.0f} GF/s); best dense-equivalent "
          f"rate {best_d['dense_equiv_gflops']:.0f} GF/s ({_scheme_name(best_d)}@{best_d['ratio']:g}: dense FLOPs / "
          f"time, a speedup in disguise, not work done)")


def _geo(sparse: list[dict], n: str, ratio: float) -> float:
    m = [r["speedup_vs_ort"] for r in sparse if _scheme_name(r) == n and r["ratio"] == ratio]
    return math.exp(np.mean(np.log(m))) if m else math.nan


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


if __name__ == "__main__":
    raise SystemExit(main())
