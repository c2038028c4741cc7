"""Stand-ins for the Android builds of `benchmark_model` and `onnxruntime_perf_test`.

The real tools are Android binaries: neither this machine nor the emulated phone can run them. So
the tests point devprof at these stand-ins instead (the only stand-ins the phone tests use): each
is a small launcher script that devprof copies and pushes to the emulated phone like the real
binary, and that the phone's shell runs there. It takes the real tool's arguments and prints the
real tool's output format (tests/data/phone_tools/ holds real samples of each):

* ``onnxruntime_perf_test -e cpu -x T -y 1 -I -m times -r N [-p PREFIX] MODEL`` runs MODEL with
  the real ONNX Runtime of this venv (N runs on random inputs), with ORT's own profiler when
  ``-p`` is given, so the profile JSON (``PREFIX_<date>.json``) is ORT's genuine Chrome trace
  with ORT's own fused kernel names; stdout is perf_test's summary.
* ``benchmark_model --graph=MODEL --num_threads=T --use_xnnpack=B --enable_op_profiling=B
  --num_runs=N ...`` times the .tflite with LiteRT's interpreter and prints the
  warm-up/timed ``count=`` lines and, with op profiling, the "Operator-wise Profiling Info"
  tables: one row per operator named ``[output tensor]:index`` (with XNNPACK, one
  ``TfLiteXNNPackDelegate`` row for the whole graph, as XNNPACK delegates an fp32 CNN). The
  interpreter cannot time single operators from Python, so the per-row times are the measured
  run time shared out by each operator's output size: a stand-in's figures, not a phone's.

Everything on devprof's side (host check, push, one shell call on the phone, parsing, records)
is real; only the binary at the end of the shell call is this.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

TOOLS = ("benchmark_model", "onnxruntime_perf_test")


def install(folder: Path, tool: str) -> Path:
    """Write the launcher for `tool` into `folder` (named like the real binary); return its path."""
    assert tool in TOOLS
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / tool
    p.write_text(f'#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} {tool} "$@"\n')
    p.chmod(0o755)
    return p


# ------------------------------------------------------------------------------ onnxruntime_perf_test
def perf_test(argv: list[str]) -> int:
    import numpy as np
    import onnxruntime as ort

    opts = {"-x": "1", "-r": "10", "-m": "times", "-p": ""}
    model = ""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-e", "-x", "-y", "-m", "-r", "-p"):
            opts[a] = argv[i + 1]
            i += 2
        elif a.startswith("-"):
            i += 1
        else:
            model = a
            i += 1
    if not model or not os.path.isfile(model):
        print(f"Model file not found: {model}", file=sys.stderr)
        return 1
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(opts["-x"])
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if opts["-p"]:
        so.enable_profiling = True
        so.profile_file_prefix = opts["-p"]
    t0 = time.perf_counter()
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    created = time.perf_counter() - t0
    feeds = {}
    for inp in sess.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
        feeds[inp.name] = np.random.default_rng(0).random(shape, dtype=np.float32)
    n = int(opts["-r"])
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        sess.run(None, feeds)
        lat.append(time.perf_counter() - t)
    if opts["-p"]:
        sess.end_profiling()
    total = sum(lat)
    s = sorted(lat)

    def pct(q: float) -> float:
        return s[min(len(s) - 1, int(q * len(s)))]

    print(f"Setting intra_op_num_threads to {opts['-x']}")
    print(f"Session creation time cost: {created:.4f} s")
    print(f"First inference time cost: {lat[0] * 1000:.0f} ms")
    print(f"Total inference time cost: {total:.5f} s")
    print(f"Total inference requests: {n}")
    print(f"Average inference time cost: {total / n * 1000:.5f} ms")
    print(f"Total inference run time: {total:.5f} s")
    print(f"Number of inferences per second: {n / total:.1f}")
    print("Avg CPU usage: 98 %")
    print("Peak working set size: 12582912 bytes")
    print(f"Runs:{n}")
    for name, v in (("Min", s[0]), ("Max", s[-1]), ("P50", pct(0.5)), ("P90", pct(0.9)), ("P95", pct(0.95)),
                    ("P99", pct(0.99)), ("P999", pct(0.999))):
        print(f"{name} Latency: {v:.6f} s")
    return 0


# ------------------------------------------------------------------------------ benchmark_model
def _stats(v: list[float]) -> str:
    import statistics

    return (f"count={len(v)} first={v[0]:.0f} curr={v[-1]:.0f} min={min(v):.0f} max={max(v):.0f} "
            f"avg={statistics.fmean(v):.2f} std={statistics.pstdev(v):.0f}")


_COLS = ("[node type]", "[first]", "[avg ms]", "[%]", "[cdf%]", "[mem KB]", "[times called]", "[Name]")


def _table(title: str, rows: list[tuple[str, float, float, str]]) -> list[str]:
    total = sum(r[2] for r in rows) or 1.0
    out = [f"============================== {title} ==============================",
           "\t" + "\t".join(f"{c:>24}" if k == 0 else (f"{c:>17}" if k < 7 else c) for k, c in enumerate(_COLS))]
    cdf = 0.0
    for ntype, first, avg, name in rows:
        cdf += avg / total * 100
        out.append(f"\t{ntype:>24}\t{first:>17.3f}\t{avg:>17.3f}\t{avg / total * 100:>15.3f}%\t{cdf:>15.3f}%\t"
                   f"{0.0:>18.3f}\t{1:>20}\t{name}")
    return out


def benchmark_model(argv: list[str]) -> int:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    a = {k.lstrip("-"): v for k, _, v in (x.partition("=") for x in argv)}
    graph = a.get("graph", "")
    if not os.path.isfile(graph):
        print(f"ERROR: Could not open '{graph}'.\nAborted", file=sys.stderr)
        return 1
    threads = int(a.get("num_threads", "1"))
    xnnpack = a.get("use_xnnpack", "true") == "true"
    profiling = a.get("enable_op_profiling", "false") == "true"
    runs = int(a.get("num_runs", "50"))
    warm = int(a.get("warmup_runs", "1"))
    print("INFO: STARTING!")
    print(f"INFO: Num threads: [{threads}]")
    print(f"INFO: Graph: [{graph}]")
    print(f"INFO: Enable op profiling: [{int(profiling)}]")
    print(f"INFO: Use xnnpack: [{int(xnnpack)}]")
    t0 = time.perf_counter()
    it = Interpreter(model_path=graph, num_threads=threads,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.random.default_rng(0).random(d["shape"], dtype=np.float32))
    init_ms = (time.perf_counter() - t0) * 1000
    print(f"INFO: Initialized session in {init_ms:.3f}ms.")

    def timed(n: int) -> list[float]:
        v = []
        for _ in range(max(1, n)):
            t = time.perf_counter()
            it.invoke()
            v.append((time.perf_counter() - t) * 1e6)
        return v

    print(f"INFO: Running benchmark for at least {warm} iterations and at least 0.5 seconds but terminate if "
          "exceeding 150 seconds.")
    w = timed(warm)
    print("INFO: " + _stats(w) + "\n")
    print(f"INFO: Running benchmark for at least {runs} iterations and at least 1 seconds but terminate if "
          "exceeding 150 seconds.")
    v = timed(runs)
    print("INFO: " + _stats(v) + "\n")
    avg = sum(v) / len(v)
    print(f"INFO: Inference timings in us: Init: {init_ms * 1000:.0f}, First inference: {w[0]:.0f}, "
          f"Warmup (avg): {sum(w) / len(w):.2f}, Inference (avg): {avg:.2f}")
    if not profiling:
        return 0
    tensors = {d["index"]: d for d in it.get_tensor_details()}
    ops = it._get_ops_details()
    if xnnpack:  # XNNPACK takes the whole fp32 graph: one delegate node, after the graph's operators
        outs = [tensors[d["index"]]["name"] for d in it.get_output_details()]
        rows = [("TfLiteXNNPackDelegate", avg / 1000, avg / 1000 * 0.995, f"[{', '.join(outs)}]:{len(ops)}")]
    else:  # one row per operator, the run time shared out by output size
        size = [max(1, int(np.prod(tensors[op["outputs"][0]]["shape"]))) if len(op["outputs"]) else 1 for op in ops]
        share = avg / 1000 * 0.97 / sum(size)
        rows = [(op["op_name"], s * share, s * share, f"[{tensors[op['outputs'][0]]['name']}]:{op['index']}")
                for op, s in zip(ops, size)]
    print("Profiling Info for Benchmark Initialization:")
    print("\n".join(_table("Run Order", [("AllocateTensors", 0.02, 0.011, "AllocateTensors/0")])))
    print(f"\nTimings (microseconds): count=1 curr={init_ms * 1000:.0f}\nMemory (bytes): count=0\n"
          "1 nodes observed\n\n\n")
    print("Operator-wise Profiling Info for Regular Benchmark Runs:")
    print("\n".join(_table("Run Order", rows)))
    print()
    print("\n".join(_table("Top by Computation Time", sorted(rows, key=lambda r: -r[2])[:10])))
    print(f"\nNumber of nodes executed: {len(rows)}")
    print(f"\nTimings (microseconds): {_stats(v)}\nMemory (bytes): count=0\n{len(rows)} nodes observed")
    return 0


if __name__ == "__main__":
    tool, args = sys.argv[1], sys.argv[2:]
    sys.exit(perf_test(args) if tool == "onnxruntime_perf_test" else benchmark_model(args))
