"""The Prometheus metrics of docs/architecture.md ("Serving metrics contract"); names are fixed.

The operator's built-in analysis queries exactly these names and labels. Track and
ModelDeployment labels are not set here: Prometheus adds them from the pod's labels.
Label children are bound once, so the hot path never looks labels up.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from modelramp.serving.input_histograms import InputHistograms
from modelramp.serving.input_reference import InputReference

# Roughly 1.5x apart: the analysis compares canary and stable p95 by ratio (histogram_quantile),
# and with the usual 2-2.5x steps two servers of the same model can land a bucket apart, reading
# as "twice as slow".
_LATENCY_BUCKETS = (
    0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03,
    0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0,
)  # fmt: skip


@dataclass(slots=True)
class InferenceStatistics:
    """Running totals for the Triton statistics endpoint (`GET /v2/models/{name}/stats`)."""

    success_count: int = 0
    success_ns: int = 0
    fail_count: int = 0
    fail_ns: int = 0
    inference_count: int = 0  # rows
    execution_count: int = 0  # forwards
    compute_ns: int = 0
    last_inference_ms: int = 0


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
        self.statistics = InferenceStatistics()
        self._inputs: InputHistograms | None = None
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

    def track_inputs(self, reference: InputReference) -> None:
        """Exports `modelramp_input{feature}` in the reference's buckets from now on."""
        self._inputs = InputHistograms(reference, *self._model_labels)
        self.registry.register(self._inputs)

    def request(self, code: int, duration_s: float) -> None:
        statistics = self.statistics
        if code < 300:
            statistics.success_count += 1
            statistics.success_ns += int(duration_s * 1e9)
        elif code >= 500:  # what Triton counts as a failed inference: the server's, not the client's
            statistics.fail_count += 1
            statistics.fail_ns += int(duration_s * 1e9)
        counter = self._requests_by_code.get(code)
        if counter is None:
            counter = self._requests_by_code[code] = self._requests.labels(*self._model_labels, str(code))
        counter.inc()
        self._request_duration.observe(duration_s)

    def forward(self, inputs: npt.NDArray[Any], duration_s: float, scores: npt.NDArray[np.float64]) -> None:
        rows = inputs.shape[0]
        statistics = self.statistics
        statistics.inference_count += rows
        statistics.execution_count += 1
        statistics.compute_ns += int(duration_s * 1e9)
        statistics.last_inference_ms = int(time.time() * 1000)
        if self._inputs is not None:
            self._inputs.observe(inputs)
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
