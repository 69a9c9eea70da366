"""Argo-style metric and run phases: table tests of the known cases plus properties over any history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelramp.operator.analysis.phases import phase_of_measurements, record, run_phase
from modelramp.operator.api.analysis import EffectiveMetric, Metric
from modelramp.operator.api.status import Measurement, MetricResult, Verdict

T0 = datetime(2025, 1, 1, tzinfo=UTC)
LETTER: dict[str, Verdict] = {"S": "Successful", "F": "Failed", "I": "Inconclusive", "E": "Error"}


QUERY_METRIC = Metric(name="m", query="x", success_condition="result < 1")
BUILTIN_METRIC = Metric(name="m", builtin="error-rate", threshold=0.05)


def limits(
    count: int = 10,
    failure: int = 0,
    inconclusive: int = 0,
    consecutive_error: int = 4,
    metric: Metric = QUERY_METRIC,
) -> EffectiveMetric:
    return EffectiveMetric(
        metric=metric,
        interval_seconds=60.0,
        initial_delay_seconds=0.0,
        count=count,
        failure_limit=failure,
        inconclusive_limit=inconclusive,
        consecutive_error_limit=consecutive_error,
        min_samples=50,
    )


def history(verdicts: str) -> list[Measurement]:
    return [
        Measurement(metric="m", verdict=LETTER[v], time=T0 + timedelta(minutes=i))
        for i, v in enumerate(verdicts)
    ]


@pytest.mark.parametrize(
    ("verdicts", "metric", "terminating", "expected"),
    [
        ("", limits(count=3), False, "Pending"),
        ("S", limits(count=3), False, "Running"),
        ("SSS", limits(count=3), False, "Successful"),
        ("SSF", limits(count=3), False, "Failed"),
        ("SF", limits(count=3, failure=1), False, "Running"),
        ("SFF", limits(count=3, failure=1), False, "Failed"),
        ("SFS", limits(count=3, failure=1), False, "Successful"),
        ("I", limits(count=3), False, "Inconclusive"),
        ("SIS", limits(count=3, inconclusive=1), False, "Successful"),
        # Errors are retried: they never count toward `count`...
        ("SEESS", limits(count=3), False, "Successful"),
        ("SEES", limits(count=3), False, "Running"),
        # ...and only too many *in a row* end the run.
        ("EEEE", limits(), False, "Running"),
        ("EEEEE", limits(), False, "Error"),
        ("EEEESEEEE", limits(), False, "Running"),
        ("EE", limits(consecutive_error=1), False, "Error"),
        ("E", limits(consecutive_error=0), False, "Error"),
        # argo-rollouts#4479: all Errored is never Successful, even when the run is stopped.
        ("EEE", limits(count=1), True, "Error"),
        ("EEE", limits(), True, "Error"),
        # No data is never a pass: a count reached with only inconclusives is Inconclusive.
        ("II", limits(count=2, inconclusive=2), False, "Inconclusive"),
        ("", limits(), True, "Inconclusive"),
        # A run stopped before its count settles on what it measured.
        ("SSS", limits(), False, "Running"),
        ("SSS", limits(), True, "Successful"),
        ("SIE", limits(inconclusive=1), True, "Successful"),
        # Failure outranks inconclusive and error.
        ("IF", limits(inconclusive=5), False, "Failed"),
        ("FEEEEE", limits(failure=1), False, "Error"),
    ],
)
def test_metric_phase_table(verdicts: str, metric: EffectiveMetric, terminating: bool, expected: str) -> None:
    assert phase_of_measurements("m", history(verdicts), metric, terminating=terminating) == expected


@pytest.mark.parametrize(
    ("verdicts", "metric", "terminating", "expected"),
    [
        # A builtin judges pooled evidence: one Successful measurement decides it...
        ("S", limits(metric=BUILTIN_METRIC), False, "Successful"),
        ("IIS", limits(metric=BUILTIN_METRIC), False, "Successful"),
        # ...an Inconclusive one means "not decided yet", whatever inconclusiveLimit says...
        ("III", limits(metric=BUILTIN_METRIC), False, "Running"),
        # ...until `count` measurements leave it undecided.
        ("III", limits(count=3, metric=BUILTIN_METRIC), False, "Inconclusive"),
        ("II", limits(metric=BUILTIN_METRIC), True, "Inconclusive"),
        ("IIF", limits(metric=BUILTIN_METRIC), False, "Failed"),
        ("IFS", limits(failure=1, metric=BUILTIN_METRIC), False, "Successful"),
        ("EEEEE", limits(metric=BUILTIN_METRIC), False, "Error"),
        ("IEE", limits(count=1, metric=BUILTIN_METRIC), False, "Inconclusive"),
    ],
)
def test_builtin_metric_phase_table(
    verdicts: str, metric: EffectiveMetric, terminating: bool, expected: str
) -> None:
    assert phase_of_measurements("m", history(verdicts), metric, terminating=terminating) == expected


def test_record_counts_each_verdict_and_resets_consecutive_errors() -> None:
    result = MetricResult(name="m")
    for measurement in history("SEEFI"):
        result = record(result, measurement)
    assert (result.count, result.successful, result.failed, result.inconclusive, result.error) == (
        3,
        1,
        1,
        1,
        2,
    )
    assert result.consecutive_error == 0
    assert result.last_measured_at == T0 + timedelta(minutes=4)


def test_record_ignores_a_replayed_measurement() -> None:
    """An operator restarted between measuring and seeing its status write must not count twice."""
    measurement = history("F")[0]
    once = record(MetricResult(name="m"), measurement)
    assert record(once, measurement) == once
    assert record(once, measurement.model_copy(update={"time": T0 - timedelta(seconds=1)})) == once


@pytest.mark.parametrize(
    ("phases", "expected"),
    [
        ([], "Pending"),
        (["Pending", "Pending"], "Pending"),
        (["Successful", "Pending"], "Running"),
        (["Successful", "Running"], "Running"),
        (["Successful", "Successful"], "Successful"),
        (["Successful", "Inconclusive", "Running"], "Inconclusive"),
        (["Error", "Inconclusive"], "Error"),
        (["Error", "Failed", "Successful"], "Failed"),
    ],
)
def test_run_phase_table(phases: list[str], expected: str) -> None:
    assert run_phase(phases) == expected  # type: ignore[arg-type]


verdict_strings = st.text(alphabet="SFIE", max_size=30)
limit_values = st.integers(min_value=0, max_value=5)
counts = st.integers(min_value=1, max_value=10)


@given(
    verdicts=verdict_strings,
    count=counts,
    failure=limit_values,
    inconclusive=limit_values,
    errors=limit_values,
    terminating=st.booleans(),
)
def test_never_successful_without_a_successful_measurement(
    *, verdicts: str, count: int, failure: int, inconclusive: int, errors: int, terminating: bool
) -> None:
    metric = limits(count, failure, inconclusive, errors)
    phase = phase_of_measurements("m", history(verdicts), metric, terminating=terminating)
    if "S" not in verdicts:
        assert phase != "Successful"


@given(
    verdicts=verdict_strings,
    count=counts,
    failure=limit_values,
    inconclusive=limit_values,
    errors=limit_values,
    terminating=st.booleans(),
)
def test_phase_respects_every_limit(
    *, verdicts: str, count: int, failure: int, inconclusive: int, errors: int, terminating: bool
) -> None:
    metric = limits(count, failure, inconclusive, errors)
    phase = phase_of_measurements("m", history(verdicts), metric, terminating=terminating)
    assert (phase == "Failed") == (verdicts.count("F") > failure)
    if phase == "Successful":
        assert verdicts.count("I") <= inconclusive
        trailing_errors = len(verdicts) - len(verdicts.rstrip("E"))
        assert trailing_errors <= errors


@given(
    verdicts=verdict_strings,
    more=verdict_strings,
    count=counts,
    failure=limit_values,
    inconclusive=limit_values,
    errors=limit_values,
)
def test_failed_stays_failed_whatever_comes_after(
    *, verdicts: str, more: str, count: int, failure: int, inconclusive: int, errors: int
) -> None:
    metric = limits(count, failure, inconclusive, errors)
    if phase_of_measurements("m", history(verdicts), metric) == "Failed":
        assert phase_of_measurements("m", history(verdicts + more), metric) == "Failed"


@given(verdict_strings, st.integers(min_value=1, max_value=10))
def test_counted_run_is_running_until_count_measurements_returned_data(verdicts: str, count: int) -> None:
    metric = limits(count=count, failure=100, inconclusive=100, consecutive_error=100)
    phase = phase_of_measurements("m", history(verdicts), metric)
    with_data = len(verdicts) - verdicts.count("E")
    assert (phase in {"Running", "Pending"}) == (with_data < count)
