"""Parsing `models:/` URIs: the four MLflow forms, and errors that name spec.model.uri."""

from __future__ import annotations

import pytest

from modelramp.operator.registry import (
    AliasRef,
    InvalidModelUri,
    LatestRef,
    StageRef,
    VersionRef,
    parse_registry_uri,
    pinned_uri,
)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("models:/fraud/7", VersionRef(name="fraud", version=7)),
        ("models:/fraud@champion", AliasRef(name="fraud", alias="champion")),
        ("models:/fraud/Production", StageRef(name="fraud", stage="Production")),
        ("models:/fraud/staging", StageRef(name="fraud", stage="Staging")),
        ("models:/fraud/latest", LatestRef(name="fraud")),
        ("models:/fraud/LATEST", LatestRef(name="fraud")),
        ("models:/team.fraud-v2@blue_green-1", AliasRef(name="team.fraud-v2", alias="blue_green-1")),
    ],
)
def test_each_mlflow_form_parses(uri: str, expected: object) -> None:
    assert parse_registry_uri(uri) == expected


@pytest.mark.parametrize(
    "uri", ["models:/fraud/7", "models:/fraud@champion", "models:/fraud/Archived", "models:/fraud/latest"]
)
def test_a_reference_prints_back_as_its_uri(uri: str) -> None:
    assert parse_registry_uri(uri).uri == uri


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("s3://bucket/model.pt", "is not a registry URI"),
        ("models:/fraud", "names no version"),
        ("models:/fraud/0", "versions start at 1"),
        ("models:/fraud/champion", "for an alias write models:/fraud@champion"),
        ("models:/fraud@latest", "reserved"),
        ("models:/fraud@V3", "reserved"),
        ("models:/fraud@a.b", "may only contain letters"),
        ("models:/fraud@", "may only contain letters"),
        ("models://7", "model name must be non-empty"),
        ("models:/a@b/7", "model name must be non-empty without"),
    ],
)
def test_bad_uris_name_the_field_and_the_reason(uri: str, reason: str) -> None:
    with pytest.raises(InvalidModelUri) as raised:
        parse_registry_uri(uri)
    assert str(raised.value).startswith("spec.model.uri: ")
    assert reason in str(raised.value)
    assert raised.value.reason == "InvalidModelUri"


def test_pinned_uri_names_one_version() -> None:
    assert pinned_uri("fraud", "7") == "models:/fraud/7"
    assert parse_registry_uri(pinned_uri("fraud", "7")) == VersionRef(name="fraud", version=7)
