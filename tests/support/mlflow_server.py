"""A real MLflow tracking server for tests: `mlflow server` on 127.0.0.1, a free port, sqlite and
local artifacts under a temp folder, with MLflow's basic-auth app so credentials really matter
(`basic_auth=False`: an open server, as the samples' `registry.trackingUri` without a Secret assumes).
With `proxied_artifacts` the server stores the artifacts itself and clients reach them through it
(`mlflow-artifacts:/`), as a server in a cluster usually does.

Starting one takes a while (MLflow imports slowly), so a test module shares one. `stop()` and
`start()` may be called again to simulate an outage: the database, users and port survive it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import mlflow
import pytest

from support.process import LoggedServer
from support.prometheus import free_port

ADMIN_USERNAME = "admin"
# Variables through which a client would pick up credentials or a server from the test's own env.
_CLIENT_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
)


@dataclass
class MlflowServer(LoggedServer):
    """An `mlflow server` process (`--app-name basic-auth` unless `basic_auth` is off); use as a
    context manager."""

    workdir: Path
    port: int = field(default_factory=free_port)
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    proxied_artifacts: bool = False
    basic_auth: bool = True
    ready_timeout: float = 240.0
    what: ClassVar[str] = "mlflow"
    _process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {key: value for key, value in os.environ.items() if key not in _CLIENT_ENV}
        # The job runner starts a dozen worker processes a registry test never uses.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        app: list[str] = []
        if self.basic_auth:
            env |= self._basic_auth_env()
            app = ["--app-name", "basic-auth"]
        artifacts = self.workdir / "artifacts"
        storage = (
            ["--default-artifact-root", "mlflow-artifacts:/", "--artifacts-destination", str(artifacts)]
            if self.proxied_artifacts
            else ["--default-artifact-root", str(artifacts)]
        )
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{self.workdir / 'mlflow.db'}",
            *storage,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--workers", "1",
            *app,
        ]  # fmt: skip
        self._launch(command, f"{self.url}/health", self.ready_timeout, env=env, cwd=self.workdir)

    def _basic_auth_env(self) -> dict[str, str]:
        auth_config = self.workdir / "basic_auth.ini"
        auth_config.write_text(
            "[mlflow]\n"
            "default_permission = MANAGE\n"
            f"database_uri = sqlite:///{self.workdir / 'auth.db'}\n"
            f"admin_username = {ADMIN_USERNAME}\n"
            f"admin_password = {self.admin_password}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            # Checking a password costs a PBKDF2 hash: seconds on a busy machine, per request.
            "auth_cache_ttl_seconds = 600\n"
        )
        return {
            "MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        }


@contextlib.contextmanager
def admin_server(workdir: Path, *, proxied_artifacts: bool = False) -> Iterator[MlflowServer]:
    """A running server, with its admin credentials in this process's environment (where
    MlflowClient, and child processes such as the operator, read them) while it runs."""
    with (
        MlflowServer(workdir, proxied_artifacts=proxied_artifacts) as running,
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv("MLFLOW_TRACKING_USERNAME", ADMIN_USERNAME)
        env.setenv("MLFLOW_TRACKING_PASSWORD", running.admin_password)
        env.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        env.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        mlflow.set_tracking_uri(running.url)
        yield running
        mlflow.set_tracking_uri(None)
