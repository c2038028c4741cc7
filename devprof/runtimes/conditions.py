"""Reading a device's state around a measurement: frequency, governor, temperature, throttling."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator

from ..devices.base import Device, DeviceState
from ..records import Conditions

THROTTLE_DROP = 0.10
"""A frequency falling by more than this share between the before and after reads marks the
measurement as throttled (cpufreq reports the current operating point, not an average)."""


def conditions_from(before: DeviceState, after: DeviceState, cpus: str = "") -> Conditions:
    throttled = (before.freq_khz > 0 and after.freq_khz > 0
                 and after.freq_khz < before.freq_khz * (1 - THROTTLE_DROP))
    return Conditions(cpus=cpus, governor=before.governor or after.governor, freq_before_khz=before.freq_khz,
                      freq_after_khz=after.freq_khz, temp_before_c=before.temp_c, temp_after_c=after.temp_c,
                      throttled=throttled)


def current_cpus() -> str:
    """This process's CPU affinity as a list string ("0-1"), or "" when it may use every CPU."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return ""
    if len(cpus) == (os.cpu_count() or len(cpus)):
        return ""
    return ",".join(str(c) for c in cpus)


@dataclass
class _Holder:
    result: Conditions = Conditions()


@contextlib.contextmanager
def conditions_around(device: Device, cpus: str | None = None) -> Iterator[_Holder]:
    """``with conditions_around(dev) as c: ...`` then ``c.result`` holds the Conditions."""
    cpus = current_cpus() if cpus is None else cpus
    first = cpus.split(",")[0].split("-")[0] if cpus else ""
    before = device.state(first)
    holder = _Holder()
    yield holder
    holder.result = conditions_from(before, device.state(first), cpus)
