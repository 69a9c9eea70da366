"""Several server processes' metrics and statistics, summed into one scrape (`--processes`), and
how the processes reach each other."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import uvloop
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modelramp.serving.errors import SiblingUnavailable
from modelramp.serving.metrics import InferenceStatistics, ServingMetrics
from modelramp.serving.process_metrics import merged_exposition, merged_statistics, snapshot
from modelramp.serving.siblings import Siblings

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _metrics() -> ServingMetrics:
    return ServingMetrics(
        model="m", version="2", uri="/models/m.pt", device="cpu", max_batch_size=8,
        prediction_buckets=(0.25, 0.5, 0.75),
    )  # fmt: skip


def _samples(exposition: bytes) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition.decode())
        for sample in family.samples
    }


def _traffic(metrics: ServingMetrics, seed: int, requests: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(requests):
        metrics.request(int(rng.choice([200, 200, 400, 500])), float(rng.uniform(0, 0.02)))
        rows = int(rng.integers(1, 9))
        metrics.forward(rng.normal(size=(rows, 4)), float(rng.uniform(0, 0.01)), rng.uniform(size=rows))


def test_one_process_merged_alone_exports_what_it_exports_itself() -> None:
    metrics = _metrics()
    _traffic(metrics, seed=1, requests=50)
    assert _samples(merged_exposition([snapshot(metrics.registry, metrics.statistics)])) == _samples(
        generate_latest(metrics.registry)
    )


def test_counters_and_histograms_add_up_over_processes() -> None:
    first, second = _metrics(), _metrics()
    _traffic(first, seed=1, requests=40)
    _traffic(second, seed=2, requests=70)
    one, two = _samples(generate_latest(first.registry)), _samples(generate_latest(second.registry))
    merged = _samples(
        merged_exposition(
            [snapshot(first.registry, first.statistics), snapshot(second.registry, second.statistics)]
        )
    )
    assert merged.keys() == one.keys() | two.keys()
    for key, value in merged.items():
        name = key[0]
        if name.endswith("_created"):
            assert value == min(one.get(key, np.inf), two.get(key, np.inf)), key
        elif name == "modelramp_model_info":
            assert value == 1.0
        else:
            assert value == pytest.approx(one.get(key, 0.0) + two.get(key, 0.0), rel=1e-12), key
    labels = (("code", "500"), ("model", "m"), ("version", "2"))
    assert merged["modelramp_requests_total", labels] > 0
    assert merged["modelramp_prediction_count", (("model", "m"), ("version", "2"))] == (
        one["modelramp_prediction_count", (("model", "m"), ("version", "2"))]
        + two["modelramp_prediction_count", (("model", "m"), ("version", "2"))]
    )


def test_statistics_add_up_and_keep_the_latest_inference() -> None:
    first = InferenceStatistics(1, 10, 2, 20, 30, 3, 300, last_inference_ms=5_000)
    second = InferenceStatistics(4, 40, 5, 50, 60, 6, 600, last_inference_ms=7_000)
    merged = merged_statistics([snapshot(_metrics().registry, first), snapshot(_metrics().registry, second)])
    assert merged == InferenceStatistics(5, 50, 7, 70, 90, 9, 900, last_inference_ms=7_000)


def test_a_series_only_one_process_has_is_kept_as_it_is() -> None:
    first, second = _metrics(), _metrics()
    first.request(200, 0.001)
    second.request(200, 0.001)
    second.request(503, 0.002)  # only the second process ever answered 503
    merged = _samples(
        merged_exposition(
            [snapshot(first.registry, first.statistics), snapshot(second.registry, second.statistics)]
        )
    )
    labels = (("model", "m"), ("version", "2"))
    assert merged["modelramp_requests_total", (("code", "200"), *labels)] == 2
    assert merged["modelramp_requests_total", (("code", "503"), *labels)] == 1


def _siblings_directory(tmp_path: Path) -> Path:
    # Unique as the supervisor's own: the sockets are named after it, machine-wide.
    return Path(tempfile.mkdtemp(dir=tmp_path))


def test_siblings_read_each_other_and_are_ready_together(tmp_path: Path) -> None:
    directory = _siblings_directory(tmp_path)

    async def scenario() -> None:
        first, second = Siblings(directory, 0, 2), Siblings(directory, 1, 2)
        await first.start(lambda: b'{"first": 1}')
        await second.start(lambda: b'{"second": 2}')
        try:
            assert await first.snapshots() == [b'{"second": 2}']
            assert await second.snapshots() == [b'{"first": 1}']
            first.mark_ready()
            assert not first.all_ready() and not second.all_ready()
            second.mark_ready()
            assert first.all_ready() and second.all_ready()
        finally:
            await first.stop()
        with pytest.raises(SiblingUnavailable, match="server process 0 of 2 did not answer"):
            await second.snapshots()
        await second.stop()

    uvloop.run(scenario())  # the server's loop


def test_a_sibling_that_dies_mid_answer_is_unavailable_not_an_error(tmp_path: Path) -> None:
    directory = _siblings_directory(tmp_path)

    async def scenario() -> None:
        first, second = Siblings(directory, 0, 2), Siblings(directory, 1, 2)
        await second.start(lambda: b'{"families": [{"name": "modelr')
        try:
            with pytest.raises(SiblingUnavailable, match=r"server process 1 of 2 did not answer: \S"):
                await first.snapshots()
        finally:
            await second.stop()

    uvloop.run(scenario())
