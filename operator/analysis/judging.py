"""From a metric to the PromQL it needs, and from the results back to a verdict; provider-free.

A provider only runs the queries `plan_queries` names and hands the results to `judge`, so every
decision about what a value means is pure and tested without a Prometheus. `validate_metric`
runs the checks that need no data (template variables, condition syntax) so the operator can
reject a bad spec before the first measurement.
"""

from __future__ import annotations

from collections.abc import Mapping

from modelramp.operator.analysis.builtin_metrics import builtin_queries, judge_builtin
from modelramp.operator.analysis.context import Judgement, QueryResult, RolloutContext
from modelramp.operator.analysis.query_metric import conditions_of, judge_query
from modelramp.operator.analysis.templating import check_template, render_query, template_variables
from modelramp.operator.api.analysis import EffectiveMetric, Metric
from modelramp.operator.api.status import Evidence

QUERY = "value"


def plan_queries(metric: EffectiveMetric, context: RolloutContext) -> dict[str, str]:
    """Role -> PromQL of every query the metric needs; raises TemplateError for a bad template."""
    if metric.metric.builtin is not None:
        return builtin_queries(metric.metric.builtin, context, metric.interval_seconds, paired=metric.paired)
    if metric.metric.query is None:
        raise ValueError(f"metrics[{metric.metric.name}]: sets neither builtin nor query")
    variables = template_variables(context, metric.interval_seconds)
    return {QUERY: render_query(metric.metric.query, variables)}


def judge(
    metric: EffectiveMetric,
    queries: Mapping[str, str],
    results: Mapping[str, QueryResult],
    prior: Evidence | None = None,
) -> Judgement:
    """The verdict on the results of `plan_queries`' queries (same roles); a builtin pools them
    with the evidence `prior` its earlier measurements gathered."""
    if metric.metric.builtin is not None:
        return judge_builtin(metric, queries, results, prior)
    return judge_query(metric.metric, queries[QUERY], results[QUERY])


def validate_metric(metric: Metric) -> None:
    """Raises ValueError naming the field when a metric can never be measured as written."""
    if metric.query is not None:
        try:
            check_template(metric.query)
        except ValueError as error:
            raise ValueError(f"metrics[{metric.name}].query: {error}") from error
    conditions_of(metric)
