"""Soak: profile on `local` for a long time while injecting faults; nothing acknowledged may be lost.

    .venv/bin/python bench/soak.py                   # 30 minutes, a fault every ~2 minutes
    .venv/bin/python bench/soak.py --minutes 3       # a short run (a fault every ~20 s)

The real `devprof profile --resume` runs on one dataset (by default a generated suite of 2,000
similar small kernels, --quick; a completed dataset is followed by a fresh one) and every `--fault-every` seconds one
fault is injected, in turn:

  SIGINT      Ctrl-C; the run is restarted with --resume
  SIGTERM     a scheduler stopping the job; restarted with --resume
  SIGKILL     a crash (OOM killer, power); restarted with --resume
  writer      a second `devprof profile` on the same dataset: must be refused (exit 4, one line)
              while the first keeps going
  disk-full   the running process's file size limit is dropped to 4 KiB (prlimit; SIGXFSZ is
              ignored, so writes fail with EFBIG, which devprof reports as 'disk full'): the run
              must stop with exit 4 and one line; restarted with --resume without the limit

A watcher reads every Parquet part as soon as it is renamed into parts/ (= acknowledged); at the
end every dataset is read back: records lost = acknowledged keys missing (must be 0). The
resident memory of each devprof process is sampled every second: peak RSS per fault segment and
first-third vs last-third peaks show whether memory grows.
"""
from __future__ import annotations

import argparse
import os
import resource
import signal
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support import faultkit as fk  # noqa: E402

KINDS = ("SIGINT", "writer", "SIGTERM", "disk-full", "SIGKILL")

#: The default soak suite: 2,000 kernels of similar size (so that peak memory per run compares
#: like with like; a suite whose later kernels are bigger would look like a leak).
SOAK_SUITE = """
[suite]
name = "soak"
description = "2000 similar small kernels for bench/soak.py"
runtimes = ["onnxruntime", "litert"]
""" + "".join(f"""
[[family]]
op = "{op}"
sampling = "random"
count = 500
seed = {i}
shape = {{ hw = {{ min = 8, max = 28 }}, {ch}, k = [1, 3, 5] }}
""" for i, (op, ch) in enumerate([("conv2d", "cin = { min = 4, max = 48 }, cout = { min = 4, max = 48 }"),
                                  ("dwconv2d", "cin = { min = 8, max = 96 }"),
                                  ("pwconv", "cin = { min = 8, max = 96 }, cout = { min = 8, max = 96 }"),
                                  ("fc", "cin = { min = 16, max = 512 }, cout = { min = 16, max = 512 }")]))


def _ignore_xfsz() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # inherited through exec: EFBIG instead of a kill


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--fault-every", type=float, default=None, metavar="SECONDS",
                    help="seconds between faults (default: minutes*60/15, at least 15)")
    ap.add_argument("--suite", default="", help="suite name or file (default: 2,000 similar small kernels)")
    ap.add_argument("--runtime", "-r", action="append", default=None)
    ap.add_argument("--work", default=None, help="folder for the datasets (default: a temporary one)")
    ap.add_argument("--kill-points", type=int, default=0, metavar="N",
                    help="instead of the soak: N signals (SIGINT, SIGTERM, SIGKILL, double SIGINT) at random "
                         "points of `devprof profile` on a small suite, chained with --resume")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.kill_points:
        return kill_points(args.kill_points, args.seed, Path(args.work or f"/tmp/devprof-kills-{os.getpid()}"))
    every = args.fault_every or max(15.0, args.minutes * 60 / 15)
    work = Path(args.work or f"/tmp/devprof-soak-{os.getpid()}")
    work.mkdir(parents=True, exist_ok=True)
    rt = sum((["-r", r] for r in (args.runtime or [])), [])
    if not args.suite:
        (work / "soak.toml").write_text(SOAK_SUITE)
        args.suite = str(work / "soak.toml")
    base = ["profile", "--suite", args.suite, "--quick", "--json", *rt]

    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    injected: Counter = Counter()
    survived: Counter = Counter()
    ignored: Counter = Counter()  # signals that did not stop the run within 30 s (sent again)
    problems: list[str] = []
    rss_samples: list[tuple[float, int]] = []
    seg_peaks: list[tuple[float, str, int]] = []
    datasets: list[Path] = []
    acked: dict[Path, set[str]] = defaultdict(set)
    k = 0
    kind_i = 0

    def new_dataset() -> Path:
        nonlocal k
        d = work / f"d{k}"
        k += 1
        datasets.append(d)
        return d

    out = new_dataset()
    print(f"soak: {args.minutes:g} min, a fault every {every:.0f} s, suite {args.suite}, datasets under {work}",
          flush=True)
    while time.monotonic() < end:
        with fk.PartWatcher(out, interval=0.2) as w:
            proc = fk.start([*base, "--out", str(out), "--resume"], preexec=_ignore_xfsz)
            seg_start = time.monotonic()
            fault_at = min(end, seg_start + every)
            peak = 0
            kind = None
            rc_expect: tuple[int, ...] = ()
            sent_at = 0.0
            while proc.poll() is None:
                if kind in ("SIGINT", "SIGTERM", "stop") and time.monotonic() - sent_at > 30:
                    # still running 30 s after the signal: it was swallowed (or landed in a window
                    # that ignores it); note it and repeat, as a user would press Ctrl-C again
                    ignored[kind] += 1
                    proc.send_signal(fk.SIGNALS.get(kind, signal.SIGINT))
                    sent_at = time.monotonic()
                rss = _rss_kib(proc.pid)
                peak = max(peak, rss)
                rss_samples.append((time.monotonic() - t0, rss))
                if kind is None and time.monotonic() >= fault_at:
                    kind = KINDS[kind_i % len(KINDS)] if time.monotonic() < end else "stop"
                    kind_i += kind != "stop"
                    if kind in ("SIGINT", "SIGTERM", "SIGKILL", "stop"):
                        proc.send_signal(fk.SIGNALS.get(kind, signal.SIGINT))
                        sent_at = time.monotonic()
                        rc_expect = (130, -2, -15, -9)
                    elif kind == "disk-full":
                        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (4096, 4096))
                        rc_expect = (4,)
                    elif kind == "writer":
                        second = fk.run([*base, "--out", str(out), "--resume"], timeout=120)
                        lines = fk.error_lines(second.stderr)
                        ok = (second.returncode == 4 and len(lines) == 1
                              and "being written by another devprof run" in lines[0])
                        if proc.poll() is not None and second.returncode == 0:
                            ok = True  # the first had just finished: the second legitimately resumed
                        injected["writer"] += 1
                        survived["writer"] += ok
                        if not ok:
                            problems.append(f"writer: rc={second.returncode} {lines[-1:]}")
                        kind, fault_at = None, time.monotonic() + every  # the first run goes on
                        continue
                time.sleep(1.0)
            _, stderr = proc.communicate()
        acked[out] |= w.acked
        seg_peaks.append((time.monotonic() - t0, kind or "completed", peak))
        c = fk.check_dataset(out, acked[out])
        ok = not c.problems and "Traceback" not in stderr
        if kind in (None, "completed"):
            ok = ok and proc.returncode == 0
        elif proc.returncode == 0:
            pass  # finished before the fault landed
        else:
            ok = ok and proc.returncode in rc_expect
            if kind == "disk-full":
                lines = fk.error_lines(stderr)
                ok = ok and len(lines) == 1 and "disk full" in lines[0]
        if kind and kind != "stop":
            injected[kind] += 1
            survived[kind] += ok
        if not ok:
            problems.append(f"{kind}: rc={proc.returncode} {c.problems} {fk.error_lines(stderr)[-1:]}")
        elapsed = time.monotonic() - t0
        print(f"[{elapsed / 60:5.1f} min] {kind or 'completed':9s} rc={proc.returncode:4d} dataset {out.name}: "
              f"{c.records} records, lost {len(c.lost)}, peak RSS {peak / 1024:.0f} MiB{'' if ok else '  PROBLEM'}",
              flush=True)
        if proc.returncode == 0 and kind is None:
            out = new_dataset()  # this one is complete: start another

    records = lost = 0
    for d in datasets:
        c = fk.check_dataset(d, acked[d])
        records += c.records
        lost += len(c.lost)
        problems += [f"{d.name}: {p}" for p in c.problems]
    minutes = (time.monotonic() - t0) / 60
    third = [p for t, kind, p in seg_peaks if kind != "stop"]  # the final stop is a short start-up
    n = max(1, len(third) // 3)
    first, last = max(third[:n], default=0), max(third[-n:], default=0)
    print()
    print(f"soak duration      {minutes:.1f} min ({len(seg_peaks)} devprof runs, {len(datasets)} datasets)")
    print(f"records written    {records}")
    print(f"records lost       {lost}")
    print("faults             " + ", ".join(f"{k}: {survived[k]}/{injected[k]} survived" for k in KINDS if injected[k]))
    if ignored:
        print("signals ignored    " + ", ".join(f"{k}: {v}" for k, v in ignored.items())
              + " (the run went on; the signal was sent again 30 s later)")
    print(f"peak RSS           {max((p for _, _, p in seg_peaks), default=0) / 1024:.0f} MiB overall; "
          f"first third {first / 1024:.0f} MiB, last third {last / 1024:.0f} MiB "
          f"({'flat' if last <= first * 1.1 + 10240 else 'GROWING'})")
    for p in problems:
        print("PROBLEM", p)
    return 1 if lost or problems else 0


def kill_points(n: int, seed: int, work: Path) -> int:
    work.mkdir(parents=True, exist_ok=True)
    kinds = ("SIGINT", "SIGTERM", "SIGKILL", "SIGINTx2")
    results, finals = fk.random_kill_loop(work, n, seed, kinds=kinds, log=lambda m: print(m, flush=True))
    print()
    print(f"kill points        {len(results)} ({len(finals)} datasets finished with --resume)")
    for k in kinds:
        rs = [r for r in results if r.kind == k]
        landed = [r for r in rs if r.rc != 0]
        print(f"  {k:9s} {len(rs):3d} sent, {len(landed):3d} landed before the run ended, "
              f"{sum(r.survived for r in rs):3d} survived, lost {sum(r.lost for r in rs)}"
              + (f", {sum(r.traceback for r in rs)} printed a traceback" if any(r.traceback for r in rs) else ""))
    lost = sum(r.lost for r in results) + sum(len(c.lost) for c in finals)
    dup = sum(1 for c in finals if any("duplicate" in p for p in c.problems))
    print(f"records lost       {lost}")
    print(f"final datasets     {sum(c.records == fk.TINY_RECORDS and not c.problems for c in finals)}/{len(finals)} "
          f"complete with {fk.TINY_RECORDS} records, {dup} with duplicates")
    bad = [r for r in results if not r.survived] + [c for c in finals if c.problems]
    for b in bad:
        print("PROBLEM", b)
    return 1 if bad or lost else 0


if __name__ == "__main__":
    sys.exit(main())
