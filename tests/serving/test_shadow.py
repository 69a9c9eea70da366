"""The shadow tee between two real `modelramp serve` processes on loopback: stable answers every
client, copies its share of the requests to the canary (within a binomial tolerance over 1,200
requests), pairs both answers per request, and the canary counts the copies apart from its real
traffic. A canary that is down or fails only costs comparisons, never stable's answers."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import torch
from conftest import MLP, POISON, expected
from prometheus_client.parser import text_string_to_metric_families
from support.prometheus import free_port
from support.serving import ServingProcess

from modelramp.serving.bodies import receive_body
from modelramp.serving.predictor import scores
from modelramp.serving.shadow import answer_scores, canary_path, read_config

REQUESTS = 1200
PERCENT = 30


def samples(server: ServingProcess, name: str) -> list[tuple[dict[str, str], float]]:
    text = httpx.get(f"{server.url}/metrics").text
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def total(server: ServingProcess, name: str, **labels: str) -> float:
    return sum(value for found, value in samples(server, name) if labels.items() <= found.items())


def wait_for(what: str, probe: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def write_config(path: Path, target: str | None, percent: int = PERCENT) -> None:
    config = {"target": target, "percent": percent, "stableVersion": "s1", "canaryVersion": "c1"}
    path.write_text(json.dumps(config if target else {}))


def body(rows: list[list[float]]) -> dict[str, object]:
    return {"inputs": [{"name": "input-0", "shape": [len(rows), 4], "datatype": "FP32", "data": rows}]}


@pytest.fixture(scope="module")
def strict_mlp(models_dir: Path) -> Path:
    """The MLP's weights with its input check at 1 instead of 1000: a canary that fails requests
    stable answers."""
    torch.manual_seed(0)
    model = MLP().eval()
    model.limit = 1.0
    path = models_dir / "strict-mlp.pt"
    torch.jit.save(torch.jit.script(model), str(path))
    return path


@pytest.fixture(scope="module")
def pair(
    torchscript_mlp: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServingProcess, ServingProcess, Path]]:
    workdir = tmp_path_factory.mktemp("shadow")
    config = workdir / "shadow.json"
    write_config(config, None)
    canary = ServingProcess(torchscript_mlp, workdir, extra_args=["--model-version", "c1"])
    stable = ServingProcess(
        torchscript_mlp, workdir, extra_args=["--model-version", "s1", "--shadow-config", str(config)]
    )
    with canary, stable:
        yield stable, canary, config


def drained(stable: ServingProcess) -> Callable[[], bool]:
    """Every copy compared or dropped: the tee's counts stop moving."""
    last: list[float] = []

    def settled() -> bool:
        now = total(stable, "modelramp_shadow_requests_total") + total(
            stable, "modelramp_shadow_dropped_total"
        )
        last.append(now)
        time.sleep(0.3)
        return len(last) > 1 and last[-2] == now

    return settled


def test_stable_copies_its_share_and_the_canary_counts_copies_apart(
    pair: tuple[ServingProcess, ServingProcess, Path], mlp: torch.nn.Module
) -> None:
    stable, canary, config = pair
    write_config(config, canary.url)
    wait_for("the tee on", lambda: total(stable, "modelramp_shadow_active") == 1)
    rng = np.random.default_rng(0)
    with httpx.Client(base_url=stable.url) as client:
        for _ in range(REQUESTS):
            rows = rng.uniform(-2, 2, (2, 4)).round(3).tolist()
            answer = client.post("/v2/models/model/infer", json=body(rows))
            assert answer.status_code == 200
            assert np.allclose(
                answer.json()["outputs"][0]["data"], expected(mlp, rows).reshape(-1), atol=1e-5
            )
    wait_for("the copies compared", drained(stable))

    copies = total(canary, "modelramp_mirrored_requests_total", code="200")
    # Binomial(1200, 0.3): sd 15.9; 4.5 sd either side is missed by chance once in 150,000 runs.
    spread = 4.5 * math.sqrt(REQUESTS * PERCENT / 100 * (1 - PERCENT / 100))
    assert abs(copies - REQUESTS * PERCENT / 100) <= spread
    # Copies never count as the canary's real traffic, nor in its real prediction histogram.
    assert total(canary, "modelramp_requests_total") == 0
    assert total(canary, "modelramp_prediction_count") == 0
    assert total(canary, "modelramp_mirrored_prediction_count") == 2 * copies
    # Stable paired every copy: both answered it, in the same time on the same model ...
    assert (
        total(stable, "modelramp_shadow_requests_total", canary_version="c1", stable="ok", canary="ok")
        == copies
    )
    assert total(stable, "modelramp_shadow_dropped_total") == 0
    assert total(stable, "modelramp_shadow_latency_ratio_count", canary_version="c1") == copies
    # ... with the same score on every row: the joint table is all diagonal.
    cells = samples(stable, "modelramp_shadow_predictions_total")
    assert sum(v for labels, v in cells if labels["stable_le"] == labels["canary_le"]) == 2 * copies
    assert sum(v for labels, v in cells if labels["stable_le"] != labels["canary_le"]) == 0
    assert total(stable, "modelramp_requests_total", code="200") >= REQUESTS

    write_config(config, None)
    wait_for("the tee off", lambda: total(stable, "modelramp_shadow_active") == 0)
    before = total(canary, "modelramp_mirrored_requests_total")
    for _ in range(50):
        httpx.post(f"{stable.url}/v2/models/model/infer", json=body([[0.1, 0.2, 0.3, 0.4]]))
    time.sleep(0.5)
    assert total(canary, "modelramp_mirrored_requests_total") == before


def test_a_canary_failing_stables_good_requests_is_counted_per_request(
    strict_mlp: Path, torchscript_mlp: Path, tmp_path: Path
) -> None:
    config = tmp_path / "shadow.json"
    with (
        ServingProcess(strict_mlp, tmp_path, extra_args=["--model-version", "c1"]) as canary,
        ServingProcess(
            torchscript_mlp, tmp_path, extra_args=["--model-version", "s1", "--shadow-config", str(config)]
        ) as stable,
    ):
        write_config(config, canary.url, percent=100)
        wait_for("the tee on", lambda: total(stable, "modelramp_shadow_active") == 1)
        for value in (0.5, 5.0, 0.5, 5.0, POISON * 2):
            httpx.post(f"{stable.url}/v2/models/model/infer", json=body([[value] * 4]))
        wait_for("the copies compared", drained(stable))
        pairs = {
            (labels["stable"], labels["canary"]): value
            for labels, value in samples(stable, "modelramp_shadow_requests_total")
            if labels.get("canary_version") == "c1"
        }
        # 0.5: both answer; 5.0: only the canary fails (its limit is 1); 2000: both fail.
        assert pairs == {("ok", "ok"): 2, ("ok", "error"): 2, ("error", "ok"): 0, ("error", "error"): 1}


def test_a_canary_that_is_down_costs_stable_nothing_but_the_comparisons(
    pair: tuple[ServingProcess, ServingProcess, Path], mlp: torch.nn.Module
) -> None:
    stable, _, config = pair
    write_config(config, f"http://127.0.0.1:{free_port()}", percent=100)
    wait_for("the tee on", lambda: total(stable, "modelramp_shadow_active") == 1)
    before = total(stable, "modelramp_shadow_requests_total")
    dropped = total(stable, "modelramp_shadow_dropped_total", reason="unreachable")
    rows = [[0.1, 0.2, 0.3, 0.4]]
    for _ in range(100):
        answer = httpx.post(f"{stable.url}/v2/models/model/infer", json=body(rows))
        assert answer.status_code == 200
        assert np.allclose(answer.json()["outputs"][0]["data"], expected(mlp, rows).reshape(-1), atol=1e-5)
    wait_for("the copies given up", drained(stable))
    assert total(stable, "modelramp_shadow_dropped_total", reason="unreachable") - dropped == 100
    assert total(stable, "modelramp_shadow_requests_total") == before
    write_config(config, None)


# --- the pieces the tee is made of --------------------------------------------------------------------


def test_scores_are_read_alike_from_every_answer_format() -> None:
    rows = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]], dtype=np.float32)
    oip = orjson.dumps(
        {"outputs": [{"name": "o", "datatype": "FP32", "shape": [2, 3], "data": rows.reshape(-1)}]},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    raw = rows.tobytes()
    header = orjson.dumps(
        {
            "outputs": [
                {
                    "name": "o",
                    "datatype": "FP32",
                    "shape": [2, 3],
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    )
    mlflow = orjson.dumps({"predictions": rows}, option=orjson.OPT_SERIALIZE_NUMPY)
    wanted = scores(rows)
    for body, header_length in ((oip, None), (header + raw, len(header)), (mlflow, None)):
        found = answer_scores(body, header_length)
        assert found is not None and np.allclose(found, wanted, atol=1e-6)
    assert answer_scores(b'{"error": "bad input"}', None) is None
    assert answer_scores(b"not json", None) is None


def test_a_request_for_stables_version_goes_to_the_canarys_model() -> None:
    assert canary_path("/v2/models/web/versions/abc123/infer") == "/v2/models/web/infer"
    assert canary_path("/v2/models/web/infer") == "/v2/models/web/infer"
    assert canary_path("/invocations") == "/invocations"


def test_a_missing_empty_or_invalid_config_copies_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shadow.json"
    assert not read_config(path).copies_from("s1")
    path.write_text("")
    assert not read_config(path).copies_from("s1")
    path.write_text('{"target": "not a url"}')
    assert not read_config(path).copies_from("s1")
    path.write_text('{"target": "http://web-canary.ns.svc:80", "percent": 10, "stableVersion": "s1"}')
    config = read_config(path)
    assert config.copies_from("s1") and config.percent == 10
    # The canary's pods mount the same file: a server of another version copies nothing.
    assert not config.copies_from("c1")


@pytest.mark.parametrize(
    ("headers", "mirrored"),
    [
        ([(b"x-modelramp-shadow", b"1")], True),
        ([(b"host", b"web.ml.svc-shadow")], True),
        ([(b"host", b"web.ml.svc-shadow:8080")], True),
        ([(b"host", b"web.ml.svc:8080")], False),
        ([], False),
    ],
)
def test_copies_are_told_apart_by_our_header_or_envoys_shadow_host(
    headers: list[tuple[bytes, bytes]], mirrored: bool
) -> None:
    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    scope = {"type": "http", "headers": headers}
    body = asyncio.run(receive_body(scope, receive, limit=1024, timeout_s=1.0))
    assert body.mirrored is mirrored
