"""`modelramp serve --processes 2` as a real process tree: one port, answers and metrics for all,
SIGTERM and a dying process stop them all."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
from conftest import expected
from prometheus_client.parser import text_string_to_metric_families
from support.process import log_tail, wait_ready
from support.prometheus import free_port
from support.serving import REPO, ServingProcess

from modelramp.serving.cli import main

ROWS = [[0.3, 0.1, -0.2, 0.9], [1.5, -0.4, 0.0, 0.2]]
# Fresh connections until each process has answered some: the kernel hands each to whichever
# process accepts first, so a fixed count could land on one alone.
MAX_REQUESTS = 2000


@pytest.fixture
def two_processes(
    torchscript_mlp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ServingProcess]:
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the supervisor keeps the processes' sockets
    with ServingProcess(
        torchscript_mlp, tmp_path, extra_args=["--processes", "2", "--log-level", "info"]
    ) as server:
        yield server


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _served_by_each(directory: Path) -> list[float]:
    """Each process's own count of answered predictions, read from it directly."""
    counts = []
    for index in range(2):
        with socket.socket(socket.AF_UNIX) as connection:
            connection.connect(f"\0{directory.name}/process-{index}")
            raw = b"".join(iter(lambda: connection.recv(65536), b""))
        families = json.loads(raw)["families"]
        requests = next(family for family in families if family["name"] == "modelramp_requests")
        counts.append(sum(value for name, labels, value in requests["samples"] if name.endswith("_total")))
    return counts


def _scraped(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics").text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels.get("le") and sample.labels.get("code", "200") == "200"
    }


def test_every_process_answers_for_all(
    two_processes: ServingProcess, mlp: torch.nn.Module, tmp_path: Path
) -> None:
    (directory,) = tmp_path.glob("modelramp-serve-*")
    sent = 0
    while min(_served_by_each(directory)) == 0:
        assert sent < MAX_REQUESTS, "one process took every connection"
        response = httpx.post(f"{two_processes.url}/v2/models/model/infer", json=_request())
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == pytest.approx(
            expected(mlp, ROWS).ravel().tolist(), rel=1e-5
        )
        sent += 1
    assert sum(_served_by_each(directory)) == sent
    for _ in range(10):  # each scrape on a connection of its own, whichever process takes it
        scraped = _scraped(two_processes.url)
        assert scraped["modelramp_requests_total"] == sent
        assert scraped["modelramp_batch_size_count"] == sent
        assert scraped["modelramp_model_info"] == 1.0
        statistics = httpx.get(f"{two_processes.url}/v2/models/model/stats").json()["model_stats"][0]
        assert statistics["inference_stats"]["success"]["count"] == sent
        assert statistics["inference_count"] == sent * len(ROWS)


def _request() -> dict[str, object]:
    return {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": ROWS}]}


def test_sigterm_drains_and_stops_every_process(two_processes: ServingProcess, tmp_path: Path) -> None:
    process = two_processes._process
    assert process is not None
    children = _children(process.pid)
    assert len(children) == 2
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == -signal.SIGTERM
    for child in children:
        assert (
            not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]
        )
    assert not list(tmp_path.glob("modelramp-serve-*")), "the processes' directory was left behind"


def test_a_process_that_dies_stops_the_others(two_processes: ServingProcess) -> None:
    process = two_processes._process
    assert process is not None
    first, second = _children(process.pid)
    os.kill(first, signal.SIGKILL)
    assert process.wait(timeout=30) == 1
    deadline = time.monotonic() + 5
    while Path(f"/proc/{second}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{second}").exists()
    assert "server process 0 exited with status -9; stopping the others" in two_processes.log_tail()


def test_a_model_that_cannot_load_exits_1(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    code = main(["--model-uri", str(tmp_path / "absent.pt"), "--format", "torchscript", "--input-shape", "4",
                 "--host", "127.0.0.1", "--port", "0", "--device", "cpu", "--processes", "2"])  # fmt: skip
    assert code == 1
    assert "does not exist" in capfd.readouterr().err


@pytest.mark.parametrize("reuse_port", [False, True], ids=["any-server", "servers-left-behind"])
@pytest.mark.timeout(60)  # a supervisor that joined the port would serve on: fail, don't hang
def test_a_port_in_use_exits_1_naming_it(
    torchscript_mlp: Path, capsys: pytest.CaptureFixture[str], reuse_port: bool
) -> None:
    with socket.socket() as taken:
        # SO_REUSEPORT: as `--processes` listen; a supervisor must not join them and share traffic.
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(reuse_port))
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["--model-uri", str(torchscript_mlp), "--format", "torchscript", "--input-shape", "4",
                     "--host", "127.0.0.1", "--port", str(port), "--processes", "2"])  # fmt: skip
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}: [Errno 98] Address already in use" in capsys.readouterr().err


def test_processes_stop_when_the_supervisor_is_killed(two_processes: ServingProcess) -> None:
    process = two_processes._process
    assert process is not None
    children = _children(process.pid)
    process.kill()  # no handler runs: the kernel tells the processes (PR_SET_PDEATHSIG)
    process.wait()
    deadline = time.monotonic() + 30
    while any(_alive(child) for child in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(child) for child in children)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_as_a_containers_pid_1_sigterm_ends_with_status_0(torchscript_mlp: Path, tmp_path: Path) -> None:
    """In a pod the supervisor is PID 1, which the kernel does not signal: re-raising SIGTERM to
    itself does nothing, and the exit status must still say "stopped as asked"."""
    port, log = free_port(), tmp_path / "serve.log"
    serve = [str(REPO / ".venv" / "bin" / "modelramp"), "serve", "--model-uri", str(torchscript_mlp),
             "--format", "torchscript", "--input-shape", "4", "--host", "127.0.0.1", "--port", str(port),
             "--processes", "2"]  # fmt: skip
    with log.open("wb") as sink:
        unshared = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--kill-child", *serve],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=os.environ | {"PYTHONSAFEPATH": "1"},
        )
    try:
        url = f"http://127.0.0.1:{port}/v2/health/ready"
        wait_ready(unshared, url, what="modelramp serve", timeout=90, stop=unshared.kill, log=log)
        (supervisor,) = _children(unshared.pid)  # PID 1 inside the namespace
        os.kill(supervisor, signal.SIGTERM)
        assert unshared.wait(timeout=30) == 0, log_tail(log)
    finally:
        if unshared.poll() is None:
            unshared.kill()
            unshared.wait()
