"""Is one proportion higher than another by more than a margin? The tests behind an A/B decision.

An A/B test compares a challenger's proportion (conversions, or 5xx answers) with control's on
counts pooled per variant. Two one-sided tests of "the challenger is NOT higher by more than
`margin`", each controlling the chance of naming a winner that isn't one:
- `margin == 0`: Fisher's exact test (`statistics.fisher_greater`, the verdicts' test of error
  rates): exact at any traffic, even with a handful of successes.
- `margin != 0`: the Farrington-Manning score test of a difference with a margin (Farrington &
  Manning 1990, the standard test of superiority by a margin and of non-inferiority): the
  variance is taken at the maximum-likelihood proportions restricted to the margin, which keeps
  it honest near the boundary; a normal approximation, good once each arm has a few dozen
  successes and failures (minSamples guards that).
`difference_bounds` inverts the score test into confidence bounds of the difference, so a bound
beyond a margin and the score test's rejection of it say the same thing.
"""

from __future__ import annotations

import math

from scipy import optimize, special

from modelramp.operator.analysis.statistics import fisher_greater

# The bounds are searched within (-1, 1), to this precision.
_EDGE = 1.0 - 1e-9
_TOLERANCE = 1e-9


def restricted_mle(x1: int, n1: int, x2: int, n2: int, delta: float) -> tuple[float, float]:
    """The maximum-likelihood (p1, p2) with p1 - p2 = delta (Farrington & Manning's closed form,
    the real root of a cubic in p1)."""
    p1_hat, p2_hat = x1 / n1, x2 / n2
    theta = n2 / n1
    a = 1.0 + theta
    b = -(1.0 + theta + p1_hat + theta * p2_hat + delta * (theta + 2.0))
    c = delta * delta + delta * (2.0 * p1_hat + theta + 1.0) + p1_hat + theta * p2_hat
    d = -p1_hat * delta * (1.0 + delta)
    v = b**3 / (27.0 * a**3) - b * c / (6.0 * a * a) + d / (2.0 * a)
    u_squared = b * b / (9.0 * a * a) - c / (3.0 * a)
    u = math.copysign(math.sqrt(max(u_squared, 0.0)), v) if v != 0 else math.sqrt(max(u_squared, 0.0))
    cosine = 1.0 if u == 0 else max(-1.0, min(1.0, v / u**3))
    w = (math.pi + math.acos(cosine)) / 3.0
    p1 = 2.0 * u * math.cos(w) - b / (3.0 * a)
    p1 = min(max(p1, delta, 0.0), 1.0 + delta, 1.0)
    return p1, p1 - delta


def score(x1: int, n1: int, x2: int, n2: int, delta: float) -> float:
    """The Farrington-Manning statistic of p1 - p2 = delta: positive when p1 - p2 is above it."""
    p1, p2 = restricted_mle(x1, n1, x2, n2, delta)
    variance = p1 * (1.0 - p1) / n1 + p2 * (1.0 - p2) / n2
    gap = x1 / n1 - x2 / n2 - delta
    if variance <= 0.0:
        return math.copysign(math.inf, gap) if gap != 0 else 0.0
    return gap / math.sqrt(variance)


def higher_p_value(x1: int, n1: int, x2: int, n2: int, margin: float) -> float:
    """One-sided p-value of 'p1 - p2 <= margin' (arm 1 NOT higher by more than `margin`)."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    if margin == 0.0:
        return fisher_greater(x1, n1, x2, n2)
    return float(special.ndtr(-score(x1, n1, x2, n2, margin)))


def difference_bounds(x1: int, n1: int, x2: int, n2: int, confidence: float) -> tuple[float, float]:
    """One-sided bounds (lower, upper) of p1 - p2, each holding with `confidence`: the margins the
    score test would just reject at 1 - confidence (its statistic falls as the margin grows)."""
    if n1 <= 0 or n2 <= 0:
        return -1.0, 1.0
    z = float(special.ndtri(confidence))
    return _root(x1, n1, x2, n2, z), _root(x1, n1, x2, n2, -z)


def _root(x1: int, n1: int, x2: int, n2: int, target: float) -> float:
    """The margin where the score equals `target` (Brent's method; the score falls from +inf
    to -inf across (-1, 1)), or an end of that range when the score never gets there."""

    def gap(delta: float) -> float:
        return score(x1, n1, x2, n2, delta) - target

    if gap(-_EDGE) <= 0.0:
        return -1.0
    if gap(_EDGE) >= 0.0:
        return 1.0
    return float(optimize.brentq(gap, -_EDGE, _EDGE, xtol=_TOLERANCE))
