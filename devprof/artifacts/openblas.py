"""OpenBLAS dense GEMM baseline for the harness: Debian's static libopenblas, for any ABI.

Why: on a phone the generated sparse kernels should also be held against a tuned vendor-grade
dense GEMM, not only against devprof's own dense kernel. Debian ships a static
``libopenblas.a`` (serial build) for arm64 and amd64; devprof fetches the ``.deb`` with apt-get's
own client into a private apt state under the cache (no foreign architecture is added to the
system, nothing is installed), extracts it with ``dpkg-deb -x``, and links it statically into a
harness batch whose kernels call ``cblas_sgemm`` (conv as im2col + GEMM, 1x1 conv and fc as one
GEMM). The harness checks and times them like every other kernel.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..records import KernelSpec
from .toolchains import Toolchain

_DEB_ARCH = {"arm64-v8a": "arm64", "x86_64": "amd64"}
_GNU = {"arm64-v8a": "aarch64-linux-gnu", "x86_64": "x86_64-linux-gnu"}
PACKAGE = "libopenblas-serial-dev"
_ACT = {"none": "v", "relu": "(v > 0.f ? v : 0.f)", "relu6": "(v > 0.f ? (v < 6.f ? v : 6.f) : 0.f)",
        "hswish": "(v * (v + 3.f > 0.f ? (v + 3.f < 6.f ? v + 3.f : 6.f) : 0.f) * (1.f / 6.f))"}


@dataclasses.dataclass(frozen=True)
class OpenBLAS:
    abi: str
    include: Path
    lib: Path  # libopenblas.a
    version: str


def cache_root() -> Path:
    """$DEVPROF_OPENBLAS_DIR, else the devprof cache's ``openblas/`` (one folder per Debian arch)."""
    if os.environ.get("DEVPROF_OPENBLAS_DIR"):
        return Path(os.environ["DEVPROF_OPENBLAS_DIR"])
    return Path(os.environ.get("DEVPROF_CACHE", Path.home() / ".cache" / "devprof")) / "openblas"


def find(abi: str) -> OpenBLAS | None:
    """The extracted static OpenBLAS for `abi`, if fetched already."""
    root = cache_root() / _DEB_ARCH.get(abi, abi)
    lib = root / "usr" / "lib" / _GNU.get(abi, "") / "openblas-serial" / "libopenblas.a"
    inc = root / "usr" / "include" / _GNU.get(abi, "") / "openblas-serial"
    ver = root / "VERSION"
    if lib.is_file() and (inc / "cblas.h").is_file() and ver.is_file():
        return OpenBLAS(abi, inc, lib, ver.read_text().strip())
    return None


def fetch(abi: str, timeout_s: float = 600) -> OpenBLAS:
    """Download and extract Debian's static OpenBLAS for `abi` (once; cached)."""
    have = find(abi)
    if have:
        return have
    if abi not in _DEB_ARCH:
        raise UsageError(f"no OpenBLAS package for ABI {abi!r}")
    for tool in ("apt-get", "dpkg-deb"):
        if not shutil.which(tool):
            raise UsageError(f"fetching OpenBLAS needs Debian's {tool} (or set up {cache_root()} by hand)")
    arch = _DEB_ARCH[abi]
    root = cache_root() / arch
    state = cache_root() / f"apt-{arch}"
    for d in (state / "lists" / "partial", state / "cache" / "archives" / "partial"):
        d.mkdir(parents=True, exist_ok=True)
    opts = ["-o", f"APT::Architecture={arch}", "-o", f"APT::Architectures::={arch}",
            "-o", f"Dir::State::Lists={state / 'lists'}", "-o", f"Dir::Cache={state / 'cache'}",
            "-o", "Debug::NoLocking=1", "-qq"]

    def apt(*args: str, cwd: Path | None = None) -> None:
        try:
            p = subprocess.run(["apt-get", *opts, *args], capture_output=True, text=True, timeout=timeout_s, cwd=cwd)
        except subprocess.TimeoutExpired:
            raise UsageError(f"apt-get {args[0]} timed out fetching OpenBLAS for {abi}") from None
        if p.returncode != 0:
            msg = (p.stderr.strip().splitlines() or ["failed"])[-1]
            raise UsageError(f"apt-get {args[0]} failed fetching OpenBLAS for {abi}: {msg}")

    apt("update")
    debs = state / "debs"
    shutil.rmtree(debs, ignore_errors=True)
    debs.mkdir()
    apt("download", f"{PACKAGE}:{arch}", cwd=debs)
    got = sorted(debs.glob("*.deb"))
    if not got:
        raise UsageError(f"apt-get download gave no {PACKAGE} package for {arch}")
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for deb in got:
        p = subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], capture_output=True, text=True, timeout=timeout_s)
        if p.returncode != 0:
            raise UsageError(f"dpkg-deb -x {deb.name} failed: {p.stderr.strip()[:200]}")
    m = re.match(rf"{PACKAGE}_([^_]+)_", got[0].name)
    (tmp / "VERSION").write_text((m.group(1) if m else "unknown").replace("%3a", ":") + "\n")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    found = find(abi)
    if found is None:
        raise UsageError(f"{PACKAGE} for {arch} holds no static libopenblas.a")
    return found


def toolchain_with(tc: Toolchain, blas: OpenBLAS) -> Toolchain:
    """`tc` compiling against cblas.h and linking libopenblas.a statically (own cache key)."""
    return dataclasses.replace(tc, cflags=(*tc.cflags, f"-I{blas.include}", "-DDP_OPENBLAS"),
                               ldflags=(*tc.ldflags, str(blas.lib), "-lpthread"))


def unsupported(spec: KernelSpec) -> str | None:
    if spec.op not in ("conv2d", "pwconv", "fc"):
        return f"the OpenBLAS baseline is GEMM-shaped ops only (conv2d, pwconv, fc), not {spec.op}"
    if spec.sparsity.scheme != "dense":
        return "the OpenBLAS baseline is dense"
    if spec.groups != 1:
        return "grouped convolutions are not GEMMs"
    if spec.op != "fc" and spec.n != 1:
        return "conv baselines take batch 1"
    if spec.dtype != "fp32" or spec.dilation != 1 or spec.activation not in _ACT:
        return "fp32, undilated, none/relu/relu6/hswish only"
    return None


def generate(spec: KernelSpec, name: str):
    """A harness kernel (`GeneratedKernel`) computing `spec` with cblas_sgemm."""
    from ..sparse.codegen import GeneratedKernel
    from ..sparse.reference import reference_samples
    from ..sparse.weights import dense_weights, input_seed, input_tensor

    why = unsupported(spec)
    if why:
        raise ValueError(why)
    w, b = dense_weights(spec)
    sym = f"dpk_{name}"
    act = _ACT[spec.activation]
    if spec.op == "fc":  # y[n, cout] = x[n, cin] . W^T
        wm = np.ascontiguousarray(w, np.float32)
        body = [f"    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, {spec.n}, {spec.cout}, {spec.cin}, 1.f, x, "
                f"{spec.cin}, W, {spec.cin}, 0.f, y, {spec.cout});",
                f"    for (int i = 0; i < {spec.n}; i++) for (int co = 0; co < {spec.cout}; co++) {{",
                f"        float v = y[(size_t)i * {spec.cout} + co] + bias[co]; y[(size_t)i * {spec.cout} + co] = {act}; }}"]
        ws = 0
    else:
        k = spec.cin * spec.kh * spec.kw
        q = spec.out_h * spec.out_w
        wm = np.ascontiguousarray(w.transpose(0, 3, 1, 2).reshape(spec.cout, k), np.float32)  # (ci, kh, kw) order
        body = []
        src = "x"
        if (spec.kh, spec.kw, spec.stride, spec.padding) != (1, 1, 1, 0):  # im2col into ws [K, Q]
            s, p, h, wd, ow = spec.stride, spec.padding, spec.h, spec.w, spec.out_w
            body += [f"    for (int ci = 0; ci < {spec.cin}; ci++) for (int i = 0; i < {spec.kh}; i++)"
                     f" for (int j = 0; j < {spec.kw}; j++) {{",
                     f"        float *col = ws + (size_t)((ci * {spec.kh} + i) * {spec.kw} + j) * {q};",
                     f"        for (int oh = 0; oh < {spec.out_h}; oh++) {{",
                     f"            const int ih = oh * {s} - {p} + i;",
                     f"            for (int o = 0; o < {ow}; o++) {{",
                     f"                const int iw = o * {s} - {p} + j;",
                     f"                col[oh * {ow} + o] = (ih >= 0 && ih < {h} && iw >= 0 && iw < {wd}) ? "
                     f"x[((size_t)ci * {h} + ih) * {wd} + iw] : 0.f;",
                     "            }", "        }", "    }"]
            src = "ws"
        body += [f"    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, {spec.cout}, {q}, {k}, 1.f, W, {k}, "
                 f"{src}, {q}, 0.f, y, {q});",
                 f"    for (int co = 0; co < {spec.cout}; co++) for (int t = 0; t < {q}; t++) {{",
                 f"        float v = y[(size_t)co * {q} + t] + bias[co]; y[(size_t)co * {q} + t] = {act}; }}"]
        ws = k * q if src == "ws" else 0
    source = "\n".join([f"/* generated by devprof: OpenBLAS baseline for {spec.key} */",
                        '#include "dp_harness.h"', "#include <cblas.h>",
                        f"void {sym}(const float *x, float *y, float *ws, const dp_array *a) {{",
                        "    (void)ws;", "    const float *W = (const float *)a[2].data;",
                        "    const float *bias = (const float *)a[3].data;", *body, "}", ""])
    idx, ref = reference_samples(spec, input_tensor(spec), w, b)
    return GeneratedKernel(name=name, spec=spec, variant="dense", source=source,
                           arrays=[idx, ref, wm, np.asarray(b, np.float32)],
                           in_elems=spec.n * spec.cin if spec.op == "fc" else spec.input_elems,
                           out_elems=spec.output_elems, ws_floats=ws, seed=input_seed(spec),
                           stats={"library": "openblas"})
