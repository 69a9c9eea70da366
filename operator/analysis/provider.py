"""The metric provider interface: measure one metric of one rollout, now.

One implementation per file (prometheus.py today). A provider does the I/O and nothing else:
what the numbers mean is decided by `judging` (and, for an A/B test's windows, which `query`
reads, by `abtest`). `measure` never raises for a measurement that went wrong; it returns a
Measurement with verdict Error and the reason, so the Argo-style limits decide what an outage
means (an Error is never a Failed, and its value is never 0).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from modelramp.operator.analysis.context import Judgement, QueryResult, RolloutContext
from modelramp.operator.api.analysis import EffectiveMetric
from modelramp.operator.api.status import Evidence, Measurement


class QueryError(Exception):
    """A query produced no usable answer; the message says why."""


class MetricProvider(Protocol):
    def query(self, promql: str) -> QueryResult:
        """Runs one query now; raises QueryError saying why it has no usable answer (an A/B
        test's windows are read this way, and judged by the engine)."""
        ...

    def measure(
        self, metric: EffectiveMetric, context: RolloutContext, prior: Evidence | None = None
    ) -> Measurement:
        """Takes one measurement, judged with the evidence `prior` the metric pooled so far; errors
        come back as verdict Error, never as an exception."""
        ...


def to_measurement(
    judgement: Judgement, metric: EffectiveMetric, context: RolloutContext, time: datetime
) -> Measurement:
    """The status record of a judgement. The message always names the query, so "no data" and
    failures can be reproduced by pasting it into Prometheus (flagger#1810)."""
    message = (
        judgement.message
        if judgement.query in judgement.message
        else f"{judgement.message}; query: {judgement.query}"
    )
    return Measurement(
        metric=metric.metric.name,
        analysis=context.analysis,
        value=judgement.value,
        stable_value=judgement.stable_value,
        verdict=judgement.verdict,
        time=time,
        query=judgement.query[:4096] or None,
        threshold=judgement.threshold,
        message=message[:4096],
        test=judgement.test,
        evidence=judgement.evidence,
    )
