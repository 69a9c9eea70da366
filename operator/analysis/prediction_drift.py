"""prediction-drift: do the canary's predictions follow another distribution than stable's?

Test: chi-square homogeneity on the 2 x k table of pooled prediction buckets, sparse buckets merged
so each expects at least 5 per track; its false-alarm rate holds at 20 predictions as at 20,000.
Effect: PSI minus its expected value when nothing drifted, estimated by drawing both tracks from
their pooled shares (PSI on 50 canary predictions averages ~0.19 with no drift at all); so
`threshold` keeps its textbook meaning (0.1 slight, 0.25 a real shift) at any traffic. Shown
within: the bootstrap upper bound of that PSI is within threshold. KS is reported alongside.
Traffic: a threshold of 0.25 on 10 buckets is resolved from about 150 canary predictions.
"""

from __future__ import annotations

from modelramp.operator.analysis import sequential
from modelramp.operator.analysis.drift import ks_statistic
from modelramp.operator.analysis.evidence import buckets
from modelramp.operator.analysis.statistics import chi_square_homogeneity, psi_with_upper
from modelramp.operator.api.analysis import EffectiveMetric
from modelramp.operator.api.status import Evidence, TestOutcome


def assess(
    metric: EffectiveMetric,
    evidence: Evidence,
    *,
    paired: tuple[tuple[float, float], tuple[float, float]] | None = None,
) -> TestOutcome:
    """The outcome on `evidence`; a shadow step passes its paired ((statistic, p-value), (PSI, PSI's
    upper bound)) from the joint table (shadow_metrics.py)."""
    threshold = metric.metric.threshold
    assert threshold is not None  # the API requires a threshold for prediction-drift
    size = len(evidence.bounds) + 1
    canary, stable = buckets(evidence.canary, size), buckets(evidence.stable, size)
    empty = canary.sum() <= 0 or stable.sum() <= 0
    value: float | None
    upper: float | None
    if paired is not None:
        (statistic, p_value), (value, upper) = paired
    else:
        statistic, _, p_value = chi_square_homogeneity(canary, stable)
        value, upper = (None, None) if empty else psi_with_upper(canary, stable, metric.success_confidence)
    if empty:
        value, upper = None, None
    ks = None if empty else ks_statistic(stable=stable, canary=canary)
    return sequential.outcome(
        metric,
        evidence,
        test="chi-square" if paired is None else "stuart-maxwell",
        statistic=statistic,
        p_value=p_value,
        effect="PSI (bias-corrected" + (f"; KS {ks:.3f})" if ks is not None else ")"),
        value=value,
        lower=0.0 if value is not None else None,
        upper=upper,
        bound=threshold,
        beyond=value is not None and value > threshold,
        within=upper is not None and upper <= threshold,
        more_canary_samples=sequential.samples_to_show_within(
            evidence.canary.total, value if value is not None else threshold, upper, threshold
        ),
    )
