"""Code quality of the generated kernels for phones we cannot time here: read the inner loops.

Builds every scheme (dense, bcr 4x16, block 4x1 / 1x4 / 4x4, N:M, pattern, unstructured) for a
few MobileNetV2 pointwise and super-resolution 3x3 layers at 0.5 and 0.9 sparsity, for arm64 with
every installed compiler (Debian's aarch64-linux-gnu-gcc, clang --target=aarch64-linux-gnu, the
NDK's clang when ANDROID_NDK_HOME is set) and for x86_64 (the x86-64-v2 phone build and this
host's -march=native build), and on arm64 also the fp16 kernels (`-march=armv8.2-a+fp16`, 8 halves
per register: `fmla v.8h`) and the int8 kernels with dot products (`-march=armv8.2-a+dotprod`:
`sdot`). For each kernel it takes the innermost multiply-add loop from the disassembly (the loop
with the most FMAs, `sdot` counting as one; spills are counted over all its FMA loops) and prints:

  instr   instructions per iteration        fma   vector FMAs (x86-64-v2: multiplies)
  i/fma   instructions per FMA              stk   stack (sp-relative) loads/stores: spills
  big     llvm-mca cycles/iteration, big core (arm64: neoverse-n1, x86: znver3, AVX-512 builds znver4)
  bound   the loop's resource bound (llvm-mca Block RThroughput) on that core
  ideal   one FMA per FMA pipe per cycle (2 pipes: the big core)
  little  llvm-mca cycles/iteration on cortex-a55 (arm64 only; its ideal is one 128-bit FMA per
          cycle, i.e. the fma column, and its single load pipe makes one-row loops load-bound)

then the targets: 0 stack accesses everywhere; big-core cycles within 1.25x of the bound; one-row
schemes (unstructured, N:M, 1x4) at most 1.8 instructions per FMA (18 instructions / 10 fmla,
what GCC made of 4-float vectors before the ISA table). On arm64 the one-row loops take 4 kept
columns per iteration (`codegen.column_step`) and a row's last nc % 4 columns one at a time, so the
hot loop's FMAs are all nonzeros' (no padding); the summary prints the share of nonzeros that run
in full steps.

    .venv/bin/python bench/arm64_codegen.py [--quick] [--before] [--dtype fp32,fp16,int8] [--json PATH]

`--before` adds the builds as they were before the ISA table (8-float vectors, 16 registers, on
arm64 gcc and x86-64-v2), for comparison.

Nothing here runs a kernel: the figures are static, from the compilers and llvm-mca's models.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devprof.artifacts.disasm import arch_of, compile_object, inner_loops, mca, mca_tool, straight_blocks  # noqa: E402
from devprof.artifacts.harness_build import vector_shape  # noqa: E402
from devprof.artifacts.isa import isa_of  # noqa: E402
from devprof.artifacts.toolchains import _compiler_version, android_toolchain, cross_toolchains, host_toolchain  # noqa: E402
from devprof.records import KernelSpec, Sparsity  # noqa: E402
from devprof.sparse import codegen_fp16, codegen_int8  # noqa: E402
from devprof.sparse.codegen import generate  # noqa: E402

LAYERS = {  # name -> KernelSpec without sparsity
    "mbv2 pw 28x28 192->32": KernelSpec("pwconv", h=28, w=28, cin=192, cout=32),
    "mbv2 pw 14x14 64->384": KernelSpec("pwconv", h=14, w=14, cin=64, cout=384),
    "mbv2 pw 7x7 960->160": KernelSpec("pwconv", h=7, w=7, cin=960, cout=160),
    "sr 3x3 64->64 90x160": KernelSpec("conv2d", h=90, w=160, cin=64, cout=64, kh=3, kw=3, padding=1),
}
SCHEMES = [  # (label, scheme, params, one row per register block)
    ("dense", "dense", {}, False),
    ("bcr4x16", "bcr", {"block": [4, 16]}, False),
    ("block4x1", "block", {"block": [4, 1]}, False),
    ("block1x4", "block", {"block": [1, 4]}, True),
    ("block4x4", "block", {"block": [4, 4]}, False),
    ("nm", "nm", {}, True),
    ("pattern", "pattern", {"patterns": 8}, False),
    ("unstructured", "unstructured", {}, True),
]
RATIOS = (0.5, 0.9)
BIG = {"aarch64": "neoverse-n1", "x86_64": "znver3"}
BIG_AVX512 = "znver4"  # x86 builds with 16-float vectors: znver3's model has no AVX-512
LITTLE = {"aarch64": "cortex-a55"}
FMA_PIPES = 2
R1_INSTR_PER_FMA = 1.8  # 18 instructions / 10 fmla


def specs(quick: bool) -> list[tuple[str, str, float, KernelSpec, bool]]:
    out = []
    layers = list(LAYERS.items())[::3] if quick else list(LAYERS.items())
    for lname, base in layers:
        for label, scheme, params, r1 in SCHEMES:
            if scheme == "pattern" and base.kh != 3:
                continue
            for ratio in ((0.0,) if scheme == "dense" else RATIOS):
                sp = Sparsity(scheme, ratio, params) if scheme != "dense" else Sparsity()
                out.append((lname, label, ratio, base.replace(sparsity=sp), r1))
    return out


DOTPROD = codegen_int8.DOTPROD_CFLAGS[0]  # what an arm64 phone with asimddp builds int8 kernels with


def builds(before: bool, dtypes: set[str]) -> list[tuple[str, object, tuple[int, int] | None, str]]:
    """(label, toolchain, vector shape override, dtype): arm64 with each compiler (fp32, fp16 and
    int8 +dotprod), the x86-64-v2 phone build, this host; with `before`, also arm64 gcc with the
    shape used before the ISA table."""
    out = []
    for tc in cross_toolchains("arm64-v8a"):
        cc = tc.kind.split("-")[0]
        if "fp32" in dtypes:
            out.append((f"arm64 {cc}", tc, None, "fp32"))
            if before and tc.kind == "gnu-static":
                out.append(("arm64 gnu 8x16 (before)", tc, (8, 16), "fp32"))
        if "fp16" in dtypes:
            out.append((f"arm64 {cc} fp16", tc, None, "fp16"))
        if "int8" in dtypes:
            out.append((f"arm64 {cc} int8 dotprod", tc, None, "int8"))
    if "fp32" in dtypes:
        out.append(("x86_64 phone (v2)", android_toolchain("x86_64"), None, "fp32"))
        if before:
            out.append(("x86_64 phone 8x16 (before)", android_toolchain("x86_64"), (8, 16), "fp32"))
        out.append(("x86_64 host (native)", host_toolchain(), None, "fp32"))
    return out


def measure(tc, spec: KernelSpec, tmp: Path, name: str, shape: tuple[int, int] | None = None,
            dtype: str = "fp32") -> dict:
    variant = "dense" if spec.sparsity.scheme == "dense" else "sparse"
    if dtype == "fp16":
        k = codegen_fp16.generate(spec.replace(dtype="fp16"), variant, name=name, with_reference=False)
        tc = dataclasses.replace(tc, cflags=(*tc.cflags, *k.cflags))
    elif dtype == "int8":
        k = codegen_int8.generate(spec.replace(dtype="int8"), variant, name=name, with_reference=False)
        tc = dataclasses.replace(tc, cflags=(*tc.cflags, DOTPROD))
    else:
        vl, regs = shape or vector_shape(tc)
        k = generate(spec, variant, vector_floats=vl, vector_regs=regs, name=name, with_reference=False)
    obj, warnings = compile_object(tc, k.source, tmp / f"{name}.o")
    arch = arch_of(tc.abi)
    loops = inner_loops(obj, arch)
    if not loops and k.stats.get("format") == "unrolled":  # straight-line blocks, one per call
        loops = straight_blocks(obj, arch)
    if not loops:
        return {"error": "no FMA loop found", "warnings": warnings}
    hot = max(loops, key=lambda lp: (lp.fmas, -len(lp.instructions)))
    row = {"instr": len(hot.instructions), "fma": hot.fmas, "stack": max(lp.stack_accesses for lp in loops),
           "ideal": hot.fmas / FMA_PIPES, "rows": k.stats.get("rmax", 1), "tile": k.stats.get("tile"),
           "abi_warning": "changes the ABI" in warnings, "column_step": k.stats.get("column_step", 1),
           "stepped_share": k.stats.get("stepped_share"), "unrolled": k.stats.get("format") == "unrolled"}
    wide = arch == "x86_64" and dtype == "fp32" and (shape or vector_shape(tc))[0] == 16
    big = mca(hot, BIG_AVX512 if wide else BIG[arch])
    row["big"], row["bound"] = big if big else (None, None)
    little = mca(hot, LITTLE[arch]) if arch in LITTLE else None
    row["little"] = little[0] if little else None
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="two layers only")
    ap.add_argument("--json", type=Path, help="also write every row as JSON")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--dtype", default="fp32,fp16,int8",
                    help="data types to build, comma-separated (fp16 and int8: arm64 only)")
    ap.add_argument("--before", action="store_true",
                    help="also build arm64 gcc and x86-64-v2 with 8-float vectors and 16 registers (the shape before the ISA table)")
    a = ap.parse_args(argv)
    if mca_tool() is None:
        print("note: llvm-mca not installed (apt-get install llvm): cycle columns empty")
    dtypes = set(a.dtype.split(","))
    if not dtypes <= {"fp32", "fp16", "int8"}:
        ap.error(f"--dtype: unknown {sorted(dtypes - {'fp32', 'fp16', 'int8'})}")
    todo = specs(a.quick)
    rows = []
    with tempfile.TemporaryDirectory() as td, ThreadPoolExecutor(a.jobs) as pool:
        for blabel, tc, shape, dtype in builds(a.before, dtypes):
            isa = isa_of(tc)
            vl, regs = shape or (isa.vector_floats, isa.vector_regs)
            shape_txt = {"fp16": f"8 halves x {regs} registers, +{codegen_fp16.CFLAGS[0].split('+')[-1]}",
                         "int8": f"16 bytes x {regs} registers, {DOTPROD}"}.get(dtype, f"{vl} floats x {regs} registers")
            print(f"\n== {blabel}: {_compiler_version(tc.cc)}; {' '.join(tc.cflags)}; ISA {isa.name}; "
                  f"generated for {shape_txt}")
            print(f"{'layer':24} {'scheme':13} {'ratio':>5} {'R':>2} {'instr':>5} {'fma':>4} {'i/fma':>5} {'stk':>3} "
                  f"{'big':>6} {'bound':>6} {'ideal':>6} {'little':>7}")
            futs = [(t, pool.submit(measure, tc, t[3], Path(td), f"b{abs(hash(blabel)) % 9999}_{i}", shape, dtype))
                    for i, t in enumerate(todo)]
            for (lname, label, ratio, spec, r1), f in futs:
                r = f.result()
                r.update(build=blabel, cc=_compiler_version(tc.cc), isa=isa.name, layer=lname, scheme=label,
                         ratio=ratio, one_row=r1, dtype=dtype)
                rows.append(r)
                if "error" in r:
                    print(f"{lname:24} {label:13} {ratio:5.2f}  {r['error']}")
                    continue
                fmt = lambda v, w: f"{v:{w}.2f}" if isinstance(v, float) else f"{'-':>{w}}"  # noqa: E731
                print(f"{lname:24} {label:13} {ratio:5.2f} {r['rows']:>2} {r['instr']:5d} {r['fma']:4d} "
                      f"{r['instr'] / r['fma']:5.2f} {r['stack']:3d} {fmt(r['big'], 6)} {fmt(r['bound'], 6)} "
                      f"{r['ideal']:6.1f} {fmt(r['little'], 7)}")
    ok = [r for r in rows if "error" not in r]
    print("\n== targets")
    for blabel in dict.fromkeys(r["build"] for r in rows):
        rs = [r for r in ok if r["build"] == blabel]
        if not rs:
            continue
        stack = sum(r["stack"] for r in rs)
        ratios = [r["big"] / r["bound"] for r in rs if r["big"] and r["bound"]]
        worst = max(rs, key=lambda r: (r["big"] or 0) / (r["bound"] or 1))
        r1 = [r["instr"] / r["fma"] for r in rs if r["one_row"]]
        share = [r["stepped_share"] for r in rs if r["one_row"] and r.get("stepped_share") is not None]
        step = max((r["column_step"] for r in rs if r["one_row"]), default=1)
        abi = sum(r["abi_warning"] for r in rs)
        cpf = [r["big"] / r["fma"] for r in rs if r["big"]]
        lpf = [r["little"] / r["fma"] for r in rs if r["little"]]
        print(f"{blabel:22} mean cycles per FMA: big {sum(cpf) / max(1, len(cpf)):.3f}"
              + (f", little {sum(lpf) / len(lpf):.2f}" if lpf else ""))
        print(f"{blabel:22} stack accesses {stack} (target 0); big-core cycles / bound max "
              f"{max(ratios) if ratios else float('nan'):.2f} ({worst['layer']}, {worst['scheme']} {worst['ratio']}; "
              f"target <= 1.25); one-row instr/fma max {max(r1) if r1 else float('nan'):.2f} "
              + (f"(target <= {R1_INSTR_PER_FMA})" if rs[0]["dtype"] == "fp32" else "(the target is fp32's)")
              + f"; ABI warnings {abi}")
        if share:
            print(f"{blabel:22} one-row loops take {step} kept columns per step "
                  f"(no padding: every fmla is a nonzero's); nonzeros in full steps {min(share):.0%}-{max(share):.0%}, "
                  "the rest one column at a time")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
