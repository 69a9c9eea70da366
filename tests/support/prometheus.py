"""A real Prometheus for tests: Debian's binary on 127.0.0.1, a free port, a temp config and TSDB.

The analysis and e2e suites both need one, scraping targets with the static labels a pod would
get from its ModelDeployment (`namespace`, `modeldeployment`, `track`). `stop()` and `start()`
may be called again on the same instance to simulate an outage; data and port survive it.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from support.process import log_tail, terminate, wait_ready

REPO = Path(__file__).resolve().parents[2]
INSTALL_HINT = "Prometheus is not installed: run `make prometheus` (hack/install-debs.sh prometheus)"


def prometheus_binary() -> Path | None:
    found = shutil.which("prometheus")
    return Path(found) if found else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Target:
    """One scrape target: `host:port` plus the labels Prometheus attaches to all its series."""

    address: str
    labels: Mapping[str, str]


@dataclass
class PrometheusServer:
    """A Prometheus process scraping `targets` every `scrape_interval`; use as a context manager."""

    workdir: Path
    targets: Sequence[Target]
    scrape_interval: str = "1s"
    port: int = field(default_factory=free_port)
    # Where it listens: loopback, or the real node's bridge address for pods to query it.
    host: str = "127.0.0.1"
    # More scrape jobs, as Prometheus's config spells them (e.g. Kubernetes pod discovery).
    scrape_configs: Sequence[dict[str, Any]] = ()
    _process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, ready_timeout: float = 30.0) -> None:
        binary = prometheus_binary()
        if binary is None:
            raise RuntimeError(INSTALL_HINT)
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self._config()))
        log = (self.workdir / "prometheus.log").open("ab")
        self._process = subprocess.Popen(
            [
                str(binary),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address={self.host}:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_ready(ready_timeout)

    def stop(self) -> None:
        if self._process is None:
            return
        terminate(self._process, timeout=15)
        self._process = None

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query result (vector samples), for test set-up checks only."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as response:
            body: dict[str, Any] = json.load(response)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(self, promql: str, minimum: float, timeout: float = 60.0) -> None:
        """Waits until every series of `promql` is at least `minimum` (and there is one)."""
        deadline = time.monotonic() + timeout
        last: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            last = self.query(promql)
            if last and all(float(sample["value"][1]) >= minimum for sample in last):
                return
            time.sleep(0.5)
        raise TimeoutError(f"{promql!r} did not reach {minimum} in {timeout}s; last result {last}")

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.workdir / "prometheus.log", lines)

    def _config(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "scrape_configs": [
                {
                    "job_name": "modelramp",
                    "static_configs": [
                        {"targets": [target.address], "labels": dict(target.labels)}
                        for target in self.targets
                    ],
                },
                *self.scrape_configs,
            ],
        }

    def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        wait_ready(
            self._process,
            f"{self.url}/-/ready",
            what="prometheus",
            timeout=timeout,
            stop=self.stop,
            log=self.workdir / "prometheus.log",
        )

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
