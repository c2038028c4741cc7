"""Build a batch of generated kernels into one native harness binary, cached by content.

A `Toolchain` says how to compile for a device ABI (the host's `cc` for `local`, and
cross compilers for arm64-v8a and x86_64 phones). Every object file is keyed by the hash of its
source and the toolchain, so an unchanged kernel is never recompiled and an unchanged batch is
not relinked; the batch folder (binary + one data file per kernel) is content-addressed too,
which is what `Device.stage` needs to skip transfers.
"""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
import struct
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import KernelError
from .isa import isa_of
from .toolchains import Toolchain, host_abi, host_toolchain, toolchain_for  # noqa: F401 (re-exported)

HARNESS_DIR = Path(__file__).resolve().parents[1] / "harness_android"  # package data: ships in the wheel
HARNESS_SOURCES = ("harness.c",)
HARNESS_HEADERS = ("dp_harness.h",)
BINARY_NAME = "devprof-harness"


def vector_shape(tc: Toolchain) -> tuple[int, int]:
    """(floats per generated vector, vector registers) of `tc`'s target, from the ISA table
    (devprof/artifacts/isa.py): NEON 4/32, SSE4.2 4/16, AVX2 8/16, AVX-512 16/32."""
    isa = isa_of(tc)
    return isa.vector_floats, isa.vector_regs


EXTRA_CFLAGS = ("-fno-math-errno",)  # never -ffast-math: kernels must match numpy to rtol 1e-4


def default_cache_dir() -> Path:
    return Path(os.environ.get("DEVPROF_CACHE", Path.home() / ".cache" / "devprof")) / "harness"


# ---- data files -------------------------------------------------------------------------------
def data_file_bytes(arrays: Sequence[np.ndarray]) -> bytes:
    """The harness's data file: b"DPB1", u32 count, then per array u32 dtype (0 f32, 1 i32),
    u32 reserved, u64 element count and the little-endian elements."""
    out = [b"DPB1", struct.pack("<I", len(arrays))]
    for a in arrays:
        a = np.asarray(a)
        if a.dtype.kind == "f":
            dt, data = 0, a.astype("<f4")
        elif a.dtype.kind in "iu":
            dt, data = 1, a.astype("<i4")
        else:
            raise ValueError(f"unsupported array dtype {a.dtype}")
        out += [struct.pack("<IIQ", dt, 0, data.size), data.tobytes()]
    return b"".join(out)


@dataclass
class Batch:
    """A built batch: a folder holding the harness binary and one data file per kernel."""

    folder: Path
    kernels: list  # GeneratedKernel
    toolchain: Toolchain
    built: bool = False  # False when everything came from the cache
    files: list[Path] = field(default_factory=list)

    @property
    def binary(self) -> Path:
        return self.folder / BINARY_NAME


def _sha(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:20]


def _tmp_tag() -> str:
    """Unique per process *and thread*: farm workers (devprof/farm.py) build batches concurrently."""
    return f"{os.getpid()}-{threading.get_ident()}"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".tmp{_tmp_tag()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _compile(tc: Toolchain, src: Path, obj: Path, extra: Sequence[str] = ()) -> None:
    """`extra`: the unit's own flags after the toolchain's (an fp16 kernel's -march=armv8.2-a+fp16:
    the last -march wins, so only that kernel uses the extension and the harness runs anywhere)."""
    tmp = obj.with_name(obj.name + f".tmp{_tmp_tag()}.o")
    cmd = [*tc.cc, *tc.cflags, *EXTRA_CFLAGS, *extra, "-I", str(HARNESS_DIR), "-c", str(src), "-o", str(tmp)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        first = next((l for l in p.stderr.splitlines() if "error" in l), p.stderr.strip()[:300])
        raise KernelError(f"compiling {src.name} failed: {first}")
    os.replace(tmp, obj)


@functools.lru_cache(maxsize=64)
def preprocess(tc: Toolchain, source: str, extra: tuple[str, ...] = ()) -> str:
    """`source` through `tc`'s preprocessor with a unit's own flags `extra`: what the compiler's
    macros make of it for that target (which int8 path a kernel builds: `codegen_int8.PATH_PROBE`)."""
    cmd = [*tc.cc, *tc.cflags, *EXTRA_CFLAGS, *extra, "-E", "-P", "-x", "c", "-"]
    try:
        p = subprocess.run(cmd, input=source, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise KernelError(f"preprocessing with {tc.cc[0]} failed: {e}") from None
    if p.returncode != 0:
        raise KernelError(f"preprocessing with {tc.cc[0]} failed: {p.stderr.strip()[:300]}")
    return p.stdout


def _registry_source(kernels: Sequence) -> str:
    lines = ['#include "dp_harness.h"']
    args = "const float *x, float *y, float *ws, const dp_array *a"
    for k in kernels:
        lines.append(f"void {k.symbol}({args});")
        if getattr(k, "chunking", None) is not None:
            lines += [f"void {k.symbol}_prep({args}, int64_t p0, int64_t p1);",
                      f"void {k.symbol}_range({args}, int64_t c0, int64_t c1, float *tws);",
                      f"extern const int32_t {k.symbol}_cost[];"]
    lines += [f"extern double {k.layer_symbol}[];" for k in kernels if getattr(k, "nlayers", 0)]
    lines.append("const dp_kernel dp_kernels[] = {")
    for k in kernels:
        fields = [f'.name = "{k.name}"', f'.spec_id = "{k.spec.id}"', f'.variant = "{k.variant}"',
                  f".in_elems = {k.in_elems}LL", f".out_elems = {k.out_elems}LL", f".ws_floats = {k.ws_floats}LL",
                  f".seed = {k.seed}U", f".narrays = {len(k.arrays)}", f".run = {k.symbol}"]
        if getattr(k, "nlayers", 0):
            fields += [f".nlayers = {k.nlayers}", f".layer_us = {k.layer_symbol}"]
        if getattr(k, "out_u8", False):
            fields.append(".out_u8 = 1")
        if getattr(k, "half", False):
            fields.append(".half = 1")
        tol = getattr(k, "tolerance", None)
        if tol:
            fields += [f".rtol = {tol[0]!r}", f".atol = {tol[1]!r}"]
        ch = getattr(k, "chunking", None)
        if ch is not None:
            fields += [f".prep = {k.symbol}_prep", f".range = {k.symbol}_range", f".nchunks = {ch.nchunks}LL",
                       f".period = {len(ch.cost)}", f".cost = {k.symbol}_cost", f".tws_floats = {ch.tws_floats}LL",
                       f".nprep = {ch.nprep}LL"]
            if getattr(ch, "private_prep", False):
                fields.append(".private_prep = 1")
            if getattr(ch, "parts", 0):
                fields.append(f".parts = {ch.parts}")
        lines.append("    {" + ", ".join(fields) + "},")
    lines += ["};", f"const int dp_nkernels = {len(kernels)};", ""]
    return "\n".join(lines)


def build_batch(kernels: Sequence, toolchain: Toolchain, cache_dir: Path | None = None, jobs: int = 2) -> Batch:
    """Compile `kernels` (GeneratedKernel) with the harness into a cached, content-addressed folder."""
    if not kernels:
        raise ValueError("empty batch")
    names = [k.name for k in kernels]
    if len(set(names)) != len(names):
        raise ValueError("duplicate kernel names in a batch")
    root = Path(cache_dir or default_cache_dir())
    objdir, srcdir = root / "obj", root / "src"
    objdir.mkdir(parents=True, exist_ok=True)
    srcdir.mkdir(parents=True, exist_ok=True)
    headers = b"".join((HARNESS_DIR / h).read_bytes() for h in HARNESS_HEADERS)
    units: list[tuple[str, str, tuple[str, ...]]] = []  # (stem, source, the unit's own flags)
    for s in HARNESS_SOURCES:
        units.append((Path(s).stem, (HARNESS_DIR / s).read_text(), ()))
    units += [(k.name, k.source, tuple(getattr(k, "cflags", ()))) for k in kernels]
    units += [(*u, ()) for k in kernels for u in getattr(k, "units", ())]  # a program's layer kernels
    units.append(("registry", _registry_source(kernels), ()))
    todo, objs = [], []
    for stem, source, extra in units:
        key = _sha(toolchain.key, *EXTRA_CFLAGS, *extra, headers, source)
        obj = objdir / f"{stem}-{key}.o"
        objs.append(obj)
        if not obj.exists():
            src = srcdir / f"{stem}-{key}.c"
            _atomic_write(src, source.encode())
            todo.append((src, obj, extra))
    if todo:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
            list(ex.map(lambda so: _compile(toolchain, *so), todo))
    blobs = [data_file_bytes(k.arrays) for k in kernels]
    bkey = _sha(toolchain.key, *[o.name for o in objs], *[hashlib.sha256(b).hexdigest() for b in blobs])
    folder = root / "batch" / bkey
    batch = Batch(folder, list(kernels), toolchain, built=bool(todo))
    batch.files = [folder / BINARY_NAME] + [folder / f"{k.name}.bin" for k in kernels]
    if (folder / ".complete").exists():
        return batch
    tmp = folder.with_name(folder.name + f".tmp{_tmp_tag()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = [*toolchain.cc, *toolchain.cflags, *map(str, objs), "-o", str(tmp / BINARY_NAME), *toolchain.ldflags,
           "-pthread", "-lm"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise KernelError(f"linking the harness failed: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
    for k, blob in zip(kernels, blobs):
        (tmp / f"{k.name}.bin").write_bytes(blob)
    (tmp / ".complete").touch()
    try:
        tmp.rename(folder)
    except OSError:  # built concurrently by another run
        shutil.rmtree(tmp, ignore_errors=True)
    batch.built = True
    return batch
