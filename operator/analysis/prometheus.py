"""The Prometheus metric provider: runs a metric's instant queries through prometheus-api-client.

Anything that keeps a query from answering (Prometheus unreachable, a timeout, a query
Prometheus rejects, a range-vector result) becomes a Measurement with verdict Error and the
reason; it is never Failed and never 0. Retries are left to the analysis schedule (an Error is
measured again after a short delay), so one measurement costs at most one timeout.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests
import urllib3
from prometheus_api_client.exceptions import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from urllib3.util.retry import Retry

from modelramp.operator.analysis.context import Judgement, QueryResult, RolloutContext, Sample
from modelramp.operator.analysis.judging import judge, plan_queries
from modelramp.operator.analysis.provider import QueryError, to_measurement
from modelramp.operator.analysis.templating import TemplateError
from modelramp.operator.api.analysis import EffectiveMetric, PrometheusProvider
from modelramp.operator.api.status import Evidence, Measurement


class PrometheusMetricProvider:
    def __init__(
        self, address: str, timeout_seconds: int, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.address = address.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self._clock = clock
        self._client = PrometheusConnect(url=self.address, retry=Retry(total=0), timeout=timeout_seconds)

    @classmethod
    def from_settings(cls, settings: PrometheusProvider) -> PrometheusMetricProvider:
        return cls(settings.address, settings.timeout_seconds)

    def measure(
        self, metric: EffectiveMetric, context: RolloutContext, prior: Evidence | None = None
    ) -> Measurement:
        try:
            queries = plan_queries(metric, context)
        except TemplateError as error:
            judgement = Judgement(
                verdict="Error", query=metric.metric.query or "", message=f"{metric.metric.name}: {error}"
            )
            return to_measurement(judgement, metric, context, self._clock())
        results: dict[str, QueryResult] = {}
        for role, query in queries.items():
            try:
                results[role] = self.query(query)
            except QueryError as error:
                judgement = Judgement(verdict="Error", query=query, message=f"{metric.metric.name}: {error}")
                return to_measurement(judgement, metric, context, self._clock())
        return to_measurement(judge(metric, queries, results, prior), metric, context, self._clock())

    def query(self, promql: str) -> QueryResult:
        """Runs one instant query; raises QueryError saying why it has no usable answer."""
        try:
            data = self._client.custom_query(promql, params={"timeout": f"{self.timeout_seconds:g}s"})
        except requests.Timeout as error:
            raise QueryError(
                f"Prometheus at {self.address} did not answer within {self.timeout_seconds:g}s"
            ) from error
        except requests.ConnectionError as error:
            if isinstance(_root_cause(error), TimeoutError | urllib3.exceptions.TimeoutError):
                raise QueryError(
                    f"Prometheus at {self.address} did not answer within {self.timeout_seconds:g}s"
                ) from error
            raise QueryError(f"Prometheus at {self.address} is unreachable: {_root_cause(error)}") from error
        except requests.RequestException as error:
            raise QueryError(f"query to Prometheus at {self.address} failed: {error}") from error
        except PrometheusApiClientException as error:
            raise QueryError(f"Prometheus rejected the query: {_api_error(error)}") from error
        return parse_result(data)


def parse_result(data: Any) -> QueryResult:
    """Turns the `data.result` of /api/v1/query into a QueryResult.

    prometheus-api-client drops `resultType`, so the shape tells: a scalar is `[time, "value"]`,
    a vector a list of `{"metric": ..., "value": [time, "value"]}`.
    """
    if isinstance(data, list) and len(data) == 2 and isinstance(data[0], int | float):
        return QueryResult(kind="scalar", samples=(Sample(value=_number(data[1])),))
    if isinstance(data, list) and all(isinstance(item, dict) and "value" in item for item in data):
        return QueryResult(
            kind="vector",
            samples=tuple(
                Sample(labels=item.get("metric", {}), value=_number(item["value"][1])) for item in data
            ),
        )
    raise QueryError("the query must return a scalar or an instant vector (not a range vector or a string)")


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError) as error:
        raise QueryError(f"the query returned {text!r}, which is not a number") from error


def _api_error(error: PrometheusApiClientException) -> str:
    # The exception text is 'HTTP Status Code 400 (b\'{"status":"error","error":"..."}\')'.
    text = str(error)
    start, end = text.find("{"), text.rfind("}")
    if start >= 0 and end > start:
        try:
            body = json.loads(text[start : end + 1].encode().decode("unicode_escape"))
            return f"{body.get('errorType', 'error')}: {body.get('error', text)}"
        except ValueError:
            pass
    return text


def _root_cause(error: BaseException) -> BaseException:
    # requests wraps urllib3's error, which wraps the socket's: the innermost one says "refused".
    while error.__context__ is not None:
        error = error.__context__
    return error
