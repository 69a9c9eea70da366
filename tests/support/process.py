"""What every helper that runs a server as a subprocess needs: waiting until it is ready,
stopping it and reading its log."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path


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
