"""The operator's own Prometheus metrics (`--metrics-port`): reconciles, their duration, rollouts by
phase and the canary weight of each ModelDeployment. Analysis measurements are counted by
`modelramp.operator.analysis.telemetry` in the same registry.
"""

from __future__ import annotations

import contextlib

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from modelramp.operator.api.status import Phase
from modelramp.operator.cache import Key

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
        self._phases: dict[Key, str] = {}
        for phase in PHASES:
            self.rollouts.labels(phase=phase).set(0)

    def observe(self, key: Key, phase: str | None, canary_weight: int) -> None:
        """Records the status of one ModelDeployment after a reconcile."""
        self.canary_weight.labels(namespace=key.namespace, name=key.name).set(canary_weight)
        if phase is None:
            self._phases.pop(key, None)
        else:
            self._phases[key] = phase
        self._publish_phases()

    def forget(self, key: Key) -> None:
        """The ModelDeployment is gone."""
        self._phases.pop(key, None)
        with contextlib.suppress(KeyError):
            self.canary_weight.remove(key.namespace, key.name)
        self._publish_phases()

    def _publish_phases(self) -> None:
        counts: dict[str, int] = dict.fromkeys(PHASES, 0)
        for phase in self._phases.values():
            counts[phase] = counts.get(phase, 0) + 1
        for phase, count in counts.items():
            self.rollouts.labels(phase=phase).set(count)
