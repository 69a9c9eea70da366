"""The ASGI application: routes HTTP onto the data plane and maps typed errors to status codes.

Kept thin on purpose (kserve#2983: a heavy routing layer cost 8x throughput). Starlette's router
and plain `Response`s with pre-serialised orjson bodies; no middleware on the hot path. Model
loading runs in the lifespan, in a thread, so liveness answers while a large model loads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelramp.serving.batching import DynamicBatcher
from modelramp.serving.config import ServeConfig
from modelramp.serving.dataplane import DataPlane, ServingState
from modelramp.serving.errors import InferenceFailed, ModelLoadError, PayloadTooLarge, ServingError
from modelramp.serving.loading import LoadedModel, load_model, resolve_device
from modelramp.serving.metrics import ServingMetrics
from modelramp.serving.predictor import Predictor, scores

log = logging.getLogger(__name__)

_JSON = "application/json"
Endpoint = Callable[[Request], Awaitable[Response]]


def _json(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=_JSON)


def _oip_error(error: ServingError) -> Response:
    return _json(orjson.dumps({"error": error.message}), error.status_code)


def _mlflow_error(error: ServingError) -> Response:
    code = "BAD_REQUEST" if error.status_code < 500 else "INTERNAL_ERROR"
    return _json(orjson.dumps({"error_code": code, "message": error.message}), error.status_code)


class ServingApp:
    """Builds the Starlette app for one model; `on_load_failure` lets the CLI exit non-zero."""

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

    def build(self) -> Starlette:
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
        return Starlette(routes=routes, lifespan=self._lifespan)

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
        )
        batcher.start()
        self.state.batcher = batcher
        self.state.predictor = predictor
        log.info(
            "model %s version %s ready on %s",
            self.config.model_name,
            self.config.model_version,
            predictor.model.device,
        )

    def _ready_predictor(self) -> Predictor:
        predictor = Predictor(self._load(self.config))
        predictor.warm_up(self.config.max_batch_size)
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

    # Predictions: timed and counted by status code.
    async def infer(self, request: Request) -> Response:
        name, version = request.path_params["name"], request.path_params.get("version")
        return await self._predict(
            lambda: self.plane.infer(name, version, lambda: self._read_body(request)), _oip_error
        )

    async def invocations(self, request: Request) -> Response:
        return await self._predict(
            lambda: self.plane.invocations(lambda: self._read_body(request)), _mlflow_error
        )

    async def _predict(
        self, call: Callable[[], Awaitable[bytes]], error_response: Callable[[ServingError], Response]
    ) -> Response:
        started = time.perf_counter()
        try:
            response = _json(await call())
        except ServingError as error:
            response = error_response(error)
        except Exception as error:  # a bug must cost one 500, counted, not the server
            log.exception("unexpected error while predicting")
            response = error_response(InferenceFailed(f"internal error: {type(error).__name__}: {error}"))
        self.metrics.request(response.status_code, time.perf_counter() - started)
        return response

    async def _read_body(self, request: Request) -> bytes:
        """The body, refusing more than `max_body_bytes` before reading it when the size is declared."""
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"body: {declared} bytes is over the limit of {limit} (--max-body-bytes)")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"body: over the limit of {limit} bytes (--max-body-bytes)")
            chunks.append(chunk)
        return b"".join(chunks)


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
