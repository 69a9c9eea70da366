"""`modelramp serve` as a real subprocess on a loopback port, for the e2e tests."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from support.process import log_tail, terminate, wait_ready
from support.prometheus import free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ServingProcess:
    """Serves `model` (by default a TorchScript model taking 4 FP32 features) until stopped."""

    model: Path
    workdir: Path
    port: int = field(default_factory=free_port)
    # More flags, after the defaults (argparse: the last one wins), e.g. ["--format", "mlflow"].
    extra_args: list[str] = field(default_factory=list)
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
            *self.extra_args,
        ]  # fmt: skip
        # One intra-op thread each: several servers, Prometheus and the operator share two cores.
        env = {**os.environ, "PYTHONSAFEPATH": "1", "OMP_NUM_THREADS": "1"}
        self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        log_path = self.workdir / f"serve-{self.port}.log"
        wait_ready(
            self._process,
            f"{self.url}/v2/health/ready",
            what="modelramp serve",
            timeout=ready_timeout,
            stop=self.stop,
            log=log_path,
        )

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
