"""Each analysis metric against a real Prometheus scraping fake serving processes (see conftest)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from support.prometheus import PrometheusServer, free_port

from modelramp.operator.analysis.context import RolloutContext
from modelramp.operator.analysis.prometheus import PrometheusMetricProvider
from modelramp.operator.analysis.telemetry import AnalysisTelemetry
from modelramp.operator.api.analysis import EffectiveMetric, Metric, effective_metric

from .conftest import NAMESPACE, WINDOW

pytestmark = [pytest.mark.prometheus, pytest.mark.timeout(120)]


def metric(**fields: object) -> EffectiveMetric:
    return effective_metric(Metric.model_validate({"name": "m", "interval": WINDOW, **fields}), None)


def measure(prometheus: PrometheusServer, scenario: str, **fields: object) -> tuple[str, str, float | None]:
    provider = PrometheusMetricProvider(prometheus.url, timeout_seconds=5)
    context = RolloutContext(name=scenario, namespace=NAMESPACE, canary_revision="c1", stable_revision="s1")
    measurement = provider.measure(metric(**fields), context)
    return measurement.verdict, measurement.message or "", measurement.value


@pytest.mark.parametrize(
    ("scenario", "verdict"), [("good", "Successful"), ("errors", "Failed"), ("quiet", "Inconclusive")]
)
def test_error_rate(prometheus: PrometheusServer, scenario: str, verdict: str) -> None:
    found, message, value = measure(prometheus, scenario, builtin="error-rate", threshold=0.05)
    assert found == verdict, message
    if scenario == "errors":
        assert value is not None and 0.1 < value < 0.3, message


@pytest.mark.parametrize(("scenario", "verdict"), [("good", "Successful"), ("slow", "Failed")])
def test_latency_p95_relative_to_stable(prometheus: PrometheusServer, scenario: str, verdict: str) -> None:
    found, message, _ = measure(prometheus, scenario, builtin="latency-p95", maxRatioToStable=1.5)
    assert found == verdict, message


def test_latency_p95_absolute(prometheus: PrometheusServer) -> None:
    # p95 of the good canary is ~0.06 s, of the slow one 0.12 * exp(0.25 * 1.645) = 0.18 s: both in
    # prometheus_client's default buckets (.., 0.05, 0.075, 0.1, 0.25, ..), whose edges bound them.
    assert measure(prometheus, "good", builtin="latency-p95", threshold=0.1)[0] == "Successful"
    assert measure(prometheus, "slow", builtin="latency-p95", threshold=0.1)[0] == "Failed"


@pytest.mark.parametrize(("scenario", "verdict"), [("good", "Successful"), ("drifted", "Failed")])
def test_prediction_drift(prometheus: PrometheusServer, scenario: str, verdict: str) -> None:
    found, message, _ = measure(prometheus, scenario, builtin="prediction-drift", threshold=0.2)
    assert found == verdict, message
    assert "KS" in message


def test_custom_query_with_conditions(prometheus: PrometheusServer) -> None:
    query = (
        'sum(rate(modelramp_requests_total{namespace="{{ namespace }}",modeldeployment="{{ name }}",'
        'track="{{ track }}"}[{{ interval }}]))'
    )
    assert measure(prometheus, "good", query=query, successCondition="result[0] > 1")[0] == "Successful"
    assert measure(prometheus, "good", query=query, failureCondition="result > 1")[0] == "Failed"
    vector = query.replace("sum(", "sum by (code) (")
    found, message, _ = measure(prometheus, "errors", query=vector, successCondition="result.all(x, x > 0)")
    assert found == "Successful", message


def test_no_data_is_an_error_and_names_the_query(prometheus: PrometheusServer) -> None:
    query = 'sum(rate(modelramp_requests_total{modeldeployment="{{ name }}",track="canary"}[{{ interval }}]))'
    found, message, value = measure(prometheus, "quiet", query=query, successCondition="result < 1")
    assert (found, value) == ("Error", None)
    assert 'no data: sum(rate(modelramp_requests_total{modeldeployment="quiet"' in message


def test_bad_query_is_an_error_with_prometheus_reason(prometheus: PrometheusServer) -> None:
    found, message, _ = measure(
        prometheus, "good", query="sum(rate(x[{{ interval }}])", successCondition="result < 1"
    )
    assert found == "Error"
    assert "bad_data" in message and "parse error" in message


def test_measurements_are_counted_as_operator_metrics(prometheus: PrometheusServer) -> None:
    registry = CollectorRegistry()
    telemetry = AnalysisTelemetry(registry)
    provider = PrometheusMetricProvider(prometheus.url, timeout_seconds=5)
    context = RolloutContext(name="errors", namespace=NAMESPACE)
    for _ in range(2):
        telemetry.count_measurement(provider.measure(metric(builtin="error-rate", threshold=0.05), context))
    labels = {"metric": "m", "verdict": "Failed"}
    assert registry.get_sample_value("modelramp_analysis_measurements_total", labels) == 2.0


def test_stopped_prometheus_is_an_error_never_a_failure(tmp_path: Path) -> None:
    with PrometheusServer(tmp_path, targets=[]) as server:
        url = server.url
    provider = PrometheusMetricProvider(url, timeout_seconds=2)
    measurement = provider.measure(
        metric(builtin="error-rate", threshold=0.05), RolloutContext(name="a", namespace="b")
    )
    assert (measurement.verdict, measurement.value) == ("Error", None)
    assert "unreachable" in (measurement.message or "")


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A socket that accepts connections and never answers: a hung Prometheus, which a real one
    can't be made to imitate on demand."""
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_query_timeout_is_an_error(silent_server: str) -> None:
    provider = PrometheusMetricProvider(silent_server, timeout_seconds=1)
    measurement = provider.measure(
        metric(builtin="error-rate", threshold=0.05), RolloutContext(name="a", namespace="b")
    )
    assert measurement.verdict == "Error"
    assert "did not answer within 1s" in (measurement.message or "")
