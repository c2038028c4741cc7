"""The report's sections, in reading order. Each `build(data) -> Section` says why it cannot be
drawn (``Section.missing``) instead of failing when its data is absent."""
from __future__ import annotations

from . import accuracy, compare, devices, layers, programs, quality, roofline, sparse

ORDER = (devices, quality, roofline, sparse, accuracy, layers, programs, compare)
