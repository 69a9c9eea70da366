"""The operator's own Prometheus metrics (`--metrics-port`): reconciles, their duration, rollouts by
phase, the canary weight of each ModelDeployment, the registry version and run each track serves,
how long rollouts took to be promoted or rolled back, and the latest value and bound of each
analysis metric. Analysis measurements are counted by `modelramp.operator.analysis.telemetry` in
the same registry.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from modelramp.operator.api.status import Measurement, ModelDeploymentStatus, Phase, ResolvedModel
from modelramp.operator.cache import Key
from modelramp.operator.rollout.outcome import rollout_outcome

# Rollouts take from seconds (a blue-green switch) to a day (long canary pauses).
ROLLOUT_BUCKETS: Final = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400)

PHASES: tuple[Phase, ...] = (
    "Initializing",
    "Progressing",
    "Paused",
    "Promoting",
    "Healthy",
    "Degraded",
    "RolledBack",
    "Failed",
)


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.reconciles = Counter(
            "modelramp_reconcile",
            "Reconciles of a ModelDeployment, by result (unchanged, changed, conflict, error).",
            ["result"],
            registry=registry,
        )
        self.duration = Histogram(
            "modelramp_reconcile_duration_seconds",
            "Time to reconcile one ModelDeployment (observe, analyse, decide, apply).",
            registry=registry,
        )
        self.rollouts = Gauge(
            "modelramp_rollouts", "ModelDeployments by status.phase.", ["phase"], registry=registry
        )
        self.canary_weight = Gauge(
            "modelramp_canary_weight",
            "Percentage of traffic on the canary (status.canaryWeight).",
            ["namespace", "name"],
            registry=registry,
        )
        self.promotion_seconds = Histogram(
            "modelramp_rollout_promotion_duration_seconds",
            "Time from the start of a rollout (status.rolloutStartTime) to its promotion.",
            buckets=ROLLOUT_BUCKETS,
            registry=registry,
        )
        self.rollback_seconds = Histogram(
            "modelramp_rollout_rollback_duration_seconds",
            "Time from the start of a rollout to its rollback (by analysis, deadline or abort).",
            buckets=ROLLOUT_BUCKETS,
            registry=registry,
        )
        self.drifted = Gauge(
            "modelramp_input_drifted",
            "1 while spec.monitor's last decided run found stable's inputs drifted, 0 once shown within; "
            "absent before a verdict (status.drift, the Drifted condition).",
            ["namespace", "name"],
            registry=registry,
        )
        self.model_info = Gauge(
            "modelramp_rollout_model_info",
            "1 for the registry version and MLflow run each track serves (status.stableModel, and "
            "status.canaryModel during a rollout); absent for models outside the registry.",
            ["namespace", "name", "track", "version", "run_id"],
            registry=registry,
        )
        labels = ["namespace", "name", "metric"]
        self.measurement_value = Gauge(
            "modelramp_analysis_measurement_value",
            "The latest analysis measurement of each metric (absent while the query gives no number).",
            labels,
            registry=registry,
        )
        self.measurement_threshold = Gauge(
            "modelramp_analysis_measurement_threshold",
            "The bound the latest measurement of each metric was judged against.",
            labels,
            registry=registry,
        )
        self._phases: dict[Key, str] = {}
        self._metrics: dict[Key, set[str]] = {}
        self._models: dict[Key, set[tuple[str, str, str]]] = {}
        for phase in PHASES:
            self.rollouts.labels(phase=phase).set(0)

    def observe(self, key: Key, phase: str | None, canary_weight: int, drifted: bool | None = None) -> None:
        """Records the status of one ModelDeployment after a reconcile."""
        self.canary_weight.labels(namespace=key.namespace, name=key.name).set(canary_weight)
        if drifted is None:
            with contextlib.suppress(KeyError):
                self.drifted.remove(key.namespace, key.name)
        else:
            self.drifted.labels(namespace=key.namespace, name=key.name).set(1 if drifted else 0)
        if phase is None:
            self._phases.pop(key, None)
        else:
            self._phases[key] = phase
        self._publish_phases()

    def models(self, key: Key, status: ModelDeploymentStatus) -> None:
        """Publishes the registry version each track serves, with its run (the dashboard links
        the run to the MLflow UI); a version no longer served is removed."""
        tracks: dict[str, ResolvedModel | None] = {
            "stable": status.stable_model,
            "canary": status.canary_model if status.canary_revision else None,
        }
        served = {
            (track, model.version, (model.lineage.run_id if model.lineage else None) or "")
            for track, model in tracks.items()
            if model is not None and model.version is not None
        }
        for labels in self._models.get(key, set()) - served:
            self.model_info.remove(key.namespace, key.name, *labels)
        for labels in served:
            self.model_info.labels(key.namespace, key.name, *labels).set(1)
        self._models[key] = served

    def transition(self, old: ModelDeploymentStatus, new: ModelDeploymentStatus, now: datetime) -> None:
        """Records how long the rollout took when the written transition ended it."""
        outcome = rollout_outcome(old, new)
        if outcome is None or old.rollout_start_time is None:
            return
        seconds = max((now - old.rollout_start_time).total_seconds(), 0.0)
        (self.promotion_seconds if outcome == "promoted" else self.rollback_seconds).observe(seconds)

    def measured(self, key: Key, measurement: Measurement) -> None:
        """Publishes a measurement recorded in status as the metric's latest value and bound."""
        labels = (key.namespace, key.name, measurement.metric)
        self._metrics.setdefault(key, set()).add(measurement.metric)
        for gauge, value in (
            (self.measurement_value, measurement.value),
            (self.measurement_threshold, measurement.threshold),
        ):
            if value is None:
                with contextlib.suppress(KeyError):
                    gauge.remove(*labels)
            else:
                gauge.labels(*labels).set(value)

    def forget(self, key: Key) -> None:
        """The ModelDeployment is gone."""
        self._phases.pop(key, None)
        for gauge in (self.canary_weight, self.drifted):
            with contextlib.suppress(KeyError):
                gauge.remove(key.namespace, key.name)
        for labels in self._models.pop(key, set()):
            self.model_info.remove(key.namespace, key.name, *labels)
        for metric in self._metrics.pop(key, set()):
            for gauge in (self.measurement_value, self.measurement_threshold):
                with contextlib.suppress(KeyError):
                    gauge.remove(key.namespace, key.name, metric)
        self._publish_phases()

    def _publish_phases(self) -> None:
        counts: dict[str, int] = dict.fromkeys(PHASES, 0)
        for phase in self._phases.values():
            counts[phase] = counts.get(phase, 0) + 1
        for phase, count in counts.items():
            self.rollouts.labels(phase=phase).set(count)
