"""The measurement protocol: one definition for every runtime (pyperf's discipline).

1. warm up: call until `warmup_s` has passed and at least `min_warmups` calls ran;
2. calibrate: group `number` back-to-back calls per sample so one sample lasts >= `sample_s`
   (short kernels are then timed well above the clock's resolution and call overhead);
3. rounds: take `rounds` rounds of samples, each lasting `round_s` (and >= `round_samples`
   samples); a round's value is its fastest sample. When several kernels are measured together
   (`measure_interleaved`, the harness's groups) their rounds alternate, so each kernel's rounds
   are spread over the whole block instead of falling into one stretch of time;
4. summarise: the record's samples are the round values; median over rounds with IQR/MAD and a
   too-noisy flag (`Measurement`).

Why rounds of fastest samples: on a shared host (a cloud VM, a phone with background work) the
machine's speed moves in phases of ~0.1-10 s while a kernel is timed, so a plain median follows
whichever phase it fell into (two runs of the same kernels agreed within 5% for only 40-50% of
them on our CI machine). The fastest sample of a 30 ms round is the kernel's own steady-state time
and repeats within ~1%; taking the median of ten such rounds spread over the block makes one slow
phase irrelevant (89-100% of smoke kernels within 5% run to run, `bench/stability.py`).

Tools we do not control (benchmark_model, onnxruntime_perf_test) only take a number of runs and
a time: they get `min_repeats`, `min_time_s` and `max_time_s`, and their raw per-run samples.
The native harness implements the very same steps from the same numbers (`Protocol.harness_args`),
so Python runtimes and generated C kernels are timed alike.
"""
from __future__ import annotations

import dataclasses
import gc
import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from .records import Measurement

BLOCK = 16
"""Kernels whose rounds alternate: the harness's --group, and in-process runtimes' batch size."""


@dataclass(frozen=True)
class Protocol:
    warmup_s: float = 0.05
    min_warmups: int = 3
    sample_s: float = 0.005
    rounds: int = 10
    round_s: float = 0.03
    round_samples: int = 3
    max_time_s: float = 4.0
    """Timing budget per kernel: long kernels get fewer rounds (never fewer than 3) and fewer samples
    per round (never fewer than 1), so a 1-second model is not timed for a minute."""
    block: int = BLOCK
    """Kernels whose rounds alternate (the harness's --group; in-process runtimes take BLOCK per
    batch). Results of a block arrive together, so an interrupt loses at most one block."""
    min_repeats: int = 15
    max_repeats: int = 200
    min_time_s: float = 0.15
    cpus: str = ""
    """CPUs to pin the measuring thread(s) to ("" = not pinned), as the device resolved `--cores`.
    Runtimes pass it to `Device.execute` (the harness) or pin this process (in-process runtimes)."""

    @classmethod
    def quick(cls) -> "Protocol":
        """For tests and smoke checks: fewer, shorter rounds (still warm-up + median)."""
        return cls(warmup_s=0.005, min_warmups=1, sample_s=0.001, rounds=5, round_s=0.002, round_samples=2,
                   max_time_s=0.3, block=4, min_repeats=5, max_repeats=20, min_time_s=0.01)

    def with_cpus(self, cpus: str) -> "Protocol":
        return dataclasses.replace(self, cpus=cpus)

    def harness_args(self) -> list[str]:
        """The same protocol as command-line arguments of the native harness."""
        return [f"--warmup-us={int(self.warmup_s * 1e6)}", f"--min-warmups={self.min_warmups}",
                f"--sample-us={int(self.sample_s * 1e6)}", f"--rounds={self.rounds}",
                f"--round-us={int(self.round_s * 1e6)}", f"--round-samples={self.round_samples}",
                f"--max-time-us={int(self.max_time_s * 1e6)}", f"--group={max(1, self.block)}"]

    def plan(self, per_call_s: float) -> tuple[int, int, int]:
        """(calls per sample, samples per round at least, rounds) for a kernel of `per_call_s`."""
        number = max(1, math.ceil(self.sample_s / per_call_s)) if per_call_s > 0 else 1
        sample = number * per_call_s
        per_round = self.round_samples
        rounds = self.rounds
        if sample * per_round * rounds > self.max_time_s:
            per_round = max(1, min(per_round, int(self.max_time_s / max(sample * 3, 1e-12))))
            rounds = max(3, min(rounds, int(self.max_time_s / max(sample * per_round, 1e-12))))
        return number, per_round, rounds


def measure_callable(fn: Callable[[], object], protocol: Protocol = Protocol()) -> Measurement:
    """Time `fn` (one kernel call) following `protocol` (its rounds back to back)."""
    out = measure_interleaved([fn], protocol)[0]
    if isinstance(out, BaseException):
        raise out
    return out


def measure_interleaved(fns: Sequence[Callable[[], object]],
                        protocol: Protocol = Protocol()) -> list[Measurement | Exception]:
    """Time several kernels with alternating rounds: round 1 of each, then round 2 of each...

    A kernel whose call raises gets the exception in its place and drops out of later rounds.
    Python's garbage collector is paused while timing (as `timeit` does): a collection of the
    objects earlier kernels left behind would otherwise land inside some samples.
    """
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        return _measure(list(fns), protocol)
    finally:
        if gc_was_enabled:
            gc.enable()


def _measure(fns: list[Callable[[], object]], protocol: Protocol) -> list[Measurement | Exception]:
    clock = time.perf_counter
    n = len(fns)
    result: list[Measurement | Exception | None] = [None] * n
    plans: list[tuple[int, int, int]] = [(1, 1, 1)] * n
    warm = [0] * n
    # 1.-2. warm up and calibrate each kernel
    for i, fn in enumerate(fns):
        try:
            warmups = 0
            t0 = clock()
            while True:
                fn()
                warmups += 1
                elapsed = clock() - t0
                if warmups >= protocol.min_warmups and elapsed >= protocol.warmup_s:
                    break
                if elapsed > max(protocol.warmup_s, 0) * 20 and warmups >= protocol.min_warmups:
                    break
            warm[i] = warmups
            plans[i] = protocol.plan(elapsed / warmups)
        except Exception as e:  # noqa: BLE001 - this kernel failed, not the block
            result[i] = e
    # 3. rounds, alternating between kernels
    rounds: list[list[float]] = [[] for _ in range(n)]
    for r in range(max((p[2] for p in plans), default=0)):
        for i, fn in enumerate(fns):
            number, per_round, nrounds = plans[i]
            if result[i] is not None or r >= nrounds:
                continue
            try:
                fn()  # one untimed call: the kernels timed in between evicted this one's data
                best = math.inf
                spent = 0.0
                taken = 0
                while True:
                    t = clock()
                    for _ in range(number):
                        fn()
                    dt = clock() - t
                    best = min(best, dt / number)
                    spent += dt
                    taken += 1
                    if taken >= per_round and spent >= protocol.round_s:
                        break
                    if taken >= per_round and spent * nrounds >= protocol.max_time_s:
                        break
                rounds[i].append(best * 1e6)
            except Exception as e:  # noqa: BLE001
                result[i] = e
    # 4. summarise
    return [res if res is not None else Measurement(tuple(rounds[i]), warmups=warm[i], number=plans[i][0])
            for i, res in enumerate(result)]
