"""Constrained scalar types shared by the spec and status: durations, quantities, names, URIs.

Each type carries its pattern and length limits, so pydantic and the generated CRD schema agree,
and so the API server can bound the cost of CEL rules that touch them.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal

from pydantic import Field, StringConstraints, WithJsonSchema

DURATION_PATTERN: Final = r"^([0-9]+(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h)")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

Duration = Annotated[
    str,
    StringConstraints(pattern=DURATION_PATTERN, max_length=32),
    Field(examples=["30s", "5m", "1h30m"]),
]
"""A Go-style duration without fractions or days: one or more `<digits><unit>`, unit ms|s|m|h."""


def parse_duration(text: str) -> float:
    """Seconds in a `Duration` such as "1h30m" or "250ms"; ValueError names the bad text."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: expected e.g. '30s', '5m', '1h30m' (units ms, s, m, h)")
    return sum(int(amount) * _UNIT_SECONDS[unit] for amount, unit in _DURATION_PART.findall(text))


# Kubernetes' own resource.Quantity grammar (e.g. 500m, 2Gi, 1e3).
QUANTITY_PATTERN: Final = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


def _int_or_string(pattern: str, max_length: int) -> object:
    """The schema Kubernetes uses for IntOrString fields (CRDs allow this one anyOf form only)."""
    return WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            "pattern": pattern,
            "maxLength": max_length,
        }
    )


Quantity = Annotated[
    int | Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN, max_length=64)],
    _int_or_string(QUANTITY_PATTERN, 64),
]
"""A Kubernetes resource quantity: an integer or a string such as "500m", "2Gi", "1"."""

PERCENT_PATTERN: Final = r"^[0-9]+%$"
IntOrPercent = Annotated[
    Annotated[int, Field(ge=0)] | Annotated[str, StringConstraints(pattern=PERCENT_PATTERN, max_length=5)],
    _int_or_string(PERCENT_PATTERN, 5),
]
"""A pod count (integer ≥ 0) or a percentage of the desired replicas such as "25%"."""

DNS_LABEL_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, max_length=63)]
"""An RFC 1123 label: namespaces, metric names."""

ObjectName = Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)]
"""An RFC 1123 subdomain: the name of a Kubernetes object."""

# Schemes the model loaders understand; MLflow registry URIs name a version or an alias.
MODEL_URI_PATTERN: Final = (
    r"^(models:/[^/@\s]+(/[^/@\s]+|@[^/@\s]+)"
    r"|runs:/[^/\s]+/\S+"
    r"|s3://[^/\s]+/\S*"
    r"|gs://[^/\s]+/\S*"
    r"|https://[^/\s]+\S*"
    r"|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/\S*"
    r"|file:///\S*)$"
)
ModelUri = Annotated[str, StringConstraints(pattern=MODEL_URI_PATTERN, max_length=2048)]
# How a model is stored; the server's `--format` (serving/config.py keeps its own copy: the two
# packages ship apart).
ModelFormat = Literal["aoti", "exported-program", "torchscript", "mlflow"]

HTTP_URL_PATTERN: Final = r"^https?://[^\s/]+\S*$"
HttpUrl = Annotated[str, StringConstraints(pattern=HTTP_URL_PATTERN, max_length=2048)]

LABEL_KEY_PATTERN: Final = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN: Final = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# Written without backslashes: it is also embedded in a CEL string literal.
# Map keys can't carry a schema in a CRD: models holding these maps check keys with a CEL rule.
LabelMap = Annotated[
    dict[str, Annotated[str, StringConstraints(pattern=LABEL_VALUE_PATTERN, max_length=63)]],
    Field(max_length=64),
]
"""Kubernetes labels (key syntax checked by the owning model's CEL rule)."""

AnnotationMap = Annotated[
    dict[str, Annotated[str, StringConstraints(max_length=65536)]], Field(max_length=64)
]
