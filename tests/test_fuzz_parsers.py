"""Hostile input: every parser devprof owns, fuzzed with hypothesis (bounded; bench/fuzz.py runs 10,000+).

Only devprof's own one-line errors may come out: no other exception, no traceback, and loading a
bundle never executes anything (pickle, os.system, subprocess are tripwired while it loads).
"""
from __future__ import annotations


import pytest


from support import fuzzkit as fuzz

N = {"bundle": 80}


@pytest.mark.parametrize("name", list(fuzz.TARGETS))
def test_parser_survives_hostile_input(name):
    t = fuzz.TARGETS[name]
    t.calls = t.accepted = t.refused = 0
    fuzz.fuzz(t, N.get(name, 150), seed=0, collect=False)  # shrinks and raises on the first failure
    assert t.calls >= 0.8 * N.get(name, 150), t.calls
    assert t.accepted + t.refused == t.calls


def test_known_hostile_cases_are_refused_in_one_line():
    """Regressions found by the fuzzer (each used to raise something other than a DevprofError)."""
    from devprof.errors import DevprofError
    from devprof.runtimes.phone_tools import parse_ort_profile
    from devprof.suites import parse_suite

    cases = [
        lambda: parse_ort_profile("[" * 100_000),  # RecursionError
        lambda: parse_ort_profile('[{"name": "x_kernel_time", "cat": "Node", "ts": 1' + "0" * 400 + ', "dur": 1}]'),
        lambda: parse_suite('[suite]\nname = "b"\n[[family]]\nop = "fc"\nshape = { cin = ' + str(list(range(1, 60)))
                            + ", cout = " + str(list(range(1, 60))) + ", n = " + str(list(range(1, 60))) + " }\n"),
        lambda: parse_suite('[suite]\nname = "b"\n[[family]]\nop = "fc"\nsampling = "random"\ncount = 1000000000\n'
                            'shape = { cin = { min = 1, max = 8 } }\n'),
        lambda: parse_suite('[suite]\nname = "b"\n[[kernels]]\nop = "fc"\ncin = inf\ncout = 4\n'),  # OverflowError
        lambda: parse_suite('[suite]\nname = "b"\n[[kernels]]\nop = "conv2d"\nkh = []\n'),  # TypeError
        lambda: parse_suite('[suite]\nname = "b"\n[[family]]\nop = "fc"\nshape = { cin = [inf], cout = [4] }\n'),
    ]
    for c in cases:
        with pytest.raises(DevprofError) as e:
            c()
        assert "\n" not in str(e.value)
    from devprof.models.tflite_walk import walk_tflite

    data = bytearray(fuzz._tflite_models()[1])
    walk_tflite(bytes(data))  # the seed model itself walks
