"""Renders a metric's PromQL template with the rollout's variables.

A query rendered with a missing variable silently becomes another query, one that usually returns
nothing, and the rollout then stalls on "no values" nobody can explain. So every placeholder must
name a known variable: an unknown or malformed one is an error naming it, found before the first
measurement by `check_template`.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

# Matches `{{ name }}` with any inner whitespace; the name itself is checked against VARIABLES.
_PLACEHOLDER = re.compile(r"\{\{(?P<inner>.*?)\}\}", re.DOTALL)


class TemplateError(ValueError):
    """A query template names an unknown variable or has an unbalanced `{{`/`}}`."""


class QueryVariables(BaseModel):
    """The values a query template may use, by their template names."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    name: str = Field(min_length=1, description="the ModelDeployment's name")
    namespace: str = Field(min_length=1)
    track: str = Field(default="canary", min_length=1, description="the track being analysed")
    canary_revision: str = Field(default="", alias="canaryRevision")
    stable_revision: str = Field(default="", alias="stableRevision")
    interval: str = Field(min_length=1, description="the measurement window as a PromQL duration, e.g. 60s")

    def by_template_name(self) -> dict[str, str]:
        return self.model_dump(by_alias=True)


VARIABLES: tuple[str, ...] = tuple(field.alias or name for name, field in QueryVariables.model_fields.items())


def placeholders(template: str) -> list[str]:
    """The variable names the template uses, in order; raises TemplateError on a bad placeholder."""
    names: list[str] = []
    for match in _PLACEHOLDER.finditer(template):
        name = match.group("inner").strip()
        if name not in VARIABLES:
            raise TemplateError(
                f"query uses unknown variable {{{{ {name} }}}}; known variables: {', '.join(VARIABLES)}"
            )
        names.append(name)
    leftover = _PLACEHOLDER.sub("", template)
    for token in ("{{", "}}"):
        if token in leftover:
            raise TemplateError(f"query has an unbalanced {token!r}: {template!r}")
    return names


def check_template(template: str) -> None:
    """Validates a template up front (admission time); raises TemplateError naming the problem."""
    placeholders(template)


def render_query(template: str, variables: QueryVariables) -> str:
    """Substitutes every placeholder; raises TemplateError for unknown or empty variables."""
    placeholders(template)
    values = variables.by_template_name()

    def substitute(match: re.Match[str]) -> str:
        name = match.group("inner").strip()
        value = values[name]
        if not value:
            raise TemplateError(f"query uses {{{{ {name} }}}} but this rollout has no {name} yet")
        return value

    return _PLACEHOLDER.sub(substitute, template)
