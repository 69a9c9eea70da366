"""`modelramp serve` as a real subprocess on a loopback port, for the e2e tests."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from support.process import LoggedServer
from support.prometheus import free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ServingProcess(LoggedServer):
    """Serves `model` (by default a TorchScript model taking 4 FP32 features) until stopped."""

    model: Path
    workdir: Path
    port: int = field(default_factory=free_port)
    # More flags, after the defaults (argparse: the last one wins), e.g. ["--format", "mlflow"].
    extra_args: list[str] = field(default_factory=list)
    ready_timeout: float = 90.0
    what: ClassVar[str] = "modelramp serve"
    _process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        # Several servers may share a workdir.
        return self.workdir / f"serve-{self.port}.log"

    def start(self) -> None:
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
        self._launch(command, f"{self.url}/v2/health/ready", self.ready_timeout, env=env)
