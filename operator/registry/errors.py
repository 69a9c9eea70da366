"""Typed registry failures, each with the condition reason it shows on the ModelDeployment.

The glue turns these into conditions and events instead of crashing: `retryable` says whether
waiting (with backoff) can help, or whether a user has to fix something first. Messages never
carry credentials: they name the tracking server, the model and what went wrong.
"""

from __future__ import annotations

from typing import ClassVar


class RegistryError(Exception):
    """Base of every registry failure; `str(error)` is the message for the condition."""

    reason: ClassVar[str] = "RegistryError"
    retryable: ClassVar[bool] = False


class InvalidModelUri(RegistryError, ValueError):
    """spec.model.uri is not a registry URI the operator can resolve."""

    reason = "InvalidModelUri"


class RegistryUnavailable(RegistryError):
    """The tracking server did not answer, or answered with a server error: wait and retry."""

    reason = "RegistryUnavailable"
    retryable = True


class RegistryAuthError(RegistryError):
    """The tracking server refused the credentials (401/403), or the credentials Secret is unusable."""

    reason = "RegistryAuthFailed"


class ModelNotFound(RegistryError):
    """The registered model, the version, or any version in the stage does not exist."""

    reason = "ModelNotFound"


class AliasNotFound(ModelNotFound):
    """The registered model exists but has no such alias."""

    reason = "AliasNotFound"


class RegistryRequestRejected(RegistryError):
    """The tracking server rejected the request as invalid (HTTP 400), e.g. a malformed name."""

    reason = "RegistryRequestRejected"
