"""Query templates: every rollout variable substituted, anything unknown or empty an error."""

from __future__ import annotations

import pytest

from modelramp.operator.analysis.context import RolloutContext
from modelramp.operator.analysis.templating import (
    TemplateError,
    check_template,
    prometheus_duration,
    render_query,
    template_variables,
)

CONTEXT = RolloutContext(name="fraud", namespace="ml", canary_revision="abc123", stable_revision="def456")


def test_all_variables_render_with_any_spacing() -> None:
    template = (
        'x{namespace="{{namespace}}",modeldeployment="{{ name }}",track="{{  track }}",'
        'rev=~"{{canaryRevision}}|{{ stableRevision }}"}[{{ interval }}]'
    )
    assert render_query(template, template_variables(CONTEXT, 90)) == (
        'x{namespace="ml",modeldeployment="fraud",track="canary",rev=~"abc123|def456"}[90s]'
    )


def test_unknown_variable_is_named() -> None:
    with pytest.raises(TemplateError, match=r"unknown variable \{\{ revision \}\}.*canaryRevision"):
        check_template("x{rev='{{ revision }}'}")


@pytest.mark.parametrize("template", ["x{a='{{ name }'}", "x{a='{{ name }}}}'}"])
def test_unbalanced_braces_are_rejected(template: str) -> None:
    with pytest.raises(TemplateError, match="unbalanced"):
        check_template(template)


def test_a_variable_without_a_value_is_an_error_not_an_empty_string() -> None:
    context = RolloutContext(name="fraud", namespace="ml")
    with pytest.raises(TemplateError, match="no stableRevision yet"):
        render_query("x{rev='{{ stableRevision }}'}", template_variables(context, 60))


def test_single_braces_of_promql_are_left_alone() -> None:
    assert render_query('sum(x{a="b"})', template_variables(CONTEXT, 60)) == 'sum(x{a="b"})'


@pytest.mark.parametrize(("seconds", "text"), [(60, "60s"), (1.5, "1500ms"), (0.25, "250ms")])
def test_durations_render_as_promql(seconds: float, text: str) -> None:
    assert prometheus_duration(seconds) == text
