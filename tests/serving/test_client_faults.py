"""A client's fault is the client's: gone mid-body is 499, too slow is 408, and neither is a 5xx,
a traceback, or a wait for anybody else. Against a real `modelramp serve` process."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import httpx
import numpy as np
import pytest
import torch
from conftest import BODY_TIMEOUT_S, expected
from support.serving import ServingProcess


def _count(server: ServingProcess, code: str) -> float:
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith("modelramp_requests_total{") and f'code="{code}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _half_sent(server: ServingProcess, path: str = "/v2/models/model/infer") -> socket.socket:
    """A connection holding a request whose body is half sent."""
    body = json.dumps(
        {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    ).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    connection = socket.create_connection(("127.0.0.1", server.port))
    connection.sendall(head + body[: len(body) // 2])
    return connection


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.mark.parametrize("path", ["/v2/models/model/infer", "/invocations"])
def test_a_client_gone_mid_body_is_499_not_500(served_mlp: ServingProcess, path: str) -> None:
    gone_before, errors_before = _count(served_mlp, "499"), _count(served_mlp, "500")
    connection = _half_sent(served_mlp, path)
    time.sleep(0.3)  # let the server start reading the body
    connection.close()
    _wait_for(lambda: _count(served_mlp, "499") == gone_before + 1, "the disconnect was not counted as 499")
    assert _count(served_mlp, "500") == errors_before
    log = served_mlp.log_tail(400)
    assert "disconnected after" in log
    assert "Traceback" not in log and " ERROR " not in log, log


def test_a_stalled_upload_delays_nobody(served_mlp: ServingProcess, mlp: torch.nn.Module) -> None:
    stalled = _half_sent(served_mlp)
    try:
        time.sleep(0.3)
        rows = np.random.default_rng(3).normal(size=(2, 4)).astype(np.float32)
        body = {
            "inputs": [
                {"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": rows.ravel().tolist()}
            ]
        }
        # Far below the 60 s batch window: answered only if nothing waits for the stalled body.
        with httpx.Client(base_url=served_mlp.url, timeout=BODY_TIMEOUT_S / 2) as client:
            for _ in range(5):
                response = client.post("/v2/models/model/infer", json=body)
                assert response.status_code == 200, response.text
                data = np.reshape(response.json()["outputs"][0]["data"], (2, 3))
                np.testing.assert_allclose(data, expected(mlp, rows), rtol=1e-5, atol=1e-6)
    finally:
        stalled.close()


def test_a_body_slower_than_the_timeout_gets_408(served_mlp: ServingProcess) -> None:
    timed_out_before, errors_before = _count(served_mlp, "408"), _count(served_mlp, "500")
    with _half_sent(served_mlp) as stalled:
        stalled.settimeout(BODY_TIMEOUT_S * 5)
        answer = b""
        while chunk := stalled.recv(65536):  # the server closes after a 408
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 408 " in status_line, answer
    assert "--body-timeout-s" in json.loads(rest.partition(b"\r\n\r\n")[2])["error"]
    assert _count(served_mlp, "408") == timed_out_before + 1
    assert _count(served_mlp, "500") == errors_before
