"""The ASGI application: routes HTTP onto the data plane and maps typed errors to status codes.

Kept thin on purpose (kserve#2983: a heavy routing layer cost 8x throughput). The prediction
paths of the served model (`/v2/models/<name>[/versions/<v>]/infer`, `/invocations`) are matched
by exact path before anything else and answered with raw ASGI messages: Starlette's router,
middleware stack and `Response` objects cost more per request than the data plane itself on a
small model. Everything else (health, metadata, metrics, unknown model names) goes through
Starlette. Model loading runs in the lifespan, in a thread, so liveness answers while a large
model loads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import orjson
import torch
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from modelramp.serving.batching import DynamicBatcher
from modelramp.serving.config import ServeConfig
from modelramp.serving.cpus import usable_cpus
from modelramp.serving.dataplane import DataPlane, ServingState
from modelramp.serving.errors import InferenceFailed, ModelLoadError, PayloadTooLarge, ServingError
from modelramp.serving.loading import LoadedModel, load_model, resolve_device
from modelramp.serving.metrics import ServingMetrics
from modelramp.serving.predictor import Predictor, scores

log = logging.getLogger(__name__)

_JSON = "application/json"
_JSON_HEADER = (b"content-type", _JSON.encode())
Endpoint = Callable[[Request], Awaitable[Response]]
ErrorBody = Callable[[ServingError], bytes]
BodyReader = Callable[[], Awaitable[bytes]]
# A data-plane prediction: given the body reader, the response body (or a `ServingError`).
Prediction = Callable[[BodyReader], Awaitable[bytes]]
# Below this time for a full-batch forward, forwards run on the event loop (see `batching`).
INLINE_FORWARD_S = 0.002


def _json(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=_JSON)


def _oip_error_body(error: ServingError) -> bytes:
    return orjson.dumps({"error": error.message})


def _mlflow_error_body(error: ServingError) -> bytes:
    code = "BAD_REQUEST" if error.status_code < 500 else "INTERNAL_ERROR"
    return orjson.dumps({"error_code": code, "message": error.message})


def _oip_error(error: ServingError) -> Response:
    return _json(_oip_error_body(error), error.status_code)


class ServingApp:
    """The ASGI app for one model, once `build` ran; `on_load_failure` lets the CLI exit non-zero."""

    def __init__(
        self,
        config: ServeConfig,
        metrics: ServingMetrics,
        *,
        load: Callable[[ServeConfig], LoadedModel] = load_model,
        on_load_failure: Callable[[ModelLoadError], None] | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.state = ServingState()
        self.plane = DataPlane(config, self.state)
        self._load = load
        self._on_load_failure = on_load_failure
        self.load_error: ModelLoadError | None = None

    def build(self) -> ASGIApp:
        model_routes: list[tuple[str, Endpoint, str]] = [
            ("", self.model_metadata, "GET"),
            ("/ready", self.model_ready, "GET"),
            ("/infer", self.infer, "POST"),
        ]
        routes = [
            Route("/v2/health/live", self.live, methods=["GET"]),
            Route("/v2/health/ready", self.ready, methods=["GET"]),
            Route("/v2", self.server_metadata, methods=["GET"]),
            Route("/invocations", self.invocations, methods=["POST"]),
            Route("/ping", self.ping, methods=["GET"]),
            Route("/metrics", self.prometheus, methods=["GET"]),
        ]
        for suffix, endpoint, method in model_routes:
            routes.append(Route(f"/v2/models/{{name}}{suffix}", endpoint, methods=[method]))
            routes.append(
                Route(f"/v2/models/{{name}}/versions/{{version}}{suffix}", endpoint, methods=[method])
            )
        self._starlette = Starlette(routes=routes, lifespan=self._lifespan)
        name, version = self.config.model_name, self.config.model_version
        self._lanes: dict[str, tuple[Prediction, ErrorBody]] = {
            f"/v2/models/{name}/infer": (
                lambda read_body: self.plane.infer(name, None, read_body),
                _oip_error_body,
            ),
            f"/v2/models/{name}/versions/{version}/infer": (
                lambda read_body: self.plane.infer(name, version, read_body),
                _oip_error_body,
            ),
            "/invocations": (self.plane.invocations, _mlflow_error_body),
        }
        return self

    @asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        loader = asyncio.create_task(self._load_and_warm_up())
        try:
            yield
        finally:
            loader.cancel()
            if self.state.batcher is not None:
                await self.state.batcher.stop()

    async def _load_and_warm_up(self) -> None:
        try:
            predictor = await asyncio.to_thread(self._ready_predictor)
        except ModelLoadError as error:
            log.error("model not loaded: %s", error)
            self.load_error = error
            if self._on_load_failure is not None:
                self._on_load_failure(error)
            return
        batcher = DynamicBatcher(
            predictor.forward,
            max_batch_size=self.config.max_batch_size,
            max_latency_s=self.config.max_latency_ms / 1000,
            observe=lambda rows, seconds, output: self.metrics.forward(rows, seconds, scores(output)),
            inline=predictor.full_batch_seconds < INLINE_FORWARD_S,
        )
        batcher.start()
        self.state.batcher = batcher
        self.state.predictor = predictor
        log.info(
            "model %s version %s ready on %s, %d torch threads (full-batch forward %.2f ms, run %s)",
            self.config.model_name,
            self.config.model_version,
            predictor.model.device,
            torch.get_num_threads(),
            predictor.full_batch_seconds * 1000,
            "on the event loop" if predictor.full_batch_seconds < INLINE_FORWARD_S else "on a forward thread",
        )

    def _ready_predictor(self) -> Predictor:
        torch.set_num_threads(self.config.torch_threads or usable_cpus())
        predictor = Predictor(self._load(self.config))
        predictor.warm_up(self.config.max_batch_size)
        if self.config.torch_threads is None and predictor.full_batch_seconds < INLINE_FORWARD_S:
            # A forward this short gains little from more threads, and under load (the event loop
            # and clients share the cores) their barriers cost whole scheduler slices.
            torch.set_num_threads(1)
        return predictor

    # Health and metadata: cheap, not counted in the request metrics.
    async def live(self, _request: Request) -> Response:
        return _json(b'{"live":true}')

    async def ready(self, _request: Request) -> Response:
        ready = self.state.ready
        return _json(orjson.dumps({"ready": ready}), 200 if ready else 503)

    async def ping(self, _request: Request) -> Response:
        return Response(b"\n", status_code=200 if self.state.ready else 503, media_type=_JSON)

    async def server_metadata(self, _request: Request) -> Response:
        return _json(self.plane.server_metadata())

    async def model_metadata(self, request: Request) -> Response:
        try:
            return _json(
                self.plane.model_metadata(request.path_params["name"], request.path_params.get("version"))
            )
        except ServingError as error:
            return _oip_error(error)

    async def model_ready(self, request: Request) -> Response:
        try:
            self.plane.check_model(request.path_params["name"], request.path_params.get("version"))
        except ServingError as error:
            return _oip_error(error)
        ready = self.state.ready
        return _json(orjson.dumps({"name": self.config.model_name, "ready": ready}), 200 if ready else 503)

    async def prometheus(self, _request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # Predictions: timed and counted by status code. The fast lane (`__call__`) handles the served
    # model's paths; these endpoints handle the rest (unknown names answer 404 through the plane).
    async def infer(self, request: Request) -> Response:
        name, version = request.path_params["name"], request.path_params.get("version")
        status, body = await self._predict(
            lambda read_body: self.plane.infer(name, version, read_body),
            _oip_error_body,
            request.scope,
            request.receive,
        )
        return _json(body, status)

    async def invocations(self, request: Request) -> Response:
        status, body = await self._predict(
            self.plane.invocations, _mlflow_error_body, request.scope, request.receive
        )
        return _json(body, status)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The server's ASGI entry: exact-path prediction lane first, Starlette for the rest."""
        lane = (
            self._lanes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        )
        if lane is None:
            await self._starlette(scope, receive, send)
            return
        predict, error_body = lane
        status, body = await self._predict(predict, error_body, scope, receive)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [_JSON_HEADER, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _predict(
        self, predict: Prediction, error_body: ErrorBody, scope: Scope, receive: Receive
    ) -> tuple[int, bytes]:
        started = time.perf_counter()
        try:
            status, body = 200, await predict(lambda: self._read_body(scope, receive))
        except ServingError as error:
            status, body = error.status_code, error_body(error)
        except Exception as error:  # a bug must cost one 500, counted, not the server
            log.exception("unexpected error while predicting")
            failure = InferenceFailed(f"internal error: {type(error).__name__}: {error}")
            status, body = failure.status_code, error_body(failure)
        self.metrics.request(status, time.perf_counter() - started)
        return status, body

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        """The body, refusing more than `max_body_bytes` before reading it when the size is declared."""
        limit = self.config.max_body_bytes
        for key, declared in scope["headers"]:
            if key == b"content-length":
                if declared.isdigit() and int(declared) > limit:
                    raise PayloadTooLarge(
                        f"body: {declared.decode()} bytes is over the limit of {limit} (--max-body-bytes)"
                    )
                break
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk: bytes = message.get("body", b"")
            more = message.get("more_body", False)
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"body: over the limit of {limit} bytes (--max-body-bytes)")
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def create_app(
    config: ServeConfig, on_load_failure: Callable[[ModelLoadError], None] | None = None
) -> ServingApp:
    """The app with its metrics; raises `ModelLoadError` when the device choice is impossible."""
    metrics = ServingMetrics(
        model=config.model_name,
        version=config.model_version,
        uri=config.model_uri,
        device=str(resolve_device(config.device)),
        max_batch_size=config.max_batch_size,
        prediction_buckets=config.prediction_buckets,
    )
    return ServingApp(config, metrics, on_load_failure=on_load_failure)
