"""The tests and confidence bounds behind the built-in verdicts, on the counts Prometheus keeps.

Everything here works on pooled counts: requests and 5xx per track, or per-bucket counts of a
histogram per track (the increase of each `le` bucket, differenced). Each function answers one
question a verdict needs, with the error it controls:
- `fisher_greater`: is the canary's 5xx share higher than stable's? Exact (hypergeometric), so
  its false-alarm rate is at most alpha at any traffic, even with 0-3 errors in the window.
- `mann_whitney_greater`: are the canary's latencies stochastically larger than stable's? A rank
  test on bucketed durations: ties within a bucket get mid-ranks and the variance is tie-corrected.
- `chi_square_homogeneity`: do the two tracks' prediction buckets differ? Sparse buckets are merged
  first (every merged bucket expects at least 5 observations in each track), which keeps the
  chi-square approximation honest at small n.
- `binomial_bounds`, `rate_ratio_upper`, `quantile_bounds`: one-sided confidence bounds used to show
  that a canary is *within* a tolerance (Clopper-Pearson, the conditional binomial of a rate ratio,
  and distribution-free order-statistic bounds on a quantile, interpolated inside the bucket).
- `psi_with_upper`: the Population Stability Index of drift.py minus its expected
  value when nothing drifted (about (k - 1)(1/n_c + 1/n_s) on k buckets), so a threshold keeps its
  textbook meaning at 50 predictions as at 50,000; and its bootstrap upper bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import special

from modelramp.operator.analysis.drift import PSI_SMOOTHING, population_stability_index

Counts = NDArray[np.float64]
MIN_EXPECTED = 5.0  # per merged bucket and track, for the chi-square approximation
PSI_BOOTSTRAP = 200  # parametric bootstrap draws for PSI's upper confidence bound


def whole(value: float) -> int:
    """Prometheus extrapolates increases, so counts arrive as floats; tests need whole counts."""
    return max(round(value), 0)


def fisher_greater(canary_errors: int, canary_total: int, stable_errors: int, stable_total: int) -> float:
    """One-sided p-value that the canary's share is higher: P(X >= canary_errors) for X hypergeometric
    (the errors' split between tracks when both tracks share one error rate)."""
    errors = canary_errors + stable_errors
    if errors == 0 or canary_total == 0 or stable_total == 0:
        return 1.0
    # The hypergeometric upper tail, summed in log space over the canary counts it covers.
    k = np.arange(max(canary_errors, 0), min(errors, canary_total) + 1, dtype=np.float64)
    if k.size == 0:
        return 0.0
    log_pmf = (
        _log_choose(canary_total, k)
        + _log_choose(stable_total, errors - k)
        - _log_choose(canary_total + stable_total, np.float64(errors))
    )
    return float(min(np.exp(special.logsumexp(log_pmf)), 1.0))


def binomial_bounds(successes: int, trials: int, confidence: float) -> tuple[float, float]:
    """Clopper-Pearson one-sided bounds (lower, upper), each holding with `confidence`."""
    if trials <= 0:
        return 0.0, 1.0
    tail = 1.0 - confidence
    lower = 0.0 if successes == 0 else float(special.betaincinv(successes, trials - successes + 1, tail))
    upper = (
        1.0
        if successes >= trials
        else float(special.betaincinv(successes + 1, trials - successes, confidence))
    )
    return lower, upper


def rate_ratio_upper(
    canary_errors: int, canary_total: int, stable_errors: int, stable_total: int, confidence: float
) -> float:
    """Upper confidence bound on (canary rate / stable rate), from the conditional binomial: given
    the errors of both tracks, the canary's share of them is theta n_c / (theta n_c + n_s)."""
    errors = canary_errors + stable_errors
    if errors == 0 or canary_total == 0 or stable_total == 0:
        return math.inf
    _, share_upper = binomial_bounds(canary_errors, errors, confidence)
    if share_upper >= 1.0:
        return math.inf
    return share_upper / (1.0 - share_upper) * stable_total / canary_total


def mann_whitney_greater(canary: Counts, stable: Counts) -> tuple[float, float]:
    """(one-sided p-value that canary values are larger, probability of superiority P(C > S) +
    P(C = S)/2) for two histograms over the same buckets. Normal approximation with tie correction
    and continuity correction; the buckets are the ties."""
    n_c, n_s = float(canary.sum()), float(stable.sum())
    if n_c <= 0 or n_s <= 0:
        return 1.0, 0.5
    both = canary + stable
    below = np.cumsum(both) - both  # observations in lower buckets
    midranks = below + (both + 1.0) / 2.0
    rank_sum = float(np.dot(canary, midranks))
    u = rank_sum - n_c * (n_c + 1.0) / 2.0
    mean = n_c * n_s / 2.0
    n = n_c + n_s
    ties = float(np.sum(both**3 - both))
    variance = n_c * n_s / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0))) if n > 1 else 0.0
    superiority = u / (n_c * n_s)
    if variance <= 0:
        return 1.0, superiority
    z = (u - mean - 0.5) / math.sqrt(variance)
    return float(special.ndtr(-z)), superiority


def merge_sparse(canary: Counts, stable: Counts) -> tuple[Counts, Counts]:
    """Adjacent buckets merged until each expects at least MIN_EXPECTED observations per track
    (expected = bucket total x the track's share of all observations); at least one bucket."""
    n_c, n_s = float(canary.sum()), float(stable.sum())
    n = n_c + n_s
    if n <= 0:
        return np.array([n_c]), np.array([n_s])
    need = MIN_EXPECTED * n / max(min(n_c, n_s), 1e-12)  # bucket total so both tracks expect >= 5
    merged_c: list[float] = []
    merged_s: list[float] = []
    run_c = run_s = 0.0
    for c, s in zip(canary, stable, strict=True):
        run_c, run_s = run_c + float(c), run_s + float(s)
        if run_c + run_s >= need:
            merged_c.append(run_c)
            merged_s.append(run_s)
            run_c = run_s = 0.0
    if run_c + run_s > 0 or not merged_c:
        if merged_c:
            merged_c[-1] += run_c
            merged_s[-1] += run_s
        else:
            merged_c, merged_s = [run_c], [run_s]
    return np.array(merged_c), np.array(merged_s)


def chi_square_homogeneity(canary: Counts, stable: Counts) -> tuple[float, int, float]:
    """(statistic, degrees of freedom, p-value) of the 2 x k homogeneity test on merged buckets."""
    merged_c, merged_s = merge_sparse(canary, stable)
    buckets = len(merged_c)
    n_c, n_s = float(merged_c.sum()), float(merged_s.sum())
    if buckets < 2 or n_c <= 0 or n_s <= 0:
        return 0.0, 0, 1.0
    totals = merged_c + merged_s
    n = n_c + n_s
    expected_c, expected_s = totals * n_c / n, totals * n_s / n
    statistic = float(
        np.sum((merged_c - expected_c) ** 2 / expected_c + (merged_s - expected_s) ** 2 / expected_s)
    )
    return statistic, buckets - 1, float(special.chdtrc(buckets - 1, statistic))


def psi_with_upper(canary: Counts, stable: Counts, confidence: float) -> tuple[float, float]:
    """(bias-corrected PSI, its upper confidence bound). The correction is PSI's mean when both
    tracks draw from their pooled shares (no drift): roughly (k - 1)(1/n_c + 1/n_s) on k buckets,
    less where the smoothing of empty buckets pulls it down. The bound is a parametric bootstrap
    from each track's observed shares, less the same mean. Seeded by the counts, so the same
    evidence always gives the same numbers."""
    n_c, n_s = whole(float(canary.sum())), whole(float(stable.sum()))
    generator = np.random.default_rng([int(v) for v in np.concatenate([canary, stable]).round() % (2**31)])
    pooled_shares = _shares(canary + stable)
    null = _psi_rows(
        generator.multinomial(n_c, pooled_shares, size=PSI_BOOTSTRAP),
        generator.multinomial(n_s, pooled_shares, size=PSI_BOOTSTRAP),
    )
    observed = _psi_rows(
        generator.multinomial(n_c, _shares(canary), size=PSI_BOOTSTRAP),
        generator.multinomial(n_s, _shares(stable), size=PSI_BOOTSTRAP),
    )
    bias = float(np.mean(null))
    raw = population_stability_index(stable=stable, canary=canary)
    return max(raw - bias, 0.0), max(float(np.quantile(observed, confidence)) - bias, 0.0)


def _psi_rows(canary: NDArray[np.int64], stable: NDArray[np.int64]) -> Counts:
    """population_stability_index for each row pair at once."""
    c = canary + PSI_SMOOTHING
    s = stable + PSI_SMOOTHING
    c = c / c.sum(axis=1, keepdims=True)
    s = s / s.sum(axis=1, keepdims=True)
    rows: Counts = np.sum((c - s) * np.log(c / s), axis=1)
    return rows


def histogram_quantile(bounds: Sequence[float], counts: Counts, q: float, rank: float | None = None) -> float:
    """The q-quantile (or the value at 1-based `rank`) of a histogram whose buckets end at `bounds`
    plus a final +Inf bucket, interpolated linearly inside its bucket as Prometheus'
    histogram_quantile does (the first bucket starts at 0; the +Inf bucket answers its lower bound)."""
    total = float(counts.sum())
    if total <= 0:
        return math.nan
    target = q * total if rank is None else min(max(rank, 0.0), total)
    cumulative = np.cumsum(counts)
    index = int(np.searchsorted(cumulative, target, side="left"))
    index = min(index, len(counts) - 1)
    if index >= len(bounds):
        return float(bounds[-1]) if bounds else math.nan
    lower = 0.0 if index == 0 else float(bounds[index - 1])
    upper = float(bounds[index])
    before = 0.0 if index == 0 else float(cumulative[index - 1])
    inside = float(counts[index])
    if inside <= 0:
        return upper
    return lower + (upper - lower) * (target - before) / inside


def quantile_bounds(
    bounds: Sequence[float], counts: Counts, q: float, confidence: float
) -> tuple[float, float]:
    """Distribution-free one-sided bounds (lower, upper) on the q-quantile, each with `confidence`:
    the order statistics whose ranks a Binomial(n, q) count of values below the quantile rarely
    crosses, read from the histogram."""
    n = whole(float(counts.sum()))
    if n == 0:
        return math.nan, math.nan
    lower_rank, upper_rank = _order_statistic_ranks(n, q, confidence)
    lower = histogram_quantile(bounds, counts, q, rank=lower_rank) if lower_rank >= 1 else 0.0
    # A rank past the finite buckets sits in the +Inf bucket: nothing above its lower edge is known.
    finite = float(counts[: len(bounds)].sum())
    upper = histogram_quantile(bounds, counts, q, rank=upper_rank) if upper_rank <= finite else math.inf
    return lower, upper


def quantile_lower_edge(bounds: Sequence[float], counts: Counts, q: float, confidence: float) -> float:
    """A lower bound on the q-quantile that the buckets can't inflate: the lower edge of the bucket
    holding the lower order statistic. Interpolating inside the bucket reads values too high where
    the density falls across it (a latency tail), so a bound that fails a canary uses the edge."""
    n = whole(float(counts.sum()))
    if n == 0:
        return math.nan
    rank, _ = _order_statistic_ranks(n, q, confidence)
    if rank < 1:
        return 0.0
    index = min(int(np.searchsorted(np.cumsum(counts), rank, side="left")), len(counts) - 1)
    return 0.0 if index == 0 else float(bounds[index - 1])


def _order_statistic_ranks(n: int, q: float, confidence: float) -> tuple[float, float]:
    """1-based ranks (lower, upper) whose order statistics bound the q-quantile with `confidence`
    each: the number of values below the quantile is Binomial(n, q)."""
    k = np.arange(n + 1, dtype=np.float64)
    cdf = special.bdtr(k, n, q)
    tail = 1.0 - confidence
    lower = float(np.searchsorted(cdf, tail, side="left"))  # the tail-quantile of Binomial(n, q)
    upper = float(np.searchsorted(cdf, confidence, side="left")) + 1.0
    return lower, upper


def _log_choose(n: float, k: NDArray[np.float64] | np.float64) -> NDArray[np.float64]:
    result: NDArray[np.float64] = special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)
    return result


def _shares(counts: Counts) -> Counts:
    shares: Counts = counts / counts.sum()
    return shares
