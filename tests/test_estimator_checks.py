"""Every latency regressor passes scikit-learn's `check_estimator` (on a plain feature matrix,
``input_kind="features"``; small ensembles where the class takes a size, to keep it quick)."""
from __future__ import annotations

import pytest

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

from predictors.estimators import BlendLatency, BoostedLatency, FlopsLinear, ForestLatency, SwitchLatency  # noqa: E402

F = "features"
ESTIMATORS = [
    FlopsLinear(input_kind=F),
    ForestLatency(n_estimators=5, input_kind=F),
    BoostedLatency(n_estimators=10, input_kind=F),
    pytest.param(BlendLatency(input_kind=F), marks=pytest.mark.slow),  # fixed sizes: ~20 s
    pytest.param(SwitchLatency(feature=0, threshold=0.0, min_rows=5, input_kind=F,
                               regime=BoostedLatency(n_estimators=10, input_kind=F)), marks=pytest.mark.slow),
]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_check_estimator(estimator) -> None:
    failed = [f"{r['check_name']}: {str(r['exception'])[:200]}"
              for r in check_estimator(estimator, on_fail=None) if r["status"] == "failed"]
    assert not failed, failed


def test_spec_input_refuses_a_matrix_that_is_not_one() -> None:
    import numpy as np

    with pytest.raises(ValueError, match="not an encoded spec matrix"):
        ForestLatency().fit(np.ones((10, 3)), np.ones(10))
    with pytest.raises(ValueError, match="positive"):
        FlopsLinear(input_kind=F).fit(np.ones((10, 3)), -np.ones(10))
