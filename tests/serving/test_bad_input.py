"""Every kind of bad request gets a clear 4xx naming the problem, is counted, and harms nothing."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import RunningServer

GOOD = {"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}


def _infer(**changes: Any) -> dict[str, Any]:
    return {"inputs": [GOOD | changes]}


# (path, raw body, status, words the message must contain)
CASES: list[tuple[str, bytes | dict[str, Any] | list[Any], int, str]] = [
    ("/v2/models/mlp/infer", b'{"inputs": [', 400, "malformed JSON"),
    (
        "/v2/models/mlp/infer",
        b'{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP32","data":[1,2,3,NaN]}]}',
        400,
        "NaN",
    ),
    ("/v2/models/mlp/infer", [1, 2], 400, "expected a JSON object"),
    ("/v2/models/mlp/infer", {}, 400, "inputs: Field required"),
    ("/v2/models/mlp/infer", {"inputs": []}, 400, "inputs: List should have at least 1 item"),
    ("/v2/models/mlp/infer", _infer(name="features"), 400, "missing input 'input-0'"),
    ("/v2/models/mlp/infer", _infer(shape=[1, 5]), 400, "inputs[0].shape: [1, 5] needs 5 elements"),
    (
        "/v2/models/mlp/infer",
        _infer(shape=[2, 2], data=[1, 2, 3, 4]),
        400,
        "inputs[0].shape: 'input-0' takes shape ['N', 4]",
    ),
    (
        "/v2/models/mlp/infer",
        _infer(shape=[-1, 4]),
        400,
        "inputs[0].shape[0]: Input should be greater than or equal to 0",
    ),
    (
        "/v2/models/mlp/infer",
        _infer(datatype="INT64"),
        400,
        "inputs[0].datatype: 'input-0' takes FP32, got 'INT64'",
    ),
    ("/v2/models/mlp/infer", _infer(data=[1, 2, "x", 4]), 400, "inputs[0].data: FP32 needs numbers"),
    ("/v2/models/mlp/infer", _infer(data=[1, 2, None, 4]), 400, "inputs[0].data: FP32 needs numbers"),
    ("/v2/models/mlp/infer", _infer(data=[[1, 2], [3]]), 400, "ragged"),
    ("/v2/models/mlp/infer", _infer(data="1,2,3,4"), 400, "inputs[0].data: expected a list"),
    ("/v2/models/mlp/infer", _infer(data=[1, 2, 3, 1e39]), 400, "NaN and infinite values are not allowed"),
    (
        "/v2/models/mlp/infer",
        {"inputs": [GOOD], "outputs": [{"name": "logits"}]},
        400,
        "unknown output 'logits'",
    ),
    ("/v2/models/mlp/infer", {"inputs": [GOOD, GOOD | {"name": "other"}]}, 400, "exactly one input"),
    ("/v2/models/other/infer", _infer(), 404, "model 'other' is not served here"),
    ("/v2/models/mlp/versions/9/infer", _infer(), 404, "version '9' of model 'mlp'"),
    ("/v2/models/mlp/infer", _infer(data=[0.5] * 2000, shape=[500, 4]), 413, "over the limit of 4096"),
    (
        "/invocations",
        {"dataframe_split": {"columns": ["a"], "data": [[1]]}},
        400,
        "dataframe_split: 'input-0' takes shape ['N', 4]",
    ),
    ("/invocations", {"inputs": [[1, 2, 3, 4]], "instances": [[1, 2, 3, 4]]}, 400, "exactly one of"),
    ("/invocations", {"inputs": [[1, 2, 3]]}, 400, "inputs: 'input-0' takes shape ['N', 4]"),
    ("/invocations", {"inputs": {"x": [[1, 2, 3, 4]]}}, 400, "named inputs must be exactly"),
]


@pytest.mark.parametrize(("path", "body", "status", "words"), CASES, ids=[case[3][:40] for case in CASES])
def test_bad_request_is_answered_and_counted(
    mlp_server: RunningServer, path: str, body: bytes | dict[str, Any] | list[Any], status: int, words: str
) -> None:
    counted_before = mlp_server.metric("modelramp_requests_total", code=str(status))
    if isinstance(body, bytes):
        response = mlp_server.client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        response = mlp_server.client.post(path, json=body)
    assert response.status_code == status, response.text
    message = response.json().get("error") or response.json()["message"]
    assert words in message
    assert mlp_server.metric("modelramp_requests_total", code=str(status)) == counted_before + 1
    assert mlp_server.client.post("/v2/models/mlp/infer", json=_infer()).status_code == 200


def test_oversize_body_without_content_length_is_refused(mlp_server: RunningServer) -> None:
    def chunks() -> Any:
        for _ in range(10):
            yield b" " * 1000

    response = mlp_server.client.post("/invocations", content=chunks())  # chunked: no Content-Length
    assert response.status_code == 413
    assert "over the limit of 4096" in response.json()["message"]


def test_unknown_model_metadata_is_404(mlp_server: RunningServer) -> None:
    for path in ("/v2/models/other", "/v2/models/other/ready", "/v2/models/mlp/versions/9"):
        response = mlp_server.client.get(path)
        assert response.status_code == 404
        assert "is not served here" in response.json()["error"]


def test_wrong_method_does_not_crash(mlp_server: RunningServer) -> None:
    assert mlp_server.client.get("/v2/models/mlp/infer").status_code == 405
    assert mlp_server.client.get("/v2/health/live").status_code == 200
