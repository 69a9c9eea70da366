"""Receiving a prediction request's body from ASGI: complete, bounded in size and time, decoded.

The whole body is in hand before the data plane sees the request, so a slow or stalled upload
only ever delays itself: nothing waits for it (the batcher never hears of it until it is
complete). A client that goes away mid-body, or sends slower than `--body-timeout-s`, is the
client's fault (499, 408), never a 5xx. `Content-Encoding: gzip` / `deflate` bodies are inflated
here, under the same `--max-body-bytes` limit, so a small compressed bomb can't fill memory.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass

from starlette.types import Receive, Scope

from modelramp.serving.binary import HEADER_LENGTH, parse_header_length
from modelramp.serving.errors import (
    ClientDisconnected,
    InvalidInput,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)

SHADOW_HEADER = b"x-modelramp-shadow"
# zlib's window bits: 16 + 15 reads a gzip wrapper, 15 a zlib one (HTTP's "deflate"), -15 raw deflate.
_WBITS = {b"gzip": 16 + zlib.MAX_WBITS, b"x-gzip": 16 + zlib.MAX_WBITS, b"deflate": zlib.MAX_WBITS}


@dataclass(frozen=True, slots=True)
class RequestBody:
    """A received body; `header_length` is set for the Triton binary tensor extension."""

    data: bytes
    content_type: str | None = None
    header_length: int | None = None
    # A copy of a request another server answered (a shadow tee's or a router's mirror): counted
    # apart from the real traffic and never answered to a client.
    mirrored: bool = False


async def receive_body(scope: Scope, receive: Receive, *, limit: int, timeout_s: float) -> RequestBody:
    content_length = encoding = content_type = header_length = None
    mirrored = False
    for key, value in scope["headers"]:
        if key == b"content-length":
            content_length = value
        elif key == b"content-encoding":
            encoding = value.strip().lower()
        elif key == b"content-type":
            content_type = value.decode("latin-1")
        elif key == HEADER_LENGTH:
            header_length = parse_header_length(value)
        elif key == SHADOW_HEADER or (key == b"host" and value.partition(b":")[0].endswith(b"-shadow")):
            # Our tee's header, or Envoy's (Istio, most Gateway API implementations) `-shadow` host.
            mirrored = True
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise PayloadTooLarge(
            f"body: {content_length.decode()} bytes is over the limit of {limit} (--max-body-bytes)"
        )
    try:
        async with asyncio.timeout(timeout_s):
            data = await _receive(receive, limit)
    except TimeoutError:
        raise RequestTimeout(f"body: not received within {timeout_s:g} s (--body-timeout-s)") from None
    if encoding not in (None, b"identity"):
        data = _inflate(data, encoding, limit)
    return RequestBody(data, content_type, header_length, mirrored)


async def _receive(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected(f"the client disconnected after {size} bytes of its body")
        chunk: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body: over the limit of {limit} bytes (--max-body-bytes)")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _inflate(data: bytes, encoding: bytes, limit: int) -> bytes:
    wbits = _WBITS.get(encoding)
    if wbits is None:
        raise UnsupportedMediaType(
            f"Content-Encoding: {encoding.decode('latin-1')!r} is not supported;"
            " use gzip, deflate or identity"
        )
    name = encoding.decode()
    inflater = zlib.decompressobj(wbits)
    try:
        inflated = inflater.decompress(data, limit + 1)
    except zlib.error as error:
        raise InvalidInput(f"body: not valid {name} data: {error}") from None
    if len(inflated) > limit:
        raise PayloadTooLarge(f"body: over the limit of {limit} bytes (--max-body-bytes) once inflated")
    if not inflater.eof:
        raise InvalidInput(f"body: {name} data is truncated")
    return inflated
