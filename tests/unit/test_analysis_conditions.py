"""CEL conditions: checked up front, evaluated over a number or a vector, never by Python eval."""

from __future__ import annotations

import pytest

from modelramp.operator.analysis.conditions import ConditionError, compile_condition


@pytest.mark.parametrize(
    ("source", "result", "expected"),
    [
        ("result < 0.05", 0.01, True),
        ("result < 0.05", 0.5, False),
        ("result < 0.05", [0.01], True),  # a one-series vector reads as a number...
        ("result[0] < 0.05", [0.01], True),  # ...and as a list (Argo's spelling)
        ("result[0] < 0.05", 0.01, True),
        ("result.all(x, x < 0.05)", [0.01, 0.02], True),
        ("result.all(x, x < 0.05)", [0.01, 0.2], False),
        ("result.exists(x, x > 0.1)", [0.01, 0.2], True),
        ("size(result) == 2 && result[1] > result[0]", [0.01, 0.2], True),
        ("result >= 0.1 || result == 0.0", 0.0, True),
    ],
)
def test_conditions_evaluate(source: str, result: float | list[float], expected: bool) -> None:
    assert compile_condition(source, "successCondition").holds(result) is expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("result <", "not a valid CEL expression"),
        ("latency < 0.05", "unknown variable(s) latency"),
        ("result.all(x, y < 1)", "unknown variable(s) y"),
        ("result * 2", "must be true or false"),
        ("   ", "is empty"),
    ],
)
def test_bad_conditions_are_rejected_up_front_naming_the_field(source: str, message: str) -> None:
    with pytest.raises(ConditionError, match=r"metrics\[m\]\.successCondition") as caught:
        compile_condition(source, "metrics[m].successCondition")
    assert message in str(caught.value)


def test_condition_that_only_suits_some_data_is_accepted_and_errs_clearly_at_run_time() -> None:
    condition = compile_condition("result[1] > 1", "failureCondition")
    with pytest.raises(ConditionError, match=r"out of range"):
        condition.holds(0.5)


def test_comparing_several_series_to_a_number_explains_how_to_write_it() -> None:
    with pytest.raises(ConditionError, match=r"several series: use result\[i\] or result.all"):
        compile_condition("result < 1", "successCondition").holds([0.5, 2.0])


def test_python_is_not_reachable_from_a_condition() -> None:
    condition = compile_condition("__import__('os').system('true') == 0", "successCondition")
    with pytest.raises(ConditionError, match="__import__"):
        condition.holds(1.0)
