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

import ctypes
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
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
# Time for the others to drain after one exited, beyond their own graceful shutdown.
_STOP_MARGIN_S = 10.0


class ProcessAssignment(BaseModel):
    """What one server process is told by the supervisor."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    config: ServeConfig  # its port: the one reserved, when the flag said 0
    index: int
    directory: Path
    supervisor_pid: int


def supervise(config: ServeConfig) -> int:
    """Runs `config.processes` server processes until they stop; their exit status."""
    try:
        reserved = _port_socket(config.host, config.port, exclusive=True)
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
        # SIGTERM for SIGINT too: Ctrl-C reaches every process of the terminal's group already,
        # and a second SIGINT makes uvicorn stop at once instead of draining; SIGTERM after it
        # does not.
        _stop(children)

    previous = {sig: signal.signal(sig, on_stop_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for index in range(config.processes):
            assignment = ProcessAssignment(
                config=config, index=index, directory=directory, supervisor_pid=os.getpid()
            )
            children.append(
                subprocess.Popen(
                    [sys.executable, "-m", "modelramp.cli", "serve"],
                    env=os.environ | {ASSIGNMENT_ENV: assignment.model_dump_json()},
                )
            )
        if stop_signal:  # a signal that came while they were starting
            _stop(children)
        log.info("%d server processes on http://%s:%d", config.processes, config.host, port)
        first = _first_to_exit(children)
        if not stop_signal:
            status = children[first].returncode
            log.error("server process %d exited with status %s; stopping the others", first, status)
            _stop(children)
        deadline = time.monotonic() + config.graceful_shutdown_s + _STOP_MARGIN_S
        for child in children:
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    finally:
        # Whatever went wrong here, no process outlives the supervisor holding the port.
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        reserved.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(directory, ignore_errors=True)
    if stop_signal:
        # Stopped from outside: exit as a single server does, by the signal itself; as a
        # container's PID 1 the kernel ignores that, and the status is 0, as a single server's.
        signal.signal(stop_signal[0], signal.SIG_DFL)
        signal.raise_signal(stop_signal[0])
        return 0
    return 1  # one process exited (or was killed) when it should not have


def stop_with_supervisor(assignment: ProcessAssignment) -> bool:
    """Has the kernel send this process SIGTERM (a drain) when its supervisor dies, even by
    SIGKILL, so no server is left holding the port; False when the supervisor is gone already."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
    return os.getppid() == assignment.supervisor_pid


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)


def _port_socket(host: str, port: int, *, exclusive: bool = False) -> socket.socket:
    """A socket bound to `host:port` (0: a free port) that other sockets may bind as well; with
    `exclusive`, first checked free without SO_REUSEPORT, which would otherwise join the
    listeners of any server already there (one left behind, say) and share its traffic."""
    if exclusive:
        with _bound(host, port, reuse_port=False) as probe:
            port = probe.getsockname()[1]
    return _bound(host, port, reuse_port=True)


def _bound(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    bound = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
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
