"""The Prometheus metrics of docs/architecture.md ("Serving metrics contract"); names are fixed.

The operator's built-in analysis queries exactly these names and labels. Track and
ModelDeployment labels are not set here: Prometheus adds them from the pod's labels.
Label children are bound once, so the hot path never looks labels up, and histograms are
observed per batch in numpy (`bulk_histogram`), never per row in Python.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge

from modelramp.serving.assignment import VariantRoute
from modelramp.serving.bulk_histogram import BulkHistogram
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
        self._label_values = {"model": model, "version": version}
        self._requests_by_code: dict[int, Counter] = {}
        self._request_duration = self._histogram(
            "modelramp_request_duration_seconds",
            "Whole prediction request, from routing to response.",
            _LATENCY_BUCKETS,
        )
        self._inference_duration = self._histogram(
            "modelramp_inference_duration_seconds",
            "One forward pass of a batch.",
            _LATENCY_BUCKETS,
        )
        self._batch_size = self._histogram(
            "modelramp_batch_size",
            "Rows per forward pass.",
            _batch_buckets(max_batch_size),
        )
        self._prediction = self._histogram(
            "modelramp_prediction",
            "The model's output score per row (top class probability for multi-output models).",
            tuple(prediction_buckets),
        )
        # An A/B test's requests, by the variant that served them (and how they were assigned), and
        # those sent on to another variant's server; each request counted where it was served.
        self._variant_requests = Counter(
            "modelramp_variant_requests_total",
            "Prediction requests served in an A/B test, by test, variant, how they were assigned and code.",
            (*labels, "test", "variant", "assignment", "code"),
            registry=self.registry,
        )
        self._forwarded_requests = Counter(
            "modelramp_forwarded_requests_total",
            "Prediction requests sent on to the A/B variant they were assigned to, by the code answered "
            "(502, 504: the forward itself failed).",
            (*labels, "test", "variant", "code"),
            registry=self.registry,
        )
        self._forward_duration = self._histogram(
            "modelramp_forward_duration_seconds",
            "Whole forwarded prediction request, as the forwarding server saw it.",
            _LATENCY_BUCKETS,
        )
        # Copies of requests another server answered (a shadow step's tee, a router's mirror): what
        # this server did with them, apart from its real traffic, which they must never inflate.
        self._mirrored_requests = Counter(
            "modelramp_mirrored_requests_total",
            "Mirrored prediction requests (copies; their answers go to no client), by HTTP status code.",
            (*labels, "code"),
            registry=self.registry,
        )
        self._mirrored_duration = self._histogram(
            "modelramp_mirrored_request_duration_seconds",
            "Whole mirrored prediction request, from routing to response.",
            _LATENCY_BUCKETS,
        )
        self._variant_children: dict[tuple[str, ...], Counter] = {}
        self._forwarded_children: dict[tuple[str, ...], Counter] = {}
        self._mirrored_prediction = self._histogram(
            "modelramp_mirrored_prediction",
            "The model's output score per row of the mirrored requests.",
            tuple(prediction_buckets),
        )
        Gauge(
            "modelramp_model_info",
            "The served model; always 1.",
            ("model", "version", "uri", "device"),
            registry=self.registry,
        ).labels(model, version, uri, device).set(1)

    def _histogram(self, name: str, documentation: str, bounds: Sequence[float]) -> BulkHistogram:
        histogram = BulkHistogram(name, documentation, self._label_values, bounds)
        self.registry.register(histogram)
        return histogram

    def track_inputs(self, reference: InputReference) -> None:
        """Exports `modelramp_input{feature}` in the reference's buckets from now on."""
        self._inputs = InputHistograms(reference, *self._model_labels)
        self.registry.register(self._inputs)

    def request(self, code: int, duration_s: float, *, mirrored: bool = False) -> None:
        if mirrored:
            self._mirrored_requests.labels(*self._model_labels, str(code)).inc()
            self._mirrored_duration.observe_one(duration_s)
            return
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
        self._request_duration.observe_one(duration_s)

    def variant_request(self, route: VariantRoute, code: int) -> None:
        """A request served here in an A/B test (already counted by `request`)."""
        values = (route.test, route.variant, route.assigned, str(code))
        self._child(self._variant_children, self._variant_requests, values).inc()

    def forwarded(self, route: VariantRoute, code: int, duration_s: float) -> None:
        """A request this server sent on to another variant's, and what came back."""
        values = (route.test, route.variant, str(code))
        self._child(self._forwarded_children, self._forwarded_requests, values).inc()
        self._forward_duration.observe_one(duration_s)

    def _child(
        self, children: dict[tuple[str, ...], Counter], counter: Counter, values: tuple[str, ...]
    ) -> Counter:
        """The labelled counter, bound once per label set (as `_requests_by_code`)."""
        child = children.get(values)
        if child is None:
            child = children[values] = counter.labels(*self._model_labels, *values)
        return child

    def forward(
        self,
        inputs: npt.NDArray[Any],
        duration_s: float,
        scores: npt.NDArray[np.float64],
        mirrored: npt.NDArray[np.bool_] | None = None,
    ) -> None:
        """One forward pass; `mirrored` marks the rows of mirrored requests, whose inputs and
        scores are kept out of the real traffic's histograms (the pass itself is shared)."""
        self._batch_size.observe_one(inputs.shape[0])
        if mirrored is not None:
            self._mirrored_prediction.observe(scores[mirrored])
            inputs, scores = inputs[~mirrored], scores[~mirrored]
        rows = inputs.shape[0]
        statistics = self.statistics
        statistics.inference_count += rows
        statistics.execution_count += 1
        statistics.compute_ns += int(duration_s * 1e9)
        statistics.last_inference_ms = int(time.time() * 1000)
        if self._inputs is not None:
            self._inputs.observe(inputs)
        self._inference_duration.observe_one(duration_s)
        self._prediction.observe(scores)


def _batch_buckets(max_batch_size: int) -> tuple[float, ...]:
    """Powers of two up to the largest batch, so the histogram resolves every batch size class."""
    bounds = [1.0]
    while bounds[-1] < max_batch_size:
        bounds.append(bounds[-1] * 2)
    return tuple(bounds)
