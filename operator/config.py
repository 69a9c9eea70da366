"""The operator's settings, loaded once at start-up from flags and environment variables.

`modelramp operator --flag` wins over `MODELRAMP_*` variables, which win over defaults; `kopf run
-m modelramp.operator.handlers` reads the variables only. A bad value stops the operator before it
touches the cluster, with an error naming the flag (or variable) and the reason.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modelramp.operator.api.types import DNS_LABEL_PATTERN, HTTP_URL_PATTERN
from modelramp.operator.registry.follow import POLL_INTERVAL_SECONDS
from modelramp.operator.rollout.model import EngineConfig

DEFAULT_SERVING_IMAGE: Final = "ghcr.io/modelramp/serving:0.1.0"

# field -> (flag, environment variable); the flag and variable a user sees in an error.
_SOURCES: Final = {
    "namespaces": ("--namespace", "MODELRAMP_NAMESPACES"),
    "peering": ("--peering", "MODELRAMP_PEERING"),
    "priority": ("--priority", "MODELRAMP_PRIORITY"),
    "peering_lifetime": ("--peering-lifetime", "MODELRAMP_PEERING_LIFETIME"),
    "liveness": ("--liveness", "MODELRAMP_LIVENESS"),
    "metrics_port": ("--metrics-port", "MODELRAMP_METRICS_PORT"),
    "metrics_host": ("--metrics-host", "MODELRAMP_METRICS_HOST"),
    "serving_image": ("--serving-image", "MODELRAMP_SERVING_IMAGE"),
    "prometheus_url": ("--prometheus-url", "MODELRAMP_PROMETHEUS_URL"),
    "workers": ("--workers", "MODELRAMP_WORKERS"),
    "resync_seconds": ("--resync-seconds", "MODELRAMP_RESYNC_SECONDS"),
    "mlflow_tracking_uri": ("--mlflow-tracking-uri", "MODELRAMP_MLFLOW_TRACKING_URI"),
    "registry_poll_seconds": ("--registry-poll-seconds", "MODELRAMP_REGISTRY_POLL_SECONDS"),
}


class ConfigError(Exception):
    """A flag or environment variable with a value the operator can't use."""


class OperatorConfig(BaseModel):
    """Everything the operator is told at start-up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespaces: tuple[str, ...] = Field(default=(), description="namespaces to watch; empty: all")
    peering: str | None = Field(
        default=None, description="kopf peering object: only one replica acts; None runs standalone"
    )
    priority: int = Field(
        default_factory=lambda: secrets.randbelow(2**31 - 1) + 1,
        ge=0,
        le=2**31 - 1,
        description=(
            "kopf peering priority: the live replica with the highest one acts. kopf pauses every "
            "replica when two share one, so each process draws a random one unless told"
        ),
    )
    peering_lifetime: int = Field(
        default=60,
        ge=5,
        le=3600,
        description=(
            "seconds a replica's peering record stays valid without a keep-alive: how long a crashed "
            "leader holds its place before a standby takes over (kopf's peering lifetime)"
        ),
    )
    liveness: str | None = Field(
        default=None, description="kopf health endpoint, e.g. http://0.0.0.0:8080/healthz"
    )
    metrics_port: int | None = Field(default=None, ge=1, le=65535, description="port of /metrics; None: off")
    metrics_host: str = Field(default="0.0.0.0", min_length=1, description="address /metrics listens on")
    serving_image: str = Field(default=DEFAULT_SERVING_IMAGE, min_length=1, max_length=512)
    prometheus_url: str | None = Field(
        default=None, pattern=HTTP_URL_PATTERN, description="Prometheus for analyses that name none"
    )
    workers: int = Field(default=4, ge=1, le=64, description="ModelDeployments reconciled at once")
    resync_seconds: float = Field(
        default=300.0, gt=0, description="longest time between two looks at an unchanged ModelDeployment"
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        pattern=HTTP_URL_PATTERN,
        description="MLflow tracking server for models:/ URIs whose spec.model.registry is unset",
    )
    registry_poll_seconds: float = Field(
        default=POLL_INTERVAL_SECONDS, gt=0, description="how often a followed registry alias is checked"
    )

    @field_validator("namespaces")
    @classmethod
    def _namespace_names(cls, namespaces: tuple[str, ...]) -> tuple[str, ...]:
        for namespace in namespaces:
            if not re.fullmatch(DNS_LABEL_PATTERN, namespace) or len(namespace) > 63:
                raise ValueError(f"{namespace!r} is not a namespace name (a DNS label)")
        return namespaces

    @field_validator("liveness")
    @classmethod
    def _liveness_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith("http://"):
            raise ValueError(f"{url!r} must be an http:// URL such as http://0.0.0.0:8080/healthz")
        return url

    def engine_config(self) -> EngineConfig:
        return EngineConfig(serving_image=self.serving_image, prometheus_address=self.prometheus_url)


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="modelramp operator", description="Run the ModelDeployment controller (kopf)."
    )
    cli.add_argument(
        "--namespace",
        dest="namespaces",
        action="append",
        metavar="NS",
        help="watch this namespace (repeatable); default: all [MODELRAMP_NAMESPACES, comma-separated]",
    )
    cli.add_argument("--peering", metavar="NAME", help="kopf peering object; default: standalone")
    cli.add_argument(
        "--priority", metavar="N", help="peering priority (default: random, so one replica leads)"
    )
    cli.add_argument(
        "--peering-lifetime",
        metavar="S",
        help="seconds before a standby takes over from a leader that stopped renewing (default 60)",
    )
    cli.add_argument(
        "--liveness", metavar="URL", help="kopf health endpoint, e.g. http://0.0.0.0:8080/healthz"
    )
    cli.add_argument("--metrics-port", metavar="PORT", help="serve operator metrics on this port")
    cli.add_argument("--metrics-host", metavar="ADDR", help="address for --metrics-port (default 0.0.0.0)")
    cli.add_argument(
        "--serving-image", metavar="IMAGE", help="model server image when spec.serving.image is unset"
    )
    cli.add_argument("--prometheus-url", metavar="URL", help="Prometheus for analyses that name none")
    cli.add_argument("--workers", metavar="N", help="ModelDeployments reconciled at once (default 4)")
    cli.add_argument("--resync-seconds", metavar="S", help="re-examine unchanged objects this often (300)")
    cli.add_argument(
        "--mlflow-tracking-uri",
        metavar="URL",
        help="MLflow tracking server for models:/ URIs without spec.model.registry (credentials: the "
        "operator's MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)",
    )
    cli.add_argument(
        "--registry-poll-seconds", metavar="S", help="check a followed registry alias this often (60)"
    )
    return cli


def load(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> OperatorConfig:
    """The configuration from `argv` (flags) over `environ`; ConfigError names what is wrong."""
    args = vars(parser().parse_args(list(argv)))
    raw: dict[str, object] = {}
    for field, (_, variable) in _SOURCES.items():
        value = args.get(field)
        if value is None and environ.get(variable):
            env_value = environ[variable]
            value = tuple(filter(None, env_value.split(","))) if field == "namespaces" else env_value
        if value is not None:
            raw[field] = tuple(value) if isinstance(value, list) else value
    try:
        return OperatorConfig.model_validate(raw)
    except ValidationError as error:
        problems = []
        for issue in error.errors():
            field = str(issue["loc"][0]) if issue["loc"] else ""
            flag, variable = _SOURCES.get(field, (field, field))
            problems.append(f"{flag} (or {variable}) = {issue.get('input')!r}: {issue['msg']}")
        raise ConfigError("invalid operator configuration:\n  " + "\n  ".join(problems)) from None
