"""Sending a request on to the variant it was assigned to, and its answer back.

A server that receives a request assigned (by `assignment`) to another variant forwards it to
that variant's Service, marked with the variant and how it was assigned, so the server there
serves it without assigning it again, and relays the answer as it came. What a forward costs is
one more hop inside the cluster (measured in bench/forwarding.py). Its failures are the
forward's, never the model's: a variant that can't be reached at all (nothing was sent:
connection refused, no endpoints, no free connection) is served here instead, counted as
`assignment="fallback"`; a forward that times out or breaks after sending answers 504 or 502,
counted in `modelramp_forwarded_requests_total` and not in any model's request counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from modelramp.serving.assignment import ASSIGNMENT_HEADER, VARIANT_HEADER, VariantRoute
from modelramp.serving.binary import HEADER_LENGTH
from modelramp.serving.bodies import RequestBody
from modelramp.serving.errors import ServingError

_MODELS = "/v2/models/"
_RELAYED = (b"content-type", HEADER_LENGTH, VARIANT_HEADER)


class ForwardFailed(ServingError):
    """The variant's server was reached but did not answer in time, or the connection broke."""

    status_code = 502


class ForwardTimedOut(ForwardFailed):
    status_code = 504


@dataclass(frozen=True, slots=True)
class Forwarded:
    """The variant's answer, to relay as it came."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]


def target_path(path: str, model: str) -> str:
    """The path on the variant's server: its own model name in an OIP path (the version, this
    server's, means nothing there); an MLflow `/invocations` as it is."""
    return f"{_MODELS}{model}/infer" if path.startswith(_MODELS) else path


class Forwarder:
    """One connection pool to the variants' Services, for the server's lifetime."""

    def __init__(self, timeout_s: float) -> None:
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 2.0)),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def forward(self, route: VariantRoute, path: str, body: RequestBody) -> Forwarded | None:
        """The variant's answer; None when its Service could not be reached (nothing was sent,
        so serving the request here instead is safe)."""
        target = route.forward_to
        assert target is not None
        headers = {
            VARIANT_HEADER.decode(): target.name,
            ASSIGNMENT_HEADER.decode(): route.assigned,
            "content-type": body.content_type or "application/json",
        }
        if body.header_length is not None:
            headers[HEADER_LENGTH.decode()] = str(body.header_length)
        url = target.url.rstrip("/") + target_path(path, target.model)
        try:
            response = await self._client.post(url, content=body.data, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
            return None
        except httpx.TimeoutException as error:
            raise ForwardTimedOut(
                f"variant {target.name} at {target.url} did not answer in time: {error}"
            ) from None
        except httpx.HTTPError as error:
            raise ForwardFailed(f"forward to variant {target.name} at {target.url} failed: {error}") from None
        relayed = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in response.headers.items()
            if name.encode("latin-1") in _RELAYED
        ]
        return Forwarded(response.status_code, response.content, relayed)
