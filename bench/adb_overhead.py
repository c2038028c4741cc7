"""What does the phone path cost on top of the kernels? adb round trips and harness+transfer overhead.

    .venv/bin/python bench/adb_overhead.py [--kernels 100] [--quick]

Starts a real adb server and the emulated phone (tests/support/loopback_adbd.py, a Galaxy S20
with ABI x86_64, so the x86_64 static harness runs on this machine), profiles a suite of
`--kernels` generated kernels with `devprof-c` through the real code path (`devprof.profile`),
and prints, for the runtime's default batching and for one batch per suite:

* adb round trips per kernel (shell calls + sync sessions; target <= 0.05),
* harness + transfer overhead as a share of pure kernel time, where pure kernel time is what the
  harness spent inside kernel calls (the timed calls: sum of samples x number; warm-ups: count x median) and the
  overhead is the wall time of `stage` + `execute` beyond it (push, adb, process start, data file
  loading, output checks, calibration). Host-side code generation and compilation are reported
  apart (they are cached across runs and do not touch the phone).

A benchmark, not a test: figures depend on this machine's load.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.fixtures import AdbServer, EmulatedPhone, free_port  # noqa: E402

from devprof.devices.adb import AdbDevice  # noqa: E402
from devprof.measure import Protocol  # noqa: E402
from devprof.profile import profile  # noqa: E402
from devprof.records import KernelSpec, Sparsity  # noqa: E402
from devprof.store import Dataset  # noqa: E402


class TimedAdbDevice(AdbDevice):
    """The adb device, with the wall time of its stage/execute calls added up."""

    stage_s = 0.0
    exec_s = 0.0

    def stage(self, files):  # type: ignore[override]
        t = time.perf_counter()
        try:
            return super().stage(files)
        finally:
            self.stage_s += time.perf_counter() - t

    def execute(self, *a, **kw):  # type: ignore[override]
        t = time.perf_counter()
        try:
            return super().execute(*a, **kw)
        finally:
            self.exec_s += time.perf_counter() - t


def suite(n: int) -> list[KernelSpec]:
    """`n` kernels across op kinds, shapes and sparsity schemes (MobileNet-like sizes, small enough
    that the run stays short on a loaded 2-core machine)."""
    specs: list[KernelSpec] = []
    schemes = [Sparsity(), Sparsity("bcr", 0.75, {"block": (4, 16)}), Sparsity("nm", 0.5, {"n": 2, "m": 4}),
               Sparsity("unstructured", 0.9)]
    i = 0
    while len(specs) < n:
        hw = (14, 28)[i % 2]
        c = (16, 32, 48)[i % 3]
        sp = schemes[i % len(schemes)]
        kind = i % 4
        if kind == 0:
            specs.append(KernelSpec("conv2d", h=hw, w=hw, cin=c, cout=c + 16, kh=3, kw=3, stride=1 + (i // 4) % 2,
                                    padding=1, sparsity=sp))
        elif kind == 1:
            specs.append(KernelSpec("pwconv", h=hw, w=hw, cin=c, cout=2 * c, sparsity=sp))
        elif kind == 2:
            specs.append(KernelSpec("dwconv2d", h=hw, w=hw, cin=c, cout=c, groups=c, kh=3, kw=3, padding=1,
                                    stride=1 + (i // 4) % 2))
        else:
            specs.append(KernelSpec("fc", n=1 + i % 3, cin=64 * (1 + i % 4), cout=128, sparsity=sp))
        i += 1
    uniq = list({s.id: s for s in specs}.values())
    j = 0
    while len(uniq) < n:  # pad with distinct fc shapes if some generated specs coincided
        uniq.append(KernelSpec("fc", n=1, cin=40 + j, cout=64))
        j += 1
    return uniq[:n]


def run(dev: TimedAdbDevice, specs: list[KernelSpec], out: str, protocol: Protocol, batch: int | None) -> dict:
    from devprof.runtimes.harness import DevprofC

    default = DevprofC.phone_batch_size
    if batch:
        DevprofC.phone_batch_size = batch
    dev.round_trips, dev.stage_s, dev.exec_s = 0, 0.0, 0.0
    dev._staged.clear()
    try:
        t = time.perf_counter()
        s = profile(dev, specs, ["devprof-c"], out, protocol=protocol, suite="adb-overhead")
        wall = time.perf_counter() - t
    finally:
        DevprofC.phone_batch_size = default
    df = Dataset(out).read()
    timed_us = df["samples_us"].map(lambda xs: float(sum(xs))) * df["number"]  # every timed call
    pure_s = float((timed_us + df["warmups"] * df["median_us"]).sum()) / 1e6
    phone_s = dev.stage_s + dev.exec_s
    return {"batch": batch or default, "measured": s.measured, "failed": s.failed, "round_trips": dev.round_trips,
            "rt_per_kernel": dev.round_trips / max(1, s.measured), "pure_s": pure_s, "phone_s": phone_s,
            "stage_s": dev.stage_s, "overhead": (phone_s - pure_s) / pure_s if pure_s > 0 else float("nan"),
            "host_s": wall - phone_s, "wall": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="Protocol.quick() (shorter kernels: overhead share grows)")
    a = ap.parse_args()
    protocol = Protocol.quick() if a.quick else Protocol()
    specs = suite(a.kernels)
    with tempfile.TemporaryDirectory(prefix="devprof-adb-bench-") as tmp:
        server = AdbServer(free_port()).start()
        phone = EmulatedPhone(server, Path(tmp) / "phone").start()
        try:
            import os

            os.environ["ANDROID_ADB_SERVER_PORT"] = str(server.port)
            dev = TimedAdbDevice(phone.serial)
            dev.info()  # the fingerprint (one shell call), as `--device S20` resolution does
            print(f"emulated {dev.name} ({dev.model_code}, {dev.abi}) via adb server :{server.port}; "
                  f"{len(specs)} kernels, {'quick' if a.quick else 'default'} protocol")
            rows = [run(dev, specs, f"{tmp}/ds-default", protocol, None),
                    run(dev, specs, f"{tmp}/ds-one-batch", protocol, len(specs))]
        finally:
            phone.stop()
            server.stop()
    print(f"\n{'batching':<22}{'kernels':>8}{'adb trips':>10}{'trips/kernel':>13}{'kernel s':>10}"
          f"{'phone s':>9}{'overhead':>10}{'host build s':>13}")
    for r in rows:
        label = f"{r['batch']} kernels/batch"
        print(f"{label:<22}{r['measured']:>8}{r['round_trips']:>10}{r['rt_per_kernel']:>13.3f}{r['pure_s']:>10.2f}"
              f"{r['phone_s']:>9.2f}{r['overhead']:>10.1%}{r['host_s']:>13.2f}")
    best = rows[-1]
    print(f"\nadb round trips per kernel: {best['rt_per_kernel']:.3f} (target <= 0.05) with one batch per suite; "
          f"{rows[0]['rt_per_kernel']:.3f} with the default batch of {rows[0]['batch']}")
    print(f"harness + transfer overhead: {best['overhead']:.1%} of pure kernel time "
          f"(push {best['stage_s']:.2f} s of it)")


if __name__ == "__main__":
    main()
