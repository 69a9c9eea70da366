"""A Prometheus histogram observed in arrays: per batch on the hot path, counted in numpy later.

prometheus_client's `Histogram.observe` takes a lock and walks the bucket bounds in Python for
every value: with 64 rows per request the per-row prediction histogram alone cost more than the
model's forward. Here an observation only appends (an array of a batch's values, or one number)
to a buffer; the buffer is counted with one `searchsorted` and one `bincount` when /metrics is
read, when it holds `FLUSH_ROWS` values, or when `FLUSH_S` passed since the last count — so the
exported counts are exact at every scrape, and the buffer stays small between scrapes.

Non-finite values (a NaN prediction with `--allow-nan`) are not counted: they have no bucket and
would turn the sum into NaN for good (as `input_histograms`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from modelramp.serving.input_reference import bucket_counts

FLUSH_ROWS = 2048
FLUSH_S = 0.5


class BulkHistogram(Collector):
    """One histogram with fixed label values; `observe` from any thread, `collect` to export."""

    def __init__(
        self, name: str, documentation: str, labels: dict[str, str], bounds: Sequence[float]
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labels = labels
        self._bounds = np.asarray(bounds, dtype=np.float64)
        self._edges = [*(str(floatToGoString(bound)) for bound in bounds), "+Inf"]  # type: ignore[no-untyped-call]
        self._counts = np.zeros(len(bounds) + 1, dtype=np.int64)
        self._sum = 0.0
        self._arrays: list[npt.NDArray[Any]] = []
        self._numbers: list[float] = []
        self._buffered = 0
        self._flush_at = time.monotonic() + FLUSH_S
        # Forwards may run on the forward thread while requests finish and /metrics is read on the loop.
        self._lock = threading.Lock()

    def observe(self, values: npt.NDArray[Any]) -> None:
        """A batch of values (any shape; every element is one observation)."""
        with self._lock:
            self._arrays.append(values)
            self._buffered += values.size
            if self._buffered >= FLUSH_ROWS or time.monotonic() >= self._flush_at:
                self._flush()

    def observe_one(self, value: float) -> None:
        with self._lock:
            self._numbers.append(value)
            self._buffered += 1
            if self._buffered >= FLUSH_ROWS or time.monotonic() >= self._flush_at:
                self._flush()

    def _flush(self) -> None:
        """Counts the buffer into the buckets; the caller holds the lock."""
        self._flush_at = time.monotonic() + FLUSH_S
        if not self._buffered:
            return
        parts = [array.reshape(-1) for array in self._arrays]
        if self._numbers:
            parts.append(np.asarray(self._numbers))
        values = np.concatenate(parts).astype(np.float64, copy=False)
        self._arrays, self._numbers, self._buffered = [], [], 0
        finite = np.isfinite(values)
        if not finite.all():
            values = values[finite]
        self._counts += bucket_counts(values, self._bounds)
        self._sum += float(values.sum())

    def snapshot(self) -> tuple[list[int], float]:
        """(cumulative bucket counts, the last one being the count; sum), everything observed so far."""
        with self._lock:
            self._flush()
            return np.cumsum(self._counts).tolist(), self._sum

    def collect(self) -> Iterator[Metric]:
        # Samples by hand: `HistogramMetricFamily` drops _sum and _count when a bound is negative.
        cumulative, total = self.snapshot()
        family = Metric(self._name, self._documentation, "histogram")
        for edge, count in zip(self._edges, cumulative, strict=True):
            family.add_sample(f"{self._name}_bucket", {**self._labels, "le": edge}, count)
        family.add_sample(f"{self._name}_count", self._labels, cumulative[-1])
        family.add_sample(f"{self._name}_sum", self._labels, total)
        yield family
