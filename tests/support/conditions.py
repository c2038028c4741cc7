"""What every record measured on `local` must carry, whatever path measured it."""
from __future__ import annotations

import math

from devprof.devices import resolve_device
from devprof.runtimes.base import CHECKED


def assert_full_conditions(row, cpus: str = "", checked: str = CHECKED) -> None:
    """`row` (a dataset row) went through the check (`checked`: the numpy reference, or ONNX
    Runtime for a whole-model program) and holds the conditions this host can report: the pinned
    CPUs, the governor, frequencies and temperature where readable here."""
    st = resolve_device("local").state(cpus)
    key = row["spec_key"]
    assert row["checked"] == checked, (key, row["checked"])
    assert row["cpus"] == cpus, (key, row["cpus"])
    assert row["governor"] == st.governor, key
    if st.freq_khz > 0:
        assert row["freq_before_khz"] > 0 and row["freq_after_khz"] > 0, key
    if not math.isnan(st.temp_c):
        assert not math.isnan(row["temp_before_c"]) and not math.isnan(row["temp_after_c"]), key
    assert row["devprof_version"], key
    assert row["started_at"] <= row["finished_at"], key
    assert not row["cooldown_timed_out"], key
