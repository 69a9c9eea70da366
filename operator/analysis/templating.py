"""Renders a metric's PromQL template with the rollout's variables.

A query rendered with a missing variable silently becomes another query, one that usually returns
nothing, and the rollout then stalls on "no values" nobody can explain. So every placeholder must
name a known variable: an unknown or malformed one is an error naming it, found up front by
`check_template`, and a variable this rollout has no value for yet is an error too.
"""

from __future__ import annotations

import re

from modelramp.operator.analysis.context import RolloutContext

# `{{ name }}` with any inner whitespace; the name itself is checked against VARIABLES.
_PLACEHOLDER = re.compile(r"\{\{(?P<inner>.*?)\}\}", re.DOTALL)
VARIABLES: tuple[str, ...] = ("name", "namespace", "track", "canaryRevision", "stableRevision", "interval")


class TemplateError(ValueError):
    """A query template names an unknown variable or has an unbalanced `{{` / `}}`."""


def prometheus_duration(seconds: float) -> str:
    """A PromQL range duration: whole seconds when possible ("60s"), else milliseconds."""
    if seconds <= 0:
        raise ValueError(f"a query window must be positive, got {seconds}s")
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def template_variables(context: RolloutContext, interval_seconds: float) -> dict[str, str]:
    return {
        "name": context.name,
        "namespace": context.namespace,
        "track": context.track,
        "canaryRevision": context.canary_revision,
        "stableRevision": context.stable_revision,
        "interval": prometheus_duration(interval_seconds),
    }


def check_template(template: str, known: tuple[str, ...] = VARIABLES) -> list[str]:
    """The variable names the template uses, in order; raises TemplateError on a bad placeholder
    (one not in `known`: an analysis metric's VARIABLES, unless its user knows others)."""
    names: list[str] = []
    for match in _PLACEHOLDER.finditer(template):
        name = match.group("inner").strip()
        if name not in known:
            raise TemplateError(
                f"query uses unknown variable {{{{ {name} }}}}; known variables: {', '.join(known)}"
            )
        names.append(name)
    leftover = _PLACEHOLDER.sub("", template)
    for token in ("{{", "}}"):
        if token in leftover:
            raise TemplateError(f"query has an unbalanced {token!r}: {template!r}")
    return names


def render_query(template: str, variables: dict[str, str], known: tuple[str, ...] = VARIABLES) -> str:
    """Substitutes every placeholder; raises TemplateError for unknown or empty variables."""
    check_template(template, known)

    def substitute(match: re.Match[str]) -> str:
        name = match.group("inner").strip()
        value = variables.get(name, "")
        if not value:
            raise TemplateError(f"query uses {{{{ {name} }}}} but this rollout has no {name} yet")
        return value

    return _PLACEHOLDER.sub(substitute, template)
