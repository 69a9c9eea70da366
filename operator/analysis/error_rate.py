"""error-rate: is the canary's 5xx share worse than stable's, beyond its bound?

Test: Fisher's exact test (one-sided), exact at any traffic: one 5xx in 75 requests is not evidence
against a model whose stable twin errs at 0.2 %. Bound: `threshold` (a share) and/or
`maxRatioToStable` x stable's share. Shown within: the Clopper-Pearson upper bound of the canary's
share is within `threshold`; with only a ratio, the conditional-binomial upper bound of the rate
ratio is within `maxRatioToStable` (rare errors need many requests to show that: prefer a threshold).
Traffic a tolerance needs, at 90 % confidence and no canary 5xx: about 2.3 / threshold requests
(230 for 1 %, 46 for 5 %); one 5xx raises it to 3.9 / threshold.
"""

from __future__ import annotations

from modelramp.operator.analysis import sequential
from modelramp.operator.analysis.statistics import binomial_bounds, fisher_greater, rate_ratio_upper, whole
from modelramp.operator.api.analysis import EffectiveMetric
from modelramp.operator.api.status import Evidence, StatisticalTest, TestOutcome

SEARCH_LIMIT = 10_000_000


def assess(
    metric: EffectiveMetric,
    evidence: Evidence,
    *,
    test: StatisticalTest = "fisher-exact",
    p_value: float | None = None,
    ratio_upper: float | None = None,
) -> TestOutcome:
    """The outcome on `evidence`; a shadow step passes its paired test's p-value and rate-ratio
    bound (shadow_metrics.py), the rest (effect, bound, shown within) is the same."""
    threshold, ratio = metric.metric.threshold, metric.metric.max_ratio_to_stable
    n_c, x_c = whole(evidence.canary.total), whole(evidence.canary.errors)
    n_s, x_s = whole(evidence.stable.total), whole(evidence.stable.errors)
    share_c = x_c / n_c if n_c else 0.0
    share_s = x_s / n_s if n_s else 0.0
    confidence = metric.success_confidence
    lower, upper = binomial_bounds(x_c, n_c, confidence)
    limits = [threshold] if threshold is not None else []
    if ratio is not None and (share_s > 0 or threshold is None):
        limits.append(ratio * share_s)
    bound = min(limits)
    if threshold is not None:
        within = upper <= threshold
        more = _requests_to_show(share_c, n_c, threshold, confidence)
    else:
        assert ratio is not None  # the API requires threshold or maxRatioToStable
        upper_ratio = rate_ratio_upper(x_c, n_c, x_s, n_s, confidence) if ratio_upper is None else ratio_upper
        within = upper_ratio <= ratio
        more = None
    return sequential.outcome(
        metric,
        evidence,
        test=test,
        statistic=None,
        p_value=fisher_greater(x_c, n_c, x_s, n_s) if p_value is None else p_value,
        effect=f"5xx share (stable {share_s:.3g})",
        value=share_c,
        lower=lower,
        upper=upper,
        bound=bound,
        beyond=share_c > bound,
        within=within,
        more_canary_samples=more,
    )


def _requests_to_show(share: float, requests: int, threshold: float, confidence: float) -> int | None:
    """More canary requests at today's share after which the upper bound would be within threshold."""
    if share >= threshold:
        return None
    low, high = requests, max(requests, 1)
    while high < SEARCH_LIMIT and binomial_bounds(round(share * high), high, confidence)[1] > threshold:
        low, high = high, high * 2
    if high >= SEARCH_LIMIT:
        return None
    while high - low > 1:
        middle = (low + high) // 2
        if binomial_bounds(round(share * middle), middle, confidence)[1] > threshold:
            low = middle
        else:
            high = middle
    return max(high - requests, 0)
