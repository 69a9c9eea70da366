"""The operator's own metrics about analysis: every measurement, by metric and verdict.

Kept apart from the pure analysis modules because it holds process-wide counters; the operator
calls `count_measurement` once per measurement it records in status.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from modelramp.operator.api.status import Measurement


class AnalysisTelemetry:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.measurements = Counter(
            "modelramp_analysis_measurements_total",
            "Analysis measurements taken by the operator, by metric name and verdict.",
            ["metric", "verdict"],
            registry=registry,
        )

    def count_measurement(self, measurement: Measurement) -> None:
        self.measurements.labels(metric=measurement.metric, verdict=measurement.verdict).inc()
