"""The fixed queries that pin a published bundle's predictions: the lookup table's first rows
(hits) and seeded convolutions, pointwise convs, depthwise convs and FC layers the table lacks
(misses, answered by the regressors), plus one whole-model sum."""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from predictors.spec import KernelSpec


def queries(p: Any) -> list[KernelSpec]:
    specs = [KernelSpec.from_dict(json.loads(j)) for j in p.lut["spec_json"][:150]]
    rng = np.random.default_rng(0)
    for h, c in zip(rng.integers(7, 120, 40), rng.integers(3, 200, 40)):
        h, c = int(h), int(c)
        specs += [KernelSpec("conv2d", h=h, w=h, cin=c, cout=2 * c, kh=3, kw=3, padding=1),
                  KernelSpec("pwconv", h=h, w=h, cin=c, cout=c + 5),
                  KernelSpec("dwconv2d", h=h, w=h, cin=c, cout=c, kh=3, kw=3, padding=1, groups=c),
                  KernelSpec("fc", n=1, cin=8 * c, cout=c + 1)]
    return specs


def answers(p: Any) -> dict[str, Any]:
    """Everything compared exactly: latencies as float64 hex, sources, a model total."""
    specs = queries(p)
    r = p.predict(specs)
    return {"latency_us": [float(x).hex() for x in r.latency_us], "source": [str(s) for s in r.source],
            "model_total_us": float(p.predict_model(specs[:60]).total_us).hex()}
