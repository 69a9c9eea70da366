"""Registry credentials from the Secret named by `spec.model.registry.secretRef`.

The glue reads the Secret (one API call) and hands its `data` here; this module only decides
what the keys mean. MLflow's own variable names are the keys, so the same Secret can be mounted
into the serving pods with `envFrom`. Values are held as `SecretStr`, which prints as `**********`,
so a credential that reaches a log line or an exception by mistake stays hidden.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Final, Self

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from modelramp.operator.registry.errors import RegistryAuthError

TOKEN_KEY: Final = "MLFLOW_TRACKING_TOKEN"
USERNAME_KEY: Final = "MLFLOW_TRACKING_USERNAME"
PASSWORD_KEY: Final = "MLFLOW_TRACKING_PASSWORD"


class RegistryCredentials(BaseModel):
    """A bearer token, or a username with its password (basic auth); never both halves missing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.token is None and (self.username is None or self.password is None):
            raise ValueError(f"set {TOKEN_KEY}, or both {USERNAME_KEY} and {PASSWORD_KEY}")
        return self


def credentials_from_secret(secret_name: str, data: Mapping[str, str] | None) -> RegistryCredentials:
    """Credentials from a Secret's `data` (base64 values, as the API server returns them).

    RegistryAuthError names the Secret and the missing or undecodable key, never a value.
    """
    values = {key: _decode(secret_name, key, raw) for key, raw in (data or {}).items()}
    token = values.get(TOKEN_KEY) or None
    username = values.get(USERNAME_KEY) or None
    password = values.get(PASSWORD_KEY) or None
    if token is not None:
        return RegistryCredentials(token=SecretStr(token))
    if username is not None and password is not None:
        return RegistryCredentials(username=username, password=SecretStr(password))
    if username is not None:
        missing = f"has {USERNAME_KEY} but no {PASSWORD_KEY}"
    elif password is not None:
        missing = f"has {PASSWORD_KEY} but no {USERNAME_KEY}"
    else:
        missing = f"has neither {TOKEN_KEY} nor {USERNAME_KEY} and {PASSWORD_KEY}"
    raise RegistryAuthError(f"spec.model.registry.secretRef: Secret {secret_name!r} {missing} (non-empty)")


def _decode(secret_name: str, key: str, raw: str) -> str:
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8").strip()
    except (binascii.Error, UnicodeDecodeError):
        # `from None`: the decoder's message quotes bytes of the secret value.
        raise RegistryAuthError(
            f"spec.model.registry.secretRef: key {key!r} of Secret {secret_name!r} is not base64-encoded "
            "UTF-8 text"
        ) from None
