"""`BulkHistogram` exports what prometheus_client's own Histogram exports for the same values."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from modelramp.serving.bulk_histogram import FLUSH_ROWS, BulkHistogram

# prometheus_client leaves out _sum once a bound is negative (an OpenMetrics rule): the comparison
# uses non-negative bounds, the other tests negative ones too (our histogram keeps its sum).
POSITIVE = (0.0, 0.1, 0.5, 1.0, 2.5)
BOUNDS = (-1.0, -0.25, *POSITIVE)
LABELS = {"model": "m", "version": "1"}


def _samples(registry: CollectorRegistry, name: str) -> dict[str, float]:
    """`name`'s bucket, count and sum lines, without the `_created` series only the reference has."""
    lines = generate_latest(registry).decode().splitlines()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith((f"{name}_bucket", f"{name}_count", f"{name}_sum"))
    }


def test_same_buckets_count_and_sum_as_prometheus_client() -> None:
    values = np.random.default_rng(5).normal(size=3 * FLUSH_ROWS + 17)
    values[:4] = [0.0, 0.1, 1.0, 2.5]  # exactly on bounds: `le` is inclusive
    reference_registry, bulk_registry = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("h", "doc", ("model", "version"), buckets=POSITIVE, registry=reference_registry)
    child = reference.labels("m", "1")
    bulk = BulkHistogram("h", "doc", LABELS, POSITIVE)
    bulk_registry.register(bulk)
    for value in values:
        child.observe(float(value))
    # Batches of several sizes and single numbers, crossing the flush threshold more than once.
    for batch in np.array_split(values[:-5], 40):
        bulk.observe(batch.reshape(-1, 1) if len(batch) % 2 else batch)
    for value in values[-5:]:
        bulk.observe_one(float(value))
    want, got = _samples(reference_registry, "h"), _samples(bulk_registry, "h")
    assert want.keys() == got.keys()
    assert got['h_count{model="m",version="1"}'] == len(values)
    total = 'h_sum{model="m",version="1"}'
    assert {key: value for key, value in got.items() if key != total} == {
        key: value for key, value in want.items() if key != total
    }
    assert np.isclose(got[total], want[total])


def test_a_few_values_are_exported_at_the_next_scrape() -> None:
    """Below the flush threshold and within the flush interval: still counted when read."""
    registry = CollectorRegistry()
    bulk = BulkHistogram("h", "doc", LABELS, BOUNDS)
    registry.register(bulk)
    bulk.observe(np.array([0.05, 3.0]))
    bulk.observe_one(-0.5)
    samples = _samples(registry, "h")
    assert samples['h_bucket{le="0.1",model="m",version="1"}'] == 2
    assert samples['h_bucket{le="+Inf",model="m",version="1"}'] == 3
    assert samples['h_sum{model="m",version="1"}'] == 2.55


def test_non_finite_values_are_not_counted() -> None:
    bulk = BulkHistogram("h", "doc", LABELS, BOUNDS)
    bulk.observe(np.array([np.nan, 0.5, np.inf]))
    cumulative, total = bulk.snapshot()
    assert cumulative[-1] == 1
    assert total == 0.5
