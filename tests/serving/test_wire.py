"""The wire formats around the tensors: the binary extension's codec against tritonclient's own,
compressed bodies, JSON errors on every route, trailing slashes."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import tritonclient.http as triton
from conftest import RunningServer, expected, torchscript_config
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor, triton_to_np_dtype

from modelramp.serving.binary import decode_tensor, encode_tensor
from modelramp.serving.tensors import DATATYPES

ROWS = [[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -2.0, 3.0]]


@pytest.mark.parametrize("datatype", sorted(DATATYPES))
def test_numeric_tensors_read_as_tritonclient_writes_them(datatype: str) -> None:
    dtype = triton_to_np_dtype(datatype)
    values = (np.arange(12) % 2 if datatype == "BOOL" else np.arange(12) * 3 % 7).astype(dtype).reshape(3, 4)
    raw = memoryview(values.tobytes())  # what InferInput.set_data_from_numpy(binary_data=True) sends
    decoded = decode_tensor(raw, datatype, [3, 4], "inputs[0]")
    np.testing.assert_array_equal(decoded, values)
    assert encode_tensor(decoded, datatype) == raw.tobytes()


def test_bytes_tensors_match_tritonclient() -> None:
    values = np.array([b"", b"a", "ünïcode".encode(), b"\x00\xff" * 40], dtype=np.object_).reshape(2, 2)
    serialized = serialize_byte_tensor(values).item()  # a 0-d object array holding the bytes
    decoded = decode_tensor(memoryview(serialized), "BYTES", [2, 2], "inputs[0]")
    assert decoded.tolist() == values.tolist()
    assert encode_tensor(decoded, "BYTES") == serialized
    assert deserialize_bytes_tensor(encode_tensor(values, "BYTES")).tolist() == values.reshape(-1).tolist()


def _binary_request(
    rows: np.ndarray, *, size: int | None = None, extra: bytes = b"", cut: int = 0
) -> tuple[bytes, int]:
    raw = rows.astype(np.float32).tobytes()[: rows.size * 4 - cut]
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": list(rows.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw) if size is None else size},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return header + raw + extra, len(header)


def test_binary_in_and_out_over_plain_http(mlp_server: RunningServer, mlp: torch.nn.Module) -> None:
    rows = np.asarray(ROWS, dtype=np.float32)
    body, header_length = _binary_request(rows)
    response = mlp_server.client.post(
        "/v2/models/mlp/infer", content=body, headers={"Inference-Header-Content-Length": str(header_length)}
    )
    assert response.status_code == 200, response.text
    json_length = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:json_length])
    [output] = header["outputs"]
    assert output["parameters"]["binary_data_size"] == len(response.content) - json_length == 2 * 3 * 4
    data = np.frombuffer(response.content[json_length:], dtype="<f4").reshape(output["shape"])
    np.testing.assert_allclose(data, expected(mlp, ROWS), rtol=1e-5, atol=1e-6)


BINARY_CASES: list[tuple[dict[str, Any], str]] = [
    ({"cut": 20}, "FP32 of shape [2, 4] is 32 bytes, binary_data_size says 12"),
    ({"size": 12}, "32 bytes after the JSON header, the inputs' binary_data_size add up to 12"),
    ({"size": 64}, "run past the 32 bytes after the JSON header"),
    ({"extra": b"\x00" * 4}, "36 bytes after the JSON header, the inputs' binary_data_size add up to 32"),
]


@pytest.mark.parametrize(("change", "words"), BINARY_CASES, ids=[case[1][:30] for case in BINARY_CASES])
def test_inconsistent_binary_requests_get_400(
    mlp_server: RunningServer, change: dict[str, Any], words: str
) -> None:
    body, header_length = _binary_request(np.asarray(ROWS), **change)
    response = mlp_server.client.post(
        "/v2/models/mlp/infer", content=body, headers={"Inference-Header-Content-Length": str(header_length)}
    )
    assert response.status_code == 400
    assert words in response.json()["error"]


def test_binary_data_needs_its_header(mlp_server: RunningServer) -> None:
    body, header_length = _binary_request(np.asarray(ROWS))
    response = mlp_server.client.post("/v2/models/mlp/infer", content=body[:header_length])
    assert response.status_code == 400
    assert "needs the Inference-Header-Content-Length header" in response.json()["error"]
    too_long = mlp_server.client.post(
        "/v2/models/mlp/infer", content=body, headers={"Inference-Header-Content-Length": "99999"}
    )
    assert too_long.status_code == 400 and "is longer than the body" in too_long.json()["error"]


def _json_request() -> bytes:
    return json.dumps(
        {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": ROWS}]}
    ).encode()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies(mlp_server: RunningServer, mlp: torch.nn.Module, encoding: str) -> None:
    squeeze = gzip.compress if encoding == "gzip" else zlib.compress
    response = mlp_server.client.post(
        "/v2/models/mlp/infer", content=squeeze(_json_request()), headers={"Content-Encoding": encoding}
    )
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(
        np.reshape(response.json()["outputs"][0]["data"], (2, 3)), expected(mlp, ROWS), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    ("body", "encoding", "status", "words"),
    [
        (b"not gzip at all", "gzip", 400, "body: not valid gzip data"),
        (gzip.compress(b"{}", mtime=0)[:-6], "gzip", 400, "gzip data is truncated"),
        (gzip.compress(b" " * 100_000, mtime=0), "gzip", 413, "once inflated"),  # the server's limit is 4096
        (b"{}", "br", 415, "Content-Encoding: 'br' is not supported"),
    ],
)
def test_bad_compressed_bodies(
    mlp_server: RunningServer, body: bytes, encoding: str, status: int, words: str
) -> None:
    counted = mlp_server.metric("modelramp_requests_total", code=str(status))
    response = mlp_server.client.post(
        "/v2/models/mlp/infer", content=body, headers={"Content-Encoding": encoding}
    )
    assert response.status_code == status
    assert words in response.json()["error"]
    assert mlp_server.metric("modelramp_requests_total", code=str(status)) == counted + 1


def test_every_route_answers_json_errors(mlp_server: RunningServer) -> None:
    missing = mlp_server.client.get("/no/such/path")
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
    wrong_method = mlp_server.client.get("/v2/models/mlp/infer")
    assert wrong_method.status_code == 405 and wrong_method.json() == {"error": "Method Not Allowed"}
    assert wrong_method.headers["allow"] == "POST"
    unknown_model = mlp_server.client.get("/v2/models/absent/config")
    assert unknown_model.status_code == 404 and "'absent' is not served here" in unknown_model.json()["error"]


def test_trailing_slashes_are_answered_not_redirected(mlp_server: RunningServer) -> None:
    response = mlp_server.client.post("/v2/models/mlp/infer/", content=_json_request())
    assert response.status_code == 200, response.text
    assert mlp_server.client.get("/v2/health/ready/").json() == {"ready": True}
    assert mlp_server.client.get("/v2/models/mlp/").json()["name"] == "mlp"


def test_nan_travels_both_ways_with_allow_nan(torchscript_mlp: Path, mlp: torch.nn.Module) -> None:
    rows = np.array([[np.nan, 1.0, 2.0, 3.0], [0.5, -1.0, 2.0, 0.25]], dtype=np.float32)
    with RunningServer(torchscript_config(torchscript_mlp, allow_nan=True)) as server:
        host = server.url.removeprefix("http://")
        with triton.InferenceServerClient(host) as client:
            for binary in (True, False):  # JSON: tritonclient writes Python's NaN literal
                tensor = triton.InferInput("input-0", list(rows.shape), "FP32")
                tensor.set_data_from_numpy(rows, binary_data=binary)
                outputs = [triton.InferRequestedOutput("output-0", binary_data=True)]
                output = client.infer("mlp", [tensor], outputs=outputs).as_numpy("output-0")
                assert np.isnan(output[0]).all(), binary  # NaN in, NaN out: binary carries it
                np.testing.assert_allclose(output[1], expected(mlp, rows[1:])[0], rtol=1e-5, atol=1e-6)
