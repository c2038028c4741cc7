"""The measurement protocol: one definition for every runtime (pyperf's discipline).

1. warm up: call until `warmup_s` has passed and at least `min_warmups` calls ran;
2. calibrate: group `number` back-to-back calls per sample so one sample lasts >= `sample_s`
   (short kernels are then timed well above the clock's resolution and call overhead);
3. repeat: take samples until `min_time_s` of samples and `min_repeats` samples, capped by
   `max_repeats` and `max_time_s`;
4. summarise: median with IQR/MAD and a too-noisy flag (`Measurement`).

The native harness implements the very same steps from the same numbers (`Protocol.harness_args`),
so Python runtimes and generated C kernels are timed alike.
"""
from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass
from typing import Callable

from .records import Measurement


@dataclass(frozen=True)
class Protocol:
    warmup_s: float = 0.05
    min_warmups: int = 3
    sample_s: float = 0.005
    min_repeats: int = 15
    max_repeats: int = 200
    min_time_s: float = 0.15
    max_time_s: float = 2.0
    cpus: str = ""
    """CPUs to pin the measuring thread(s) to ("" = not pinned), as the device resolved `--cores`.
    Runtimes pass it to `Device.execute` (the harness) or pin this process (in-process runtimes)."""

    @classmethod
    def quick(cls) -> "Protocol":
        """For tests and smoke checks: fewer, shorter samples (still warm-up + median)."""
        return cls(warmup_s=0.005, min_warmups=1, sample_s=0.001, min_repeats=5, max_repeats=20,
                   min_time_s=0.01, max_time_s=0.3)

    def with_cpus(self, cpus: str) -> "Protocol":
        import dataclasses

        return dataclasses.replace(self, cpus=cpus)

    def harness_args(self) -> list[str]:
        """The same protocol as command-line arguments of the native harness."""
        return [f"--warmup-us={int(self.warmup_s * 1e6)}", f"--min-warmups={self.min_warmups}",
                f"--sample-us={int(self.sample_s * 1e6)}", f"--min-repeats={self.min_repeats}",
                f"--max-repeats={self.max_repeats}", f"--min-time-us={int(self.min_time_s * 1e6)}",
                f"--max-time-us={int(self.max_time_s * 1e6)}"]


def measure_callable(fn: Callable[[], object], protocol: Protocol = Protocol()) -> Measurement:
    """Time `fn` (one kernel call) following `protocol`.

    Python's garbage collector is paused while timing (as `timeit` does): a collection of the
    objects earlier kernels left behind would otherwise land inside some samples of this one.
    """
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        return _measure(fn, protocol)
    finally:
        if gc_was_enabled:
            gc.enable()


def _measure(fn: Callable[[], object], protocol: Protocol) -> Measurement:
    clock = time.perf_counter
    # 1. warm-up (also gives a first estimate of the per-call time)
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
    per_call = elapsed / warmups
    # 2. calibrate the number of calls per sample
    number = max(1, math.ceil(protocol.sample_s / per_call)) if per_call > 0 else 1
    # 3. repeat
    samples: list[float] = []
    spent = 0.0
    while len(samples) < protocol.max_repeats:
        t = clock()
        for _ in range(number):
            fn()
        dt = clock() - t
        samples.append(dt / number * 1e6)
        spent += dt
        if len(samples) >= protocol.min_repeats and spent >= protocol.min_time_s:
            break
        if spent >= protocol.max_time_s and len(samples) >= 3:
            break
    return Measurement(tuple(samples), warmups=warmups, number=number)
