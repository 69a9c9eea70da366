"""How a ModelDeployment judges a new model: metric definitions, analyses and their defaults.

A metric is either a built-in (the serving metrics contract in docs/architecture.md, judged by
an absolute `threshold` and/or a `maxRatioToStable` against the stable track measured over the
same window) or a custom PromQL `query` judged by CEL `successCondition` / `failureCondition`.
Limits left unset on a metric come from `spec.analysis`; `effective_metric` applies them, so the
analysis engine never has to chase defaults itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from modelramp.operator.api.base import ApiModel, CelRule, ListMapKey
from modelramp.operator.api.types import DnsLabel, Duration, HttpUrl, parse_duration

BuiltinMetric = Literal["error-rate", "latency-p95", "prediction-drift", "input-drift"]
FailurePolicy = Literal["Rollback", "Pause"]

MAX_METRICS = 16
DEFAULT_INTERVAL = "1m"
DEFAULT_FAILURE_LIMIT = 0
DEFAULT_INCONCLUSIVE_LIMIT = 0
DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4
DEFAULT_MIN_SAMPLES = 50
DEFAULT_COUNT = 10
DEFAULT_FALSE_ROLLBACK_RATE = 0.01
# Confidence of the bound that shows a canary within its tolerance (the promotion side). Lower than
# the rollback side's on purpose: a canary at the tolerance is acceptable by definition, and a
# canary well beyond it is caught by the rollback test first.
SUCCESS_CONFIDENCE = 0.9

CelExpression = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class Metric(ApiModel):
    """One check of the canary (or preview), measured repeatedly during an analysis."""

    cel_rules = (
        CelRule("has(self.builtin) != has(self.query)", "a metric sets exactly one of builtin or query"),
        CelRule(
            "has(self.query) || (!has(self.successCondition) && !has(self.failureCondition))",
            "successCondition and failureCondition apply only to a query metric",
            reason="FieldValueForbidden",
        ),
        CelRule(
            "!has(self.query) || has(self.successCondition) || has(self.failureCondition)",
            "a query metric needs a successCondition or a failureCondition",
            field_path=".query",
            reason="FieldValueRequired",
        ),
        CelRule(
            "has(self.builtin) || (!has(self.threshold) && !has(self.maxRatioToStable))",
            "threshold and maxRatioToStable apply only to a builtin metric (use conditions with a query)",
            reason="FieldValueForbidden",
        ),
        CelRule(
            "!has(self.builtin) || has(self.threshold) || has(self.maxRatioToStable)",
            "a builtin metric needs a threshold or a maxRatioToStable",
            field_path=".builtin",
            reason="FieldValueRequired",
        ),
        CelRule(
            "!has(self.builtin) || self.builtin != 'prediction-drift' || "
            "(has(self.threshold) && !has(self.maxRatioToStable))",
            "prediction-drift is already measured against stable: give it a threshold, not maxRatioToStable",
            field_path=".builtin",
        ),
        CelRule(
            "!has(self.builtin) || self.builtin != 'input-drift' || "
            "(has(self.threshold) && !has(self.maxRatioToStable))",
            "input-drift is measured against the model's input reference: give it a threshold, "
            "not maxRatioToStable",
            field_path=".builtin",
        ),
    )

    name: DnsLabel = Field(description="Name of the metric, unique within its analysis; shown in status.")
    builtin: BuiltinMetric | None = Field(
        default=None,
        description=(
            "A built-in metric computed from the model server's own metrics: `error-rate` (fraction "
            "of requests answered 5xx), `latency-p95` (95th percentile request latency, seconds), "
            "`prediction-drift` (distance between the canary's and stable's prediction "
            "distributions, 0..1), `input-drift` (distance of the live inputs of each feature from "
            "the model's input reference, for servers run with an input reference). Exactly one of "
            "builtin or query."
        ),
    )
    query: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description=(
            "A PromQL query returning one number. `{{namespace}}`, `{{name}}` (the ModelDeployment), "
            "`{{track}}` (canary) and `{{interval}}` are substituted before it runs. Exactly one of "
            "builtin or query."
        ),
    )
    threshold: float | None = Field(
        default=None,
        ge=0,
        description=(
            "Builtin metrics only: the highest acceptable value (a fraction for error-rate, seconds "
            "for latency-p95, a bias-corrected PSI for prediction-drift and, per feature, input-drift). "
            "The canary fails when it is "
            "significantly worse than stable and beyond this bound (for latency-p95, its p95's lower "
            "confidence bound above it); it passes once its upper confidence bound is within it."
        ),
    )
    max_ratio_to_stable: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Builtin error-rate and latency-p95 only: the highest acceptable ratio of the canary's "
            "value to stable's on the same pooled evidence (1.2 = at most 20% worse). With threshold "
            "too, the canary fails when it breaks either and passes when shown within both (for "
            "error-rate, within threshold); when stable's error rate is 0 only threshold applies."
        ),
    )
    success_condition: CelExpression | None = Field(
        default=None,
        description=(
            "Query metrics only: a CEL expression over `result` (the query's value, a double) that "
            "is true when the measurement is good, e.g. `result < 0.05`."
        ),
    )
    failure_condition: CelExpression | None = Field(
        default=None,
        description=(
            "Query metrics only: a CEL expression over `result` that is true when the measurement is "
            "bad. When neither condition holds the measurement is Inconclusive."
        ),
    )
    interval: Duration | None = Field(
        default=None, description="Time between measurements; defaults to spec.analysis.interval."
    )
    initial_delay: Duration | None = Field(
        default=None,
        description=(
            "Wait this long after the analysis starts before the first measurement. Defaults to one "
            "interval for builtin metrics (their window must first fill with canary traffic) and to 0 "
            "for query metrics."
        ),
    )
    min_samples: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description=(
            f"Builtin metrics only: the canary requests (predictions, for prediction-drift) and stable's "
            f"the pooled evidence needs before the metric can pass. Default {DEFAULT_MIN_SAMPLES}."
        ),
    )
    count: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description=(
            f"The most measurements to take (default {DEFAULT_COUNT}). A builtin metric stops as soon as "
            "its pooled evidence decides; still undecided after `count` it is Inconclusive."
        ),
    )
    failure_limit: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Failed measurements tolerated; one more fails the analysis. Defaults to spec.analysis.",
    )
    inconclusive_limit: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Inconclusive measurements tolerated before the rollout pauses for a human.",
    )
    consecutive_error_limit: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description=(
            "Consecutive measurement errors (query failed, Prometheus unreachable, timeout) tolerated; "
            "one more makes the "
            "analysis Error. Errors never count as failures."
        ),
    )


MetricList = Annotated[
    list[Metric],
    ListMapKey("name"),
    Field(
        min_length=1,
        max_length=MAX_METRICS,
    ),
]


class PrometheusProvider(ApiModel):
    """Where measurements come from."""

    address: HttpUrl = Field(description="Base URL of the Prometheus HTTP API, e.g. http://prometheus:9090.")
    timeout_seconds: int = Field(
        default=10,
        ge=1,
        le=300,
        description="Timeout of one query; a timed-out query is a measurement error.",
    )


# The fields of spec.analysis that name a metric provider; analysis/providers.py maps each to its
# implementation (one entry per field, like trafficRouting's routers).
PROVIDER_FIELDS: tuple[str, ...] = ("prometheus",)
ProviderSettings = PrometheusProvider


class AnalysisDefaults(ApiModel):
    """Defaults for every analysis of this ModelDeployment (steps, background, blue-green)."""

    prometheus: PrometheusProvider | None = Field(
        default=None,
        description="The Prometheus to query; defaults to the one the operator was installed with.",
    )
    interval: Duration = Field(default=DEFAULT_INTERVAL, description="Default time between measurements.")
    count: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description=f"Default number of measurements of each metric (default {DEFAULT_COUNT}).",
    )
    false_rollback_rate: float = Field(
        default=DEFAULT_FALSE_ROLLBACK_RATE,
        gt=0,
        le=0.5,
        description=(
            "The highest probability that the builtin metrics of all this rollout's analyses together "
            "roll back a canary no worse than stable, at any traffic: split evenly over every builtin "
            "metric of every analysis, and within each over its `count` measurements."
        ),
    )
    failure_limit: int = Field(
        default=DEFAULT_FAILURE_LIMIT, ge=0, le=1000, description="Default failed measurements tolerated."
    )
    inconclusive_limit: int = Field(
        default=DEFAULT_INCONCLUSIVE_LIMIT,
        ge=0,
        le=1000,
        description="Default inconclusive measurements tolerated.",
    )
    consecutive_error_limit: int = Field(
        default=DEFAULT_CONSECUTIVE_ERROR_LIMIT,
        ge=0,
        le=1000,
        description="Default consecutive measurement errors tolerated.",
    )
    on_failure: FailurePolicy = Field(
        default="Rollback",
        description=(
            "What a failed analysis does: `Rollback` sends all traffic back to stable; `Pause` holds "
            "the rollout where it is for a human to abort or retry."
        ),
    )
    metrics: MetricList | None = Field(
        default=None,
        description="Metrics run by every analysis that lists none of its own (e.g. `analysis: {}`).",
    )


def configured_provider(defaults: AnalysisDefaults | None) -> tuple[str, ProviderSettings] | None:
    """The metric provider spec.analysis names (its field and settings), if any."""
    for field in PROVIDER_FIELDS:
        settings = getattr(defaults, field, None) if defaults is not None else None
        if settings is not None:
            return field, settings
    return None


class AnalysisSpec(ApiModel):
    """An analysis: a set of metrics measured until each reaches its count or a limit decides."""

    metrics: MetricList | None = Field(
        default=None, description="Metrics to measure; unset means spec.analysis.metrics."
    )


class BackgroundAnalysis(AnalysisSpec):
    """An analysis that runs throughout a canary rollout, next to the steps."""

    starting_step: int | None = Field(
        default=None,
        ge=0,
        le=63,
        description="Index of the step at which the background analysis starts; defaults to the first.",
    )


class Monitor(ApiModel):
    """Checks of the stable model that run all the time, rollout or not; they never roll back."""

    cel_rules = (
        CelRule(
            "self.metrics.all(m, !has(m.builtin) || m.builtin == 'input-drift')",
            "a monitor watches the stable model alone: of the builtins only input-drift applies "
            "(error-rate, latency-p95 and prediction-drift compare a canary with stable)",
            field_path=".metrics",
        ),
    )

    metrics: MetricList = Field(
        description=(
            "Measured on the stable track (`{{track}}` is `stable`) until each decides; then the "
            "monitor starts over. A Failed run sets the Drifted condition, a Successful one clears it."
        )
    )


@dataclass(frozen=True)
class EffectiveMetric:
    """A metric with every default applied: what the analysis engine measures."""

    metric: Metric
    interval_seconds: float
    initial_delay_seconds: float
    count: int
    failure_limit: int
    inconclusive_limit: int
    consecutive_error_limit: int
    min_samples: int
    alpha: float = DEFAULT_FALSE_ROLLBACK_RATE / DEFAULT_COUNT
    """A builtin metric's false-rollback budget for one measurement."""
    success_confidence: float = SUCCESS_CONFIDENCE
    paired: bool = False
    """Measured in a shadow step: on the canary's and stable's answers to the same requests."""


def analysis_metrics(analysis: AnalysisSpec, defaults: AnalysisDefaults | None) -> list[Metric]:
    """The metrics an analysis measures: its own, else spec.analysis.metrics (the API server
    guarantees one of them is set)."""
    if analysis.metrics:
        return list(analysis.metrics)
    return list(defaults.metrics or []) if defaults else []


def effective_metric(
    metric: Metric,
    defaults: AnalysisDefaults | None,
    builtin_metrics_in_rollout: int = 1,
    *,
    paired: bool = False,
) -> EffectiveMetric:
    """`metric` with the limits and timings it leaves unset taken from spec.analysis, and (for a
    builtin) its share of the rollout's false-rollback budget: the rate split evenly over the
    `builtin_metrics_in_rollout` builtin metrics of all analyses, then over `count` measurements."""
    base = defaults or AnalysisDefaults()
    count = metric.count if metric.count is not None else (base.count or DEFAULT_COUNT)
    interval = parse_duration(metric.interval or base.interval)
    if metric.initial_delay is not None:
        initial_delay = parse_duration(metric.initial_delay)
    else:
        # A builtin measured at once would judge a window the canary's traffic has barely reached.
        initial_delay = interval if metric.builtin is not None else 0.0
    return EffectiveMetric(
        metric=metric,
        interval_seconds=interval,
        initial_delay_seconds=initial_delay,
        count=count,
        failure_limit=metric.failure_limit if metric.failure_limit is not None else base.failure_limit,
        inconclusive_limit=(
            metric.inconclusive_limit if metric.inconclusive_limit is not None else base.inconclusive_limit
        ),
        consecutive_error_limit=(
            metric.consecutive_error_limit
            if metric.consecutive_error_limit is not None
            else base.consecutive_error_limit
        ),
        min_samples=metric.min_samples if metric.min_samples is not None else DEFAULT_MIN_SAMPLES,
        alpha=base.false_rollback_rate / max(builtin_metrics_in_rollout, 1) / count,
        paired=paired,
    )
