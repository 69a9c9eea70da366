"""A real Prometheus for tests on 127.0.0.1 (or the real node's bridge address), a free port, a temp
config and TSDB. The binary is built from Prometheus's Go module with Kubernetes service discovery
(hack/install-tools.sh prometheus, `make prometheus`), the same one for every suite.

The analysis and e2e suites both need one, scraping targets with the static labels a pod would
get from its ModelDeployment (`namespace`, `modeldeployment`, `track`). `stop()` and `start()`
may be called again on the same instance to simulate an outage; data and port survive it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from support.devtools import built_tool
from support.process import LoggedServer

REPO = Path(__file__).resolve().parents[2]


SCRAPE_JOB = REPO / "charts" / "modelramp" / "files" / "model-servers-scrape.yaml"


def pod_discovery_job(kubeconfig: Path, namespace: str, interval: str = "2s") -> dict[str, Any]:
    """The chart's scrape job for the model servers (Kubernetes pod discovery and its relabelling),
    reading the cluster of `kubeconfig` and only `namespace`'s pods."""
    job: dict[str, Any] = yaml.safe_load(SCRAPE_JOB.read_text())
    job["scrape_interval"] = interval
    for sd in job["kubernetes_sd_configs"]:
        sd |= {"kubeconfig_file": str(kubeconfig), "namespaces": {"names": [namespace]}}
    return job


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
class PrometheusServer(LoggedServer):
    """A Prometheus process scraping `targets` every `scrape_interval`; use as a context manager."""

    workdir: Path
    targets: Sequence[Target]
    scrape_interval: str = "1s"
    port: int = field(default_factory=free_port)
    # Where it listens: loopback, or the real node's bridge address for pods to query it.
    host: str = "127.0.0.1"
    # More scrape jobs, as Prometheus's config spells them (e.g. Kubernetes pod discovery).
    scrape_configs: Sequence[dict[str, Any]] = ()
    # Rule files to load and evaluate (each a `groups:` document).
    rule_files: Sequence[Path] = ()
    what: ClassVar[str] = "prometheus"
    _process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, ready_timeout: float = 30.0) -> None:
        config = self.workdir / "prometheus.yml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(yaml.safe_dump(self._config()))
        command = [
            str(built_tool("prometheus")),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            "--storage.tsdb.retention.time=1h",
        ]
        self._launch(command, f"{self.url}/-/ready", ready_timeout)

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

    def _config(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "rule_files": [str(path) for path in self.rule_files],
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
