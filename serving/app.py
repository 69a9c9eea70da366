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
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import orjson
import torch
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from modelramp.serving.assignment import NO_VARIANT, VARIANT_HEADER, Assigner, VariantRoute
from modelramp.serving.batching import DynamicBatcher
from modelramp.serving.binary import HEADER_LENGTH
from modelramp.serving.bodies import RequestBody, receive_body
from modelramp.serving.config import ServeConfig
from modelramp.serving.cpus import usable_cpus
from modelramp.serving.dataplane import SERVER_VERSION, Answer, DataPlane, ServingState
from modelramp.serving.errors import (
    ClientDisconnected,
    InferenceFailed,
    ModelLoadError,
    RequestTimeout,
    ServingError,
    SiblingUnavailable,
)
from modelramp.serving.forwarding import Forwarder
from modelramp.serving.input_histograms import check_fits
from modelramp.serving.input_reference import read_reference
from modelramp.serving.loading import LoadedModel, load_model, resolve_device
from modelramp.serving.metrics import ServingMetrics
from modelramp.serving.predictor import Predictor, scores
from modelramp.serving.process_metrics import merged_exposition, merged_statistics, snapshot
from modelramp.serving.shadow import TIMING_HEADER, VERSION_HEADER, Copy, ShadowTee
from modelramp.serving.shadow_metrics import ShadowMetrics
from modelramp.serving.siblings import Siblings

log = logging.getLogger(__name__)

_JSON = "application/json"
_JSON_HEADER = (b"content-type", _JSON.encode())
_BINARY_HEADER = (b"content-type", b"application/octet-stream")
Endpoint = Callable[[Request], Awaitable[Response]]
ErrorBody = Callable[[ServingError], bytes]
# A data-plane prediction: given the received body, the answer (or a `ServingError`).
Prediction = Callable[[RequestBody], Awaitable[Answer]]
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


async def _http_error(_request: Request, error: Exception) -> Response:
    """Starlette's own 404/405 (unknown path, wrong method) as OIP's `{"error": ...}`."""
    assert isinstance(error, HTTPException)
    return Response(
        orjson.dumps({"error": error.detail}),
        status_code=error.status_code,
        headers=error.headers,
        media_type=_JSON,
    )


def _without_trailing_slash(scope: Scope) -> Scope:
    """`/v2/models/m/infer/` is `/v2/models/m/infer`: answered, not redirected (clients drop a
    POST body on a 307 or don't follow it)."""
    path: str = scope["path"]
    if len(path) > 1 and path.endswith("/"):
        return {**scope, "path": path.rstrip("/") or "/"}
    return scope


class ServingApp:
    """The ASGI app for one model, once `build` ran; `on_load_failure` lets the CLI exit non-zero."""

    def __init__(
        self,
        config: ServeConfig,
        metrics: ServingMetrics,
        *,
        load: Callable[[ServeConfig], LoadedModel] = load_model,
        on_load_failure: Callable[[ModelLoadError], None] | None = None,
        siblings: Siblings | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.siblings = siblings
        self.state = ServingState(siblings.all_ready) if siblings else ServingState()
        self.plane = DataPlane(config, self.state, metrics.statistics)
        self._load = load
        self._on_load_failure = on_load_failure
        self.load_error: ModelLoadError | None = None
        # An A/B test: assign each prediction to a variant, forward those of other variants.
        self.assigner = (
            Assigner(config.assignment_file, config.model_version) if config.assignment_file else None
        )
        self._forwarder = Forwarder(config.forward_timeout_s) if self.assigner else None
        # A shadow step: copy the requests this stable server answers to the canary, compare answers.
        self.tee: ShadowTee | None = None
        if config.shadow_config is not None:
            shadow_metrics = ShadowMetrics(
                metrics.registry, config.model_name, config.model_version, config.prediction_buckets
            )
            self.tee = ShadowTee(config.shadow_config, config.model_version, shadow_metrics)

    def build(self) -> ASGIApp:
        model_routes: list[tuple[str, Endpoint, str]] = [
            ("", self._model_document(self.plane.model_metadata), "GET"),
            ("/ready", self.model_ready, "GET"),
            ("/config", self._model_document(self.plane.model_config), "GET"),
            ("/stats", self.model_statistics, "GET"),
            ("/infer", self.infer, "POST"),
        ]
        routes = [
            Route("/v2/health/live", self.live, methods=["GET"]),
            Route("/v2/health/ready", self.ready, methods=["GET"]),
            Route("/v2", self.server_metadata, methods=["GET"]),
            # Before /v2/models/{name}: "stats" is not a model name here.
            Route("/v2/models/stats", self.model_statistics, methods=["GET"]),
            Route("/v2/repository/index", self.repository_index, methods=["POST"]),
            Route("/invocations", self.invocations, methods=["POST"]),
            Route("/ping", self.ping, methods=["GET"]),
            Route("/health", self.ping, methods=["GET"]),
            Route("/version", self.version, methods=["GET"]),
            Route("/metrics", self.prometheus, methods=["GET"]),
        ]
        for suffix, endpoint, method in model_routes:
            routes.append(Route(f"/v2/models/{{name}}{suffix}", endpoint, methods=[method]))
            routes.append(
                Route(f"/v2/models/{{name}}/versions/{{version}}{suffix}", endpoint, methods=[method])
            )
        self._starlette = Starlette(
            routes=routes, lifespan=self._lifespan, exception_handlers={HTTPException: _http_error}
        )
        name, version = self.config.model_name, self.config.model_version
        self._lanes: dict[str, tuple[Prediction, ErrorBody]] = {
            f"/v2/models/{name}/infer": (
                lambda body: self.plane.infer(name, None, body),
                _oip_error_body,
            ),
            f"/v2/models/{name}/versions/{version}/infer": (
                lambda body: self.plane.infer(name, version, body),
                _oip_error_body,
            ),
            "/invocations": (self.plane.invocations, _mlflow_error_body),
        }
        return self

    @asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        loader = asyncio.create_task(self._load_and_warm_up())
        if self.tee is not None:
            await self.tee.start()
        if self.siblings is not None:
            await self.siblings.start(lambda: snapshot(self.metrics.registry, self.metrics.statistics))
        try:
            yield
        finally:
            loader.cancel()
            if self.siblings is not None:
                await self.siblings.stop()
            if self.tee is not None:
                await self.tee.stop()
            if self.state.batcher is not None:
                await self.state.batcher.stop()
            if self._forwarder is not None:
                await self._forwarder.close()

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
            observe=lambda inputs, seconds, output, mirrored: self.metrics.forward(
                inputs, seconds, scores(output), mirrored
            ),
            inline=predictor.full_batch_seconds < INLINE_FORWARD_S,
        )
        batcher.start()
        # Everything allocated so far (torch, the model, imports: millions of objects) never
        # becomes garbage; left in the collector's oldest generation, each full collection walked
        # it all, a 60-100 ms pause on the event loop: the p99 of a 0.4 ms request.
        gc.collect()
        gc.freeze()
        self.state.batcher = batcher
        self.state.predictor = predictor
        if self.siblings is not None:
            self.siblings.mark_ready()
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
        threads = self.config.torch_threads or max(1, usable_cpus() // self.config.processes)
        torch.set_num_threads(threads)
        model = self._load(self.config)
        self._track_inputs(model)
        predictor = Predictor(model)
        predictor.warm_up(self.config.max_batch_size)
        if self.config.torch_threads is None and threads > 1:
            self._choose_threads(predictor, threads)
        return predictor

    def _choose_threads(self, predictor: Predictor, threads: int) -> None:
        """One intra-op thread unless more are measured faster on a full batch, and always for
        a cheap forward: more threads gain it little, and when the loop, the clients and other
        processes share the cores their barriers cost whole scheduler slices (tens of ms)."""
        many = predictor.full_batch_seconds
        torch.set_num_threads(1)
        one = predictor.time_full_batch(self.config.max_batch_size)
        if one > many and one >= INLINE_FORWARD_S:
            torch.set_num_threads(threads)
            predictor.full_batch_seconds = many

    def _track_inputs(self, model: LoadedModel) -> None:
        """Input histograms from `--input-reference`, else from the model's own reference file."""
        path = self.config.input_reference or model.input_reference
        if path is None:
            return
        try:
            reference = read_reference(path)
            check_fits(reference, model.input)
        except ValueError as error:
            raise ModelLoadError(f"input-reference: {error}") from None
        self.metrics.track_inputs(reference)
        log.info("input histograms for %d features from %s", len(reference.features), path)

    # Health and metadata: cheap, not counted in the request metrics.
    async def live(self, _request: Request) -> Response:
        return _json(b'{"live":true}')

    async def ready(self, _request: Request) -> Response:
        ready = self.state.ready
        return _json(orjson.dumps({"ready": ready}), 200 if ready else 503)

    async def ping(self, _request: Request) -> Response:
        return Response(b"\n", status_code=200 if self.state.ready else 503, media_type=_JSON)

    async def version(self, _request: Request) -> Response:
        return Response(SERVER_VERSION, media_type="text/plain")

    async def server_metadata(self, _request: Request) -> Response:
        return _json(self.plane.server_metadata())

    async def repository_index(self, _request: Request) -> Response:
        return _json(self.plane.repository_index())

    @staticmethod
    def _model_document(document: Callable[[Any, str | None], bytes]) -> Endpoint:
        """An endpoint answering `document(name, version)` from the path, or the plane's error."""

        async def endpoint(request: Request) -> Response:
            try:
                return _json(document(request.path_params.get("name"), request.path_params.get("version")))
            except ServingError as error:
                return _oip_error(error)

        return endpoint

    async def model_ready(self, request: Request) -> Response:
        try:
            self.plane.check_model(request.path_params["name"], request.path_params.get("version"))
        except ServingError as error:
            return _oip_error(error)
        ready = self.state.ready
        return _json(orjson.dumps({"name": self.config.model_name, "ready": ready}), 200 if ready else 503)

    async def prometheus(self, _request: Request) -> Response:
        if self.siblings is None:
            return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)
        try:
            snapshots = await self._all_snapshots()
        except SiblingUnavailable as error:
            return _oip_error(error)
        return Response(merged_exposition(snapshots), media_type=CONTENT_TYPE_LATEST)

    async def model_statistics(self, request: Request) -> Response:
        name, version = request.path_params.get("name"), request.path_params.get("version")
        try:
            if name is not None:  # an unknown model is a 404 before any sibling is asked
                self.plane.check_model(name, version)
            totals = None if self.siblings is None else merged_statistics(await self._all_snapshots())
            return _json(self.plane.model_statistics(name, version, totals))
        except ServingError as error:
            return _oip_error(error)

    async def _all_snapshots(self) -> list[bytes]:
        """This process's metrics and statistics, then every sibling's."""
        assert self.siblings is not None
        own = snapshot(self.metrics.registry, self.metrics.statistics)
        return [own, *await self.siblings.snapshots()]

    # Predictions: timed and counted by status code. The fast lane (`__call__`) handles the served
    # model's paths; these endpoints handle the rest (unknown names answer 404 through the plane).
    async def infer(self, request: Request) -> Response:
        name, version = request.path_params["name"], request.path_params.get("version")
        outcome = await self._predict(
            lambda body: self.plane.infer(name, version, body),
            _oip_error_body,
            request.scope,
            request.receive,
        )
        return _response(outcome.status, outcome.answer)

    async def invocations(self, request: Request) -> Response:
        outcome = await self._predict(
            self.plane.invocations, _mlflow_error_body, request.scope, request.receive
        )
        return _response(outcome.status, outcome.answer)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The server's ASGI entry: exact-path prediction lane first, Starlette for the rest."""
        if scope["type"] != "http":
            await self._starlette(scope, receive, send)
            return
        scope = _without_trailing_slash(scope)
        lane = self._lanes.get(scope["path"]) if scope["method"] == "POST" else None
        if lane is None:
            await self._starlette(scope, receive, send)
            return
        predict, error_body = lane
        route = self._route(scope)
        if route is not None and route.forward_to is not None:
            await self._forward(route, lane, scope, receive, send)
            return
        outcome = await self._predict(predict, error_body, scope, receive, route=route)
        await self._send(send, outcome, route)

    def _route(self, scope: Scope) -> VariantRoute | None:
        """The A/B route of a prediction; None when no test is running."""
        if self.assigner is None:
            return None
        self.assigner.maybe_reload(time.monotonic())
        return self.assigner.route(scope["headers"])

    async def _forward(
        self,
        route: VariantRoute,
        lane: tuple[Prediction, ErrorBody],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Sends the request on to its variant and relays the answer; serves it here when that
        variant can't be reached (see `forwarding`)."""
        assert self._forwarder is not None and self.assigner is not None
        predict, error_body = lane
        started = time.perf_counter()
        try:
            body = await receive_body(
                scope, receive, limit=self.config.max_body_bytes, timeout_s=self.config.body_timeout_s
            )
            forwarded = await self._forwarder.forward(route, scope["path"], body)
        except ServingError as error:
            self.metrics.forwarded(route, error.status_code, time.perf_counter() - started)
            failed = None if isinstance(error, ClientDisconnected) else Answer(error_body(error))
            seconds = time.perf_counter() - started
            # No variant answered.
            await self._send(send, Outcome(error.status_code, failed, seconds, False), None)
            return
        if forwarded is None:
            mine = self.assigner.mine
            here = VariantRoute(route.test, mine.name if mine else NO_VARIANT, "fallback")
            outcome = await self._predict(predict, error_body, scope, receive, route=here, body=body)
            await self._send(send, outcome, here)
            return
        self.metrics.forwarded(route, forwarded.status, time.perf_counter() - started)
        headers = [*forwarded.headers, (b"content-length", str(len(forwarded.body)).encode())]
        await send({"type": "http.response.start", "status": forwarded.status, "headers": headers})
        await send({"type": "http.response.body", "body": forwarded.body})

    async def _predict(
        self,
        predict: Prediction,
        error_body: ErrorBody,
        scope: Scope,
        receive: Receive,
        *,
        route: VariantRoute | None = None,
        body: RequestBody | None = None,
    ) -> Outcome:
        """Receives the whole body (unless given), predicts, counts (per A/B variant too, with a
        `route`), offers it to the shadow tee; answer `None`: the client went away, nobody to answer."""
        started = time.perf_counter()
        answer: Answer | None
        try:
            if body is None:
                body = await receive_body(
                    scope, receive, limit=self.config.max_body_bytes, timeout_s=self.config.body_timeout_s
                )
            status, answer = 200, await predict(body)
        except ClientDisconnected as error:
            log.info("%s %s: %s", scope["method"], scope["path"], error.message)
            status, answer = error.status_code, None
        except ServingError as error:
            status, answer = error.status_code, Answer(error_body(error))
        except Exception as error:  # a bug must cost one 500, counted, not the server
            log.exception("unexpected error while predicting")
            failure = InferenceFailed(f"internal error: {type(error).__name__}: {error}")
            status, answer = failure.status_code, Answer(error_body(failure))
        seconds = time.perf_counter() - started
        mirrored = body is not None and body.mirrored
        self.metrics.request(status, seconds, mirrored=mirrored)
        if route is not None:
            self.metrics.variant_request(route, status)
        # The model's own outcomes only (a 4xx is the client's): answered, or failed by the server.
        copied = (status == 200 or status >= 500) and not mirrored
        if self.tee is not None and body is not None and answer is not None and copied:
            self.tee.offer(Copy(scope["path"], body, status, answer, seconds))
        return Outcome(status, answer, seconds, mirrored)

    async def _send(self, send: Send, outcome: Outcome, route: VariantRoute | None) -> None:
        """A prediction's answer as raw ASGI messages; nothing when the client is gone."""
        status, answer, seconds, mirrored = outcome
        if answer is None:
            return
        headers = [
            _JSON_HEADER if answer.header_length is None else _BINARY_HEADER,
            (b"content-length", str(len(answer.body)).encode()),
        ]
        if answer.header_length is not None:
            headers.append((HEADER_LENGTH, str(answer.header_length).encode()))
        if status == RequestTimeout.status_code:
            # The rest of that body may still come; it must not be read as the next request.
            headers.append((b"connection", b"close"))
        if route is not None:
            # Which variant answered: an application can report its outcomes under it.
            headers.append((VARIANT_HEADER, route.variant.encode()))
        if mirrored:
            # What the tee that sent the copy compares with stable's: this server's own time.
            headers.append((TIMING_HEADER.encode(), f"app;dur={seconds * 1000:.3f}".encode()))
            headers.append((VERSION_HEADER.encode(), self.config.model_version.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})


class Outcome(NamedTuple):
    """A prediction request's status, answer (None: the client is gone), server time, and whether
    it was a mirrored copy."""

    status: int
    answer: Answer | None
    seconds: float
    mirrored: bool


def _response(status: int, answer: Answer | None) -> Response:
    if answer is None:
        return Response(status_code=status)  # never read: the client is gone
    if answer.header_length is None:
        response = _json(answer.body, status)
        if status == RequestTimeout.status_code:
            response.headers["connection"] = "close"
        return response
    return Response(
        answer.body,
        status_code=status,
        headers={HEADER_LENGTH.decode(): str(answer.header_length)},
        media_type="application/octet-stream",
    )


def create_app(
    config: ServeConfig,
    on_load_failure: Callable[[ModelLoadError], None] | None = None,
    siblings: Siblings | None = None,
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
    return ServingApp(config, metrics, on_load_failure=on_load_failure, siblings=siblings)
