"""The generated CRD is structural, documented, bounded for CEL cost, and committed up to date."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.api_documents import CRD_FILES

from modelramp.operator import api, crdgen

Node = dict[str, Any]

# What a structural schema may say (apiextensions JSONSchemaProps, minus what we never use).
ALLOWED_KEYS = {
    "type", "description", "properties", "items", "additionalProperties", "required", "enum",
    "default", "format", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minLength", "maxLength", "minItems", "maxItems", "maxProperties", "anyOf", "nullable",
    "x-kubernetes-validations", "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
}  # fmt: skip


@pytest.fixture(scope="module")
def crd() -> Node:
    return crdgen.render_crd()


def _schema(crd: Node) -> Node:
    schema: Node = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _walk(node: Node, path: str = "") -> Iterator[tuple[str, Node]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if "items" in node:
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def _spec_and_status(crd: Node) -> Iterator[tuple[str, Node]]:
    properties = _schema(crd)["properties"]
    yield from _walk(properties["spec"], ".spec")
    yield from _walk(properties["status"], ".status")


def test_schema_uses_only_structural_keywords(crd: Node) -> None:
    for path, node in _walk(_schema(crd)):
        assert set(node) <= ALLOWED_KEYS, f"{path}: {set(node) - ALLOWED_KEYS}"
        assert node.get("additionalProperties") is not False, path
        assert "$ref" not in yaml.safe_dump(node), path


def test_every_node_has_a_type(crd: Node) -> None:
    for path, node in _walk(_schema(crd)):
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        if "anyOf" in node:  # the one anyOf form Kubernetes allows
            assert node.get("x-kubernetes-int-or-string") and node["anyOf"] == [
                {"type": "integer"},
                {"type": "string"},
            ], path


def test_every_field_has_a_description(crd: Node) -> None:
    for path, node in _spec_and_status(crd):
        for name, child in node.get("properties", {}).items():
            assert len(child.get("description", "")) > 10, f"{path}.{name}"


def test_lists_and_strings_are_bounded_for_cel_cost(crd: Node) -> None:
    for path, node in _spec_and_status(crd):
        if node.get("type") == "array":
            assert "maxItems" in node, path
        if node.get("type") == "string" and "enum" not in node and node.get("format") != "date-time":
            assert "maxLength" in node, path
        if node.get("type") == "object" and "additionalProperties" in node:
            assert "maxProperties" in node, path


def test_cross_field_rules_come_from_the_models(crd: Node) -> None:
    spec = _schema(crd)["properties"]["spec"]["properties"]
    strategy_rules = [rule["rule"] for rule in spec["strategy"]["x-kubernetes-validations"]]
    assert strategy_rules == [rule.rule for rule in api.Strategy.cel_rules]
    step_rules = spec["strategy"]["properties"]["canary"]["properties"]["steps"]["items"]
    assert [r["message"] for r in step_rules["x-kubernetes-validations"]] == [
        rule.message for rule in api.CanaryStep.cel_rules
    ]


def test_optional_fields_are_omittable_not_required(crd: Node) -> None:
    model = _schema(crd)["properties"]["spec"]["properties"]["model"]
    assert model["required"] == ["uri", "format"]
    assert model["properties"]["followAlias"] == {
        "description": api.ModelSource.model_fields["follow_alias"].description,
        "type": "boolean",
        "default": False,
    }


def test_spec_defaults_are_rendered_and_status_defaults_are_not(crd: Node) -> None:
    properties = _schema(crd)["properties"]
    assert properties["spec"]["properties"]["progressDeadlineSeconds"]["default"] == 600
    assert properties["spec"]["properties"]["trafficRouting"]["default"] == {"replicaRatio": {}}
    assert not [path for path, node in _walk(properties["status"]) if "default" in node]


def test_names_subresources_and_columns(crd: Node) -> None:
    spec = crd["spec"]
    assert spec["names"] == {
        "kind": "ModelDeployment",
        "listKind": "ModelDeploymentList",
        "plural": "modeldeployments",
        "singular": "modeldeployment",
        "shortNames": ["md"],
        "categories": ["modelramp"],
    }
    assert spec["scope"] == "Namespaced"
    version = spec["versions"][0]
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.serving.replicas"
    columns = {c["name"]: c.get("priority", 0) for c in version["additionalPrinterColumns"]}
    assert columns == {"Phase": 0, "Weight": 0, "Stable": 1, "Canary": 1, "Step": 0, "Age": 0}


def test_printer_column_paths_exist_in_the_schema(crd: Node) -> None:
    paths = {path for path, _ in _walk(_schema(crd))}
    version = crd["spec"]["versions"][0]
    for column in version["additionalPrinterColumns"]:
        assert column["jsonPath"] in paths | {".metadata.creationTimestamp"}, column
    scale = version["subresources"]["scale"]
    assert {scale["specReplicasPath"], scale["statusReplicasPath"], scale["labelSelectorPath"]} <= paths


def test_undocumented_field_is_refused() -> None:
    with pytest.raises(crdgen.SchemaError, match=r"spec\.x: no description"):
        crdgen._structural(
            {"type": "object", "description": "d", "properties": {"x": {"type": "string"}}},
            "spec",
            keep_defaults=True,
        )


def test_committed_crds_are_up_to_date() -> None:
    """`make check-generated`: a changed model without `make crds` fails here."""
    assert crdgen.main(["--check", *map(str, CRD_FILES)]) == 0


def test_check_detects_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "crd.yaml"
    stale.write_text(crdgen.render_yaml().replace("maxItems: 64", "maxItems: 65"))
    assert crdgen.main(["--check", str(stale)]) == 1
    assert "run `make crds`" in capsys.readouterr().err


def test_write_then_check(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "crd.yaml"
    assert crdgen.main(["--write", str(target)]) == 0
    assert crdgen.main(["--check", str(target)]) == 0
    assert yaml.safe_load(target.read_text())["kind"] == "CustomResourceDefinition"
