"""`modelramp serve --processes N`: N server processes on one port, each with its own copy of the
model.

One Python process runs its HTTP handling and its forwards one at a time: with a model as cheap as
the handling of its requests, a pod given two CPUs uses one. Here a supervisor reserves the port
and starts N processes of `modelramp serve`, each listening on it with SO_REUSEPORT, and passes
SIGTERM on to them (each drains as a single server does). The kernel spreads connections over the
processes by their addresses. (With one listening socket shared instead, the first process to wake
took a whole burst of connections, as asyncio accepts a backlog's worth at once, and keep-alive
clients stayed there: 32 connections served at the rate of one process.) When one exits on its
own, the supervisor stops the others and exits with that one's status: a process is never
restarted alone, because its counters starting over would read as a reset of the pod's sums
(`process_metrics`).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from pydantic import BaseModel, ConfigDict

from modelramp.serving.config import ServeConfig

log = logging.getLogger(__name__)

# Set in each server process's environment: its `ProcessAssignment`, as JSON.
ASSIGNMENT_ENV = "MODELRAMP_SERVE_PROCESS"
# Time for the others to drain after one exited, beyond their own graceful shutdown.
_STOP_MARGIN_S = 10.0


class ProcessAssignment(BaseModel):
    """What one server process is told by the supervisor."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    config: ServeConfig  # its port: the one reserved, when the flag said 0
    index: int
    directory: Path


def supervise(config: ServeConfig) -> int:
    """Runs `config.processes` server processes until they stop; their exit status."""
    try:
        reserved = _port_socket(config.host, config.port)
    except OSError as error:
        print(f"modelramp serve: cannot listen on {config.host}:{config.port}: {error}", file=sys.stderr)
        return 1
    port = reserved.getsockname()[1]
    config = config.model_copy(update={"port": port})
    try:
        directory = Path(tempfile.mkdtemp(prefix="modelramp-serve-"))
    except OSError as error:
        reserved.close()
        print(
            f"modelramp serve: no directory for the processes in {tempfile.gettempdir()}: {error}",
            file=sys.stderr,
        )
        return 1
    children: list[subprocess.Popen[bytes]] = []
    stop_signal: list[int] = []

    def on_stop_signal(sig: int, _frame: FrameType | None) -> None:
        stop_signal.append(sig)
        # Not SIGINT: Ctrl-C reaches every process of the terminal's group already, and a second
        # one makes uvicorn stop at once instead of draining.
        if sig == signal.SIGTERM:
            for child in children:
                if child.poll() is None:
                    child.send_signal(sig)

    previous = {sig: signal.signal(sig, on_stop_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for index in range(config.processes):
            assignment = ProcessAssignment(config=config, index=index, directory=directory)
            children.append(
                subprocess.Popen(
                    [sys.executable, "-m", "modelramp.cli", "serve"],
                    env=os.environ | {ASSIGNMENT_ENV: assignment.model_dump_json()},
                )
            )
        if stop_signal:  # a signal that came while they were starting
            on_stop_signal(stop_signal[0], None)
        log.info("%d server processes on http://%s:%d", config.processes, config.host, port)
        first = _first_to_exit(children)
        if not stop_signal:
            status = children[first].returncode
            log.error("server process %d exited with status %s; stopping the others", first, status)
            on_stop_signal(signal.SIGTERM, None)
            stop_signal.clear()
        deadline = time.monotonic() + config.graceful_shutdown_s + _STOP_MARGIN_S
        for child in children:
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    finally:
        reserved.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(directory, ignore_errors=True)
    if stop_signal:
        # Stopped from outside: exit as a single server does, by the signal itself.
        signal.signal(stop_signal[0], signal.SIG_DFL)
        signal.raise_signal(stop_signal[0])
    status = children[first].returncode
    return status if status > 0 else 1  # killed by a signal, or exited when it should not have


def _port_socket(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` (0: a free port) that other sockets may bind as well."""
    bound = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        bound.bind((host, port))
    except OSError:
        bound.close()
        raise
    return bound


def listen_beside_siblings(host: str, port: int) -> socket.socket:
    """One server process's own listening socket on the port its siblings listen on too. The
    supervisor's socket, bound but never listening, holds the port and takes no connections."""
    listener = _port_socket(host, port)
    listener.listen(2048)
    return listener


def _first_to_exit(children: list[subprocess.Popen[bytes]]) -> int:
    while True:
        for index, child in enumerate(children):
            if child.poll() is not None:
                return index
        time.sleep(0.1)
