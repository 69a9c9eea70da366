"""The paired tests of a shadow step (analysis/paired_statistics.py, shadow_metrics.py): exact where
they claim it, their false-alarm rate within alpha on simulated identical models (fixed seeds,
tolerances from the binomial), more power than the unpaired test on the same number of canary
requests, and the judged verdicts from the counts the stable pods' tee exports."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from modelramp.operator.analysis.context import QueryResult, RolloutContext, Sample
from modelramp.operator.analysis.drift import population_stability_index
from modelramp.operator.analysis.judging import judge, plan_queries
from modelramp.operator.analysis.paired_statistics import (
    mcnemar_greater,
    paired_psi_with_upper,
    stuart_maxwell,
    symmetric_levels,
    wilcoxon_signed_rank_greater,
)
from modelramp.operator.analysis.statistics import mann_whitney_greater
from modelramp.operator.api.analysis import Metric, effective_metric
from modelramp.serving.metrics import _LATENCY_BUCKETS
from modelramp.serving.shadow_metrics import RATIO_BUCKETS

RATIO_BOUNDS = list(RATIO_BUCKETS)
# The serving latency buckets (1.5x apart), as the tee's duration histograms use them.
LATENCY = list(_LATENCY_BUCKETS)
EDGES = [round(0.1 * step, 1) for step in range(11)]
ALPHA = 0.01
RUNS = 2000
# The rejections of a test at ALPHA over RUNS null runs: within 4 standard deviations of a
# Binomial(RUNS, ALPHA) mean (a valid test may also be conservative, below it).
MOST_REJECTIONS = RUNS * ALPHA + 4 * math.sqrt(RUNS * ALPHA * (1 - ALPHA))


def ratio_histogram(canary: np.ndarray, stable: np.ndarray) -> np.ndarray:
    """Counts of canary/stable per request in the tee's buckets (le), +Inf last."""
    ratios = canary / stable
    index = np.searchsorted(RATIO_BOUNDS, ratios, side="left")
    return np.bincount(index, minlength=len(RATIO_BOUNDS) + 1).astype(np.float64)


def latency_pairs(rng: np.random.Generator, n: int, slowdown: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Server times on the same requests: a request's own size sets most of it (lognormal sigma 0.6,
    shared by both tracks), each server adds its own noise (sigma 0.15)."""
    size = rng.lognormal(np.log(0.02), 0.6, n)
    return size * rng.lognormal(0, 0.15, n) * slowdown, size * rng.lognormal(0, 0.15, n)


def test_mcnemar_is_the_exact_binomial_tail() -> None:
    assert mcnemar_greater(0, 0) == 1.0
    assert mcnemar_greater(0, 9) == 1.0
    assert mcnemar_greater(7, 1) == pytest.approx(stats.binomtest(7, 8, 0.5, alternative="greater").pvalue)
    assert mcnemar_greater(30, 12) == pytest.approx(
        stats.binomtest(30, 42, 0.5, alternative="greater").pvalue
    )


def test_ratio_buckets_must_be_symmetric_around_one() -> None:
    assert symmetric_levels(RATIO_BOUNDS) == 24
    with pytest.raises(ValueError, match="not reciprocal"):
        symmetric_levels([0.5, 1.0, 3.0])
    with pytest.raises(ValueError, match="middle"):
        symmetric_levels([0.5, 0.9, 2.0])


def test_signed_rank_false_alarms_stay_within_alpha_for_an_identical_canary() -> None:
    rng = np.random.default_rng(7)
    rejected = 0
    for _ in range(RUNS):
        canary, stable = latency_pairs(rng, 200)
        p_value, _ = wilcoxon_signed_rank_greater(RATIO_BOUNDS, ratio_histogram(canary, stable))
        rejected += p_value <= ALPHA
    assert rejected <= MOST_REJECTIONS


def test_signed_rank_on_pairs_sees_a_10_percent_slowdown_the_unpaired_test_misses() -> None:
    rng = np.random.default_rng(11)
    paired = unpaired = 0
    runs = 300
    bins = np.array([*LATENCY, math.inf])
    for _ in range(runs):
        canary, stable = latency_pairs(rng, 200, slowdown=1.10)
        paired += wilcoxon_signed_rank_greater(RATIO_BOUNDS, ratio_histogram(canary, stable))[0] <= ALPHA
        # The unpaired test on the same number of canary requests, against 3x as many of stable's.
        other_canary, _ = latency_pairs(rng, 200, slowdown=1.10)
        _, other_stable = latency_pairs(rng, 600)
        c = np.bincount(np.searchsorted(bins, other_canary), minlength=len(bins)).astype(float)
        s = np.bincount(np.searchsorted(bins, other_stable), minlength=len(bins)).astype(float)
        unpaired += mann_whitney_greater(c, s)[0] <= ALPHA
    # Binomial(300, p): at 300 runs a power of 90 % reads above 0.85 and one of 30 % below 0.4.
    assert paired / runs > 0.85
    assert unpaired / runs < 0.4


def joint_table(stable: np.ndarray, canary: np.ndarray) -> np.ndarray:
    k = len(EDGES) + 1
    s = np.searchsorted(EDGES, stable, side="left")
    c = np.searchsorted(EDGES, canary, side="left")
    table = np.zeros((k, k))
    np.add.at(table, (s, c), 1.0)
    return table


def test_identical_models_put_every_row_on_the_diagonal_and_drift_nothing() -> None:
    scores = np.random.default_rng(3).beta(2, 5, 300)
    table = joint_table(scores, scores)
    assert stuart_maxwell(table) == (0.0, 0, 1.0)
    assert paired_psi_with_upper(table, 0.9) == (0.0, 0.0)


def test_stuart_maxwell_false_alarms_stay_within_alpha_for_a_noisy_retrain() -> None:
    """A retrained model no better and no worse: each score moves by noise, symmetric in law."""
    rng = np.random.default_rng(5)
    rejected = 0
    for _ in range(RUNS):
        latent = rng.normal(-1.0, 1.0, 200)
        stable = 1 / (1 + np.exp(-(latent + rng.normal(0, 0.2, 200))))
        canary = 1 / (1 + np.exp(-(latent + rng.normal(0, 0.2, 200))))
        rejected += stuart_maxwell(joint_table(stable, canary))[2] <= ALPHA
    assert rejected <= MOST_REJECTIONS


def test_stuart_maxwell_on_two_buckets_is_mcnemars_chi_square() -> None:
    # 10 rows moved up a bucket, 2 down: (10 - 2)^2 / 12 on 1 degree of freedom.
    statistic, df, p_value = stuart_maxwell(np.array([[50.0, 10.0], [2.0, 40.0]]))
    assert (statistic, df) == (pytest.approx(64 / 12), 1)
    assert p_value == pytest.approx(stats.chi2.sf(64 / 12, 1))


def test_paired_psi_is_near_zero_for_a_noisy_retrain_where_the_raw_psi_is_not() -> None:
    rng = np.random.default_rng(5)
    corrected, raw = [], []
    for _ in range(100):
        latent = rng.normal(-1.0, 1.0, 200)
        stable = 1 / (1 + np.exp(-(latent + rng.normal(0, 0.2, 200))))
        canary = 1 / (1 + np.exp(-(latent + rng.normal(0, 0.2, 200))))
        table = joint_table(stable, canary)
        corrected.append(paired_psi_with_upper(table, 0.9)[0])
        raw.append(population_stability_index(stable=table.sum(axis=1), canary=table.sum(axis=0)))
    # Measured: 0.007 corrected (what smoothing leaves), 0.034 raw, on 200 rows.
    assert np.mean(corrected) < 0.015
    assert np.mean(raw) > 0.02


def test_stuart_maxwell_sees_a_small_shift_on_the_same_requests() -> None:
    rng = np.random.default_rng(9)
    caught = 0
    runs = 200
    for _ in range(runs):
        latent = rng.normal(-1.0, 1.0, 200)
        stable = 1 / (1 + np.exp(-(latent + rng.normal(0, 0.1, 200))))
        canary = 1 / (1 + np.exp(-(latent + 0.15 + rng.normal(0, 0.1, 200))))
        caught += stuart_maxwell(joint_table(stable, canary))[2] <= ALPHA
    assert caught / runs > 0.9


# --- judged from the tee's series ---------------------------------------------------------------------

CONTEXT = RolloutContext(name="web", namespace="ml", canary_revision="c1", stable_revision="s1")


def metric(**fields: object) -> Metric:
    return Metric.model_validate({"name": "m", "interval": "1m", **fields})


def paired(m: Metric) -> object:
    return effective_metric(m, None, 3, paired=True)


def vector(*rows: tuple[dict[str, str], float]) -> QueryResult:
    return QueryResult(
        kind="vector", samples=tuple(Sample(labels=labels, value=value) for labels, value in rows)
    )


def test_paired_queries_read_stable_s_series_of_the_canary_revision() -> None:
    queries = plan_queries(paired(metric(builtin="error-rate", threshold=0.02)), CONTEXT)  # type: ignore[arg-type]
    assert queries == {
        "pairs": 'sum by (stable, canary) (increase(modelramp_shadow_requests_total{namespace="ml",'
        'modeldeployment="web",track="stable",version="s1",canary_version="c1"}[60s]))'
    }


def test_error_rate_on_pairs_passes_a_clean_canary_and_fails_one_that_breaks_stables_good_requests() -> None:
    m = paired(metric(builtin="error-rate", threshold=0.02))
    queries = plan_queries(m, CONTEXT)  # type: ignore[arg-type]
    good = {
        "pairs": vector(({"stable": "ok", "canary": "ok"}, 400), ({"stable": "error", "canary": "error"}, 2))
    }
    verdict = judge(m, queries, good)  # type: ignore[arg-type]
    assert verdict.verdict == "Successful" and verdict.test is not None
    assert verdict.test.test == "mcnemar-exact" and verdict.test.p_value == 1.0
    bad = {
        "pairs": vector(({"stable": "ok", "canary": "ok"}, 370), ({"stable": "ok", "canary": "error"}, 30))
    }
    verdict = judge(m, queries, bad)  # type: ignore[arg-type]
    assert verdict.verdict == "Failed" and verdict.evidence is not None
    assert verdict.evidence.paired is not None and verdict.evidence.paired.canary_only == 30


def cumulative(
    counts: np.ndarray, bounds: list[float], extra: dict[str, str]
) -> list[tuple[dict[str, str], float]]:
    edges = [*(repr(b) for b in bounds), "+Inf"]
    return [({**extra, "le": le}, float(total)) for le, total in zip(edges, np.cumsum(counts), strict=True)]


def latency_results(canary: np.ndarray, stable: np.ndarray) -> dict[str, QueryResult]:
    bins = np.array([*LATENCY, math.inf])
    per_side = [
        row
        for side, values in (("stable", stable), ("canary", canary))
        for row in cumulative(
            np.bincount(np.searchsorted(bins, values), minlength=len(bins)), LATENCY, {"side": side}
        )
    ]
    ratio = cumulative(ratio_histogram(canary, stable), RATIO_BOUNDS, {})
    return {"ratio": vector(*ratio), "durations": vector(*per_side)}


def test_latency_on_pairs_is_judged_by_the_signed_rank_test() -> None:
    m = paired(metric(builtin="latency-p95", maxRatioToStable=1.5))
    queries = plan_queries(m, CONTEXT)  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    same = judge(m, queries, latency_results(*latency_pairs(rng, 400)))  # type: ignore[arg-type]
    assert same.test is not None and same.test.test == "wilcoxon-signed-rank"
    assert same.verdict == "Successful"
    slow = judge(m, queries, latency_results(*latency_pairs(rng, 400, slowdown=2.0)))  # type: ignore[arg-type]
    assert slow.verdict == "Failed"


def drift_results(stable: np.ndarray, canary: np.ndarray) -> dict[str, QueryResult]:
    table = joint_table(stable, canary)
    labels = [*(repr(edge) for edge in EDGES), "+Inf"]
    return {
        "joint": vector(
            *(
                ({"stable_le": labels[i], "canary_le": labels[j]}, float(table[i, j]))
                for i in range(len(labels))
                for j in range(len(labels))
            )
        )
    }


def test_prediction_drift_on_pairs_passes_an_identical_model_on_few_requests() -> None:
    m = paired(metric(builtin="prediction-drift", threshold=0.1, minSamples=50))
    queries = plan_queries(m, CONTEXT)  # type: ignore[arg-type]
    scores = np.random.default_rng(2).beta(2, 5, 60)
    verdict = judge(m, queries, drift_results(scores, scores))  # type: ignore[arg-type]
    assert verdict.verdict == "Successful" and verdict.test is not None
    assert verdict.test.test == "stuart-maxwell" and verdict.test.upper == 0.0
    shifted = np.clip(scores + 0.3, 0, 1)
    verdict = judge(m, queries, drift_results(scores, shifted))  # type: ignore[arg-type]
    assert verdict.verdict == "Failed"


def test_input_drift_has_no_paired_form() -> None:
    m = paired(metric(builtin="input-drift", threshold=0.1))
    queries = plan_queries(m, CONTEXT)  # type: ignore[arg-type]
    assert queries == {}
    verdict = judge(m, queries, {})  # type: ignore[arg-type]
    assert verdict.verdict == "Error" and "no paired form" in verdict.message


def test_the_tees_ratio_buckets_are_symmetric() -> None:
    assert symmetric_levels(RATIO_BOUNDS) == 24
