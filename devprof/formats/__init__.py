"""Exchange formats of the search front ends: read and write their lookup tables and datasets.

- `ofa`: Once-for-All / ProxylessNAS YAML block tables (`Block`, `parse_key`, `read`, `write`);
- `flat`: CSV / JSON of (key, ms, spread, count) for any language;
- `nnmeter`: nn-Meter's released JSONL model datasets;
- `onnx_predictor`: predictors as ONNX graphs (features in, ms out) for ONNX Runtime anywhere;
- `records`: tables <-> devprof records (compare, report and fit on imported data).

Every table reads into / writes from one `LatencyTable` (ms), so round trips are checkable.
Documented in docs/formats.md.
"""
from __future__ import annotations

from .table import Entry, LatencyTable

__all__ = ["Entry", "LatencyTable"]
