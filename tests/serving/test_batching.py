"""Dynamic batching: concurrent callers share forwards yet each gets exactly its own rows back."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from conftest import POISON, RunningServer, expected, torchscript_config

from modelramp.serving.batching import DynamicBatcher
from modelramp.serving.errors import InferenceFailed


@pytest.fixture(scope="module")
def wide_window_server(torchscript_mlp: Path) -> Iterator[RunningServer]:
    # A long window makes merging likely; correctness must not depend on it.
    config = torchscript_config(torchscript_mlp, max_batch_size=32, max_latency_ms=50, max_body_bytes=1 << 20)
    with RunningServer(config) as server:
        yield server


async def _fire(url: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        return await asyncio.gather(*(client.post("/v2/models/mlp/infer", json=body) for body in bodies))


def _request(rows: np.ndarray) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "input-0", "shape": list(rows.shape), "datatype": "FP32", "data": rows.ravel().tolist()}
        ]
    }


def test_concurrent_callers_get_their_own_rows(
    wide_window_server: RunningServer, mlp: torch.nn.Module
) -> None:
    generator = np.random.default_rng(7)
    inputs = [generator.normal(size=(int(generator.integers(1, 4)), 4)).astype(np.float32) for _ in range(48)]
    forwards_before = wide_window_server.metric("modelramp_batch_size_count")
    rows_before = wide_window_server.metric("modelramp_batch_size_sum")

    responses = asyncio.run(_fire(wide_window_server.url, [_request(rows) for rows in inputs]))

    for rows, response in zip(inputs, responses, strict=True):
        assert response.status_code == 200, response.text
        [output] = response.json()["outputs"]
        assert output["shape"] == [len(rows), 3]
        np.testing.assert_allclose(
            np.reshape(output["data"], output["shape"]), expected(mlp, rows), rtol=1e-5, atol=1e-6
        )
    forwards = wide_window_server.metric("modelramp_batch_size_count") - forwards_before
    rows_run = wide_window_server.metric("modelramp_batch_size_sum") - rows_before
    assert rows_run == sum(len(rows) for rows in inputs)
    assert forwards < len(inputs), "no two requests shared a forward"


def test_a_request_the_model_rejects_fails_alone(
    wide_window_server: RunningServer, mlp: torch.nn.Module
) -> None:
    generator = np.random.default_rng(11)
    inputs = [generator.normal(size=(2, 4)).astype(np.float32) for _ in range(24)]
    inputs[5][1, 2] = POISON * 2  # valid JSON, valid shape: only the model itself objects

    responses = asyncio.run(_fire(wide_window_server.url, [_request(rows) for rows in inputs]))

    assert responses[5].status_code == 500
    assert "the model failed on this input" in responses[5].json()["error"]
    for index, (rows, response) in enumerate(zip(inputs, responses, strict=True)):
        if index != 5:
            assert response.status_code == 200, response.text
            data = np.reshape(response.json()["outputs"][0]["data"], (2, 3))
            np.testing.assert_allclose(data, expected(mlp, rows), rtol=1e-5, atol=1e-6)


def test_requests_that_fail_validation_never_reach_a_batch(
    wide_window_server: RunningServer, mlp: torch.nn.Module
) -> None:
    good = np.ones((1, 4), dtype=np.float32)
    bodies = [_request(good) if index % 2 else {"inputs": [{"name": "input-0"}]} for index in range(20)]
    rows_before = wide_window_server.metric("modelramp_batch_size_sum")

    responses = asyncio.run(_fire(wide_window_server.url, bodies))

    assert [response.status_code for response in responses] == [
        400 if index % 2 == 0 else 200 for index in range(20)
    ]
    assert wide_window_server.metric("modelramp_batch_size_sum") - rows_before == 10


def _doubling(batch: np.ndarray) -> np.ndarray:
    return batch * 2


# Both places a forward can run: on the event loop (cheap models) and on the forward thread.
FORWARD_PLACES = pytest.mark.parametrize("inline", [True, False], ids=["on-the-loop", "on-a-thread"])


@FORWARD_PLACES
def test_a_lone_request_does_not_wait_for_the_window(inline: bool) -> None:
    """With a one-minute window, a request alone still comes back at once: nobody else is arriving."""

    async def scenario() -> list[int]:
        sizes: list[int] = []
        batcher = DynamicBatcher(
            _doubling,
            max_batch_size=8,
            max_latency_s=60,
            observe=lambda rows, _s, _out, _mirrored: sizes.append(len(rows)),
            inline=inline,
        )
        batcher.start()
        with batcher.arrival() as arrival:
            future = arrival.submit(np.arange(4.0).reshape(1, 4))
        result = await asyncio.wait_for(future, timeout=10)
        np.testing.assert_array_equal(result, [[0.0, 2.0, 4.0, 6.0]])
        await batcher.stop()
        return sizes

    assert asyncio.run(scenario()) == [1]


@FORWARD_PLACES
def test_the_batch_waits_for_requests_already_arriving_and_respects_the_size_cap(inline: bool) -> None:
    async def scenario() -> tuple[list[int], list[np.ndarray]]:
        sizes: list[int] = []
        batcher = DynamicBatcher(
            _doubling,
            max_batch_size=4,
            max_latency_s=60,
            observe=lambda rows, _s, _out, _mirrored: sizes.append(len(rows)),
            inline=inline,
        )
        batcher.start()
        futures = []
        with batcher.arrival() as first, batcher.arrival() as second, batcher.arrival() as third:
            futures.append(first.submit(np.full((2, 1), 1.0)))
            await asyncio.sleep(0.05)  # the batcher must hold the batch for `second` and `third`
            futures.append(second.submit(np.full((1, 1), 2.0)))
            futures.append(third.submit(np.full((2, 1), 3.0)))  # does not fit: next batch
        results = [await asyncio.wait_for(future, timeout=10) for future in futures]
        await batcher.stop()
        return sizes, results

    sizes, results = asyncio.run(scenario())
    assert sizes == [3, 2]
    for value, result in zip((1.0, 2.0, 3.0), results, strict=True):
        np.testing.assert_array_equal(result, np.full((len(result), 1), value * 2))


def _refusing_negatives(batch: np.ndarray) -> np.ndarray:
    if (batch < 0).any():
        raise ValueError("negative input")
    return batch * 2


@FORWARD_PLACES
def test_a_failing_merged_batch_is_retried_one_request_at_a_time(inline: bool) -> None:
    async def scenario() -> tuple[list[int], list[np.ndarray | BaseException]]:
        sizes: list[int] = []
        batcher = DynamicBatcher(
            _refusing_negatives,
            max_batch_size=8,
            max_latency_s=60,
            observe=lambda rows, _s, _out, _mirrored: sizes.append(len(rows)),
            inline=inline,
        )
        batcher.start()
        with batcher.arrival() as good, batcher.arrival() as bad, batcher.arrival() as other:
            futures = [
                good.submit(np.full((1, 2), 1.0)),
                bad.submit(np.full((1, 2), -1.0)),
                other.submit(np.full((2, 2), 3.0)),
            ]
        results = await asyncio.gather(*futures, return_exceptions=True)
        await batcher.stop()
        return sizes, results

    sizes, (good, bad, other) = asyncio.run(scenario())
    assert sizes == [1, 2]  # the merged forward of 4 rows failed and was not observed; then 1, (bad), 2
    np.testing.assert_array_equal(good, np.full((1, 2), 2.0))
    assert isinstance(bad, InferenceFailed)
    assert "negative input" in bad.message
    np.testing.assert_array_equal(other, np.full((2, 2), 6.0))


def test_objects_alive_once_ready_are_frozen_out_of_garbage_collection(torchscript_mlp: Path) -> None:
    """torch and the model's millions of objects must not be walked by every full collection
    (a pause of tens of ms on the event loop; bench/serving.py's p99)."""
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    with RunningServer(torchscript_config(torchscript_mlp)):
        assert gc.get_freeze_count() > 100_000
