"""What a measurement needs to know about the rollout it measures, and the values it yields.

These models cross the line between the operator (which knows the ModelDeployment) and the
analysis engine (which knows only metrics), and between a metric provider and the pure judging
code, so they are small pydantic models.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from modelramp.operator.api.status import Evidence, TestOutcome, Verdict


class RolloutContext(BaseModel):
    """The ModelDeployment being analysed and the revisions it compares."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="the ModelDeployment's name")
    namespace: str = Field(min_length=1)
    canary_revision: str = ""
    stable_revision: str = ""
    analysis: str | None = Field(default=None, description="the analysis run taking the measurement")
    track: Literal["canary", "stable"] = Field(
        default="canary",
        description="the track measured: canary in a rollout's analyses, stable in the monitor",
    )


class Sample(BaseModel):
    """One value of a query result; `labels` are empty for a scalar."""

    model_config = ConfigDict(frozen=True)

    labels: dict[str, str] = Field(default_factory=dict)
    value: float


class QueryResult(BaseModel):
    """An instant query's answer: a scalar (one unlabelled sample) or a vector."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["scalar", "vector"]
    samples: tuple[Sample, ...] = ()


class Judgement(BaseModel):
    """The verdict on one measurement, before it is stamped with a time and a metric name."""

    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    message: str
    query: str
    value: float | None = None
    stable_value: float | None = None
    threshold: float | None = None
    test: TestOutcome | None = None
    evidence: Evidence | None = Field(default=None, description="a builtin's counts of this window")
