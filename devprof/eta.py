"""How long a run has left, from what its kernels have taken so far.

A suite mixes kernels whose cost differs by orders of magnitude (a 1x1 convolution on 8x8 against a
3x3 one on 112x112; ONNX Runtime against a generated kernel that is compiled first), and runs them
grouped by runtime and op. A rate averaged over the last few kernels therefore says little about
the rest: each (runtime, op) gets its own measured time per kernel, and the estimate sums it over
the kernels of that kind still to come (a kind not started yet takes its runtime's pace, else the
run's).
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Callable, Iterable


class Eta:
    """Seconds left in a run of (runtime, op) kernels, from the time each kind has taken."""

    def __init__(self, work: Iterable[tuple[str, str]], clock: Callable[[], float] = time.monotonic) -> None:
        self.left: Counter = Counter(work)
        self.spent: dict[tuple[str, str], float] = defaultdict(float)
        self.done: Counter = Counter()
        self.clock = clock
        self.last = clock()

    def finished(self, runtime: str, op: str, now: float | None = None) -> None:
        """One kernel of this kind finished: the time since the previous one is its cost (batches
        that report several kernels at once charge the first; the average per kind holds)."""
        now = self.clock() if now is None else now
        key = (runtime, op)
        self.spent[key] += max(0.0, now - self.last)
        self.last = now
        self.done[key] += 1
        if self.left[key] > 0:
            self.left[key] -= 1

    def per_kernel(self, runtime: str, op: str) -> float | None:
        """Seconds per kernel of this kind: measured, else its runtime's, else the run's; None
        before anything finished."""
        for keys in ([(runtime, op)], [k for k in self.done if k[0] == runtime], list(self.done)):
            n = sum(self.done[k] for k in keys)
            if n:
                return sum(self.spent[k] for k in keys) / n
        return None

    def remaining_s(self) -> float | None:
        """Seconds left, or None while nothing has finished to go by."""
        if not self.done:
            return None
        total = 0.0
        for (runtime, op), n in self.left.items():
            if n > 0:
                total += n * (self.per_kernel(runtime, op) or 0.0)
        return total
