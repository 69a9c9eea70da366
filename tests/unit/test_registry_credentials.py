"""Registry credentials from a Secret's data: which keys count, and errors that show no value."""

from __future__ import annotations

import base64

import pytest

from modelramp.operator.registry import RegistryAuthError, credentials_from_secret


def encoded(**values: str) -> dict[str, str]:
    return {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}


def test_a_token_is_enough_and_wins_over_basic_auth() -> None:
    creds = credentials_from_secret(
        "mlflow",
        encoded(
            MLFLOW_TRACKING_TOKEN="tok-123\n", MLFLOW_TRACKING_USERNAME="u", MLFLOW_TRACKING_PASSWORD="p"
        ),
    )
    assert creds.token is not None and creds.token.get_secret_value() == "tok-123"
    assert creds.username is None


def test_username_and_password_make_basic_auth_and_never_print() -> None:
    creds = credentials_from_secret(
        "mlflow", encoded(MLFLOW_TRACKING_USERNAME="ci", MLFLOW_TRACKING_PASSWORD="hunter2", AWS_REGION="x")
    )
    assert creds.username == "ci"
    assert creds.password is not None and creds.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(creds) and "hunter2" not in str(creds)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({}, "has neither MLFLOW_TRACKING_TOKEN nor"),
        (None, "has neither MLFLOW_TRACKING_TOKEN nor"),
        (
            encoded(MLFLOW_TRACKING_USERNAME="ci"),
            "has MLFLOW_TRACKING_USERNAME but no MLFLOW_TRACKING_PASSWORD",
        ),
        (encoded(MLFLOW_TRACKING_PASSWORD="hunter2"), "has MLFLOW_TRACKING_PASSWORD but no"),
        (encoded(MLFLOW_TRACKING_TOKEN=""), "has neither"),
    ],
)
def test_missing_keys_name_the_secret_and_the_key(data: dict[str, str] | None, reason: str) -> None:
    with pytest.raises(RegistryAuthError) as raised:
        credentials_from_secret("mlflow-creds", data)
    message = str(raised.value)
    assert message.startswith("spec.model.registry.secretRef: Secret 'mlflow-creds' ")
    assert reason in message
    assert "hunter2" not in message


def test_a_value_that_is_not_base64_names_the_key_only() -> None:
    with pytest.raises(
        RegistryAuthError, match="key 'MLFLOW_TRACKING_TOKEN' of Secret 'm' is not base64"
    ) as raised:
        credentials_from_secret("m", {"MLFLOW_TRACKING_TOKEN": "s3cr3t!!"})
    assert "s3cr3t" not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
