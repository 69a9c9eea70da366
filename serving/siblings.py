"""One server process's view of the others serving the same port (`--processes`).

Each process answers its siblings on a unix socket of its own, named after the supervisor's private
directory: a connection gets its current snapshot (`worker_metrics.snapshot`) and is closed. A scrape or a
statistics request, whichever process takes it, reads every sibling's this way and answers for
all. A process that loaded its model leaves a marker file there, and each reports ready only when
all have: a probe or a request may land on any of them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from pathlib import Path

import orjson

from modelramp.serving.errors import SiblingUnavailable

log = logging.getLogger(__name__)

# A sibling runs cheap forwards on its event loop; one that can't answer in this time is stuck.
READ_TIMEOUT_S = 5.0


class Siblings:
    """Process `index` of `count`, all sharing `directory`."""

    def __init__(self, directory: Path, index: int, count: int) -> None:
        self.directory = directory
        self.index = index
        self.count = count
        self._server: asyncio.AbstractServer | None = None

    def _socket(self, index: int) -> str:
        """In the abstract namespace (Linux): no file to clean up, and no 108-byte limit on the
        path, which a deep `TMPDIR` exceeds."""
        return f"\0{self.directory.name}/process-{index}"

    def _marker(self, index: int) -> Path:
        return self.directory / f"process-{index}.ready"

    async def start(self, snapshot: Callable[[], bytes]) -> None:
        """Answers siblings with `snapshot()` from now on."""

        async def answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                writer.write(snapshot())
                await writer.drain()
            finally:
                writer.close()

        self._server = await asyncio.start_unix_server(answer, path=self._socket(self.index))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def snapshots(self) -> list[bytes]:
        """Every other process's snapshot; raises `SiblingUnavailable` naming one that can't answer."""
        return list(await asyncio.gather(*(self._read(i) for i in range(self.count) if i != self.index)))

    async def _read(self, index: int) -> bytes:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                # Connected here: uvloop's open_unix_connection refuses abstract addresses (EINVAL).
                connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                connection.setblocking(False)
                try:
                    await asyncio.get_running_loop().sock_connect(connection, self._socket(index))
                    reader, writer = await asyncio.open_unix_connection(sock=connection)
                except BaseException:
                    connection.close()
                    raise
                try:
                    answer = await reader.read()
                finally:
                    writer.close()
            # Whole, or the sibling died writing it: merging would fail with a 500.
            orjson.loads(answer)
        except (OSError, TimeoutError, ValueError) as error:
            reason = str(error) or f"no answer within {READ_TIMEOUT_S:g} s"
            log.warning("server process %d of %d did not answer: %s", index, self.count, reason)
            raise SiblingUnavailable(
                f"server process {index} of {self.count} did not answer: {reason}"
            ) from None
        return answer

    def mark_ready(self) -> None:
        self._marker(self.index).touch()

    def all_ready(self) -> bool:
        return all(self._marker(index).exists() for index in range(self.count))
