"""Inner loops of compiled kernels, read back from the disassembly: what a phone would execute.

Why: we cannot time a phone here, but we can read the code a phone would run. A generated
kernel's time is its innermost loop (one kept column x one register block) times the nonzeros, so
the loop's instruction mix says how close to the FMA pipes' peak it can get: how many FMAs per
iteration, how many other instructions, whether anything goes through the stack (a spill: the
blocking did not fit the registers), and what `llvm-mca` predicts for a given core.
`bench/arm64_codegen.py` prints this per scheme; tests assert that no loop touches the stack.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_FUNC = re.compile(r"^([0-9a-f]+) <(.+)>:$")
_LINE = re.compile(r"^\s*([0-9a-f]+):\s+([a-z][\w.]*)\s*(.*)$")
_TARGET = re.compile(r"(?:0x)?([0-9a-f]+)\s+<")
_BRANCH_TARGET = re.compile(r"(?:0x)?[0-9a-f]+\s+<[^>]*>")
# vector multiply-adds (and SSE's multiply, which has no fused form; int8's dot products): the
# loop's useful work
_FMA = {"aarch64": re.compile(r"^(fmla|sdot|udot)$"), "x86_64": re.compile(r"^(vfmadd\w+|vfnmadd\w+|mulps)$")}
_STACK = {"aarch64": re.compile(r"\[sp\b"), "x86_64": re.compile(r"\(%[re]sp[,)]")}  # -O3 frees %rbp: only %rsp is the stack
_MEM = {"aarch64": re.compile(r"\["), "x86_64": re.compile(r"\(%")}
OBJDUMP = {"aarch64": "aarch64-linux-gnu-objdump", "x86_64": "objdump"}
MCA_TRIPLE = {"aarch64": "aarch64-linux-gnu", "x86_64": "x86_64-linux-gnu"}


@dataclass
class Loop:
    """One innermost loop: its function and its instructions (mnemonic, operands) in order."""

    function: str
    arch: str
    instructions: list[tuple[str, str]]

    @property
    def fmas(self) -> int:
        return sum(1 for op, _ in self.instructions if _FMA[self.arch].match(op))

    @property
    def stack_accesses(self) -> int:
        """Loads/stores addressed from the stack pointer: spills."""
        return sum(1 for _, args in self.instructions if _STACK[self.arch].search(args))

    @property
    def memory_ops(self) -> int:
        return sum(1 for op, args in self.instructions if _MEM[self.arch].search(args) and not op.startswith(("b", "j")))

    def assembly(self) -> str:
        """The loop as assembler input for llvm-mca (the back branch targets a local label)."""
        lines = [".Lloop:"]
        for op, args in self.instructions:
            if op.startswith(("b", "cb", "tb", "j")):
                args = _BRANCH_TARGET.sub(".Lloop", args)
            lines.append(f"    {op} {args}")
        return "\n".join(lines) + "\n"


def disassemble(obj: Path, arch: str) -> dict[str, list[tuple[int, str, str]]]:
    """function -> [(address, mnemonic, operands)] of an object file (GNU objdump syntax)."""
    tool = shutil.which(OBJDUMP[arch]) or shutil.which("llvm-objdump")
    if not tool:
        raise FileNotFoundError(f"no objdump for {arch}: install binutils ({OBJDUMP[arch]}) or llvm")
    out = subprocess.run([tool, "-d", "--no-show-raw-insn", str(obj)], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    funcs: dict[str, list[tuple[int, str, str]]] = {}
    cur: list | None = None
    for line in out.splitlines():
        m = _FUNC.match(line)
        if m:
            cur = funcs.setdefault(m.group(2), [])
            continue
        m = _LINE.match(line)
        if m and cur is not None:
            args = m.group(3).split("//")[0].split("#", 1)[0] if arch == "x86_64" else m.group(3).split("//")[0]
            cur.append((int(m.group(1), 16), m.group(2), args.strip()))
    return funcs


def _back_branches(ins: list[tuple[int, str, str]]) -> list[tuple[int, int]]:
    """(target index, branch index) of every branch in `ins` that jumps back within it."""
    index = {a: i for i, (a, _, _) in enumerate(ins)}
    spans = []
    for i, (a, op, args) in enumerate(ins):
        if op.startswith(("b", "cb", "tb", "j")) and op not in ("bl", "blr", "br", "bic", "bif", "bit", "bsl"):
            m = _TARGET.search(args)
            if m and int(m.group(1), 16) <= a and int(m.group(1), 16) in index:
                spans.append((index[int(m.group(1), 16)], i))
    return spans


def inner_loops(obj: Path, arch: str, with_fma: bool = True) -> list[Loop]:
    """Every innermost loop (a backward branch whose range holds no other backward branch) of
    every function in `obj`; with `with_fma`, only loops doing vector multiply-adds."""
    loops = []
    for fn, ins in disassemble(obj, arch).items():
        spans = _back_branches(ins)
        for s, e in spans:
            if any((s2, e2) != (s, e) and s <= s2 and e2 <= e for s2, e2 in spans):
                continue
            loop = Loop(fn, arch, [(op, args) for _, op, args in ins[s:e + 1]])
            if not with_fma or loop.fmas:
                loops.append(loop)
    return loops


def straight_blocks(obj: Path, arch: str) -> list[Loop]:
    """Functions doing vector multiply-adds without any backward branch (unrolled kernels'
    blocks, `devprof.sparse.unrolled`), each as one 'iteration', its return left out."""
    out = []
    for fn, ins in disassemble(obj, arch).items():
        body = Loop(fn, arch, [(op, args) for _, op, args in ins if not op.startswith("ret")])
        if body.fmas and not _back_branches(ins):
            out.append(body)
    return out


def mca(loop: Loop, mcpu: str, iterations: int = 200) -> tuple[float, float] | None:
    """(cycles per iteration, Block RThroughput) that llvm-mca predicts for `loop` on `mcpu`;
    None when llvm-mca is not installed or does not know the CPU."""
    tool = mca_tool()
    if tool is None:
        return None
    argv = [tool, f"-mtriple={MCA_TRIPLE[loop.arch]}", f"-mcpu={mcpu}", f"-iterations={iterations}"]
    if loop.arch == "x86_64":
        argv.append("--x86-asm-syntax=att")
    p = subprocess.run(argv, input=loop.assembly(), capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        return None
    cyc = re.search(r"Total Cycles:\s+(\d+)", p.stdout)
    rt = re.search(r"Block RThroughput:\s+([\d.]+)", p.stdout)
    if not cyc or not rt:
        return None
    return int(cyc.group(1)) / iterations, float(rt.group(1))


def mca_tool() -> str | None:
    """The llvm-mca binary `mca` uses, or None."""
    return next((t for t in ("llvm-mca-19", "llvm-mca-18", "llvm-mca-17", "llvm-mca-16", "llvm-mca")
                 if shutil.which(t)), None)


def compile_object(tc, source: str, out: Path, timeout_s: float = 300) -> tuple[Path, str]:
    """Compile one generated kernel's C source to an object file with `tc`'s compiler and flags
    (exactly as the harness build compiles it, without linking); returns (object, warnings)."""
    from .harness_build import EXTRA_CFLAGS, HARNESS_DIR

    out = Path(out)
    src = out.with_suffix(".c")
    src.write_text(source)
    argv = [*tc.cc, *tc.cflags, *EXTRA_CFLAGS, f"-I{HARNESS_DIR}", "-c", str(src), "-o", str(out)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    if p.returncode != 0:
        raise RuntimeError(f"{tc.cc[0]} failed on {src.name}: {p.stderr.strip()[:300]}")
    return out, p.stderr.strip()


def arch_of(abi: str) -> str:
    return {"arm64-v8a": "aarch64", "x86_64": "x86_64"}[abi]
