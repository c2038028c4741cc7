"""Cross builds of the native harness for phones (arm64-v8a, x86_64), and their check on this machine.

Why: profiling batches are compiled for each phone's ABI on the fly (`devprof-c` asks
`toolchain_for(device)`), but a user wants to know *before* plugging a phone in that the cross
toolchain works and that arm64 code computes what x86_64 code computes. This module builds a
self-test batch (one kernel per sparsity scheme, plus dense and CSR baselines) for every ABI,
runs each build here (natively, or under ``qemu-aarch64-static``: its timings mean nothing, its
answers do), and compares the outputs across ABIs.

``python -m devprof.artifacts.android [--abi arm64-v8a] [--out DIR] [--no-check]`` or
``devprof build-harness`` does it in one command.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DevprofError, KernelError
from ..records import KernelSpec, Sparsity
from .toolchains import ABIS, Toolchain, android_toolchain

#: One kernel per scheme and op kind, small enough for qemu (~150x slower than native).
SELFTEST_SPECS: tuple[tuple[KernelSpec, str], ...] = (
    (KernelSpec("conv2d", h=12, w=12, cin=8, cout=16, kh=3, kw=3, padding=1, activation="relu"), "dense"),
    (KernelSpec("conv2d", h=11, w=13, cin=8, cout=16, kh=3, kw=3, stride=2, padding=1,
                sparsity=Sparsity("bcr", 0.75, {"block": (4, 8)})), "sparse"),
    (KernelSpec("conv2d", h=10, w=10, cin=8, cout=8, kh=3, kw=3, padding=1,
                sparsity=Sparsity("pattern", 0.6, {"patterns": 4})), "sparse"),
    (KernelSpec("pwconv", h=9, w=9, cin=16, cout=24, sparsity=Sparsity("nm", 0.5, {"n": 2, "m": 4})), "sparse"),
    (KernelSpec("pwconv", h=8, w=8, cin=16, cout=16, sparsity=Sparsity("block", 0.75, {"block": (4, 1)})), "sparse"),
    (KernelSpec("fc", n=3, cin=40, cout=24, sparsity=Sparsity("unstructured", 0.8)), "csr"),
    (KernelSpec("dwconv2d", h=10, w=10, cin=8, cout=8, groups=8, kh=3, kw=3, padding=1), "dense"),
)

#: The cheapest protocol: one checked run and one sample (qemu timings are meaningless anyway).
CHECK_ARGS = ("--warmup-us=0", "--min-warmups=1", "--sample-us=0", "--rounds=1", "--round-samples=1", "--round-us=0",
              "--max-time-us=0")


@dataclass
class AbiBuild:
    abi: str
    toolchain: Toolchain
    folder: Path  # the content-addressed batch folder (binary + data files)
    files: list[Path]
    kernels: list = field(default_factory=list)  # GeneratedKernel
    results: dict[str, str] = field(default_factory=dict)  # kernel name -> "ok" or the error
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # kernel name -> output (when checked)

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(v == "ok" for v in self.results.values())


def build_selftest(abi: str, specs: Sequence[tuple[KernelSpec, str]] = SELFTEST_SPECS,
                   cache_dir: Path | None = None) -> AbiBuild:
    """Generate and build the self-test batch for `abi` with its static toolchain."""
    from ..sparse.codegen import generate
    from .harness_build import build_batch, vector_shape

    tc = android_toolchain(abi).require()
    vl, regs = vector_shape(tc)
    kernels = [generate(s, variant, vector_floats=vl, vector_regs=regs, name=f"t{i}_{s.sparsity.scheme}_{variant}")
               for i, (s, variant) in enumerate(specs)]
    batch = build_batch(kernels, tc, cache_dir=cache_dir)
    return AbiBuild(abi, tc, batch.folder, list(batch.files), kernels)


def check_here(b: AbiBuild, timeout_s: float = 600) -> AbiBuild:
    """Run the build on this machine (under qemu when foreign): every kernel must pass the
    harness's own output check; outputs are kept for the cross-ABI comparison."""
    from ..runtimes.harness import parse_harness_output

    if not b.toolchain.can_run_here:
        raise DevprofError(f"{b.abi} binaries cannot run here (install qemu-user-static for arm64)")
    with tempfile.TemporaryDirectory(prefix=f"devprof-check-{b.abi}-") as dump:
        argv = b.toolchain.run_argv(b.folder / "devprof-harness", *CHECK_ARGS, f"--dump={dump}")
        try:
            p = subprocess.run(argv, cwd=b.folder, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise KernelError(f"the {b.abi} harness did not finish within {timeout_s:.0f} s") from None
        parsed = parse_harness_output(p.stdout)
        for k in b.kernels:
            line = parsed.lines.get(k.name)
            if line is None:
                b.results[k.name] = f"no result (exit {p.returncode}: {p.stderr.strip()[-200:]})"
            elif line.status != "ok":
                b.results[k.name] = f"{line.status}: {line.error}"
            else:
                b.results[k.name] = "ok"
                out = Path(dump) / f"{k.name}.out"
                if out.exists():
                    b.outputs[k.name] = np.fromfile(out, dtype="<f4")
    return b


def compare(a: AbiBuild, b: AbiBuild, rtol: float = 1e-4) -> list[str]:
    """Kernels whose outputs differ between two ABIs' builds (beyond fp32 reassociation noise)."""
    bad = []
    for name, ya in a.outputs.items():
        yb = b.outputs.get(name)
        if yb is None or ya.shape != yb.shape:
            bad.append(f"{name}: missing or different size")
            continue
        scale = float(np.max(np.abs(ya))) or 1.0
        err = float(np.max(np.abs(ya - yb))) / scale
        if not err <= rtol:
            bad.append(f"{name}: max relative difference {err:.2e}")
    return bad


def export(b: AbiBuild, out: Path) -> Path:
    """Copy a build to ``out/<abi>/`` (binary + data files), ready to push by hand."""
    dest = Path(out) / b.abi
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for f in b.files:
        shutil.copy2(f, dest / f.name)
    return dest


def build_all(abis: Sequence[str] = ABIS, out: Path | None = None, check: bool = True,
              echo=print) -> list[AbiBuild]:
    """Build (and check, and compare) the harness for each ABI; raise on any failure."""
    builds = []
    for abi in abis:
        b = build_selftest(abi)
        echo(f"{abi}: built with {b.toolchain.kind} ({b.toolchain.cc[0]}) -> {b.folder / 'devprof-harness'}")
        if check:
            check_here(b)
            failed = {k: v for k, v in b.results.items() if v != "ok"}
            runner = " ".join(b.toolchain.runner or ()) or "natively"
            echo(f"{abi}: {len(b.results) - len(failed)}/{len(b.results)} kernels pass their output check ({runner})")
            if failed:
                raise KernelError(f"{abi} harness: {', '.join(f'{k} {v}' for k, v in failed.items())}")
        if out is not None:
            echo(f"{abi}: exported to {export(b, out)}")
        builds.append(b)
    if check and len(builds) > 1:
        ref = builds[0]
        for other in builds[1:]:
            bad = compare(ref, other)
            if bad:
                raise KernelError(f"{other.abi} and {ref.abi} disagree: {'; '.join(bad)}")
            echo(f"{other.abi} outputs match {ref.abi} ({len(other.outputs)} kernels, rtol 1e-4)")
    return builds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devprof.artifacts.android", description=__doc__.splitlines()[0])
    ap.add_argument("--abi", action="append", choices=ABIS, help="ABI to build (repeatable; default: all)")
    ap.add_argument("--out", type=Path, help="copy each build to OUT/<abi>/")
    ap.add_argument("--no-check", action="store_true", help="build only; do not run the builds here")
    a = ap.parse_args(argv)
    try:
        build_all(a.abi or ABIS, a.out, not a.no_check)
    except DevprofError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
