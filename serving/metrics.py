"""The Prometheus metrics of docs/architecture.md ("Serving metrics contract"); names are fixed.

The operator's built-in analysis queries exactly these names and labels. Track and
ModelDeployment labels are not set here: Prometheus adds them from the pod's labels.
Label children are bound once, so the hot path never looks labels up.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Roughly 1.5x apart: the analysis compares canary and stable p95 by ratio (histogram_quantile),
# and with the usual 2-2.5x steps two servers of the same model can land a bucket apart, reading
# as "twice as slow".
_LATENCY_BUCKETS = (
    0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03,
    0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0,
)  # fmt: skip


class ServingMetrics:
    """All metrics of one served model, in a registry of their own."""

    def __init__(
        self,
        *,
        model: str,
        version: str,
        uri: str,
        device: str,
        max_batch_size: int,
        prediction_buckets: Sequence[float],
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("model", "version")
        self._requests = Counter(
            "modelramp_requests_total",
            "Prediction requests answered, by HTTP status code.",
            (*labels, "code"),
            registry=self.registry,
        )
        self._model_labels = (model, version)
        self._requests_by_code: dict[int, Counter] = {}
        self._request_duration = Histogram(
            "modelramp_request_duration_seconds",
            "Whole prediction request, from routing to response.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        ).labels(model, version)
        self._inference_duration = Histogram(
            "modelramp_inference_duration_seconds",
            "One forward pass of a batch.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        ).labels(model, version)
        self._batch_size = Histogram(
            "modelramp_batch_size",
            "Rows per forward pass.",
            labels,
            buckets=_batch_buckets(max_batch_size),
            registry=self.registry,
        ).labels(model, version)
        self._prediction = Histogram(
            "modelramp_prediction",
            "The model's output score per row (top class probability for multi-output models).",
            labels,
            buckets=tuple(prediction_buckets),
            registry=self.registry,
        ).labels(model, version)
        Gauge(
            "modelramp_model_info",
            "The served model; always 1.",
            ("model", "version", "uri", "device"),
            registry=self.registry,
        ).labels(model, version, uri, device).set(1)

    def request(self, code: int, duration_s: float) -> None:
        counter = self._requests_by_code.get(code)
        if counter is None:
            counter = self._requests_by_code[code] = self._requests.labels(*self._model_labels, str(code))
        counter.inc()
        self._request_duration.observe(duration_s)

    def forward(self, rows: int, duration_s: float, scores: npt.NDArray[np.float64]) -> None:
        self._batch_size.observe(rows)
        self._inference_duration.observe(duration_s)
        for score in scores.tolist():
            self._prediction.observe(score)


def _batch_buckets(max_batch_size: int) -> tuple[float, ...]:
    """Powers of two up to the largest batch, so the histogram resolves every batch size class."""
    bounds = [1.0]
    while bounds[-1] < max_batch_size:
        bounds.append(bounds[-1] * 2)
    return tuple(bounds)
