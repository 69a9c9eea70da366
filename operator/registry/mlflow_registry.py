"""The MLflow implementation of `ModelRegistry`: the only module here that talks to a server.

It uses MLflow's own REST store (the object `MlflowClient` delegates registry calls to) with
credentials handed to it per instance. `MlflowClient` itself only reads credentials from the
process environment (MLFLOW_TRACKING_TOKEN/USERNAME/PASSWORD), which one operator process shares
between all ModelDeployments, each with its own tracking server and Secret; setting those
variables around a call would leak one resource's credentials into another's concurrent call.

MLflow's HTTP layer retries a failing call 7 times with exponential backoff (minutes) and waits
120 s for an answer. The operator paces its own retries (`follow.next_poll_delay`) and must not
block a reconcile that long, so unless the operator's environment says otherwise a call is tried
once with a short timeout. Failures become the typed errors of `errors`; their messages name the
server and the model, never a credential.
"""

from __future__ import annotations

import logging
import os
from typing import Final, Protocol

from mlflow.entities.model_registry import ModelVersionTag
from mlflow.exceptions import MlflowException
from mlflow.store.model_registry.rest_store import RestStore
from mlflow.utils.rest_utils import MlflowHostCreds

from modelramp.operator.registry.credentials import RegistryCredentials
from modelramp.operator.registry.errors import (
    AliasNotFound,
    ModelNotFound,
    RegistryAuthError,
    RegistryError,
    RegistryRequestRejected,
    RegistryUnavailable,
)
from modelramp.operator.registry.resolver import ModelVersionInfo
from modelramp.operator.registry.uri import AliasRef, RegistryRef, StageRef, VersionRef
from modelramp.operator.registry.writeback import WriteBackPlan

log = logging.getLogger(__name__)

# Applied with setdefault: an operator deployment may still choose other values.
HTTP_DEFAULTS: Final = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}

_AUTH_CODES: Final = frozenset({"UNAUTHENTICATED", "CUSTOMER_UNAUTHORIZED", "PERMISSION_DENIED"})
_NOT_FOUND_CODES: Final = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})
_REJECTED_CODES: Final = frozenset({"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "RESOURCE_ALREADY_EXISTS"})


class _Version(Protocol):
    """The fields of mlflow's ModelVersion read here (mlflow ships no type hints)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def source(self) -> str | None: ...
    @property
    def run_id(self) -> str | None: ...


class _Store(Protocol):
    """The calls of mlflow's registry RestStore used here, typed."""

    def get_model_version(self, name: str, version: str) -> _Version: ...
    def get_model_version_by_alias(self, name: str, alias: str) -> _Version: ...
    def get_latest_versions(self, name: str, stages: list[str] | None) -> list[_Version]: ...
    def get_registered_model(self, name: str) -> object: ...
    def set_model_version_tag(self, name: str, version: str, tag: ModelVersionTag) -> None: ...
    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None: ...


class MlflowRegistry:
    """One MLflow tracking server, with the credentials of one ModelDeployment."""

    def __init__(self, tracking_uri: str, credentials: RegistryCredentials | None = None) -> None:
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        self.tracking_uri = tracking_uri.rstrip("/")
        self._credentials = credentials
        self._store: _Store = RestStore(self._host_creds)  # type: ignore[no-untyped-call]

    def __repr__(self) -> str:
        return f"MlflowRegistry({self.tracking_uri!r})"

    def lookup(self, ref: RegistryRef) -> ModelVersionInfo:
        """The version `ref` names on this server now."""
        try:
            found = self._find(ref)
        except MlflowException as error:
            raise self._lookup_error(ref, error) from None
        if found is None:
            raise ModelNotFound(self._where(f"registered model {ref.name!r} has no {ref.describe()}"))
        return ModelVersionInfo(
            name=str(found.name),
            version=str(found.version),
            source=str(found.source) if found.source else None,
            run_id=str(found.run_id) if found.run_id else None,
        )

    def write_back(self, plan: WriteBackPlan) -> None:
        """Tags the version, then moves the alias, so the alias never points at an untagged version."""
        try:
            for key, value in plan.tags.items():
                self._store.set_model_version_tag(plan.name, plan.version, ModelVersionTag(key, value))  # type: ignore[no-untyped-call]
            if plan.alias is not None:
                self._store.set_registered_model_alias(plan.name, plan.alias, plan.version)
        except MlflowException as error:
            raise self._error(error, f"writing back version {plan.version} of {plan.name!r}") from None
        log.info(
            "registry %s: version %s of %r marked %s%s",
            self.tracking_uri,
            plan.version,
            plan.name,
            plan.outcome,
            f", alias {plan.alias} moved to it" if plan.alias else "",
        )

    def _find(self, ref: RegistryRef) -> _Version | None:
        if isinstance(ref, VersionRef):
            return self._store.get_model_version(ref.name, str(ref.version))
        if isinstance(ref, AliasRef):
            return self._store.get_model_version_by_alias(ref.name, ref.alias)
        stages: list[str] | None = [ref.stage] if isinstance(ref, StageRef) else None
        # With no stage, MLflow answers the newest version of every stage: `latest` is their max.
        versions = self._store.get_latest_versions(ref.name, stages)
        return max(versions, key=lambda version: int(version.version), default=None)

    def _lookup_error(self, ref: RegistryRef, error: MlflowException) -> RegistryError:
        # MLflow answers a missing alias with INVALID_PARAMETER_VALUE; the alias's syntax was
        # checked when the URI was parsed, so here that code means "not found" too.
        missing = _NOT_FOUND_CODES | ({"INVALID_PARAMETER_VALUE"} if isinstance(ref, AliasRef) else set())
        if error.error_code not in missing:
            return self._error(error, f"looking up {ref.uri}")
        if isinstance(ref, AliasRef) and self._model_exists(ref.name):
            return AliasNotFound(self._where(f"registered model {ref.name!r} has no alias {ref.alias!r}"))
        if isinstance(ref, VersionRef) and self._model_exists(ref.name):
            return ModelNotFound(self._where(f"registered model {ref.name!r} has no version {ref.version}"))
        return ModelNotFound(self._where(f"registered model {ref.name!r} does not exist"))

    def _model_exists(self, name: str) -> bool:
        try:
            self._store.get_registered_model(name)
        except MlflowException as error:
            if error.error_code in _NOT_FOUND_CODES:
                return False
            raise self._error(error, f"looking up registered model {name!r}") from None
        return True

    def _error(self, error: MlflowException, doing: str) -> RegistryError:
        code = error.error_code
        if code in _AUTH_CODES:
            return RegistryAuthError(
                self._where(
                    f"{doing}: the server refused the credentials ({code}); check the Secret in "
                    "spec.model.registry.secretRef"
                )
            )
        if code in _NOT_FOUND_CODES:
            return ModelNotFound(self._where(f"{doing}: {error.message}"))
        if code in _REJECTED_CODES:
            return RegistryRequestRejected(self._where(f"{doing}: {error.message}"))
        # Connection refused, timeouts, 5xx and rate limits all mean: try again later.
        return RegistryUnavailable(self._where(f"{doing}: {error.message}"))

    def _where(self, message: str) -> str:
        return f"MLflow registry {self.tracking_uri}: {message}"

    def _host_creds(self) -> MlflowHostCreds:
        credentials = self._credentials
        if credentials is None:
            return MlflowHostCreds(self.tracking_uri)  # type: ignore[no-untyped-call]
        return MlflowHostCreds(  # type: ignore[no-untyped-call]
            self.tracking_uri,
            username=credentials.username,
            password=credentials.password.get_secret_value() if credentials.password else None,
            token=credentials.token.get_secret_value() if credentials.token else None,
        )
