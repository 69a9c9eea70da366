"""Real tiny models and real servers for the serving tests.

Models are built here (TorchScript, torch.export, MLflow in a local SQLite store); servers are the
real Starlette app on uvicorn + httptools, in a thread on a free loopback port. The SIGTERM test
and the real-client tests (`served_mlp`) start `modelramp serve` as a subprocess instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
import uvicorn
from support.serving import ServingProcess

from modelramp.serving.app import ServingApp, create_app
from modelramp.serving.config import ServeConfig
from modelramp.serving.input_reference import write_reference

POISON = 1000.0
BODY_TIMEOUT_S = 3
FEATURES = [
    "age",
    "income",
    "score",
    "tenure",
]  # the MLP refuses inputs above this, like a model with its own input checks


class MLP(torch.nn.Module):
    """4 features -> 3 class scores."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(4, 8)
        self.out = torch.nn.Linear(8, 3)
        self.limit = POISON

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x > self.limit).any()):
            raise ValueError("input above the model's range")
        return self.out(torch.relu(self.hidden(x)))


class Scorer(torch.nn.Module):
    """4 features -> one probability, for the prediction histogram."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(x))


@pytest.fixture(scope="session")
def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return MLP().eval()


@pytest.fixture(scope="session")
def scorer() -> torch.nn.Module:
    torch.manual_seed(1)
    return Scorer().eval()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def torchscript_mlp(mlp: torch.nn.Module, models_dir: Path) -> Path:
    path = models_dir / "mlp.pt"
    torch.jit.save(torch.jit.script(mlp), str(path))
    return path


@pytest.fixture(scope="session")
def exported_scorer(scorer: torch.nn.Module, models_dir: Path) -> Path:
    program = torch.export.export(
        scorer, (torch.randn(2, 4),), dynamic_shapes={"x": {0: torch.export.Dim("batch")}}
    )
    path = models_dir / "scorer.pt2"
    torch.export.save(program, str(path))
    return path


def expected(model: torch.nn.Module, rows: Any) -> np.ndarray:
    """What the model itself answers, computed in the test, not hard-coded."""
    with torch.inference_mode():
        return model(torch.tensor(rows, dtype=torch.float32)).numpy()


class RunningServer:
    """A real uvicorn server for one `ServingApp`, on a thread, on a free loopback port."""

    def __init__(self, config: ServeConfig) -> None:
        self.app: ServingApp = create_app(config)
        self.server = uvicorn.Server(
            uvicorn.Config(self.app.build(), host="127.0.0.1", port=0, http="httptools", log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> RunningServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.url, timeout=30)
        while self.client.get("/v2/health/ready").status_code != 200:
            assert self.app.load_error is None, str(self.app.load_error)
            assert time.monotonic() < deadline, "model did not become ready"
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample on /metrics (0 when absent)."""
        wanted = {"model": self.app.config.model_name, "version": self.app.config.model_version, **labels}
        for line in self.client.get("/metrics").text.splitlines():
            if not line.startswith(name + "{"):
                continue
            label_text = line[len(name) + 1 : line.rindex("}")]
            found = dict(part.split("=", 1) for part in label_text.split(","))
            if all(found.get(key) == f'"{value}"' for key, value in wanted.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


def torchscript_config(path: Path, **overrides: Any) -> ServeConfig:
    base: dict[str, Any] = {
        "model_uri": str(path),
        "format": "torchscript",
        "model_name": "mlp",
        "model_version": "3",
        "device": "cpu",
        "input_shape": (4,),
        "max_batch_size": 16,
        "max_latency_ms": 20,
        "max_body_bytes": 4096,
    }
    return ServeConfig.model_validate(base | overrides)


@pytest.fixture(scope="session")
def mlp_server(torchscript_mlp: Path) -> Iterator[RunningServer]:
    with RunningServer(torchscript_config(torchscript_mlp)) as server:
        yield server


def training_rows() -> np.ndarray:
    """The MLP's "training data": what its input reference is written from."""
    return np.random.default_rng(42).normal(size=(1000, 4)).astype(np.float32)


@pytest.fixture(scope="session")
def served_mlp(torchscript_mlp: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingProcess]:
    """`modelramp serve` as a process, shared by the client, fault and input-histogram tests.

    The batch window is far longer than any client timeout in those tests: were a stalled
    upload able to hold a batch, the other requests would time out.
    """
    workdir = tmp_path_factory.mktemp("served-mlp")
    reference = workdir / "input_reference.json"
    write_reference(training_rows(), FEATURES, reference, buckets=4)
    flags = [
        "--max-latency-ms", "60000",
        "--body-timeout-s", str(BODY_TIMEOUT_S),
        "--input-reference", str(reference),
        "--log-level", "info",
    ]  # fmt: skip
    with ServingProcess(torchscript_mlp, workdir, extra_args=flags) as server:
        yield server
