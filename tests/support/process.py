"""What every helper that runs a server as a subprocess needs: waiting until it is ready,
stopping it and reading its log."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self


def terminate(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM, and SIGKILL if it is still there after `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def log_tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def wait_ready(
    process: subprocess.Popen[bytes],
    url: str,
    *,
    what: str,
    timeout: float,
    stop: Callable[[], None],
    log: Path,
) -> None:
    """Polls `url` until it answers 200. If the process exits first, or `timeout` passes, the
    error carries the end of its log (after `stop()`, on a timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    stop()
    raise TimeoutError(f"{what} not ready in {timeout}s:\n{log_tail(log)}")


class LoggedServer:
    """A server subprocess logging to `<workdir>/<what>.log`, ready when `ready_url` answers 200;
    a context manager around `start()` and `stop()`. Subclasses (dataclasses) hold `workdir` and
    `_process` and define `start()`, which calls `_launch`."""

    what: ClassVar[str]
    workdir: Path
    _process: subprocess.Popen[bytes] | None

    def start(self) -> None:
        raise NotImplementedError

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.what}.log"

    def _launch(
        self,
        command: Sequence[str],
        ready_url: str,
        timeout: float,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        wait_ready(self._process, ready_url, what=self.what, timeout=timeout, stop=self.stop, log=self.log)

    def stop(self) -> None:
        if self._process is None:
            return
        terminate(self._process, timeout=15)
        self._process = None

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log, lines)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
