"""PSI and KS from histogram bucket counts, checked against their definitions on sampled data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelramp.operator.analysis.drift import DriftError, compare

BOUNDS = [round(0.1 * i, 1) for i in range(1, 11)] + [math.inf]


def cumulative(scores: np.ndarray) -> dict[float, float]:
    return {bound: float(np.sum(scores <= bound)) for bound in BOUNDS}


def test_same_distribution_has_small_psi_and_ks() -> None:
    rng = np.random.default_rng(0)
    found = compare(cumulative(rng.beta(2, 5, 5000)), cumulative(rng.beta(2, 5, 5000)))
    assert found.psi < 0.02
    assert found.ks < 0.03


def test_shifted_distribution_has_large_psi_and_ks() -> None:
    rng = np.random.default_rng(0)
    stable, canary = rng.beta(2, 5, 5000), rng.beta(5, 2, 5000)
    found = compare(cumulative(stable), cumulative(canary))
    assert found.psi > 1.0
    # The bucketed KS is the exact two-sample KS evaluated at the bucket bounds.
    exact = max(abs(np.mean(canary <= b) - np.mean(stable <= b)) for b in BOUNDS)
    assert found.ks == pytest.approx(exact)
    assert (found.canary_samples, found.stable_samples) == (5000, 5000)


def test_psi_matches_its_formula_on_hand_counts() -> None:
    stable = {0.5: 50.0, 1.0: 100.0, math.inf: 100.0}
    canary = {0.5: 20.0, 1.0: 100.0, math.inf: 100.0}
    # Counts: stable (50, 50, 0), canary (20, 80, 0), each bucket smoothed by half an observation.
    stable_share = np.array([50.5, 50.5, 0.5]) / 101.5
    canary_share = np.array([20.5, 80.5, 0.5]) / 101.5
    expected = float(np.sum((canary_share - stable_share) * np.log(canary_share / stable_share)))
    assert compare(stable, canary).psi == pytest.approx(expected, rel=1e-9)
    assert compare(stable, canary).ks == pytest.approx(0.3)


def test_identical_models_on_a_small_window_stay_far_below_a_real_shift() -> None:
    # The e2e window: ~75 canary and ~220 stable predictions of the same model. Empty buckets must
    # not read as drift.
    rng = np.random.default_rng(3)
    same = [compare(cumulative(rng.beta(2, 3, 220)), cumulative(rng.beta(2, 3, 75))).psi for _ in range(200)]
    shifted = compare(cumulative(rng.beta(2, 3, 220)), cumulative(rng.beta(6, 1.5, 75))).psi
    assert np.mean(same) < 0.2 and np.quantile(same, 0.99) < 0.5
    assert shifted > 1.0


def test_extrapolation_dips_never_give_negative_counts() -> None:
    stable = {0.5: 50.2, 1.0: 49.9, math.inf: 100.0}
    found = compare(stable, stable)
    assert found.psi == pytest.approx(0.0)


def test_different_buckets_are_an_error_saying_so() -> None:
    with pytest.raises(DriftError, match="different prediction buckets"):
        compare({0.5: 1.0, math.inf: 2.0}, {0.4: 1.0, math.inf: 2.0})


def test_a_track_without_predictions_is_an_error() -> None:
    with pytest.raises(DriftError, match="canary made no predictions"):
        compare({0.5: 1.0, math.inf: 2.0}, {0.5: 0.0, math.inf: 0.0})


@given(
    st.lists(st.floats(min_value=0, max_value=1e6), min_size=2, max_size=12),
    st.lists(st.floats(min_value=0, max_value=1e6), min_size=2, max_size=12),
)
def test_psi_and_ks_are_bounded_and_symmetric_in_identity(a: list[float], b: list[float]) -> None:
    size = min(len(a), len(b))
    bounds = [float(i) for i in range(size - 1)] + [math.inf]
    stable = dict(zip(bounds, np.cumsum(a[:size]).tolist(), strict=True))
    canary = dict(zip(bounds, np.cumsum(b[:size]).tolist(), strict=True))
    if stable[math.inf] <= 0 or canary[math.inf] <= 0:
        return
    found = compare(stable, canary)
    assert found.psi >= -1e-12
    assert 0.0 <= found.ks <= 1.0 + 1e-12
    assert compare(stable, stable).psi == pytest.approx(0.0, abs=1e-12)
