"""Which analysis a run measures, and starting one: the link between the spec's analyses (steps,
background, blue-green pre/post promotion) and the runs in status."""

from __future__ import annotations

from modelramp.operator.api.analysis import AnalysisSpec, EffectiveMetric
from modelramp.operator.api.spec import CanaryStep, ModelDeploymentSpec
from modelramp.operator.api.status import AnalysisKind, AnalysisRunStatus, ModelDeploymentStatus
from modelramp.operator.rollout import runs
from modelramp.operator.rollout.tick import Tick, Transition, changed, normal


def analysis_in(spec: ModelDeploymentSpec, kind: AnalysisKind, step_index: int | None) -> AnalysisSpec | None:
    """The spec of the analysis a run of `kind` measures, if the spec still has it."""
    canary, blue_green = spec.strategy.canary, spec.strategy.blue_green
    if kind == "Step" and canary is not None and step_index is not None and step_index < len(canary.steps):
        return canary.steps[step_index].analysis
    if kind == "Shadow" and canary is not None and step_index is not None and step_index < len(canary.steps):
        return shadow_analysis(canary.steps[step_index])
    if kind == "Background" and canary is not None:
        return canary.analysis
    if kind == "PrePromotion" and blue_green is not None:
        return blue_green.pre_promotion_analysis
    if kind == "PostPromotion" and blue_green is not None:
        return blue_green.post_promotion_analysis
    return None


def shadow_analysis(step: CanaryStep) -> AnalysisSpec | None:
    """A shadow step's analysis: its own metrics, else spec.analysis.metrics (`analysis: {}`)."""
    if step.shadow is None:
        return None
    return step.shadow.analysis or AnalysisSpec()


def analysis_of(tick: Tick, kind: AnalysisKind, step_index: int | None) -> AnalysisSpec | None:
    return analysis_in(tick.spec, kind, step_index)


def metrics_for_run(tick: Tick, run: AnalysisRunStatus) -> list[EffectiveMetric]:
    analysis = analysis_of(tick, run.kind, run.step_index)
    if analysis is None:
        return []
    return runs.effective_metrics(analysis, tick.spec, paired=run.kind == "Shadow")


def current_run(
    tick: Tick, status: ModelDeploymentStatus, kind: AnalysisKind, step_index: int | None = None
) -> AnalysisRunStatus | None:
    revision = status.canary_revision or ""
    return runs.find(status.analysis_runs, runs.run_name(kind, revision, step_index))


def start_analysis(
    tick: Tick, status: ModelDeploymentStatus, kind: AnalysisKind, step_index: int | None = None
) -> Transition | None:
    """Start the run of an analysis unless it already exists for this revision."""
    analysis = analysis_of(tick, kind, step_index)
    if analysis is None or current_run(tick, status, kind, step_index) is not None:
        return None
    revision = status.canary_revision or ""
    run = runs.start_run(
        kind,
        revision,
        step_index,
        runs.effective_metrics(analysis, tick.spec, paired=kind == "Shadow"),
        now=tick.now,
        provider=runs.has_provider(tick.spec, tick.config),
    )
    return changed(
        status,
        normal("AnalysisStarted", f"analysis {run.name} started ({len(run.metrics)} metrics)"),
        analysis_runs=runs.upsert(status.analysis_runs, run),
    )


def stop_runs(tick: Tick, all_runs: list[AnalysisRunStatus]) -> list[AnalysisRunStatus]:
    """Every run still measuring settles on what it has measured (the rollout moved on)."""
    return [runs.terminate(run, metrics_for_run(tick, run), tick.now) for run in all_runs]
