"""latency-p95: is the canary slower than stable, beyond its bound?

Test: Mann-Whitney U (one-sided) on the pooled request-duration buckets of both tracks, the rank
test Kayenta uses; it sees a shift anywhere in the distribution, not only in the tail.
Effect and bound: with `maxRatioToStable`, the ratio of the canary's p95 to stable's (interpolated
inside the buckets, as histogram_quantile does), bounded by distribution-free order-statistic
bounds on each p95; with `threshold`, the canary's p95 itself, which fails only when its *lower*
confidence bound is above the threshold (a point estimate from 50 requests jumps a bucket at
random), read at its bucket's lower edge so the interpolation can't inflate it. Showing a p95
within bound needs the quantile's order statistics to be resolved: about
100 canary requests for a ratio bound of 1.5 with stable at 3x the traffic.
"""

from __future__ import annotations

import math

from modelramp.operator.analysis import sequential
from modelramp.operator.analysis.evidence import buckets
from modelramp.operator.analysis.statistics import (
    histogram_quantile,
    mann_whitney_greater,
    quantile_bounds,
    quantile_lower_edge,
)
from modelramp.operator.api.analysis import EffectiveMetric
from modelramp.operator.api.status import Evidence, TestOutcome

QUANTILE = 0.95


def assess(
    metric: EffectiveMetric, evidence: Evidence, *, paired_test: tuple[float, float] | None = None
) -> TestOutcome:
    """The outcome on `evidence`; a shadow step passes its signed-rank test's (p-value, share of
    requests the canary was slower on) as `paired_test` (shadow_metrics.py)."""
    threshold, ratio = metric.metric.threshold, metric.metric.max_ratio_to_stable
    size = len(evidence.bounds) + 1
    canary, stable = buckets(evidence.canary, size), buckets(evidence.stable, size)
    p_value, superiority = mann_whitney_greater(canary, stable) if paired_test is None else paired_test
    p95_c = histogram_quantile(evidence.bounds, canary, QUANTILE)
    p95_s = histogram_quantile(evidence.bounds, stable, QUANTILE)
    # Two bounds combined: each at the confidence that makes both hold together with the metric's.
    each = 1.0 - (1.0 - metric.success_confidence) / 2.0
    low_c, up_c = quantile_bounds(evidence.bounds, canary, QUANTILE, each)
    low_s, up_s = quantile_bounds(evidence.bounds, stable, QUANTILE, each)
    beyond, within = False, True
    if threshold is not None:
        edge = quantile_lower_edge(evidence.bounds, canary, QUANTILE, metric.success_confidence)
        # The order statistic lies inside its bucket, above the edge: an edge at the threshold counts.
        beyond = beyond or (not math.isnan(edge) and edge >= threshold)
        within = within and not math.isnan(up_c) and up_c <= threshold
    if ratio is not None:
        point = _ratio(p95_c, p95_s)
        beyond = beyond or point > ratio
        within = within and _ratio(up_c, low_s) <= ratio
        value, lower, upper = point, _ratio(low_c, up_s), _ratio(up_c, low_s)
        bound: float | None = ratio
        effect = f"p95 ratio to stable ({_seconds(p95_c)} vs {_seconds(p95_s)})"
    else:
        value, lower, upper = p95_c, low_c, up_c
        bound = threshold
        effect = f"p95 seconds (stable {_seconds(p95_s)})"
    more = sequential.samples_to_show_within(
        evidence.canary.total, value if math.isfinite(value) else math.inf, upper, bound
    )
    return sequential.outcome(
        metric,
        evidence,
        test="mann-whitney" if paired_test is None else "wilcoxon-signed-rank",
        statistic=superiority,
        p_value=p_value,
        effect=effect,
        value=value if math.isfinite(value) else None,
        lower=lower,
        upper=upper,
        bound=bound,
        beyond=beyond,
        within=within,
        more_canary_samples=more,
    )


def _ratio(canary: float, stable: float) -> float:
    if math.isnan(canary) or math.isnan(stable):
        return math.nan
    if stable <= 0:
        return math.inf if canary > 0 else 1.0
    return canary / stable


def _seconds(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3g}s"
