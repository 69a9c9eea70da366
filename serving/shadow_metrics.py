"""The series a stable pod's shadow tee exports: what stable and the canary did with the same
requests (docs/architecture.md, "Shadow metrics"), which the operator's shadow step judges.

Every series carries `canary_version` (the canary's own answer says it), so the pairs of one canary
revision are never pooled with another's. The children of a canary version are made at 0 as soon
as the tee is told of it: Prometheus's `increase()` misses the first value of a series that is
born already counting.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.utils import floatToGoString

from modelramp.serving.metrics import _LATENCY_BUCKETS

# canary/stable server time per request: 2^(k/8) for k = -24..24, 9 % apart from 1/8x to 8x and
# symmetric around 1, so the operator's signed-rank test reads a bucket for r beside one for 1/r.
RATIO_BUCKETS = tuple(2.0 ** (step / 8) for step in range(-24, 25))
OUTCOMES = ("ok", "error")
SIDES = ("stable", "canary")
DROP_REASONS = ("queue-full", "unreachable", "unreadable")


class ShadowMetrics:
    """`modelramp_shadow_*` in the server's registry, for the model and version it serves."""

    def __init__(
        self, registry: CollectorRegistry, model: str, version: str, prediction_buckets: Sequence[float]
    ) -> None:
        self._labels = (model, version)
        self._edges = [*prediction_buckets, float("inf")]
        self._le: list[str] = [floatToGoString(edge) for edge in self._edges]  # type: ignore[no-untyped-call]
        labels = ("model", "version", "canary_version")
        self._requests = Counter(
            "modelramp_shadow_requests_total",
            "Requests copied to the canary, by what stable and the canary did with each (ok | error).",
            (*labels, "stable", "canary"),
            registry=registry,
        )
        self._ratio = Histogram(
            "modelramp_shadow_latency_ratio",
            "The canary's server time over stable's, per request both answered.",
            labels,
            buckets=RATIO_BUCKETS,
            registry=registry,
        )
        self._duration = Histogram(
            "modelramp_shadow_duration_seconds",
            "Server time of each track on the requests both answered.",
            (*labels, "side"),
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._predictions = Counter(
            "modelramp_shadow_predictions_total",
            "Rows by stable's score bucket and the canary's (upper bounds, as le).",
            (*labels, "stable_le", "canary_le"),
            registry=registry,
        )
        self._dropped = Counter(
            "modelramp_shadow_dropped_total",
            "Requests chosen for copying that were not compared, by why.",
            ("model", "version", "reason"),
            registry=registry,
        )
        self._active = Gauge(
            "modelramp_shadow_active",
            "1 while this server copies its requests to a canary.",
            ("model", "version"),
            registry=registry,
        ).labels(*self._labels)
        for reason in DROP_REASONS:
            self._dropped.labels(*self._labels, reason)
        self._prepared: set[str] = set()

    def active(self, on: bool) -> None:
        self._active.set(1 if on else 0)

    def prepare(self, canary_version: str) -> None:
        """Every child of `canary_version` at 0, once."""
        if canary_version in self._prepared:
            return
        self._prepared.add(canary_version)
        labels = (*self._labels, canary_version)
        for stable, canary in product(OUTCOMES, OUTCOMES):
            self._requests.labels(*labels, stable, canary)
        self._ratio.labels(*labels)
        for side in SIDES:
            self._duration.labels(*labels, side)
        for stable_le, canary_le in product(self._le, self._le):
            self._predictions.labels(*labels, stable_le, canary_le)

    def pair(self, canary_version: str, stable_ok: bool, canary_ok: bool) -> None:
        self.prepare(canary_version)
        outcome = (OUTCOMES[not stable_ok], OUTCOMES[not canary_ok])
        self._requests.labels(*self._labels, canary_version, *outcome).inc()

    def latency(self, canary_version: str, stable_s: float, canary_s: float) -> None:
        labels = (*self._labels, canary_version)
        self._duration.labels(*labels, "stable").observe(stable_s)
        self._duration.labels(*labels, "canary").observe(canary_s)
        if stable_s > 0:
            self._ratio.labels(*labels).observe(canary_s / stable_s)

    def predictions(
        self, canary_version: str, stable: npt.NDArray[np.float64], canary: npt.NDArray[np.float64]
    ) -> None:
        """One count per row, in the (stable bucket, canary bucket) cell of its two scores."""
        # A NaN score sorts past every edge: it counts in the +Inf bucket.
        last = len(self._edges) - 1
        stable_at = np.minimum(np.searchsorted(self._edges, stable, side="left"), last)
        canary_at = np.minimum(np.searchsorted(self._edges, canary, side="left"), last)
        labels = (*self._labels, canary_version)
        for s, c in zip(stable_at.tolist(), canary_at.tolist(), strict=True):
            self._predictions.labels(*labels, self._le[s], self._le[c]).inc()

    def dropped(self, reason: str) -> None:
        self._dropped.labels(*self._labels, reason).inc()
