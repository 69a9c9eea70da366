"""Clients nobody here wrote, in their default modes, against a real `modelramp serve` process.

tritonclient (HTTP, sync and asyncio; binary tensors are its default, JSON on request, gzip and
deflate bodies) and kserve's `InferenceRESTClient` (binary and JSON), every answer checked
against the model itself.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
import tritonclient.http as triton
import tritonclient.http.aio as triton_aio
from conftest import expected
from support.serving import ServingProcess

MODEL = "model"  # the name ServingProcess serves under


def _rows(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, 4)).astype(np.float32)


def _host(server: ServingProcess) -> str:
    return f"127.0.0.1:{server.port}"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("compression", [None, "gzip", "deflate"])
@pytest.mark.parametrize("rows", [1, 7, 64])
def test_tritonclient_sync(
    served_mlp: ServingProcess, mlp: torch.nn.Module, binary: bool, compression: str | None, rows: int
) -> None:
    data = _rows(rows, seed=rows)
    request = triton.InferInput("input-0", list(data.shape), "FP32")
    request.set_data_from_numpy(data, binary_data=binary)
    with triton.InferenceServerClient(_host(served_mlp)) as client:
        result = client.infer(
            MODEL,
            [request],
            outputs=[triton.InferRequestedOutput("output-0", binary_data=binary)],
            request_compression_algorithm=compression,
        )
    output = result.as_numpy("output-0")
    assert output is not None and output.dtype == np.float32
    np.testing.assert_allclose(output, expected(mlp, data), rtol=1e-5, atol=1e-6)


def test_tritonclient_default_outputs_come_back_binary(
    served_mlp: ServingProcess, mlp: torch.nn.Module
) -> None:
    data = _rows(3, seed=5)
    request = triton.InferInput("input-0", list(data.shape), "FP32")
    request.set_data_from_numpy(data)  # binary_data=True, the default
    with triton.InferenceServerClient(_host(served_mlp)) as client:
        result = client.infer(MODEL, [request], request_id="r-1")  # no outputs: binary_data_output
    assert result.get_response()["id"] == "r-1"
    assert result.get_response()["outputs"][0]["parameters"]["binary_data_size"] == 3 * 3 * 4
    np.testing.assert_allclose(result.as_numpy("output-0"), expected(mlp, data), rtol=1e-5, atol=1e-6)


def test_tritonclient_asyncio(served_mlp: ServingProcess, mlp: torch.nn.Module) -> None:
    inputs = [_rows(int(count), seed=int(count)) for count in (1, 2, 5, 8, 13, 21)]

    async def run() -> list[np.ndarray]:
        client = triton_aio.InferenceServerClient(_host(served_mlp))
        try:
            assert await client.is_model_ready(MODEL)

            async def one(data: np.ndarray, binary: bool) -> np.ndarray:
                request = triton_aio.InferInput("input-0", list(data.shape), "FP32")
                request.set_data_from_numpy(data, binary_data=binary)
                outputs = [triton_aio.InferRequestedOutput("output-0", binary_data=binary)]
                result = await client.infer(MODEL, [request], outputs=outputs)
                answer: np.ndarray = result.as_numpy("output-0")
                return answer

            return await asyncio.gather(*(one(data, index % 2 == 0) for index, data in enumerate(inputs)))
        finally:
            await client.close()

    for data, output in zip(inputs, asyncio.run(run()), strict=True):
        np.testing.assert_allclose(output, expected(mlp, data), rtol=1e-5, atol=1e-6)


def test_tritonclient_control_endpoints(served_mlp: ServingProcess) -> None:
    with triton.InferenceServerClient(_host(served_mlp)) as client:
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
        config = client.get_model_config(MODEL)
        assert config["input"] == [{"name": "input-0", "data_type": "TYPE_FP32", "dims": [4]}]
        assert config["output"] == [{"name": "output-0", "data_type": "TYPE_FP32", "dims": [3]}]
        before = client.get_inference_statistics(MODEL)["model_stats"][0]
        request = triton.InferInput("input-0", [2, 4], "FP32")
        request.set_data_from_numpy(_rows(2, seed=9))
        client.infer(MODEL, [request])
        after = client.get_inference_statistics(MODEL)["model_stats"][0]
        assert (
            after["inference_stats"]["success"]["count"] == before["inference_stats"]["success"]["count"] + 1
        )
        assert after["inference_count"] == before["inference_count"] + 2
        assert client.get_inference_statistics()["model_stats"][0]["name"] == MODEL
        assert client.get_model_repository_index() == [{"name": MODEL, "version": "1", "state": "READY"}]
        with pytest.raises(triton.InferenceServerException, match="'absent' is not served here"):
            client.get_model_config("absent")


def test_tritonclient_sees_clear_errors(served_mlp: ServingProcess) -> None:
    with triton.InferenceServerClient(_host(served_mlp)) as client:
        request = triton.InferInput("input-0", [1, 4], "FP64")
        request.set_data_from_numpy(np.zeros((1, 4), dtype=np.float64))
        with pytest.raises(triton.InferenceServerException, match="takes FP32, got 'FP64'") as raised:
            client.infer(MODEL, [request])
        assert raised.value.status() == "400"
        with pytest.raises(triton.InferenceServerException, match="Not Found") as missing:
            client.load_model(MODEL)  # the model-repository load extension is not served
        assert missing.value.status() == "404"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_kserve_rest_client(served_mlp: ServingProcess, mlp: torch.nn.Module, binary: bool) -> None:
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig  # noqa: PLC0415 - heavy

    data = _rows(5, seed=17)

    async def run() -> np.ndarray:
        client = InferenceRESTClient(RESTConfig(protocol="v2"))
        try:
            assert await client.is_server_ready(served_mlp.url)
            tensor = InferInput("input-0", list(data.shape), "FP32")
            tensor.set_data_from_numpy(data, binary_data=binary)
            request = InferRequest(model_name=MODEL, infer_inputs=[tensor], request_id="k-1")
            response = await client.infer(served_mlp.url, request, model_name=MODEL)
            assert response.id == "k-1"
            answer: np.ndarray = response.outputs[0].as_numpy()
            return answer
        finally:
            await client.close()

    np.testing.assert_allclose(asyncio.run(run()), expected(mlp, data), rtol=1e-5, atol=1e-6)
