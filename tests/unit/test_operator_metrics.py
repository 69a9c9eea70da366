"""The operator's own metrics: time to promote and to roll back, and each analysis metric's latest
value and bound, read back through a Prometheus registry as a scrape would see them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from modelramp.operator.api.status import Measurement, ModelDeploymentStatus, ModelLineage, ResolvedModel
from modelramp.operator.cache import Key
from modelramp.operator.metrics import OperatorMetrics

NOW = datetime(2026, 5, 9, 12, 0, tzinfo=UTC)
STARTED = NOW - timedelta(seconds=95)
V1 = ResolvedModel(uri="file:///m/v1.pt", resolved_uri="file:///m/v1.pt")
V2 = ResolvedModel(uri="file:///m/v2.pt", resolved_uri="file:///m/v2.pt")
ROLLING = ModelDeploymentStatus(
    phase="Progressing", stable_model=V1, canary_model=V2, canary_revision="b", rollout_start_time=STARTED
)
KEY = Key("ml", "fraud")


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> OperatorMetrics:
    return OperatorMetrics(registry)


def sample(registry: CollectorRegistry, series: str, **labels: str) -> float | None:
    return registry.get_sample_value(series, labels)


def test_promotion_and_rollback_times_are_observed_once_each(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    promoted = ModelDeploymentStatus(phase="Healthy", stable_model=V2, rollout_start_time=STARTED)
    metrics.transition(ROLLING, promoted, NOW)
    metrics.transition(promoted, promoted, NOW)  # the next tick: nothing ended
    assert sample(registry, "modelramp_rollout_promotion_duration_seconds_count") == 1
    assert sample(registry, "modelramp_rollout_promotion_duration_seconds_sum") == 95
    assert sample(registry, "modelramp_rollout_promotion_duration_seconds_bucket", le="120.0") == 1
    assert sample(registry, "modelramp_rollout_promotion_duration_seconds_bucket", le="60.0") == 0
    assert sample(registry, "modelramp_rollout_rollback_duration_seconds_count") == 0

    rolled_back = ROLLING.model_copy(update={"phase": "RolledBack", "abort": True})
    metrics.transition(ROLLING, rolled_back, NOW + timedelta(seconds=5))
    metrics.transition(rolled_back, rolled_back, NOW + timedelta(seconds=9))
    assert sample(registry, "modelramp_rollout_rollback_duration_seconds_count") == 1
    assert sample(registry, "modelramp_rollout_rollback_duration_seconds_sum") == 100


def test_a_step_that_is_not_the_end_observes_nothing(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    promoting = ROLLING.model_copy(update={"phase": "Promoting", "stable_model": V2})
    metrics.transition(ROLLING, promoting, NOW)
    metrics.transition(ROLLING, ROLLING.model_copy(update={"canary_weight": 50}), NOW)
    assert sample(registry, "modelramp_rollout_promotion_duration_seconds_count") == 0
    assert sample(registry, "modelramp_rollout_rollback_duration_seconds_count") == 0


def measurement(value: float | None, threshold: float | None, metric: str = "error-rate") -> Measurement:
    verdict = "Inconclusive" if value is None else "Successful"
    return Measurement.model_validate(
        {"metric": metric, "value": value, "threshold": threshold, "verdict": verdict, "time": NOW}
    )


def test_the_latest_measurement_is_published_with_its_bound(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    labels = {"namespace": "ml", "name": "fraud", "metric": "error-rate"}
    metrics.measured(KEY, measurement(0.02, 0.05))
    metrics.measured(KEY, measurement(0.03, 0.05))
    metrics.measured(KEY, measurement(120.0, 250.0, metric="latency-p99"))
    assert sample(registry, "modelramp_analysis_measurement_value", **labels) == 0.03
    assert sample(registry, "modelramp_analysis_measurement_threshold", **labels) == 0.05

    # No data is no number, never a 0.
    metrics.measured(KEY, measurement(None, 0.05))
    assert sample(registry, "modelramp_analysis_measurement_value", **labels) is None
    assert sample(registry, "modelramp_analysis_measurement_threshold", **labels) == 0.05

    metrics.forget(KEY)
    for series in ("modelramp_analysis_measurement_value", "modelramp_analysis_measurement_threshold"):
        for metric in ("error-rate", "latency-p99"):
            assert sample(registry, series, **{**labels, "metric": metric}) is None


def test_each_track_publishes_its_registry_version_and_run_until_it_serves_another(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    v7 = ResolvedModel(
        uri="models:/fraud@champion",
        resolved_uri="models:/fraud/7",
        version="7",
        lineage=ModelLineage(run_id="run-7"),
    )
    v8 = ResolvedModel(uri="models:/fraud@champion", resolved_uri="models:/fraud/8", version="8")
    labels = {"namespace": "ml", "name": "fraud"}
    rolling = ModelDeploymentStatus(stable_model=v7, canary_model=v8, canary_revision="b")
    metrics.models(KEY, rolling)
    series = "modelramp_rollout_model_info"
    assert sample(registry, series, **labels, track="stable", version="7", run_id="run-7") == 1
    assert sample(registry, series, **labels, track="canary", version="8", run_id="") == 1

    metrics.models(KEY, ModelDeploymentStatus(stable_model=v8, canary_model=v8))
    assert sample(registry, series, **labels, track="stable", version="7", run_id="run-7") is None
    assert sample(registry, series, **labels, track="canary", version="8", run_id="") is None
    assert sample(registry, series, **labels, track="stable", version="8", run_id="") == 1

    # A model outside the registry has no version to show; a deleted ModelDeployment shows none.
    metrics.models(Key("ml", "plain"), ROLLING)
    assert not [
        s for m in registry.collect() if m.name == series for s in m.samples if s.labels["name"] == "plain"
    ]
    metrics.forget(KEY)
    assert sample(registry, series, **labels, track="stable", version="8", run_id="") is None
