"""input-drift: do the live inputs of a track still follow the model's input reference?

The reference is the training data's counts in per-feature buckets, shipped with the model and
exported by every serving pod as `modelramp_input_reference{feature, le}` beside the live
`modelramp_input_bucket{feature, le}` (serving/input_histograms.py). The analysed track is the
canary in a rollout's analyses and stable in spec.monitor.

Per feature: chi-square homogeneity of live against reference rows (sparse buckets merged, as for
prediction-drift) and the bias-corrected PSI as the effect. Multiplicity across features is
Bonferroni: a feature is drifted when its p-value times the number of features is within the
measurement's alpha AND its PSI is beyond `threshold`, so watching 30 features raises no more false
alarms than watching one. Shown within: every feature's PSI upper bound, each at confidence
1 - (1 - c) / features, is within threshold. The features furthest off are named, worst first.
Traffic: PSI 0.25 on 10 buckets is resolved from about 150 live rows, as for prediction-drift; the
reference's own sampling noise counts too, so it should hold thousands of rows.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping

import numpy as np

from modelramp.operator.analysis import sequential
from modelramp.operator.analysis.context import QueryResult, RolloutContext
from modelramp.operator.analysis.evidence import EvidenceError, differenced
from modelramp.operator.analysis.statistics import chi_square_homogeneity, psi_with_upper
from modelramp.operator.api.analysis import EffectiveMetric
from modelramp.operator.api.status import (
    MAX_BUCKETS,
    MAX_FEATURES,
    MAX_WORST_FEATURES,
    Evidence,
    FeatureCounts,
    FeatureScore,
    TestOutcome,
    TrackCounts,
)

LIVE, REFERENCE = "value", "reference"


def queries(context: RolloutContext, window: str) -> dict[str, str]:
    selector = f'namespace="{context.namespace}",modeldeployment="{context.name}",track="{context.track}"'
    return {
        LIVE: f"sum by (feature, le) (increase(modelramp_input_bucket{{{selector}}}[{window}]))",
        # Every pod of a revision exports the same reference, so any one of them will do.
        REFERENCE: f"max by (feature, le) (modelramp_input_reference{{{selector}}})",
    }


def read(results: Mapping[str, QueryResult]) -> Evidence:
    """One window's live rows per feature and bucket, beside the reference's."""
    reference = _cumulative_by_feature(results[REFERENCE])
    if not reference:
        raise EvidenceError(
            "no input reference in Prometheus (modelramp_input_reference): serve the model with "
            "--input-reference, or ship input_reference.json in its MLflow model"
        )
    if len(reference) > MAX_FEATURES:
        raise EvidenceError(
            f"the input reference has {len(reference)} features; at most {MAX_FEATURES} are judged"
        )
    live = _cumulative_by_feature(results[LIVE])
    features = []
    for name in sorted(reference):
        bounds = _finite_bounds(name, reference[name])
        if name in live and _finite_bounds(name, live[name]) != bounds:
            raise EvidenceError(
                f"feature {name!r}: the live buckets differ from the reference's; serve the model "
                "with the reference it was trained with"
            )
        features.append(
            FeatureCounts(
                name=name,
                bounds=list(bounds),
                live=differenced(live.get(name, {}), bounds),
                reference=differenced(reference[name], bounds),
            )
        )
    return _evidence(1, features)


def pool(before: Evidence | None, window: Evidence) -> Evidence:
    """Live rows add up over the windows; the reference is the latest window's (it is no sample)."""
    if before is None or before.windows == 0:
        return window
    earlier = {feature.name: feature for feature in before.features}
    features = []
    for feature in window.features:
        old = earlier.get(feature.name)
        if old is not None and old.bounds != feature.bounds:
            raise EvidenceError(
                f"feature {feature.name!r}: the reference's buckets changed during the analysis; "
                "retry the analysis"
            )
        live = feature.live if old is None else [a + b for a, b in zip(old.live, feature.live, strict=True)]
        features.append(feature.model_copy(update={"live": live}))
    return _evidence(before.windows + window.windows, features)


def assess(metric: EffectiveMetric, evidence: Evidence) -> TestOutcome:
    threshold = metric.metric.threshold
    assert threshold is not None  # the API requires a threshold for input-drift
    count = max(len(evidence.features), 1)
    confidence = 1 - (1 - metric.success_confidence) / count
    scores, uppers, beyond = [], [], []
    for feature in evidence.features:
        live, reference = np.array(feature.live), np.array(feature.reference)
        _, _, p_value = chi_square_homogeneity(live, reference)
        adjusted = min(p_value * count, 1.0)
        if live.sum() <= 0 or reference.sum() <= 0:
            uppers.append(math.inf)
            continue
        psi, upper = psi_with_upper(live, reference, confidence)
        scores.append(FeatureScore(name=feature.name, psi=psi, p_value=p_value))
        uppers.append(upper)
        if psi > threshold:
            beyond.append(adjusted)
    worst = sorted(scores, key=lambda score: (-score.psi, score.p_value))
    value = worst[0].psi if worst else None
    upper = max(uppers, default=math.inf)
    # The test that matters: the most significant of the features beyond the threshold.
    p_value = min(beyond, default=min((min(s.p_value * count, 1.0) for s in scores), default=1.0))
    outcome = sequential.outcome(
        metric,
        evidence,
        test="chi-square",
        statistic=None,
        p_value=p_value,
        effect=f"largest PSI of {len(evidence.features)} features vs reference (bias-corrected)",
        value=value,
        lower=0.0 if value is not None else None,
        upper=upper,
        bound=threshold,
        beyond=bool(beyond),
        within=upper <= threshold,
        more_canary_samples=sequential.samples_to_show_within(
            evidence.canary.total, value if value is not None else threshold, upper, threshold
        ),
    )
    return outcome.model_copy(update={"worst_features": worst[:MAX_WORST_FEATURES]})


def worst_features(outcome: TestOutcome) -> str:
    """e.g. `worst: age (PSI 0.41, p=1e-06), income (0.12, p=0.03)`; empty without features."""
    parts = [
        f"{score.name} ({'PSI ' if index == 0 else ''}{score.psi:.3g}, p={score.p_value:.2g})"
        for index, score in enumerate(outcome.worst_features)
    ]
    return f"worst: {', '.join(parts)}" if parts else ""


def _evidence(windows: int, features: list[FeatureCounts]) -> Evidence:
    # Every feature sees every row, so any feature's total is the rows'.
    live = max((sum(feature.live) for feature in features), default=0.0)
    reference = max((sum(feature.reference) for feature in features), default=0.0)
    return Evidence(
        windows=windows,
        canary=TrackCounts(total=live),
        stable=TrackCounts(total=reference),
        features=features,
    )


def _cumulative_by_feature(result: QueryResult) -> dict[str, dict[float, float]]:
    by_feature: dict[str, dict[float, float]] = defaultdict(dict)
    for sample in result.samples:
        feature, le = sample.labels.get("feature"), sample.labels.get("le")
        if feature is not None and le is not None and not math.isnan(sample.value):
            by_feature[feature][float(le)] = max(sample.value, 0.0)
    return by_feature


def _finite_bounds(name: str, cumulative: Mapping[float, float]) -> tuple[float, ...]:
    if math.inf not in cumulative:
        raise EvidenceError(f"feature {name!r} has no le=+Inf bucket")
    bounds = tuple(sorted(bound for bound in cumulative if bound != math.inf))
    if len(bounds) + 1 > MAX_BUCKETS:
        raise EvidenceError(
            f"feature {name!r} has {len(bounds) + 1} buckets; at most {MAX_BUCKETS} are pooled"
        )
    return bounds
