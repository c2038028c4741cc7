"""Farm scaling: wall time of one suite on 1, 2 and 3 identical emulated phones, and the speedup.

    .venv/bin/python bench/farm_scaling.py [--batches 12] [--cooldown 1.0] [--runtime farm-probe|devprof-c]

On real phones a suite's wall time is dominated by the cooldown pause between batches (a phone
must cool down to keep its clocks honest), not by the kernels; a farm of identical phones divides
those pauses among them. This machine has 2 cores, so the kernels themselves cannot scale here:
the benchmark therefore uses short kernels and per-batch cooldowns, as on a real rack.

Everything is real but the phones: one real adb server, emulated Galaxy S20s (tests/support,
loopback adbd processes) with the same build fingerprint and different serials, the real farm
(work queue, one worker per phone, one writer) writing a real dataset per run. The default
runtime `farm-probe` runs one shell program per batch on the phone whose kernels sleep
--kernel-ms; `--runtime devprof-c` runs the generated-C harness instead (builds once, cached).
Prints a table (phones, wall s, speedup, batches per phone, records) measured in one run.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

SUITE = """
[suite]
name = "farm-bench"
description = "small FC kernels for the farm scaling benchmark"
runtimes = ["{runtime}"]

[[family]]
op = "fc"
shape = {{ n = [1], cin = [{cins}], cout = [16, 32, 64, 128] }}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=12, help="batches in the suite (default 12)")
    ap.add_argument("--batch-size", type=int, default=2, help="kernels per batch (default 2)")
    ap.add_argument("--cooldown", type=float, default=1.0, help="seconds of cooldown between batches (default 1)")
    ap.add_argument("--kernel-ms", type=float, default=20.0, help="farm-probe: time of one kernel on the phone")
    ap.add_argument("--runtime", default="farm-probe", help="farm-probe (default) or devprof-c")
    ap.add_argument("--phones", type=int, default=3, help="largest farm (default 3)")
    a = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="devprof-farm-bench-") as tmp:
        tmpd = Path(tmp)
        os.environ.setdefault("DEVPROF_CACHE", str(tmpd / "cache"))
        os.environ["DEVPROF_CONFIG"] = str(tmpd / "no-config.toml")
        os.environ["DEVPROF_PROBE_KERNEL_S"] = str(a.kernel_ms / 1000)
        os.environ["DEVPROF_PROBE_BATCH"] = str(a.batch_size)
        os.environ.pop("ANDROID_SERIAL", None)

        from support.fixtures import AdbServer, EmulatedPhone, free_port

        from devprof import farm
        from devprof.measure import Protocol
        from devprof.runtimes import RUNTIMES
        from devprof.store import Dataset
        from devprof.suites import load_suite

        RUNTIMES.setdefault("farm-probe", "support.farm_probe:ProbeRuntime")
        suite_path = tmpd / "farm-bench.toml"
        count = a.batches * a.batch_size
        cins = ", ".join(str(8 * (i + 2)) for i in range(-(-count // 4)))
        suite_path.write_text(SUITE.format(runtime=a.runtime, cins=cins))
        suite = load_suite(str(suite_path))
        specs = list(suite.specs)[:count]
        server = AdbServer(free_port()).start()
        phones: list[EmulatedPhone] = []
        try:
            for i in range(a.phones):
                phones.append(EmulatedPhone(server, tmpd / f"phone{i}", ["--serialno", f"R3CN30BENCH{i}"]).start())
            members = farm.resolve_farm(["S20"], [server.address], all_matching=True)
            members.sort(key=lambda m: m.info.serial)
            assert len(farm.fleets_of(members)) == 1, "the emulated phones should be identical"
            # warm-up (not timed, no cooldown): the whole suite once, so every build is cached and
            # no timed run pays for compiling (devprof-c); pushes stay per run (each run is a new session)
            farm.run_farm(members, specs, tmpd / "warm", batch_size=a.batch_size,
                          protocol=Protocol.quick(), suite_runtimes=suite.runtimes)
            print(f"suite: {len(specs)} kernels in {a.batches} batches of {a.batch_size}, runtime {a.runtime}, "
                  f"cooldown {a.cooldown:g} s between batches per phone; {os.cpu_count()} host CPUs")
            rows = []
            for n in range(1, a.phones + 1):
                t0 = time.monotonic()
                s = farm.run_farm(members[:n], specs, tmpd / f"ds{n}", batch_size=a.batch_size,
                                  protocol=Protocol.quick(), cooldown_s=a.cooldown, suite_runtimes=suite.runtimes)
                wall = time.monotonic() - t0
                recs = len(Dataset(tmpd / f"ds{n}").read())
                rows.append((n, wall, "/".join(str(m.batches) for m in s.members), recs, s.failed))
        finally:
            for p in phones:
                p.stop()
            server.stop()

    base = rows[0][1]
    print(f"{'phones':>6}  {'wall s':>7}  {'speedup':>7}  {'batches per phone':>17}  {'records':>7}  {'refused':>7}")
    for n, wall, per, recs, failed in rows:
        print(f"{n:>6}  {wall:7.2f}  {base / wall:6.2f}x  {per:>17}  {recs:>7}  {failed:>7}")
    per = -(-a.batches // a.phones)  # batches of the busiest phone
    bound = (a.batches - 1) / (per - 1) if per > 1 else float("inf")
    print(f"speedup at {a.phones} phones: {base / rows[-1][1]:.2f}x (aim >= 2.5x; if only the cooldowns counted: "
          f"{a.batches - 1} vs {per - 1} pauses = {bound:.2f}x)")


if __name__ == "__main__":
    main()
