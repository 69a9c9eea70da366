"""input-drift: live inputs per feature against the model's input reference, read from the two
queries, pooled over windows, judged with Bonferroni across features (fixed seeds)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelramp.operator.analysis import input_drift
from modelramp.operator.analysis.context import QueryResult, RolloutContext, Sample
from modelramp.operator.analysis.evidence import EvidenceError
from modelramp.operator.analysis.judging import judge, plan_queries
from modelramp.operator.api.analysis import EffectiveMetric, Metric, effective_metric
from modelramp.operator.api.status import Evidence, FeatureCounts

CONTEXT = RolloutContext(name="fraud", namespace="ml", track="stable")
BOUNDS = [-1.0, -0.5, 0.0, 0.5, 1.0]
# Standard-normal shares of the six buckets (the last is +Inf).
SHARES = np.diff([0.0, *(0.5 * (1 + math.erf(b / math.sqrt(2))) for b in BOUNDS), 1.0])
REFERENCE_ROWS = 5000


def metric(threshold: float = 0.25, count: int = 10, rate: float = 0.01) -> EffectiveMetric:
    spec = Metric.model_validate(
        {"name": "inputs", "builtin": "input-drift", "threshold": threshold, "count": count}
    )
    effective = effective_metric(spec, None)
    return EffectiveMetric(**{**effective.__dict__, "alpha": rate / count})


def cumulative(by_feature: dict[str, list[float]], extra: dict[str, str] | None = None) -> QueryResult:
    """Per-bucket counts per feature as the cumulative `le` samples Prometheus returns."""
    samples = []
    for name, counts in by_feature.items():
        for le, total in zip([*map(str, BOUNDS), "+Inf"], np.cumsum(counts), strict=True):
            samples.append(Sample(labels={"feature": name, "le": le, **(extra or {})}, value=float(total)))
    return QueryResult(kind="vector", samples=tuple(samples))


def evidence(live: dict[str, list[float]], reference: dict[str, list[float]]) -> Evidence:
    return input_drift.read(
        {input_drift.LIVE: cumulative(live), input_drift.REFERENCE: cumulative(reference)}
    )


def reference_counts(features: int) -> dict[str, list[float]]:
    return {f"f{i}": list(SHARES * REFERENCE_ROWS) for i in range(features)}


def test_the_queries_read_the_measured_track_and_its_reference() -> None:
    queries = plan_queries(metric(), CONTEXT)
    selector = 'namespace="ml",modeldeployment="fraud",track="stable"'
    assert queries == {
        "value": f"sum by (feature, le) (increase(modelramp_input_bucket{{{selector}}}[60s]))",
        "reference": f"max by (feature, le) (modelramp_input_reference{{{selector}}})",
    }


def test_a_window_is_read_per_feature_and_bucket() -> None:
    read = evidence({"a": [1, 2, 3, 4, 5, 6]}, {"a": [10, 20, 30, 40, 50, 60], "b": [1] * 6})
    assert read.windows == 1
    assert read.features == [
        FeatureCounts(name="a", bounds=BOUNDS, live=[1, 2, 3, 4, 5, 6], reference=[10, 20, 30, 40, 50, 60]),
        FeatureCounts(name="b", bounds=BOUNDS, live=[0.0] * 6, reference=[1] * 6),
    ]
    assert (read.canary.total, read.stable.total) == (21, 210)


def test_without_a_reference_the_error_says_how_to_ship_one() -> None:
    with pytest.raises(EvidenceError, match="--input-reference"):
        evidence({"a": [1] * 6}, {})
    effective = metric()
    results = {
        input_drift.LIVE: cumulative({"a": [1] * 6}),
        input_drift.REFERENCE: QueryResult(kind="vector"),
    }
    judgement = judge(effective, plan_queries(effective, CONTEXT), results)
    assert judgement.verdict == "Error"
    assert "modelramp_input_reference" in judgement.message


def test_live_buckets_other_than_the_reference_are_refused() -> None:
    live = cumulative({"a": [1] * 6})
    moved = [
        sample.model_copy(update={"labels": {**sample.labels, "le": "7"}})
        if sample.labels["le"] == "1.0"
        else sample
        for sample in live.samples
    ]
    other = QueryResult(kind="vector", samples=tuple(moved))
    with pytest.raises(EvidenceError, match="feature 'a'"):
        input_drift.read({input_drift.LIVE: other, input_drift.REFERENCE: live})


def test_pooling_adds_the_live_rows_and_keeps_one_reference() -> None:
    reference = {"a": [100.0] * 6}
    first = evidence({"a": [1, 0, 0, 0, 0, 1]}, reference)
    second = evidence({"a": [0, 2, 0, 0, 0, 1]}, reference)
    pooled = input_drift.pool(input_drift.pool(None, first), second)
    assert pooled.windows == 2
    assert pooled.features[0].live == [1, 2, 0, 0, 0, 2]
    assert pooled.features[0].reference == [100.0] * 6
    assert (pooled.canary.total, pooled.stable.total) == (5, 600)


def simulated_outcome(
    generator: np.random.Generator, effective: EffectiveMetric, live_rows: int, shifted: dict[str, float]
) -> tuple[str, list[str]]:
    """One measurement on `live_rows` rows whose features `shifted` have their mean moved."""
    live = {}
    for i in range(8):
        name = f"f{i}"
        values = generator.normal(loc=shifted.get(name, 0.0), size=live_rows)
        live[name] = list(np.bincount(np.searchsorted(BOUNDS, values), minlength=6).astype(float))
    outcome = input_drift.assess(effective, evidence(live, reference_counts(8)))
    return outcome.decision, [score.name for score in outcome.worst_features]


def test_eight_undrifted_features_raise_no_more_alarms_than_one_feature_would() -> None:
    """Null: live rows drawn from the reference's own distribution. A tiny threshold leaves the
    test alone to decide, so the alarm rate is the test's level: at most alpha = 0.05 with the
    Bonferroni correction (about 1 - 0.95^8 = 34 % without). 1000 repetitions: the binomial's sd
    at 5 % is 0.7 %, so 8 % is beyond 4 sd."""
    generator = np.random.default_rng(20261202)
    effective = metric(threshold=1e-9, count=1, rate=0.05)
    alarms = sum(simulated_outcome(generator, effective, 200, {})[0] == "Worse" for _ in range(1000))
    assert alarms / 1000 <= 0.08


def test_one_shifted_feature_is_caught_and_named_first() -> None:
    """A half-sd shift of one feature of eight (true PSI 0.23 on these buckets, over twice the
    threshold 0.1) is caught on 300 rows at the per-measurement alpha of a 1 % budget over 10
    measurements, Bonferroni over the 8 features; 100 repetitions, >= 95 caught."""
    generator = np.random.default_rng(7)
    effective = metric(threshold=0.1)
    outcomes = [simulated_outcome(generator, effective, 300, {"f5": 0.5}) for _ in range(100)]
    assert sum(decision == "Worse" for decision, _ in outcomes) >= 95
    assert all(worst[0] == "f5" for decision, worst in outcomes if decision == "Worse")


def test_undrifted_inputs_are_shown_within_the_threshold() -> None:
    generator = np.random.default_rng(3)
    effective = metric(threshold=0.1)
    outcomes = [simulated_outcome(generator, effective, 2000, {})[0] for _ in range(50)]
    assert outcomes.count("WithinBound") >= 48
    assert "Worse" not in outcomes


def test_the_message_names_the_worst_features() -> None:
    effective = metric(threshold=0.1)
    live = {f"f{i}": list(SHARES * 400) for i in range(3)}
    live["f2"] = [300.0, 20, 20, 20, 20, 20]
    results = {input_drift.LIVE: cumulative(live), input_drift.REFERENCE: cumulative(reference_counts(3))}
    judgement = judge(effective, plan_queries(effective, CONTEXT), results)
    assert judgement.verdict == "Failed"
    assert "drifted from the reference" in judgement.message
    assert "worst: f2 (PSI" in judgement.message
    assert "400 live / 5000 reference" in judgement.message
