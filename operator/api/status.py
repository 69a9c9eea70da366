"""`ModelDeployment.status`: everything a rollout has decided so far, and the manual controls.

All rollout progress lives here (never in kopf annotations or operator memory), so an operator
restarted mid-rollout carries on where the last one stopped: the step and when it started, the
pause conditions with their start times, the last weight set on the router, the blue-green switch
time, the analysis runs with their counters, and the abort/promote requests users make through
`modelramp abort|promote` or Argo CD actions (which patch the status subresource, as Argo Rollouts
does with `status.abort` and `status.promoteFull`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, StringConstraints, field_validator

from modelramp.operator.api.abtest import ABTestStatus
from modelramp.operator.api.base import ListMapKey, StatusModel
from modelramp.operator.api.spec import ModelSource, ServingSpec

Phase = Literal[
    "Initializing", "Progressing", "Paused", "Promoting", "Healthy", "Degraded", "RolledBack", "Failed"
]
ConditionType = Literal["Ready", "Progressing", "Degraded", "Drifted"]
ConditionStatus = Literal["True", "False", "Unknown"]
Verdict = Literal["Successful", "Failed", "Inconclusive", "Error"]
AnalysisPhase = Literal["Pending", "Running", "Successful", "Failed", "Inconclusive", "Error"]
AnalysisKind = Literal["Step", "Background", "PrePromotion", "PostPromotion", "Monitor", "Shadow"]
PauseReason = Literal[
    "CanaryPauseStep",
    "BlueGreenPause",
    "InconclusiveAnalysis",
    "FailedAnalysis",
    "UserPaused",
    "ABTestDecided",
]

MAX_MEASUREMENTS = 50
MAX_ANALYSIS_RUNS = 8
MAX_CONDITIONS = 8
MAX_STABLE_HISTORY = 11

Revision = Annotated[str, StringConstraints(max_length=63)]
ConditionReason = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
]
Message = Annotated[str, StringConstraints(max_length=32768)]


class Condition(StatusModel):
    """A Kubernetes-style condition (read by kstatus, Flux and Argo CD)."""

    type: ConditionType = Field(
        description="Ready: serves the desired model. Progressing: a rollout is running. Degraded: it failed."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: ConditionReason = Field(description="Machine-readable CamelCase cause of the last transition.")
    message: Message = Field(default="", description="Human-readable details.")
    last_transition_time: datetime = Field(description="When status last changed.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was computed from."
    )


MAX_LINEAGE_METRICS = 10
MAX_METRIC_NAME = 250
MAX_DESCRIPTION = 4096
MAX_SIGNATURE = 2048
MAX_SOURCE = 2048
ELLIPSIS = "…"


def _ellipsized(limit: int) -> Callable[[object], object]:
    """Cuts a longer string to `limit` characters, the last an ellipsis: registry text is shown,
    not judged, so an overlong description must not fail the resolution that carries it."""

    def cut(value: object) -> object:
        if isinstance(value, str) and len(value) > limit:
            return value[: limit - len(ELLIPSIS)] + ELLIPSIS
        return value

    return cut


LineageRunId = Annotated[str, BeforeValidator(_ellipsized(256)), StringConstraints(max_length=256)]
LineageSource = Annotated[
    str, BeforeValidator(_ellipsized(MAX_SOURCE)), StringConstraints(max_length=MAX_SOURCE)
]
LineageDescription = Annotated[
    str, BeforeValidator(_ellipsized(MAX_DESCRIPTION)), StringConstraints(max_length=MAX_DESCRIPTION)
]
LineageSignature = Annotated[
    str, BeforeValidator(_ellipsized(MAX_SIGNATURE)), StringConstraints(max_length=MAX_SIGNATURE)
]


class ModelLineage(StatusModel):
    """Where a registry version came from, as the registry described it when it was pinned.

    Every field is cut to its bound rather than refused: lineage is shown, never acted on, so
    what a registry says about a version must not stop the version from being rolled out."""

    run_id: LineageRunId | None = Field(default=None, description="The MLflow run that logged the model.")
    source: LineageSource | None = Field(
        default=None, description="Where the version's files are, as registered."
    )
    description: LineageDescription | None = Field(
        default=None,
        description=f"The version's description (its model card), cut to {MAX_DESCRIPTION} characters.",
    )
    metrics: dict[Annotated[str, StringConstraints(max_length=MAX_METRIC_NAME)], float] = Field(
        default_factory=dict,
        max_length=MAX_LINEAGE_METRICS,
        description=f"Latest values of the run's metrics, the first {MAX_LINEAGE_METRICS} by name.",
    )
    signature: LineageSignature | None = Field(
        default=None,
        description=(
            "The model's input and output schema, when the tracking server serves its MLmodel file "
            "(proxied artifacts); absent otherwise."
        ),
    )

    @field_validator("metrics", mode="before")
    @classmethod
    def _first_metrics(cls, metrics: object) -> object:
        # Sorted so the same run always gives the same status; the API server's JSON has no NaN or
        # infinity, and MLflow names no metric longer than MAX_METRIC_NAME.
        if not isinstance(metrics, dict):
            return metrics
        kept = sorted(
            (name, value)
            for name, value in metrics.items()
            if isinstance(name, str)
            and len(name) <= MAX_METRIC_NAME
            and isinstance(value, int | float)
            and math.isfinite(value)
        )
        return dict(kept[:MAX_LINEAGE_METRICS])


class ResolvedModel(StatusModel):
    """A model as served: the requested URI and what it resolved to."""

    uri: str = Field(max_length=2048, description="spec.model.uri of the revision.")
    resolved_uri: str = Field(
        max_length=2048,
        description=(
            "Immutable location the URI resolved to, e.g. models:/fraud/7 for models:/fraud@champion; "
            "the URI itself when it needs no resolving."
        ),
    )
    version: str | None = Field(
        default=None, max_length=256, description="Registry version or content digest of the model."
    )
    lineage: ModelLineage | None = Field(
        default=None, description="Registry versions: the run, source, metrics and card behind the version."
    )


class PauseCondition(StatusModel):
    """Why the rollout is paused and since when (a timed pause survives an operator restart)."""

    reason: PauseReason = Field(description="What paused the rollout.")
    start_time: datetime = Field(description="When the pause began.")


Decision = Literal["Worse", "WithinBound", "Undecided"]
StatisticalTest = Literal[
    "fisher-exact", "mann-whitney", "chi-square", "mcnemar-exact", "wilcoxon-signed-rank", "stuart-maxwell"
]
MAX_BUCKETS = 64
# A shadow step's joint prediction table: k x k cells for k <= 16 buckets.
MAX_JOINT_CELLS = 256
MAX_FEATURES = 64
MAX_WORST_FEATURES = 3


class TrackCounts(StatusModel):
    """One track's share of the evidence a builtin metric pooled."""

    total: float = Field(
        default=0, ge=0, description="Requests (predictions, for prediction-drift) observed."
    )
    errors: float = Field(default=0, ge=0, description="Requests answered 5xx (error-rate only).")
    buckets: list[float] = Field(
        default_factory=list,
        max_length=MAX_BUCKETS,
        description="Observations per histogram bucket (latency, drift), lowest first; the last is +Inf.",
    )


class FeatureCounts(StatusModel):
    """input-drift: one input feature's live rows per reference bucket, and the reference's."""

    name: str = Field(max_length=256, description="The feature, as named in the input reference.")
    bounds: list[float] = Field(
        max_length=MAX_BUCKETS, description="Upper bounds (`le`) of the reference's finite buckets."
    )
    live: list[float] = Field(
        max_length=MAX_BUCKETS, description="Live rows per bucket, pooled; the last is +Inf."
    )
    reference: list[float] = Field(
        max_length=MAX_BUCKETS, description="Reference (training) rows per bucket; the last is +Inf."
    )


class PairedCounts(StatusModel):
    """A shadow step's counts of what stable and the canary each did with the same requests."""

    canary_only: float = Field(
        default=0, ge=0, description="error-rate: requests only the canary failed (discordant pairs)."
    )
    stable_only: float = Field(
        default=0, ge=0, description="error-rate: requests only stable failed (discordant pairs)."
    )
    ratio_bounds: list[float] = Field(
        default_factory=list,
        max_length=MAX_BUCKETS,
        description="latency-p95: upper bounds of the canary/stable duration-ratio buckets.",
    )
    ratio: list[float] = Field(
        default_factory=list,
        max_length=MAX_BUCKETS,
        description="latency-p95: requests per duration-ratio bucket; the last is +Inf.",
    )
    joint: list[float] = Field(
        default_factory=list,
        max_length=MAX_JOINT_CELLS,
        description=(
            "prediction-drift: rows per (stable bucket, canary bucket), row-major by stable's bucket, "
            "over the buckets of `bounds` plus +Inf."
        ),
    )


class Evidence(StatusModel):
    """Counts of a builtin metric: one window's, or pooled over every measurement of its analysis.

    Pooled in status so that an operator restart neither loses nor counts a window twice."""

    windows: int = Field(default=0, ge=0, description="Measurement windows pooled.")
    bounds: list[float] = Field(
        default_factory=list,
        max_length=MAX_BUCKETS,
        description="Upper bounds (`le`) of the finite histogram buckets; buckets has one entry more (+Inf).",
    )
    canary: TrackCounts = Field(default_factory=TrackCounts, description="The canary's counts.")
    stable: TrackCounts = Field(default_factory=TrackCounts, description="Stable's counts.")
    features: list[FeatureCounts] = Field(
        default_factory=list,
        max_length=MAX_FEATURES,
        description="input-drift: per feature, the live and reference bucket counts.",
    )
    paired: PairedCounts | None = Field(
        default=None, description="Shadow steps: what each track did with the same requests."
    )


class FeatureScore(StatusModel):
    """input-drift: how far one feature's live values are from the reference."""

    name: str = Field(max_length=256, description="The feature.")
    psi: float = Field(ge=0, description="Bias-corrected PSI of live against reference.")
    p_value: float = Field(
        ge=0, le=1, description="Chi-square p-value, before the correction across features."
    )


class TestOutcome(StatusModel):
    """Why a builtin metric decided as it did, on the evidence pooled so far."""

    test: StatisticalTest = Field(description="The one-sided test of canary worse than stable.")
    statistic: float | None = Field(default=None, description="The test statistic, where it has one.")
    p_value: float = Field(ge=0, le=1, description="One-sided p-value of canary worse than stable.")
    alpha: float = Field(
        ge=0, le=1, description="The false-rollback budget of this measurement: Worse needs p <= alpha."
    )
    alpha_spent: float = Field(
        ge=0, le=1, description="Budget spent by this metric's measurements so far, this one included."
    )
    effect: str = Field(max_length=128, description="What value, lower and upper measure.")
    value: float | None = Field(default=None, description="The effect's estimate.")
    lower: float | None = Field(default=None, description="Lower confidence bound of the effect.")
    upper: float | None = Field(
        default=None, description="Upper confidence bound of the effect; absent when unbounded."
    )
    confidence: float = Field(gt=0, lt=1, description="Confidence of each bound.")
    bound: float | None = Field(
        default=None, description="The tolerance on the effect (threshold, or maxRatioToStable)."
    )
    canary_samples: float = Field(ge=0, description="Canary requests (predictions) pooled.")
    stable_samples: float = Field(ge=0, description="Stable requests (predictions) pooled.")
    decision: Decision = Field(
        description=(
            "Worse: significantly worse than stable and beyond the bound. WithinBound: the confidence "
            "bound is inside the tolerance. Undecided: not enough evidence either way yet."
        )
    )
    more_canary_samples: int | None = Field(
        default=None,
        ge=0,
        description="Undecided: about how many more canary requests would show it within the bound.",
    )
    worst_features: list[FeatureScore] = Field(
        default_factory=list,
        max_length=MAX_WORST_FEATURES,
        description="input-drift: the features furthest from the reference, worst first.",
    )


class Measurement(StatusModel):
    """One measurement of one metric."""

    metric: str = Field(max_length=63, description="Metric name.")
    analysis: str | None = Field(
        default=None, max_length=63, description="Name of the analysis run that took it (see analysisRuns)."
    )
    value: float | None = Field(
        default=None, description="Measured value of the canary; absent when the query gave no number."
    )
    stable_value: float | None = Field(
        default=None, description="The stable track's value over the same window, for relative metrics."
    )
    verdict: Verdict = Field(
        description=(
            "Successful, Failed, Inconclusive (too few samples, NaN) or Error (no series, the query "
            "failed, Prometheus unreachable, timeout)."
        )
    )
    time: datetime = Field(description="When it was taken.")
    query: str | None = Field(
        default=None, max_length=4096, description="The query as run, variables substituted."
    )
    threshold: float | None = Field(
        default=None,
        description=(
            "The limit the value was judged against (for maxRatioToStable the effective limit, "
            "min(threshold, ratio x stable value))."
        ),
    )
    message: str | None = Field(
        default=None,
        max_length=4096,
        description="Why: the threshold or condition it was judged by, or the query error.",
    )
    test: TestOutcome | None = Field(
        default=None, description="Builtin metrics: the test and bounds behind the verdict."
    )
    evidence: Evidence | None = Field(
        default=None,
        description="Builtin metrics: this window's counts, pooled into the metric's result.",
    )


class MetricResult(StatusModel):
    """Counters of one metric within one analysis run."""

    name: str = Field(max_length=63, description="Metric name.")
    phase: AnalysisPhase = Field(default="Running", description="The metric's verdict so far.")
    count: int = Field(
        default=0,
        ge=0,
        description="Measurements taken that returned data (errors are retried and not counted).",
    )
    successful: int = Field(default=0, ge=0, description="Successful measurements.")
    failed: int = Field(default=0, ge=0, description="Failed measurements.")
    inconclusive: int = Field(default=0, ge=0, description="Inconclusive measurements.")
    error: int = Field(default=0, ge=0, description="Measurement errors.")
    consecutive_error: int = Field(default=0, ge=0, description="Errors since the last usable measurement.")
    last_measured_at: datetime | None = Field(default=None, description="Time of the last measurement.")
    message: str | None = Field(default=None, max_length=4096, description="Latest explanation.")
    evidence: Evidence | None = Field(
        default=None, description="Builtin metrics: the counts pooled over this run's measurements."
    )
    test: TestOutcome | None = Field(default=None, description="Builtin metrics: the latest test outcome.")


class AnalysisRunStatus(StatusModel):
    """An analysis run of the current rollout, with enough state to resume after a restart."""

    name: str = Field(max_length=63, description="Unique within the rollout, e.g. step-2, background.")
    kind: AnalysisKind = Field(
        description="Step, Background, PrePromotion, PostPromotion, Monitor or Shadow."
    )
    step_index: int | None = Field(default=None, ge=0, description="The step that started it (Step runs).")
    revision: Revision = Field(
        description="canaryRevision it measures; a run for another revision is never reused."
    )
    phase: AnalysisPhase = Field(default="Pending", description="The run's verdict so far.")
    started_at: datetime | None = Field(default=None, description="When measuring started.")
    finished_at: datetime | None = Field(default=None, description="When a verdict was reached.")
    message: str | None = Field(default=None, max_length=4096, description="Why it ended as it did.")
    metrics: Annotated[list[MetricResult], ListMapKey("name")] = Field(
        default_factory=list,
        max_length=16,
        description="Per-metric counters.",
    )


class BlueGreenStatus(StatusModel):
    """Blue-green timings that must survive a restart."""

    preview_ready_time: datetime | None = Field(
        default=None, description="When the preview became ready; autoPromotionSeconds count from here."
    )
    switch_time: datetime | None = Field(
        default=None,
        description=(
            "When traffic switched to the new revision; scaleDownDelaySeconds and the post-promotion "
            "analysis count from here."
        ),
    )


class RevisionTemplate(StatusModel):
    """The parts of the spec that make a revision, kept for the stable one.

    While a new revision rolls out, spec already describes it; the stable Deployment is rebuilt
    from this copy (the live Deployment may have been deleted), so no rollout state lives anywhere
    but status.
    """

    model: ModelSource = Field(description="spec.model of the stable revision.")
    serving: ServingSpec = Field(
        description="spec.serving of the stable revision, with the operator's default image filled in."
    )


WriteBackOutcome = Literal["promoted", "rolled-back"]


class DriftStatus(StatusModel):
    """The latest verdict of spec.monitor on the stable model's live inputs (the Drifted condition)."""

    drifted: bool = Field(description="The last decided monitor run found stable's inputs drifted.")
    revision: Revision = Field(description="The stable revision it was measured on.")
    decided_at: datetime = Field(description="When that run decided.")
    message: Message = Field(default="", description="Why: the metric, its effect and the worst features.")
    worst_features: list[FeatureScore] = Field(
        default_factory=list, max_length=MAX_WORST_FEATURES, description="The features furthest off."
    )


class PendingWriteBack(StatusModel):
    """A rollout verdict the model registry has not accepted yet (spec.model.registry.writeBack).

    Recorded together with the transition that decided it, so neither a registry outage nor an
    operator restart loses it; retried with backoff until the registry accepts it, then removed.
    """

    name: str = Field(max_length=256, description="Registered model name.")
    version: str = Field(max_length=64, description="The model version the verdict is about.")
    outcome: WriteBackOutcome = Field(description="promoted or rolled-back.")
    alias: str | None = Field(
        default=None, max_length=256, description="The alias to move to this version (promotions)."
    )
    tags: dict[str, Annotated[str, StringConstraints(max_length=5000)]] = Field(
        # writeBack.tags (at most 32) and the operator's own (rollout, deployment, time, metric).
        default_factory=dict,
        max_length=40,
        description="Tags to set on the version.",
    )
    decided_at: datetime = Field(description="When the rollout reached the verdict.")
    attempts: int = Field(default=0, ge=0, description="Tries so far that the registry did not accept.")
    next_attempt_time: datetime | None = Field(
        default=None, description="When it is tried next (absent: at once)."
    )
    last_error: str | None = Field(
        default=None, max_length=4096, description="Why the registry did not accept the last try."
    )


class ModelDeploymentStatus(StatusModel):
    """The observed state of a ModelDeployment, written by the operator."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation this status was computed from."
    )
    phase: Phase | None = Field(
        default=None,
        description="Initializing, Progressing, Paused, Promoting, Healthy, Degraded, RolledBack or Failed.",
    )
    message: Message | None = Field(default=None, description="Human-readable summary of the phase.")
    stable_revision: Revision | None = Field(
        default=None, description="Pod-template hash of the revision serving as stable."
    )
    canary_revision: Revision | None = Field(
        default=None, description="Pod-template hash of the revision being rolled out; absent when none."
    )
    stable_history: list[Revision] = Field(
        default_factory=list,
        max_length=MAX_STABLE_HISTORY,
        description=(
            "Revisions that were stable before stableRevision, each once, newest last (at most "
            f"{MAX_STABLE_HISTORY}); spec.rollbackWindow goes straight back to the newest of them."
        ),
    )
    stable_model: ResolvedModel | None = Field(default=None, description="The model served by stable.")
    canary_model: ResolvedModel | None = Field(default=None, description="The model being rolled out.")
    current_step_index: int | None = Field(
        default=None,
        ge=0,
        description="Index of the canary step in progress; equals the step count when done.",
    )
    step_start_time: datetime | None = Field(
        default=None, description="When the current step (or blue-green phase) began."
    )
    canary_weight: int = Field(
        default=0, ge=0, le=100, description="Percentage of traffic the rollout wants on the canary now."
    )
    last_set_weight: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Canary weight last written to the router; checked against the router after a restart.",
    )
    pause_conditions: Annotated[list[PauseCondition], ListMapKey("reason")] = Field(
        default_factory=list,
        max_length=8,
        description="Why the rollout is paused; empty when it isn't.",
    )
    abort: bool = Field(
        default=False,
        description=(
            "Set by `modelramp abort` and by an automatic rollback: all traffic goes to stable. Clear "
            "it (`modelramp retry`) to restart the rollout from the first step; a new revision clears it."
        ),
    )
    aborted_at: datetime | None = Field(default=None, description="When the rollout was aborted.")
    promote: bool = Field(
        default=False,
        description=(
            "Set (by `modelramp promote`) to end the current pause or step now (a step analysis is "
            "stopped and counted as passed); the operator clears it once acted on."
        ),
    )
    promote_full: bool = Field(
        default=False,
        description="Set (by `modelramp promote --full`) to skip the remaining steps and analyses.",
    )
    blue_green: BlueGreenStatus | None = Field(default=None, description="Blue-green timings.")
    stable_template: RevisionTemplate | None = Field(
        default=None, description="Model and serving sections of the stable revision."
    )
    rollout_start_time: datetime | None = Field(default=None, description="When the current rollout began.")
    last_progress_time: datetime | None = Field(
        default=None,
        description="When the rollout last made progress; progressDeadlineSeconds count from here.",
    )
    analysis_runs: Annotated[list[AnalysisRunStatus], ListMapKey("name")] = Field(
        default_factory=list,
        max_length=MAX_ANALYSIS_RUNS,
        description="Analysis runs of the current rollout.",
    )
    measurements: list[Measurement] = Field(
        default_factory=list,
        max_length=MAX_MEASUREMENTS,
        description=f"The most recent measurements, newest last (at most {MAX_MEASUREMENTS}).",
    )
    replicas: int = Field(
        default=0, ge=0, description="Model server pods of all tracks (the scale subresource reads it)."
    )
    ready_replicas: int = Field(default=0, ge=0, description="Ready model server pods of all tracks.")
    selector: str | None = Field(
        default=None,
        max_length=1024,
        description="Label selector of all the pods, for the scale subresource (HPA).",
    )
    conditions: Annotated[list[Condition], ListMapKey("type")] = Field(
        default_factory=list,
        max_length=MAX_CONDITIONS,
        description="Ready, Progressing and Degraded conditions.",
    )
    monitor: AnalysisRunStatus | None = Field(
        default=None,
        description="The current run of spec.monitor on the stable model; started again when it decides.",
    )
    drift: DriftStatus | None = Field(
        default=None, description="spec.monitor's latest decided verdict; absent until one decides."
    )
    ab_test: ABTestStatus | None = Field(
        default=None,
        description="spec.strategy.abTest: the current or last test, per-variant figures and the winner.",
    )
    pending_write_backs: list[PendingWriteBack] = Field(
        default_factory=list,
        max_length=8,
        description=(
            "Registry write-backs decided but not yet accepted by the registry, oldest first; each is "
            "retried with backoff until it is."
        ),
    )
