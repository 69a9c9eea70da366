"""Parsing `models:/` URIs into typed registry references.

MLflow accepts four forms and so do we: `models:/name/7` (a version, already pinned),
`models:/name@alias`, `models:/name/Production` (the newest version in a stage) and
`models:/name/latest` (the newest version). Only a version reference is immutable; the others
must be resolved to one before pods are built, so a moving alias never changes a running rollout.
Every error names `spec.model.uri`, since that is the field a user has to fix.
"""

from __future__ import annotations

import re
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

from modelramp.operator.registry.errors import InvalidModelUri

SCHEME: Final = "models:/"
FIELD: Final = "spec.model.uri"

Stage = Literal["Staging", "Production", "Archived"]
STAGES: Final[tuple[Stage, ...]] = ("Staging", "Production", "Archived")

# MLflow's own limits: aliases are word characters and dashes; `latest` and `v<digits>` are reserved.
_ALIAS = re.compile(r"^[\w-]{1,255}$")
_RESERVED_ALIAS = re.compile(r"^(latest|[vV]\d+)$", re.IGNORECASE)
_NAME_FORBIDDEN = re.compile(r"[/:@\s]")


class _Ref(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str


class VersionRef(_Ref):
    """`models:/name/7`: one immutable version."""

    version: int

    @property
    def uri(self) -> str:
        return pinned_uri(self.name, str(self.version))

    def describe(self) -> str:
        return f"version {self.version}"


class AliasRef(_Ref):
    """`models:/name@alias`: whatever version the alias points to now."""

    alias: str

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.name}@{self.alias}"

    def describe(self) -> str:
        return f"alias {self.alias}"


class StageRef(_Ref):
    """`models:/name/Production`: the newest version in a (legacy) stage."""

    stage: Stage

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.name}/{self.stage}"

    def describe(self) -> str:
        return f"stage {self.stage}"


class LatestRef(_Ref):
    """`models:/name/latest`: the newest version of the model."""

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.name}/latest"

    def describe(self) -> str:
        return "latest version"


RegistryRef = VersionRef | AliasRef | StageRef | LatestRef


def pinned_uri(name: str, version: str) -> str:
    """The immutable URI of one registered model version, e.g. `models:/fraud/7`."""
    return f"{SCHEME}{name}/{version}"


def is_registry_uri(uri: str) -> bool:
    """True for `models:/` URIs, which go through the registry; other schemes are used as they are."""
    return uri.startswith(SCHEME)


def parse_registry_uri(uri: str) -> RegistryRef:
    """The reference a `models:/` URI names; InvalidModelUri says what is wrong with it."""
    if not is_registry_uri(uri):
        raise InvalidModelUri(f"{FIELD}: {uri!r} is not a registry URI (expected {SCHEME}...)")
    path = uri[len(SCHEME) :]
    if "/" in path:
        name, _, suffix = path.partition("/")
        _check_name(uri, name)
        return _suffix_ref(uri, name, suffix)
    if "@" in path:
        name, _, alias = path.rpartition("@")
        _check_name(uri, name)
        _check_alias(uri, alias)
        return AliasRef(name=name, alias=alias)
    raise InvalidModelUri(
        f"{FIELD}: {uri!r} names no version: use models:/name/<version>, models:/name@<alias>, "
        "models:/name/<stage> or models:/name/latest"
    )


def _suffix_ref(uri: str, name: str, suffix: str) -> RegistryRef:
    if suffix.isdigit():
        if int(suffix) < 1:
            raise InvalidModelUri(f"{FIELD}: {uri!r}: registry versions start at 1")
        return VersionRef(name=name, version=int(suffix))
    if suffix.lower() == "latest":
        return LatestRef(name=name)
    # MLflow matches stage names case-insensitively; keep its canonical spelling.
    for stage in STAGES:
        if suffix.lower() == stage.lower():
            return StageRef(name=name, stage=stage)
    raise InvalidModelUri(
        f"{FIELD}: {uri!r}: {suffix!r} is neither a version number, 'latest' nor a stage "
        f"({', '.join(STAGES)}); for an alias write models:/{name}@{suffix}"
    )


def _check_name(uri: str, name: str) -> None:
    if not name or _NAME_FORBIDDEN.search(name):
        raise InvalidModelUri(
            f"{FIELD}: {uri!r}: the model name must be non-empty without '/', ':', '@' or spaces"
        )


def _check_alias(uri: str, alias: str) -> None:
    if not _ALIAS.fullmatch(alias):
        raise InvalidModelUri(
            f"{FIELD}: {uri!r}: alias {alias!r} may only contain letters, digits, '_' and '-' "
            "(at most 255 characters)"
        )
    if _RESERVED_ALIAS.fullmatch(alias):
        raise InvalidModelUri(
            f"{FIELD}: {uri!r}: alias {alias!r} is reserved by MLflow ('latest' and v<number>)"
        )
