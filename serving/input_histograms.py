"""`modelramp_input{feature}`: live histograms of each input feature, in the reference's buckets.

Beside them `modelramp_input_reference{feature, le}`, the reference's own cumulative counts as a
gauge: the operator's `input-drift` builtin reads both from Prometheus, so the reference travels
with the model version that is served and the operator never needs the file.

Observed once per forward on the whole batch: one `searchsorted` and one `bincount` per feature,
so the cost grows with the batch in numpy, never per value in Python (prometheus_client's
`Histogram.observe` takes a lock per value). Non-finite values (NaN with `--allow-nan`) are not
observed: they have no bucket and would turn the sum into NaN.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from modelramp.serving.input_reference import InputReference, bucket_counts
from modelramp.serving.tensors import TensorSpec

METRIC = "modelramp_input"
REFERENCE_METRIC = "modelramp_input_reference"


def check_fits(reference: InputReference, spec: TensorSpec) -> None:
    """`ValueError` unless the model takes [rows, features] floats, one per reference feature."""
    if spec.dtype.kind != "f" or len(spec.row_shape) != 1:
        raise ValueError(
            f"input-reference: needs a [rows, features] floating-point input, the model takes"
            f" {spec.datatype} rows of shape {list(spec.row_shape)}"
        )
    if spec.row_shape[0] != len(reference.features):
        raise ValueError(
            f"input-reference: {len(reference.features)} features, the model's rows have {spec.row_shape[0]}"
        )


class InputHistograms(Collector):
    """Bucket counts per feature, updated per batch, exported as one histogram family."""

    def __init__(self, reference: InputReference, model: str, version: str) -> None:
        self._labels = (model, version)
        self._names = [feature.name for feature in reference.features]
        self._bounds = [np.asarray(feature.bounds, dtype=np.float64) for feature in reference.features]
        self._counts = [np.zeros(len(bounds) + 1, dtype=np.int64) for bounds in self._bounds]
        self._reference = [np.cumsum(feature.counts).tolist() for feature in reference.features]
        self._sums = [0.0] * len(self._names)
        # Forwards may run on the forward thread while /metrics is read on the event loop.
        self._lock = threading.Lock()

    def observe(self, batch: npt.NDArray[Any]) -> None:
        columns = batch.reshape(batch.shape[0], -1).astype(np.float64, copy=False)
        finite = np.isfinite(columns)
        everything_finite = bool(finite.all())
        updates = []
        for index, bounds in enumerate(self._bounds):
            column = columns[:, index] if everything_finite else columns[finite[:, index], index]
            updates.append((bucket_counts(column, bounds), float(column.sum())))
        with self._lock:
            for index, (counts, total) in enumerate(updates):
                self._counts[index] += counts
                self._sums[index] += total

    def collect(self) -> Iterator[Metric]:
        # Samples by hand: `HistogramMetricFamily` drops _sum and _count as soon as a bound is
        # negative (an OpenMetrics rule), and features are often centred on zero.
        family = Metric(
            METRIC, "Input feature values per row, in the buckets of the input reference.", "histogram"
        )
        with self._lock:
            snapshot = [
                (counts.copy(), total) for counts, total in zip(self._counts, self._sums, strict=True)
            ]
        model, version = self._labels
        reference = Metric(
            REFERENCE_METRIC,
            "Reference (training) rows per input feature at or below each bucket bound: cumulative, like le.",
            "gauge",
        )
        for name, bounds, (counts, total), expected in zip(
            self._names, self._bounds, snapshot, self._reference, strict=True
        ):
            labels = {"model": model, "version": version, "feature": name}
            cumulative = np.cumsum(counts).tolist()
            edges = [*(str(floatToGoString(bound)) for bound in bounds), "+Inf"]  # type: ignore[no-untyped-call]
            for edge, count, reference_count in zip(edges, cumulative, expected, strict=True):
                family.add_sample(f"{METRIC}_bucket", {**labels, "le": edge}, count)
                reference.add_sample(REFERENCE_METRIC, {**labels, "le": edge}, reference_count)
            family.add_sample(f"{METRIC}_count", labels, cumulative[-1])
            family.add_sample(f"{METRIC}_sum", labels, total)
        yield family
        yield reference
