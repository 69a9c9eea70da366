"""Every endpoint of the real server, answering for a real TorchScript MLP."""

from __future__ import annotations

import numpy as np
import torch
from conftest import RunningServer, expected

ROWS = [[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 2.0, -2.0]]


def test_health_and_server_metadata(mlp_server: RunningServer) -> None:
    client = mlp_server.client
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/ping").status_code == 200
    assert client.get("/v2").json()["name"] == "modelramp"


def test_model_metadata_and_readiness(mlp_server: RunningServer) -> None:
    client = mlp_server.client
    metadata = client.get("/v2/models/mlp").json()
    assert metadata == client.get("/v2/models/mlp/versions/3").json()
    assert metadata["versions"] == ["3"]
    assert metadata["platform"] == "pytorch_torchscript"
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}]
    assert metadata["outputs"] == [{"name": "output-0", "datatype": "FP32", "shape": [-1, 3]}]
    assert client.get("/v2/models/mlp/ready").json() == {"name": "mlp", "ready": True}
    assert client.get("/v2/models/mlp/versions/3/ready").status_code == 200


def test_infer_flat_and_nested_data(mlp_server: RunningServer, mlp: torch.nn.Module) -> None:
    flat = {
        "name": "input-0",
        "shape": [2, 4],
        "datatype": "FP32",
        "data": [value for row in ROWS for value in row],
    }
    nested = {**flat, "data": ROWS}
    for tensor in (flat, nested):
        response = mlp_server.client.post("/v2/models/mlp/infer", json={"id": "req-7", "inputs": [tensor]})
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["model_name"], body["model_version"], body["id"]) == ("mlp", "3", "req-7")
        [output] = body["outputs"]
        assert (output["name"], output["datatype"], output["shape"]) == ("output-0", "FP32", [2, 3])
        np.testing.assert_allclose(np.reshape(output["data"], (2, 3)), expected(mlp, ROWS), rtol=1e-5)


def test_infer_with_version_in_path(mlp_server: RunningServer, mlp: torch.nn.Module) -> None:
    tensor = {"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": ROWS[0]}
    response = mlp_server.client.post("/v2/models/mlp/versions/3/infer", json={"inputs": [tensor]})
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["outputs"][0]["data"], expected(mlp, ROWS[:1])[0], rtol=1e-5)


def test_mlflow_invocations(mlp_server: RunningServer, mlp: torch.nn.Module) -> None:
    for body in ({"inputs": ROWS}, {"instances": ROWS}, {"inputs": {"input-0": ROWS}}):
        response = mlp_server.client.post("/invocations", json=body)
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(response.json()["predictions"], expected(mlp, ROWS), rtol=1e-5)


def test_metrics_move_with_requests(mlp_server: RunningServer) -> None:
    before_ok = mlp_server.metric("modelramp_requests_total", code="200")
    before_bad = mlp_server.metric("modelramp_requests_total", code="400")
    before_rows = mlp_server.metric("modelramp_batch_size_sum")
    before_forwards = mlp_server.metric("modelramp_inference_duration_seconds_count")
    before_scores = mlp_server.metric("modelramp_prediction_count")
    before_timed = mlp_server.metric("modelramp_request_duration_seconds_count")

    for _ in range(3):
        assert mlp_server.client.post("/invocations", json={"inputs": ROWS}).status_code == 200
    assert mlp_server.client.post("/invocations", json={"inputs": [[1.0]]}).status_code == 400

    assert mlp_server.metric("modelramp_requests_total", code="200") == before_ok + 3
    assert mlp_server.metric("modelramp_requests_total", code="400") == before_bad + 1
    assert mlp_server.metric("modelramp_request_duration_seconds_count") == before_timed + 4
    assert mlp_server.metric("modelramp_batch_size_sum") == before_rows + 6
    assert mlp_server.metric("modelramp_inference_duration_seconds_count") == before_forwards + 3
    assert mlp_server.metric("modelramp_prediction_count") == before_scores + 6
    info = mlp_server.metric("modelramp_model_info", uri=str(mlp_server.app.config.model_uri), device="cpu")
    assert info == 1.0


def test_health_endpoints_are_not_counted_as_predictions(mlp_server: RunningServer) -> None:
    before = mlp_server.metric("modelramp_request_duration_seconds_count")
    for path in ("/v2/health/ready", "/v2/models/mlp", "/ping", "/metrics"):
        mlp_server.client.get(path)
    assert mlp_server.metric("modelramp_request_duration_seconds_count") == before
