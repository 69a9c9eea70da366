"""input-drift end to end: `modelramp serve --input-reference` scraped by a real Prometheus, judged
by the operator's Prometheus provider on the stable track (what spec.monitor measures).

Two servers of the same model and reference: one gets rows from the training distribution, the
other rows whose `income` moved by one standard deviation. The first is shown within the
threshold, the second is drifted and `income` is named first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import FEATURES, training_rows
from support.prometheus import PrometheusServer, Target
from support.serving import ServingProcess

from modelramp.operator.analysis.context import RolloutContext
from modelramp.operator.analysis.prometheus import PrometheusMetricProvider
from modelramp.operator.api.analysis import Metric, effective_metric
from modelramp.serving.input_reference import write_reference

pytestmark = [pytest.mark.prometheus, pytest.mark.timeout(240)]

NAMESPACE = "drift-test"
# Longer than the whole test: the increase then counts every row sent, however slow the machine.
WINDOW = "180s"
ROWS = 3000


@pytest.fixture(scope="module")
def servers(
    torchscript_mlp: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServingProcess]]:
    workdir = tmp_path_factory.mktemp("input-drift")
    reference = workdir / "reference.json"
    # The reference of 1000 training rows, in 10 quantile buckets per feature.
    write_reference(training_rows(), FEATURES, reference, buckets=10)
    started: dict[str, ServingProcess] = {}
    try:
        for name in ("steady", "shifted"):
            server = ServingProcess(
                torchscript_mlp, workdir / name, extra_args=["--input-reference", str(reference)]
            )
            server.start()
            started[name] = server
        yield started
    finally:
        for server in started.values():
            server.stop()


def send(server: ServingProcess, rows: np.ndarray) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for batch in np.array_split(rows, 30):
            body = {"inputs": [{"name": "input-0", "shape": list(batch.shape), "datatype": "FP32",
                                "data": batch.ravel().tolist()}]}  # fmt: skip
            client.post("/v2/models/model/infer", json=body).raise_for_status()


def test_live_inputs_are_judged_against_the_reference_through_prometheus(
    servers: dict[str, ServingProcess], tmp_path: Path
) -> None:
    targets = [
        Target(
            server.url.removeprefix("http://"),
            {"namespace": NAMESPACE, "modeldeployment": name, "track": "stable"},
        )
        for name, server in servers.items()
    ]
    generator = np.random.default_rng(11)
    with PrometheusServer(tmp_path, targets) as prometheus:
        # A first scrape of BOTH servers with the counters at 0, so each window's increase counts
        # every row: a server first scraped after its rows has one sample and an increase of 0.
        prometheus.wait_for(f"count(modelramp_input_count{{namespace={NAMESPACE!r}}})", 2 * len(FEATURES))
        steady = generator.normal(size=(ROWS, 4)).astype(np.float32)
        shifted = generator.normal(size=(ROWS, 4)).astype(np.float32)
        shifted[:, FEATURES.index("income")] += 1.0
        send(servers["steady"], steady)
        send(servers["shifted"], shifted)
        rows = 'sum(modelramp_input_count{modeldeployment="shifted",feature="income"})'
        prometheus.wait_for(rows, ROWS)
        prometheus.wait_for(rows.replace("shifted", "steady"), ROWS)
        provider = PrometheusMetricProvider(prometheus.url, timeout_seconds=5)
        metric = effective_metric(
            Metric.model_validate(
                {"name": "inputs", "builtin": "input-drift", "threshold": 0.25, "interval": WINDOW}
            ),
            None,
        )
        verdicts = {}
        for name in servers:
            context = RolloutContext(name=name, namespace=NAMESPACE, analysis="monitor-x", track="stable")
            verdicts[name] = provider.measure(metric, context)
    steady_result, shifted_result = verdicts["steady"], verdicts["shifted"]
    assert steady_result.verdict == "Successful", steady_result.message
    assert shifted_result.verdict == "Failed", shifted_result.message
    assert shifted_result.test is not None
    assert shifted_result.test.worst_features[0].name == "income", shifted_result.message
    assert "worst: income" in (shifted_result.message or "")
    # Prometheus extrapolates the increase to the window's edges: about ROWS live rows, never fewer
    # than the reference's 1000 rows.
    assert steady_result.test is not None
    assert steady_result.test.canary_samples > 0.8 * ROWS
    assert steady_result.test.stable_samples == pytest.approx(1000)
