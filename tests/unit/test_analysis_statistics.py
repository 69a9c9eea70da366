"""The tests and bounds behind the builtin verdicts: exact against scipy's reference
implementations, and their error rates pinned by simulation with fixed seeds.

Tolerances come from the binomial: an observed share of `reps` independent trials is allowed
4 standard errors from its target (support.analysis_sim.binomial_tolerance), so a pinned rate
fails by chance about once in 16,000 runs, and a broken test (an alpha off by 2x) fails.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from support.analysis_sim import LATENCY_BUCKETS, Track, Traffic, binomial_tolerance, run_rollout, window

from modelramp.operator.analysis import statistics
from modelramp.operator.analysis.evidence import histogram_counts
from modelramp.operator.api.analysis import EffectiveMetric, Metric, effective_metric
from modelramp.serving import metrics as serving_metrics

ALPHA = 0.01
REPS = 2000


@pytest.mark.parametrize(
    "table",
    [(3, 75, 0, 225), (9, 300, 2, 900), (15, 300, 2, 900), (0, 10, 5, 10), (10, 10, 0, 10), (1, 5, 1, 5)],
)
def test_fisher_matches_scipy(table: tuple[int, int, int, int]) -> None:
    x_c, n_c, x_s, n_s = table
    reference = stats.fisher_exact([[x_c, n_c - x_c], [x_s, n_s - x_s]], alternative="greater")[1]
    assert statistics.fisher_greater(*table) == pytest.approx(reference, rel=1e-9)


@pytest.mark.parametrize(("successes", "trials"), [(0, 20), (1, 500), (7, 100), (100, 100)])
def test_clopper_pearson_matches_the_beta_quantiles(successes: int, trials: int) -> None:
    lower, upper = statistics.binomial_bounds(successes, trials, 0.9)
    assert lower == pytest.approx(
        stats.beta.ppf(0.1, successes, trials - successes + 1) if successes else 0.0
    )
    expected_upper = stats.beta.isf(0.1, successes + 1, trials - successes) if successes < trials else 1.0
    assert upper == pytest.approx(expected_upper)


def test_mann_whitney_matches_scipy_on_the_expanded_data() -> None:
    rng = np.random.default_rng(3)
    canary = np.bincount(rng.integers(0, 8, 60), minlength=8).astype(float)
    stable = np.bincount(rng.integers(0, 7, 180), minlength=8).astype(float)
    p_value, superiority = statistics.mann_whitney_greater(canary, stable)
    values_c = np.repeat(np.arange(8), canary.astype(int))
    values_s = np.repeat(np.arange(8), stable.astype(int))
    reference = stats.mannwhitneyu(values_c, values_s, alternative="greater", method="asymptotic")
    assert p_value == pytest.approx(reference.pvalue, rel=1e-6)
    assert superiority == pytest.approx(reference.statistic / (60 * 180))


def test_chi_square_matches_scipy_when_no_bucket_is_sparse() -> None:
    canary, stable = np.array([30.0, 40, 50]), np.array([90.0, 100, 130])
    statistic, df, p_value = statistics.chi_square_homogeneity(canary, stable)
    reference = stats.chi2_contingency(np.array([canary, stable]), correction=False)
    assert (statistic, df, p_value) == pytest.approx((reference.statistic, reference.dof, reference.pvalue))


def test_sparse_buckets_are_merged_until_each_expects_five() -> None:
    merged_c, merged_s = statistics.merge_sparse(np.array([1.0, 2, 30, 2, 1]), np.array([3.0, 6, 90, 6, 3]))
    assert merged_c.sum() == 36 and merged_s.sum() == 108
    n_c, n_s = 36, 108
    for c, s in zip(merged_c, merged_s, strict=True):
        assert (c + s) * n_c / (n_c + n_s) >= statistics.MIN_EXPECTED


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    # 10 in (0, 1], 10 in (1, 2]: the median is the bucket edge 1, the 75th percentile halfway to 2.
    counts = np.array([10.0, 10.0, 0.0])
    assert statistics.histogram_quantile([1.0, 2.0], counts, 0.5) == 1.0
    assert statistics.histogram_quantile([1.0, 2.0], counts, 0.75) == 1.5


@pytest.mark.parametrize("n", [40, 200, 1000])
def test_quantile_bounds_cover_the_true_p95(n: int) -> None:
    """Each one-sided 90 % bound misses the lognormal's true p95 at most 10 % of the time: the
    interpolated upper bound (interpolation reads high where the density falls across a bucket,
    so it only errs upward in a latency tail) and the bucket-edge lower bound."""
    rng = np.random.default_rng(n)
    true_p95 = 0.02 * math.exp(0.5 * stats.norm.ppf(0.95))
    reps, below, above = 500, 0, 0
    for _ in range(reps):
        result = window("latency-p95", Track(), Track(), Traffic(n, n, rng))
        evidence = histogram_counts(result)
        counts = np.array(evidence.canary.buckets)
        _, upper = statistics.quantile_bounds(evidence.bounds, counts, 0.95, confidence=0.9)
        lower = statistics.quantile_lower_edge(evidence.bounds, counts, 0.95, confidence=0.9)
        below += upper < true_p95
        above += lower > true_p95
    assert below / reps <= 0.1 + binomial_tolerance(0.1, reps)
    assert above / reps <= 0.1 + binomial_tolerance(0.1, reps)


@pytest.mark.parametrize("n", [20, 100, 1000])
def test_each_test_holds_its_alpha_on_identical_tracks(n: int) -> None:
    """One-sided tests at alpha 0.01 on canary and stable drawn alike (stable at 3x): each
    rejects at most 1 % of the time, at small and large n."""
    rng = np.random.default_rng(1000 + n)
    traffic = Traffic(n, 3 * n, rng)
    rejected = {"fisher": 0, "mann-whitney": 0, "chi-square": 0}
    for _ in range(REPS):
        errors_c, errors_s = rng.binomial(n, 0.02), rng.binomial(3 * n, 0.02)
        rejected["fisher"] += statistics.fisher_greater(errors_c, n, errors_s, 3 * n) <= ALPHA
        latency = histogram_counts(window("latency-p95", Track(), Track(), traffic))
        p_latency, _ = statistics.mann_whitney_greater(
            np.array(latency.canary.buckets), np.array(latency.stable.buckets)
        )
        rejected["mann-whitney"] += p_latency <= ALPHA
        scores = histogram_counts(window("prediction-drift", Track(), Track(), traffic))
        _, _, p_drift = statistics.chi_square_homogeneity(
            np.array(scores.canary.buckets), np.array(scores.stable.buckets)
        )
        rejected["chi-square"] += p_drift <= ALPHA
    for test, count in rejected.items():
        assert count / REPS <= ALPHA + binomial_tolerance(ALPHA, REPS), (test, count)


def test_bias_corrected_psi_is_centred_on_zero_without_drift() -> None:
    """Raw PSI of 50 canary predictions averages ~0.17 with no drift at all; corrected, it sits
    near 0, and a real shift (true PSI 0.66) still reads as one."""
    rng = np.random.default_rng(7)
    traffic = Traffic(50, 150, rng)
    same, shifted = [], []
    for _ in range(200):
        for track, out in ((Track(), same), (Track(score_a=3.5), shifted)):
            scores = histogram_counts(window("prediction-drift", track, Track(), traffic))
            value, _ = statistics.psi_with_upper(
                np.array(scores.canary.buckets), np.array(scores.stable.buckets), 0.9
            )
            out.append(value)
    assert float(np.mean(same)) < 0.05
    assert float(np.median(shifted)) > 0.4


README_METRICS = [
    {"name": "errors", "builtin": "error-rate", "threshold": 0.02},
    {"name": "latency", "builtin": "latency-p95", "maxRatioToStable": 1.5},
    {"name": "drift", "builtin": "prediction-drift", "threshold": 0.25},
]


def readme_analyses() -> list[list[EffectiveMetric]]:
    """Two step analyses of the README's three metrics: six builtin metrics share the budget."""
    metrics = [
        effective_metric(Metric.model_validate(m), None, builtin_metrics_in_rollout=6) for m in README_METRICS
    ]
    return [metrics, metrics]


@pytest.mark.parametrize("n", [20, 100])
def test_an_identical_canary_is_rarely_rolled_back_over_a_whole_rollout(n: int) -> None:
    """The rollout's budget is 1 %: 150 rollouts may roll back at most 1 % plus 4 standard errors."""
    traffic = Traffic(n, 3 * n, np.random.default_rng(2000 + n))
    reps = 150
    phases = [run_rollout(readme_analyses(), Track(), Track(), traffic) for _ in range(reps)]
    assert phases.count("Failed") / reps <= 0.01 + binomial_tolerance(0.01, reps)
    if n >= 100:
        assert phases.count("Successful") / reps >= 0.9, phases


@pytest.mark.parametrize(
    ("canary", "n"),
    [(Track(error_rate=0.05), 100), (Track(latency_median=0.04), 50), (Track(score_a=3.5), 100)],
    ids=["errors-5pct", "latency-2x", "drift-psi-0.66"],
)
def test_a_worse_canary_is_rolled_back(canary: Track, n: int) -> None:
    """Each kind of bad canary the issue names is rolled back with >= 95 % probability."""
    traffic = Traffic(n, 3 * n, np.random.default_rng(3000 + n))
    reps = 60
    phases = [run_rollout(readme_analyses(), canary, Track(), traffic) for _ in range(reps)]
    assert phases.count("Failed") / reps >= 0.95 - binomial_tolerance(0.95, reps), phases


def test_latency_buckets_match_the_server() -> None:
    """The simulation draws on the buckets the server really exports."""
    assert tuple(LATENCY_BUCKETS) == tuple(serving_metrics._LATENCY_BUCKETS)
