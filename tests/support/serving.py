"""`modelramp serve` as a real subprocess on a loopback port, for the e2e tests."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from support.process import log_tail, terminate
from support.prometheus import free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ServingProcess:
    """Serves `model` (a TorchScript scorer with 4 FP32 features) until stopped."""

    model: Path
    workdir: Path
    port: int = field(default_factory=free_port)
    _process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 90.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / f"serve-{self.port}.log").open("ab")
        command = [
            str(REPO / ".venv" / "bin" / "modelramp"),
            "serve",
            "--model-uri", f"file://{self.model}",
            "--format", "torchscript",
            "--model-name", "model",
            "--input-shape", "4",
            "--input-datatype", "FP32",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--log-level", "warning",
        ]  # fmt: skip
        # One intra-op thread each: several servers, Prometheus and the operator share two cores.
        env = {**os.environ, "PYTHONSAFEPATH": "1", "OMP_NUM_THREADS": "1"}
        self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"modelramp serve exited {self._process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"modelramp serve not ready in {ready_timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self._process is None:
            return
        terminate(self._process)
        self._process = None

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.workdir / f"serve-{self.port}.log", lines)

    def __enter__(self) -> ServingProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
