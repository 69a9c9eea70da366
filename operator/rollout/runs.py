"""Analysis runs of a rollout: start them, fold the glue's measurements in, stop them.

The engine alone starts and stops runs; the counters and phases come from
`modelramp.operator.analysis.phases` (Argo Rollouts' semantics). A run's name carries the
revision it measures, so a measurement taken for a run of an older revision can never count
toward a newer one (flagger#30), and a measurement older than the run's start (a retry reuses
the name) is ignored too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from modelramp.operator.analysis.phases import is_completed, metric_phase, record, run_phase
from modelramp.operator.analysis.scheduling import next_wakeup
from modelramp.operator.api.analysis import (
    AnalysisSpec,
    EffectiveMetric,
    analysis_metrics,
    configured_provider,
    effective_metric,
)
from modelramp.operator.api.spec import ModelDeploymentSpec
from modelramp.operator.api.status import (
    MAX_ANALYSIS_RUNS,
    MAX_MEASUREMENTS,
    AnalysisKind,
    AnalysisRunStatus,
    Measurement,
    MetricResult,
)
from modelramp.operator.rollout.model import EngineConfig

NO_PROVIDER = (
    "no metric provider configured: set spec.analysis.prometheus.address or install the operator "
    "with a default Prometheus; an analysis never passes without data"
)
MESSAGE_LIMIT = 4096  # AnalysisRunStatus.message
_KIND_PREFIX: dict[AnalysisKind, str] = {
    "Step": "step",
    "Background": "background",
    "PrePromotion": "pre-promotion",
    "PostPromotion": "post-promotion",
    "Monitor": "monitor",
    "Shadow": "shadow",
}


def run_name(kind: AnalysisKind, revision: str, step_index: int | None = None) -> str:
    """e.g. `step-2-5f3c9a1b2d`, `background-5f3c9a1b2d`."""
    prefix = _KIND_PREFIX[kind] + (f"-{step_index}" if step_index is not None else "")
    return f"{prefix}-{revision}"


def effective_metrics(
    analysis: AnalysisSpec, spec: ModelDeploymentSpec, *, paired: bool = False
) -> list[EffectiveMetric]:
    """The metrics of `analysis` with every default applied; `paired` for a shadow step's."""
    builtins = builtin_metrics_in_rollout(spec)
    return [
        effective_metric(metric, spec.analysis, builtins, paired=paired)
        for metric in analysis_metrics(analysis, spec.analysis)
    ]


def builtin_metrics_in_rollout(spec: ModelDeploymentSpec) -> int:
    """How many builtin metrics all the strategy's analyses measure together: the rollout's
    false-rollback budget is split over them."""
    canary, blue_green = spec.strategy.canary, spec.strategy.blue_green
    analyses: list[AnalysisSpec | None] = []
    if canary is not None:
        analyses += [step.analysis for step in canary.steps] + [canary.analysis]
        analyses += [step.shadow.analysis or AnalysisSpec() for step in canary.steps if step.shadow]
    if blue_green is not None:
        analyses += [blue_green.pre_promotion_analysis, blue_green.post_promotion_analysis]
    return sum(
        1
        for analysis in analyses
        if analysis is not None
        for metric in analysis_metrics(analysis, spec.analysis)
        if metric.builtin is not None
    )


def has_provider(spec: ModelDeploymentSpec, config: EngineConfig) -> bool:
    return configured_provider(spec.analysis) is not None or config.prometheus_address is not None


def start_run(
    kind: AnalysisKind,
    revision: str,
    step_index: int | None,
    metrics: Sequence[EffectiveMetric],
    *,
    now: datetime,
    provider: bool,
) -> AnalysisRunStatus:
    """A new run, Running; or Error at once when there is nothing to measure with."""
    run = AnalysisRunStatus(
        name=run_name(kind, revision, step_index),
        kind=kind,
        step_index=step_index,
        revision=revision,
        phase="Running",
        started_at=now,
        metrics=[MetricResult(name=metric.metric.name, phase="Pending") for metric in metrics],
    )
    if provider and metrics:
        return run
    reason = NO_PROVIDER if not provider else "the analysis has no metrics"
    return run.model_copy(update={"phase": "Error", "finished_at": now, "message": reason})


def fold(
    run: AnalysisRunStatus,
    metrics: Sequence[EffectiveMetric],
    measurements: Sequence[Measurement],
    now: datetime,
) -> AnalysisRunStatus:
    """The run after this tick's measurements of it, decided if a metric or all of them decided."""
    if is_completed(run.phase) or run.started_at is None:
        return run
    started = run.started_at
    mine = sorted(
        (m for m in measurements if m.analysis == run.name and m.time >= started), key=lambda m: m.time
    )
    results = []
    for metric, before in _paired(run, metrics):
        result = before
        for measurement in mine:
            if measurement.metric == result.name:
                result = record(result, measurement)
        results.append(result.model_copy(update={"phase": metric_phase(result, metric)}))
    return _settled(run, results, now)


def terminate(run: AnalysisRunStatus, metrics: Sequence[EffectiveMetric], now: datetime) -> AnalysisRunStatus:
    """The run stopped from outside: each open-ended metric settles on what it has measured (no
    successful measurement is never a pass)."""
    if is_completed(run.phase):
        return run
    results = [
        result.model_copy(update={"phase": metric_phase(result, metric, terminating=True)})
        for metric, result in _paired(run, metrics)
    ]
    return _settled(run, results, now)


def retry_time(run: AnalysisRunStatus, metrics: Sequence[EffectiveMetric]) -> datetime | None:
    """When a run that ended in Error because its measurements failed (Prometheus unreachable,
    queries timing out) is measured again: one interval of its fastest metric after it ended.
    None for any other run: a verdict on the model, or nothing to measure with, is not retried."""
    if run.phase != "Error" or run.finished_at is None or not metrics or run.message in (NO_PROVIDER, None):
        return None
    if not any(result.error for result in run.metrics):
        return None
    return run.finished_at + timedelta(seconds=min(metric.interval_seconds for metric in metrics))


def restart(run: AnalysisRunStatus, metrics: Sequence[EffectiveMetric], now: datetime) -> AnalysisRunStatus:
    """A fresh run in place of `run`: same name, counters from zero, measurements from now on."""
    return start_run(run.kind, run.revision, run.step_index, metrics, now=now, provider=True)


def wakeup(run: AnalysisRunStatus, metrics: Sequence[EffectiveMetric]) -> datetime | None:
    """When the run next needs a measurement; None once decided."""
    if is_completed(run.phase) or run.started_at is None:
        return None
    return next_wakeup(metrics, run.metrics, run.started_at)


def find(runs: Sequence[AnalysisRunStatus], name: str) -> AnalysisRunStatus | None:
    return next((run for run in runs if run.name == name), None)


def upsert(runs: Sequence[AnalysisRunStatus], run: AnalysisRunStatus) -> list[AnalysisRunStatus]:
    """`runs` with `run` replaced or appended; the oldest decided runs give way past the limit."""
    kept = [other for other in runs if other.name != run.name] + [run]
    while len(kept) > MAX_ANALYSIS_RUNS:
        oldest_done = next((other for other in kept if is_completed(other.phase)), kept[0])
        kept.remove(oldest_done)
    return kept


def recent_measurements(
    previous: Sequence[Measurement], new: Sequence[Measurement], runs: Sequence[AnalysisRunStatus]
) -> list[Measurement]:
    """The newest measurements of the current runs, oldest first, each kept once."""
    names = {run.name for run in runs}
    seen = {(m.analysis, m.metric, m.time) for m in previous}
    merged = list(previous)
    for measurement in sorted(new, key=lambda m: m.time):
        key = (measurement.analysis, measurement.metric, measurement.time)
        if measurement.analysis in names and key not in seen:
            seen.add(key)
            # The window's counts live on pooled in the metric's result; here they would only bloat.
            merged.append(measurement.model_copy(update={"evidence": None}))
    return merged[-MAX_MEASUREMENTS:]


def _paired(
    run: AnalysisRunStatus, metrics: Sequence[EffectiveMetric]
) -> list[tuple[EffectiveMetric, MetricResult]]:
    by_name = {result.name: result for result in run.metrics}
    return [
        (metric, by_name.get(metric.metric.name, MetricResult(name=metric.metric.name))) for metric in metrics
    ]


def _settled(run: AnalysisRunStatus, results: list[MetricResult], now: datetime) -> AnalysisRunStatus:
    phase = run_phase(result.phase for result in results)
    update: dict[str, object] = {"metrics": results, "phase": "Running" if phase == "Pending" else phase}
    if is_completed(phase):
        decisive = next((result for result in results if result.phase == phase), results[0])
        update["finished_at"] = now
        detail = f" ({decisive.message})" if decisive.message else ""
        update["message"] = f"metric {decisive.name}: {phase}{detail}"[:MESSAGE_LIMIT]
    return run.model_copy(update=update)
