"""`modelramp serve` as a process: configuration from env and flags, exit codes, SIGTERM drain."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from conftest import expected

from modelramp.serving.cli import main, parse_config


def test_flags_win_over_environment() -> None:
    environ = {
        "MODELRAMP_MODEL_URI": "/models/a.pt",
        "MODELRAMP_FORMAT": "torchscript",
        "MODELRAMP_MAX_BATCH_SIZE": "8",
        "MODELRAMP_TORCH_THREADS": "3",
    }
    config = parse_config(["--max-batch-size", "64", "--prediction-buckets", "0.25,0.5,0.75"], environ)
    assert (config.model_uri, config.format, config.max_batch_size) == ("/models/a.pt", "torchscript", 64)
    assert config.prediction_buckets == (0.25, 0.5, 0.75)
    assert config.torch_threads == 3


def test_invalid_configuration_exits_2_naming_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model-uri", "/m.pt", "--format", "onnx"]) == 2
    assert (
        "format: Input should be 'aoti', 'exported-program', 'torchscript' or 'mlflow'"
        in capsys.readouterr().err
    )
    assert main(["--model-uri", "/m.pt", "--format", "torchscript", "--prediction-buckets", "0.5,0.1"]) == 2
    assert "prediction_buckets" in capsys.readouterr().err
    assert main(["--model-uri", "/m.pt", "--format", "torchscript", "--torch-threads", "0"]) == 2
    assert "torch_threads" in capsys.readouterr().err


def test_a_model_that_cannot_load_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--model-uri", str(tmp_path / "absent.pt"), "--format", "torchscript", "--input-shape", "4",
                 "--host", "127.0.0.1", "--port", "0", "--device", "cpu"])  # fmt: skip
    assert code == 1
    assert "does not exist" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_sigterm_drains_the_request_in_flight(torchscript_mlp: Path, mlp: torch.nn.Module) -> None:
    port = _free_port()
    environ = os.environ | {
        "PYTHONSAFEPATH": "1",
        "MODELRAMP_MODEL_URI": str(torchscript_mlp),
        "MODELRAMP_FORMAT": "torchscript",
        "MODELRAMP_INPUT_SHAPE": "4",
        "MODELRAMP_DEVICE": "cpu",
    }
    command = [sys.executable, "-m", "modelramp.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "server never became ready"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)

        rows = [[0.3, 0.1, -0.2, 0.9]]
        body = json.dumps({"inputs": rows}).encode()
        head = (
            "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", port)) as connection:
            connection.sendall(head.encode() + body[:10])  # the request is now in flight
            time.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert process.poll() is None, "the server quit with a request in flight"
            with pytest.raises(httpx.TransportError):  # no new connections while draining
                httpx.get(f"http://127.0.0.1:{port}/v2/health/live")
            connection.sendall(body[10:])
            response = b""
            while chunk := connection.recv(65536):
                response += chunk
        status_line, _, rest = response.partition(b"\r\n")
        assert b" 200 " in status_line, response
        predictions = json.loads(rest.partition(b"\r\n\r\n")[2])["predictions"]
        np.testing.assert_allclose(predictions, expected(mlp, rows), rtol=1e-5)
        # Drained, uvicorn re-raises the signal: the exit status says "stopped by SIGTERM".
        assert process.wait(timeout=30) == -signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
