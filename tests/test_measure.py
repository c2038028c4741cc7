"""The measurement protocol itself: rounds, their interleaving, budgets and failures.

Timing-free assertions only (these machines are noisy): the structure of what is measured, not
how fast anything is.
"""
from __future__ import annotations

import time

import pytest

from devprof.measure import Protocol, measure_callable, measure_interleaved
from devprof.records import Measurement

FAST = Protocol(warmup_s=0.0, min_warmups=1, sample_s=0.0, rounds=6, round_s=0.0, round_samples=2, max_time_s=1.0)


def test_one_sample_per_round_and_it_is_the_fastest():
    calls = []

    def fn():
        calls.append(time.perf_counter())
        # every second call is slow: a round's value must be a fast one
        if len(calls) % 2 == 0:
            time.sleep(0.002)

    m = measure_callable(fn, FAST)
    assert isinstance(m, Measurement) and m.repeats == 6 and m.number == 1
    assert max(m.samples_us) < 1500  # never the 2 ms sleeps


def test_rounds_alternate_between_kernels():
    order: list[str] = []
    fns = [lambda: order.append("a"), lambda: order.append("b"), lambda: order.append("c")]
    out = measure_interleaved(fns, FAST)
    assert all(isinstance(m, Measurement) and m.repeats == 6 for m in out)
    timed = "".join(order[order.index("c") + 1:])  # after the warm-ups of a, b and c
    rounds = [k for i, k in enumerate(timed) if i == 0 or timed[i - 1] != k]
    assert rounds == list("abc") * 6  # a's round, b's round, c's round, then again


def test_a_failing_kernel_drops_out_and_the_others_finish():
    n = {"calls": 0}

    def flaky():
        n["calls"] += 1
        if n["calls"] > 4:
            raise RuntimeError("device lost")

    out = measure_interleaved([lambda: None, flaky, lambda: None], FAST)
    assert isinstance(out[1], RuntimeError)
    assert isinstance(out[0], Measurement) and isinstance(out[2], Measurement)
    with pytest.raises(RuntimeError):
        measure_callable(flaky, FAST)


@pytest.mark.parametrize("per_call_s, expect", [
    (1e-6, (5000, 3, 10)),  # tiny kernel: 5 ms samples of 5,000 calls, all rounds
    (0.05, (1, 3, 10)),     # 50 ms: 10 rounds x 3 samples = 1.5 s, within the 4 s budget
    (0.5, (1, 2, 4)),       # 0.5 s: fewer samples and rounds to stay near the budget
    (3.0, (1, 1, 3)),       # never fewer than 3 rounds of 1 sample
])
def test_long_kernels_get_fewer_rounds_within_the_budget(per_call_s, expect):
    assert Protocol().plan(per_call_s) == expect


def test_harness_gets_the_same_numbers():
    args = Protocol().harness_args()
    assert "--rounds=10" in args and "--round-us=30000" in args and "--round-samples=3" in args
    assert "--group=16" in args and "--max-time-us=4000000" in args
