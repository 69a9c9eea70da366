"""The pydantic models accept every sample, reject every invalid document naming its field, and
round-trip the wire form."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.api_documents import INVALID, SAMPLES, InvalidDocument, load_invalid, load_yaml

from modelramp.operator import api
from modelramp.operator.api import analysis as analysis_api
from modelramp.operator.api.base import ApiModel


def _is_subset(small: Any, big: Any) -> bool:
    """Every value in `small` is in `big` at the same place (big may hold more, e.g. defaults)."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and _is_subset(v, big[k]) for k, v in small.items())
    if isinstance(small, list):
        return isinstance(big, list) and len(small) == len(big) and all(map(_is_subset, small, big))
    return bool(small == big)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_sample_round_trips_through_the_models(path: Any) -> None:
    doc = load_yaml(path)
    model = api.ModelDeployment.model_validate(doc)
    wire = api.to_wire(model)
    assert _is_subset(doc, wire), "the wire form lost or changed something the user wrote"
    assert api.ModelDeployment.model_validate(wire) == model


def test_samples_cover_every_strategy_and_router() -> None:
    combos = set()
    for path in SAMPLES:
        spec = api.ModelDeployment.model_validate(load_yaml(path)).spec
        combos.add((_strategy(spec), _router(spec)))
    routers = {field.alias for field in api.TrafficRouting.model_fields.values()}
    # Canary and blue-green with every router; an A/B test and a shadow-then-canary with one at least.
    assert {(s, r) for s in ("canary", "blueGreen") for r in routers} <= combos
    assert {strategy for strategy, _ in combos} == {"canary", "blueGreen", "abTest", "shadow"}


def _strategy(spec: api.ModelDeploymentSpec) -> str:
    if spec.strategy.ab_test is not None:
        return "abTest"
    if spec.strategy.blue_green is not None:
        return "blueGreen"
    assert spec.strategy.canary is not None
    return "shadow" if any(step.shadow for step in spec.strategy.canary.steps) else "canary"


def _router(spec: api.ModelDeploymentSpec) -> str:
    return next(key for key, value in api.to_wire(spec.traffic_routing).items() if value is not None)


def _blamed_paths(error: pydantic.ValidationError) -> list[str]:
    """API-server style paths (spec.steps[0].setWeight) of each error, CEL fieldPath included."""
    paths = []
    for detail in error.errors():
        path = ""
        for part in detail["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        path += (detail.get("ctx") or {}).get("field_path", "")
        paths.append(path.lstrip("."))
    return paths


def _rejection(document: InvalidDocument) -> pydantic.ValidationError:
    with pytest.raises(pydantic.ValidationError) as caught:
        api.ModelDeployment.model_validate(document.body)
    return caught.value


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_document_is_rejected_naming_the_field(path: Any) -> None:
    document = load_invalid(path)
    error = _rejection(document)
    paths = _blamed_paths(error)
    # Rules on the object itself (metadata.name) name the field in their message instead.
    expected = document.expected_field
    named = any(p.startswith(expected) for p in paths)
    assert named or expected in str(error), f"{expected} not in {paths}: {error}"


def test_there_are_enough_invalid_documents() -> None:
    assert len(INVALID) >= 30


def _all_rules(model: type[ApiModel]) -> set[str]:
    rules = {rule.rule for rule in model.cel_rules}
    for sub in model.__subclasses__():
        rules |= _all_rules(sub)
    return rules


def test_every_cel_rule_is_broken_by_some_invalid_document() -> None:
    broken = set()
    for path in INVALID:
        for detail in _rejection(load_invalid(path)).errors():
            if detail["type"] == "cel_rule":
                broken.add(detail["ctx"]["rule"])
    assert _all_rules(ApiModel) - broken == set()


def test_snake_case_and_camel_case_build_the_same_model() -> None:
    camel = api.Metric.model_validate({"name": "e", "builtin": "error-rate", "maxRatioToStable": 1.5})
    snake = api.Metric(name="e", builtin="error-rate", max_ratio_to_stable=1.5)
    assert camel == snake
    assert api.to_wire(snake) == {"name": "e", "builtin": "error-rate", "maxRatioToStable": 1.5}


def test_cel_rule_error_names_the_rule_and_field() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"analysis\.startingStep must be the index of a step"):
        api.CanaryStrategy.model_validate({"steps": [{"setWeight": 5}], "analysis": {"startingStep": 1}})


def test_status_round_trips_with_rfc3339_times() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    status = api.ModelDeploymentStatus(
        phase="Paused",
        canary_weight=20,
        current_step_index=1,
        pause_conditions=[api.PauseCondition(reason="CanaryPauseStep", start_time=now)],
        measurements=[api.Measurement(metric="errors", verdict="Error", time=now, message="no data")],
        conditions=[api.Condition(type="Ready", status="True", reason="Serving", last_transition_time=now)],
        stable_model=api.ResolvedModel(uri="models:/m@prod", resolved_uri="models:/m/3", version="3"),
    )
    wire = api.to_wire(status)
    assert wire["pauseConditions"] == [{"reason": "CanaryPauseStep", "startTime": "2026-01-02T03:04:05Z"}]
    assert "value" not in wire["measurements"][0], "a missing value must stay missing, never 0"
    assert api.ModelDeploymentStatus.model_validate(wire) == status


def test_status_ignores_fields_it_does_not_know() -> None:
    status = api.ModelDeploymentStatus.model_validate({"phase": "Healthy", "addedByANewerOperator": 1})
    assert status.phase == "Healthy"


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("0s", 0)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert api.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "1d", "1.5m", "-1s", "5 m", "m5"])
def test_parse_duration_rejects_malformed_text_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match=f"invalid duration '{text}'"):
        api.parse_duration(text)


_DURATION_PARTS = st.tuples(st.integers(0, 10_000), st.sampled_from(["ms", "s", "m", "h"]))


@given(st.lists(_DURATION_PARTS, min_size=1, max_size=4))
def test_parse_duration_adds_up_its_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{amount}{unit}" for amount, unit in parts)
    unit_seconds = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    assert api.parse_duration(text) == pytest.approx(sum(a * unit_seconds[u] for a, u in parts))
    api.Pause(duration=text)  # the schema pattern accepts what the parser accepts


def test_effective_metric_takes_unset_limits_from_spec_analysis() -> None:
    defaults = api.AnalysisDefaults(interval="30s", failure_limit=2, count=5)
    metric = api.Metric(name="e", builtin="error-rate", threshold=0.1, failure_limit=1, initial_delay="1m")
    effective = api.effective_metric(metric, defaults)
    assert (effective.interval_seconds, effective.failure_limit, effective.count) == (30, 1, 5)
    assert (effective.initial_delay_seconds, effective.consecutive_error_limit) == (60, 4)


def test_effective_metric_without_spec_analysis_uses_argo_like_defaults() -> None:
    effective = api.effective_metric(api.Metric(name="e", builtin="error-rate", threshold=0.1), None)
    assert (effective.interval_seconds, effective.failure_limit, effective.inconclusive_limit) == (60, 0, 0)
    assert (effective.consecutive_error_limit, effective.count) == (4, analysis_api.DEFAULT_COUNT)
    # A lone builtin has the whole false-rollback budget, spread over its measurements.
    assert effective.alpha == pytest.approx(
        analysis_api.DEFAULT_FALSE_ROLLBACK_RATE / analysis_api.DEFAULT_COUNT
    )


def test_analysis_without_metrics_uses_spec_analysis_metrics() -> None:
    shared = api.Metric(name="shared", builtin="latency-p95", threshold=0.2)
    own = api.Metric(name="own", builtin="error-rate", threshold=0.1)
    defaults = api.AnalysisDefaults(metrics=[shared])
    assert api.analysis_metrics(api.AnalysisSpec(), defaults) == [shared]
    assert api.analysis_metrics(api.AnalysisSpec(metrics=[own]), defaults) == [own]


def test_traffic_routing_defaults_to_replica_ratio() -> None:
    spec = api.ModelDeploymentSpec.model_validate(
        {"model": {"uri": "file:///m.pt", "format": "torchscript"}, "strategy": {"blueGreen": {}}}
    )
    assert spec.traffic_routing.replica_ratio is not None
    assert (spec.paused, spec.progress_deadline_seconds, spec.serving.replicas) == (False, 600, 1)
