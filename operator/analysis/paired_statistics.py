"""The tests behind a shadow step's verdicts: canary and stable answered the same requests.

Pairing removes what the requests themselves contribute (an input both models fail on, a large
batch both are slow on, a score both give), so what is left is the models' difference alone. Each
function works on the counts Prometheus keeps and says what it controls:
- `mcnemar_greater`: does the canary fail requests stable answers more often than the reverse?
  Exact: under "no worse", a request only one track failed is the canary's with probability 1/2,
  whatever the requests and at any traffic.
- `wilcoxon_signed_rank_greater`: is the canary's duration over stable's on the same request
  above 1 more often and by more than below? The signed-rank test on the bucketed log ratio: the
  buckets are symmetric around 1, their magnitudes are the ranks (tied within a bucket, mid-ranks,
  tie-corrected variance). Valid when, for a canary no slower, a request's ratio r is as likely as
  1/r (the two tracks exchangeable on it).
- `stuart_maxwell`: do the canary's scores follow another distribution than stable's on the same
  requests? The test of marginal homogeneity of the k x k table (stable's bucket x the canary's),
  sparse buckets merged; identical models put every row on the diagonal and give 0.
- `paired_psi_with_upper`: PSI between the two margins, less its mean when the margins agree with
  the same pairing (drawn from the symmetrised table), and its bootstrap upper bound.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import special

from modelramp.operator.analysis.drift import population_stability_index
from modelramp.operator.analysis.statistics import MIN_EXPECTED, PSI_BOOTSTRAP, _psi_rows, whole

Counts = NDArray[np.float64]


def mcnemar_greater(canary_only: int, stable_only: int) -> float:
    """One-sided exact p-value that the canary fails more of the requests only one track failed:
    P(X >= canary_only) for X ~ Binomial(canary_only + stable_only, 1/2)."""
    discordant = canary_only + stable_only
    if canary_only <= 0 or discordant <= 0:
        return 1.0
    return float(special.bdtrc(canary_only - 1, discordant, 0.5))


def discordant_ratio_upper(canary_only: int, stable_only: int, both: int, confidence: float) -> float:
    """Upper confidence bound on (canary's errors / stable's) = (both + canary_only) / (both +
    stable_only), from the Clopper-Pearson upper bound u of the canary's share of the discordant
    pairs (given their number d): (both + u d) / (both + (1 - u) d)."""
    discordant = canary_only + stable_only
    if discordant == 0:
        return 1.0 if both > 0 else math.inf
    share = _share_upper(canary_only, discordant, confidence)
    denominator = both + (1.0 - share) * discordant
    return math.inf if denominator <= 0 else (both + share * discordant) / denominator


def _share_upper(successes: int, trials: int, confidence: float) -> float:
    if successes >= trials:
        return 1.0
    return float(special.betaincinv(successes + 1, trials - successes, confidence))


def symmetric_levels(bounds: list[float]) -> int:
    """K when `bounds` are 2K + 1 ratios symmetric around 1 (b[K] = 1, b[K - j] = 1 / b[K + j]);
    raises ValueError otherwise: the signed-rank test needs a bucket for r beside one for 1/r."""
    if len(bounds) % 2 != 1:
        raise ValueError(f"the ratio buckets must be symmetric around 1, got {len(bounds)} bounds")
    middle = len(bounds) // 2
    if not math.isclose(bounds[middle], 1.0):
        raise ValueError(f"the middle ratio bound must be 1, got {bounds[middle]:g}")
    for step in range(1, middle + 1):
        if not math.isclose(bounds[middle - step] * bounds[middle + step], 1.0, rel_tol=1e-6):
            raise ValueError(
                f"ratio bounds {bounds[middle - step]:g} and {bounds[middle + step]:g} are not reciprocal"
            )
    return middle


def wilcoxon_signed_rank_greater(ratio_bounds: list[float], ratio: Counts) -> tuple[float, float]:
    """(one-sided p-value that the canary is slower, the share of pairs where it was) from the
    histogram of canary/stable duration ratios over `ratio_bounds` (symmetric around 1) plus +Inf.

    Bucket K (upper bound 1) holds the ratios just at or under 1 and bucket K + 1 those just over:
    magnitude m counts buckets K - m (faster) and K + 1 + m (slower). Normal approximation with
    tie and continuity corrections."""
    levels = symmetric_levels(ratio_bounds)
    faster = np.array([ratio[levels - m] for m in range(levels + 1)], dtype=np.float64)
    slower = np.array([ratio[levels + 1 + m] for m in range(levels + 1)], dtype=np.float64)
    ties = faster + slower
    n = float(ties.sum())
    if n <= 0:
        return 1.0, 0.5
    midranks = np.cumsum(ties) - ties + (ties + 1.0) / 2.0
    w_plus = float(np.dot(slower, midranks))
    mean = n * (n + 1.0) / 4.0
    variance = n * (n + 1.0) * (2.0 * n + 1.0) / 24.0 - float(np.sum(ties**3 - ties)) / 48.0
    share = float(slower.sum()) / n
    if variance <= 0:
        return 1.0, share
    z = (w_plus - mean - 0.5) / math.sqrt(variance)
    return float(special.ndtr(-z)), share


def merge_sparse_square(joint: Counts) -> Counts:
    """The k x k table with adjacent buckets merged (on both axes alike) until each merged bucket
    holds at least MIN_EXPECTED rows in stable's margin and in the canary's; at least one bucket."""
    rows, cols = joint.sum(axis=1), joint.sum(axis=0)
    groups: list[list[int]] = []
    run: list[int] = []
    run_rows = run_cols = 0.0
    for index in range(len(rows)):
        run.append(index)
        run_rows, run_cols = run_rows + float(rows[index]), run_cols + float(cols[index])
        if min(run_rows, run_cols) >= MIN_EXPECTED:
            groups.append(run)
            run, run_rows, run_cols = [], 0.0, 0.0
    if run:
        if groups:
            groups[-1] += run
        else:
            groups = [run]
    merged = np.zeros((len(groups), len(groups)), dtype=np.float64)
    for i, row_group in enumerate(groups):
        for j, col_group in enumerate(groups):
            merged[i, j] = joint[np.ix_(row_group, col_group)].sum()
    return merged


def stuart_maxwell(joint: Counts) -> tuple[float, int, float]:
    """(statistic, degrees of freedom, p-value) of the test that the canary's margin (columns)
    equals stable's (rows), on the merged table: d' V^+ d with d the margins' differences and V
    their covariance under homogeneity (Stuart 1955; Maxwell 1970), the pseudo-inverse for a
    bucket no discordant pair touches."""
    merged = merge_sparse_square(joint)
    k = merged.shape[0]
    if k < 2:
        return 0.0, 0, 1.0
    rows, cols = merged.sum(axis=1), merged.sum(axis=0)
    difference = (rows - cols)[:-1]
    symmetric = merged + merged.T
    covariance = -symmetric[:-1, :-1].copy()
    np.fill_diagonal(covariance, (rows + cols - 2.0 * np.diag(merged))[:-1])
    rank = int(np.linalg.matrix_rank(covariance))
    if rank == 0:
        return 0.0, 0, 1.0
    statistic = float(difference @ np.linalg.pinv(covariance) @ difference)
    return statistic, rank, float(special.chdtrc(rank, statistic))


def paired_psi_with_upper(joint: Counts, confidence: float) -> tuple[float, float]:
    """(bias-corrected PSI of the canary's margin against stable's, its upper confidence bound).

    The bias is PSI's mean when both margins agree with the pairing observed: pairs drawn from the
    symmetrised table (T + T') / 2, whose margins are equal; the bound a parametric bootstrap of
    pairs from T itself, less the same mean. Seeded by the counts, so the same evidence always
    gives the same numbers."""
    k = joint.shape[0]
    n = whole(float(joint.sum()))
    if n == 0:
        return 0.0, 0.0
    cells = joint.reshape(-1)
    generator = np.random.default_rng([int(v) for v in cells.round() % (2**31)])
    symmetric = ((joint + joint.T) / 2.0).reshape(-1)
    null = _margins_psi(generator.multinomial(n, symmetric / symmetric.sum(), size=PSI_BOOTSTRAP), k)
    observed = _margins_psi(generator.multinomial(n, cells / cells.sum(), size=PSI_BOOTSTRAP), k)
    bias = float(np.mean(null))
    raw = population_stability_index(stable=joint.sum(axis=1), canary=joint.sum(axis=0))
    return max(raw - bias, 0.0), max(float(np.quantile(observed, confidence)) - bias, 0.0)


def _margins_psi(draws: NDArray[np.int64], k: int) -> Counts:
    tables = draws.reshape(-1, k, k)
    return _psi_rows(tables.sum(axis=1), tables.sum(axis=2))
