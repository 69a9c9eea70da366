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

Lineage (the run's metrics, the model's signature) is read after the version is found, with the
same credentials, and is best-effort: a read that fails is logged as the typed error it maps to
and left out, and the resolution stands. The signature lives in the model's MLmodel file, which
is only read when the tracking server itself serves the artifacts (`mlflow-artifacts:/`): an
artifact store the server doesn't proxy (s3://, a path on the server) would need credentials the
ModelDeployment's Secret doesn't hold.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Final, Protocol, TypeVar
from urllib.parse import urlparse

import yaml
from mlflow.entities.model_registry import ModelVersionTag
from mlflow.exceptions import MlflowException, get_error_code
from mlflow.models.signature import ModelSignature
from mlflow.store.model_registry.rest_store import RestStore
from mlflow.store.tracking.rest_store import RestStore as TrackingRestStore
from mlflow.utils.rest_utils import MlflowHostCreds, http_request

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
_PROXIED_ARTIFACTS: Final = "mlflow-artifacts"
_ARTIFACTS_ENDPOINT: Final = "/api/2.0/mlflow-artifacts/artifacts"

T = TypeVar("T")


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
    @property
    def description(self) -> str | None: ...


class _RunData(Protocol):
    @property
    def metrics(self) -> dict[str, float]: ...


class _Run(Protocol):
    @property
    def data(self) -> _RunData: ...


class _LoggedModel(Protocol):
    @property
    def artifact_location(self) -> str: ...


class _Store(Protocol):
    """The calls of mlflow's RestStores used here, typed."""

    def get_model_version(self, name: str, version: str) -> _Version: ...
    def get_model_version_by_alias(self, name: str, alias: str) -> _Version: ...
    def get_latest_versions(self, name: str, stages: list[str] | None) -> list[_Version]: ...
    def get_registered_model(self, name: str) -> object: ...
    def set_model_version_tag(self, name: str, version: str, tag: ModelVersionTag) -> None: ...
    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None: ...
    def get_run(self, run_id: str) -> _Run: ...
    def get_logged_model(self, model_id: str) -> _LoggedModel: ...
    def read_artifact(self, path: str) -> str:
        """A file of the artifact store the tracking server proxies, by its path there."""
        ...


class _RestStores(RestStore):
    """MLflow's registry RestStore, plus the tracking-server calls lineage needs, all sending the
    same credentials (MLflow's artifact repositories would read them from the environment)."""

    def __init__(self, get_host_creds: Callable[[], MlflowHostCreds]) -> None:
        super().__init__(get_host_creds)  # type: ignore[no-untyped-call]
        self._tracking = TrackingRestStore(get_host_creds)  # type: ignore[no-untyped-call]

    def get_run(self, run_id: str) -> _Run:
        run: _Run = self._tracking.get_run(run_id)  # type: ignore[no-untyped-call]
        return run

    def get_logged_model(self, model_id: str) -> _LoggedModel:
        model: _LoggedModel = self._tracking.get_logged_model(model_id)
        return model

    def read_artifact(self, path: str) -> str:
        endpoint = f"{_ARTIFACTS_ENDPOINT}/{path.lstrip('/')}"
        response = http_request(self.get_host_creds(), endpoint, "GET")  # type: ignore[no-untyped-call]
        if response.status_code != 200:
            raise MlflowException(
                f"GET {endpoint} answered HTTP {response.status_code}",
                error_code=get_error_code(response.status_code),  # type: ignore[no-untyped-call]
            )
        return str(response.text)


class MlflowRegistry:
    """One MLflow tracking server, with the credentials of one ModelDeployment."""

    def __init__(self, tracking_uri: str, credentials: RegistryCredentials | None = None) -> None:
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        self.tracking_uri = tracking_uri.rstrip("/")
        self._credentials = credentials
        self._store: _Store = _RestStores(self._host_creds)

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
        name, version = str(found.name), str(found.version)
        run = self._lineage(f"reading run {found.run_id}", self._store.get_run, found.run_id)
        return ModelVersionInfo(
            name=name,
            version=version,
            source=str(found.source) if found.source else None,
            run_id=str(found.run_id) if found.run_id else None,
            description=str(found.description) if found.description else None,
            metrics=dict(run.data.metrics) if run is not None else {},
            signature=self._signature(found, f"version {version} of {name!r}"),
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

    def _signature(self, found: _Version, what: str) -> str | None:
        """The signature in the MLmodel file of the version's model, when this server serves it."""
        location = found.source
        model_id = _logged_model_id(location)
        if model_id:
            logged = self._lineage(
                f"reading the logged model of {what}", self._store.get_logged_model, model_id
            )
            location = logged.artifact_location if logged is not None else None
        parsed = urlparse(location or "")
        # A host in the URI is another server: this one's credentials must not go there.
        if parsed.scheme != _PROXIED_ARTIFACTS or parsed.netloc:
            return None
        text = self._lineage(
            f"reading the MLmodel file of {what}", self._store.read_artifact, f"{parsed.path}/MLmodel"
        )
        return _signature_text(text, what) if text is not None else None

    def _lineage(self, doing: str, read: Callable[[str], T], key: str | None) -> T | None:
        """`read(key)`, or None when there is no key or the read fails: lineage must never fail
        the resolution it describes, so the failure is only logged."""
        if not key:
            return None
        try:
            return read(key)
        except MlflowException as error:
            log.warning("%s; left out of the lineage", self._error(error, doing))
            return None

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


def _logged_model_id(source: str | None) -> str | None:
    """MLflow 3 registers a logged model, whose files are elsewhere: the version's source is then
    `models:/<model id>` (one segment; `models:/name/7` and `models:/name@alias` are versions)."""
    parsed = urlparse(source or "")
    model_id = parsed.path.lstrip("/")
    if parsed.scheme != "models" or not model_id or "/" in model_id or "@" in model_id:
        return None
    return model_id


def _signature_text(mlmodel: str, what: str) -> str | None:
    """The MLmodel file's signature, as MLflow prints schemas: `inputs: ['x': double (required)]`."""
    try:
        document = yaml.safe_load(mlmodel)
        fields = document.get("signature") if isinstance(document, dict) else None
        if not isinstance(fields, dict):
            return None
        signature = ModelSignature.from_dict(fields)
    except (yaml.YAMLError, MlflowException, ValueError, KeyError, TypeError) as error:
        log.warning("the MLmodel file of %s has no signature MLflow can read (%s)", what, error)
        return None
    parts = {"inputs": signature.inputs, "outputs": signature.outputs, "params": signature.params}
    return "; ".join(f"{part}: {schema!r}" for part, schema in parts.items() if schema) or None
