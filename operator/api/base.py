"""The base class of every ModelDeployment API model, and the CEL rules they carry.

Python attributes are snake_case; the wire form (YAML, the API server, the CRD schema) is
camelCase through an alias generator. Models accept either spelling and dump camelCase, so
`to_wire(model)` is exactly what a user would write or the API server would store.

Cross-field rules are written once, in CEL, on the model they constrain. The CRD generator copies
them into `x-kubernetes-validations` (the API server enforces them at `kubectl apply`), and a
pydantic validator evaluates the very same expressions with cel-python, so a document the API
server rejects is also rejected by `model_validate` with the same message.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar, NamedTuple, Self

import celpy
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError
from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, GetJsonSchemaHandler, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema


class CelRule(NamedTuple):
    """One `x-kubernetes-validations` entry. `self` is the object the rule is attached to."""

    rule: str
    message: str
    # Relative path (".a.b") of the field the API server should blame, when not the object itself.
    field_path: str | None = None
    # Kubernetes error reason; None lets the API server say "Invalid value".
    reason: str | None = None

    def as_schema(self) -> dict[str, str]:
        entry = {"rule": self.rule, "message": self.message}
        if self.field_path is not None:
            entry["fieldPath"] = self.field_path
        if self.reason is not None:
            entry["reason"] = self.reason
        return entry


@cache
def _program(rule: str) -> Any:
    environment = celpy.Environment()
    return environment.program(environment.compile(rule))


def _holds(rule: CelRule, wire: Any) -> bool:
    try:
        result = _program(rule.rule).evaluate({"self": wire})
    except CELEvalError:
        # The API server treats an evaluation error as a failed rule too.
        return False
    return isinstance(result, celpy.celtypes.BoolType) and bool(result)


@dataclass(frozen=True)
class ListMapKey:
    """`Annotated[list[X], ListMapKey("name")]`: items are unique by `name`, like a map.

    The API server enforces it from `x-kubernetes-list-type: map` (cheaper than a CEL rule);
    pydantic enforces it through this validator, blaming the first repeated item.
    """

    key: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.update({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": [self.key]})
        return json_schema

    def _check(self, items: list[Any]) -> list[Any]:
        seen: set[Any] = set()
        for index, item in enumerate(items):
            value = getattr(item, self.key)
            if value in seen:
                raise PydanticCustomError(
                    "duplicate_key",
                    "{field_path}: duplicate {key} {value!r}",
                    {"field_path": f"[{index}]", "key": self.key, "value": value},
                )
            seen.add(value)
        return items


class ApiModel(BaseModel):
    """Spec-side model: camelCase on the wire, unknown fields rejected, CEL rules enforced."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        # Coerce nothing ("yes" is not a bool, "3" not an int): accept exactly what the API server does.
        strict=True,
    )

    cel_rules: ClassVar[tuple[CelRule, ...]] = ()

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        if cls.cel_rules:
            handler.resolve_ref_schema(schema)["x-kubernetes-validations"] = [
                rule.as_schema() for rule in cls.cel_rules
            ]
        return schema

    @model_validator(mode="after")
    def _check_cel_rules(self) -> Self:
        if not self.cel_rules:
            return self
        wire = json_to_cel(to_wire(self))
        for rule in self.cel_rules:
            if not _holds(rule, wire):
                # The error's location is this object; ctx says which field inside it to blame.
                raise PydanticCustomError(
                    "cel_rule",
                    "{field_path}: {rule_message}" if rule.field_path else "{rule_message}",
                    {"field_path": rule.field_path or "", "rule_message": rule.message, "rule": rule.rule},
                )
        return self


class StatusModel(ApiModel):
    """Status-side model: written by the operator, so fields a newer operator added are ignored."""

    # Status is read back from JSON, where times are strings.
    model_config = ConfigDict(extra="ignore", strict=False)


def to_wire(model: BaseModel) -> dict[str, Any]:
    """The JSON-ready camelCase dict the API server stores, without unset optional fields."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)
