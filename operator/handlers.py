"""The kopf handlers: thin glue between kopf's watches and the `Controller`.

Only watch-event handlers and one daemon per ModelDeployment are registered, never create/update
handlers: kopf then keeps no state of its own on our objects (no progress annotations, no
`status.<handler>`), and all rollout progress stays in our typed `status`. The daemon is what
makes peering safe: kopf stops it when another replica takes over, so two operators never both
act. It also costs one finalizer per ModelDeployment, which kopf removes once the daemon has
stopped; the owned objects are deleted by garbage collection through their ownerReferences.

Runs under `modelramp operator` (see `main`) or `kopf run -m modelramp.operator.handlers`, which
reads its settings from MODELRAMP_* environment variables.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from prometheus_client import start_http_server

from modelramp.operator.analysis.telemetry import AnalysisTelemetry
from modelramp.operator.api.resource import GROUP, PLURAL, VERSION
from modelramp.operator.cache import Key
from modelramp.operator.config import ConfigError, OperatorConfig, load
from modelramp.operator.controller import FINALIZER, Controller
from modelramp.operator.kube import Kube, connect
from modelramp.operator.metrics import OperatorMetrics

_config: OperatorConfig | None = None


def configure(config: OperatorConfig) -> None:
    """Set by `modelramp operator` before kopf starts; `kopf run` falls back to the environment."""
    global _config  # noqa: PLW0603 - kopf handlers reach the start-up config only through the module
    _config = config


def _controller(memo: Any) -> Controller:
    controller: Controller = memo["controller"]
    return controller


@kopf.on.startup()
async def start(
    settings: kopf.OperatorSettings, memo: Any, logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any
) -> None:
    try:
        config = _config or load([])
    except ConfigError as error:
        raise kopf.PermanentError(str(error)) from None
    # Our Events are posted by the controller, only on rollout transitions; kopf's own per-handler
    # events would be API writes on every watch event.
    settings.posting.enabled = False
    # kopf logs every watch-event handler call and aiohttp every health probe at INFO: noise.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # The finalizer that keeps a ModelDeployment until its daemon has stopped; named after us, so
    # `kubectl get -o yaml` says who holds it.
    settings.persistence.finalizer = FINALIZER
    settings.watching.server_timeout = 300
    # A leader killed without a goodbye (OOM, node loss) holds its place this long.
    settings.peering.lifetime = config.peering_lifetime
    settings.networking.request_timeout = 60
    metrics, telemetry = OperatorMetrics(), AnalysisTelemetry()
    if config.metrics_port is not None:
        start_http_server(config.metrics_port, addr=config.metrics_host)
        logger.info("operator metrics on http://%s:%d/metrics", config.metrics_host, config.metrics_port)
    memo["controller"] = Controller(Kube(connect()), config, metrics, telemetry)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def model_deployment_changed(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    """Spec and status changes alike (manual controls live in status) wake the rollout."""
    _controller(memo).on_model_deployment(event["type"], dict(event["object"]))


@kopf.on.event("", "v1", "namespaces")
async def namespace_changed(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    """A namespace being deleted: its ModelDeployments are let go by the controller itself, since
    kopf stops watching a namespace as soon as its deletion starts (and so would never see them
    deleted, nor remove their finalizer)."""
    _controller(memo).on_namespace(event["type"], dict(event["object"]))


@kopf.on.event("apps", "v1", "deployments")
async def deployment_changed(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    """Pods becoming ready (seen on the owned Deployment's status) move the rollout on."""
    _controller(memo).on_owned("Deployment", event["type"], dict(event["object"]))


@kopf.on.event("", "v1", "services")
async def service_changed(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    """Keeps the cache of owned Services, so a deleted or edited one is put back."""
    _controller(memo).on_owned("Service", event["type"], dict(event["object"]))


@kopf.on.event("", "v1", "configmaps")
async def config_map_changed(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    """Keeps the cache of owned ConfigMaps (an A/B test's assignment table), so a deleted or
    edited one is put back."""
    _controller(memo).on_owned("ConfigMap", event["type"], dict(event["object"]))


# kopf handles no ModelDeployment before every indexed resource has been listed once. These
# indexers fill the cache during that first listing (they keep no kopf index themselves), so a
# freshly started operator never takes the Deployments it already made for missing.
@kopf.index("apps", "v1", "deployments")
def deployments_listed(body: kopf.Body, memo: Any, **_: Any) -> None:
    _controller(memo).cache.put_owned("Deployment", dict(body))


@kopf.index("", "v1", "services")
def services_listed(body: kopf.Body, memo: Any, **_: Any) -> None:
    _controller(memo).cache.put_owned("Service", dict(body))


@kopf.index("", "v1", "configmaps")
def config_maps_listed(body: kopf.Body, memo: Any, **_: Any) -> None:
    _controller(memo).cache.put_owned("ConfigMap", dict(body))


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def steward(name: str, namespace: str | None, stopped: kopf.DaemonStopped, memo: Any, **_: Any) -> None:
    """Reconciles one ModelDeployment for as long as it exists and this replica leads."""
    assert namespace is not None, "ModelDeployments are namespaced"
    await _controller(memo).steward(Key(namespace, name), stopped)
