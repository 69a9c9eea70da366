"""The builtin metrics of a shadow step: the same three questions, asked of paired requests.

In a shadow step the stable pods copy requests to the canary and, off the request path, compare
both answers to each one (serving/shadow.py). They export what they saw on stable's own series
(docs/architecture.md, "Shadow metrics"), labelled with the canary's version, so one query per
window gives the pairs of the canary revision under analysis:
- error-rate: requests by what each track did with them (`stable`, `canary`: ok | error), judged
  by McNemar's exact test on the requests only one track failed;
- latency-p95: the canary's server time over stable's per request (a histogram of the ratio,
  judged by the signed-rank test) and both tracks' server times (the p95s, for the bound);
- prediction-drift: rows per (stable's score bucket, the canary's), judged by the Stuart-Maxwell
  test of marginal homogeneity and PSI between the margins.
The effect, bound and "shown within" of each are those of the unpaired builtin (error_rate,
latency, prediction_drift): only the test, the evidence and (for drift) the PSI's null differ.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping

import numpy as np

from modelramp.operator.analysis import error_rate, latency, prediction_drift
from modelramp.operator.analysis.context import QueryResult, RolloutContext, Sample
from modelramp.operator.analysis.evidence import EvidenceError, differenced, histogram_counts
from modelramp.operator.analysis.paired_statistics import (
    discordant_ratio_upper,
    mcnemar_greater,
    paired_psi_with_upper,
    stuart_maxwell,
    symmetric_levels,
    wilcoxon_signed_rank_greater,
)
from modelramp.operator.analysis.statistics import whole
from modelramp.operator.api.analysis import EffectiveMetric
from modelramp.operator.api.status import (
    MAX_JOINT_CELLS,
    Evidence,
    PairedCounts,
    TestOutcome,
    TrackCounts,
)

PAIRS, RATIO, DURATIONS, JOINT = "pairs", "ratio", "durations", "joint"
REQUESTS = "modelramp_shadow_requests_total"
LATENCY_RATIO = "modelramp_shadow_latency_ratio_bucket"
DURATION = "modelramp_shadow_duration_seconds_bucket"
PREDICTIONS = "modelramp_shadow_predictions_total"


def _selector(context: RolloutContext) -> str:
    """Stable's pods of the stable revision, pairs with the canary revision under analysis."""
    return (
        f'namespace="{context.namespace}",modeldeployment="{context.name}",track="stable",'
        f'version="{context.stable_revision}",canary_version="{context.canary_revision}"'
    )


def _increase(series: str, by: str, context: RolloutContext, window: str) -> str:
    return f"sum by ({by}) (increase({series}{{{_selector(context)}}}[{window}]))"


def error_queries(context: RolloutContext, window: str) -> dict[str, str]:
    return {PAIRS: _increase(REQUESTS, "stable, canary", context, window)}


def latency_queries(context: RolloutContext, window: str) -> dict[str, str]:
    return {
        RATIO: _increase(LATENCY_RATIO, "le", context, window),
        DURATIONS: _increase(DURATION, "side, le", context, window),
    }


def drift_queries(context: RolloutContext, window: str) -> dict[str, str]:
    return {JOINT: _increase(PREDICTIONS, "stable_le, canary_le", context, window)}


# --- one window's counts ----------------------------------------------------------------------------


def read_errors(results: Mapping[str, QueryResult]) -> Evidence:
    table: dict[tuple[str, str], float] = defaultdict(float)
    for sample in results[PAIRS].samples:
        key = (sample.labels.get("stable", ""), sample.labels.get("canary", ""))
        if not math.isnan(sample.value):
            table[key] += max(sample.value, 0.0)
    pairs = sum(table.values())
    canary_errors = table["ok", "error"] + table["error", "error"]
    stable_errors = table["error", "ok"] + table["error", "error"]
    return Evidence(
        windows=1,
        canary=TrackCounts(total=pairs, errors=canary_errors),
        stable=TrackCounts(total=pairs, errors=stable_errors),
        paired=PairedCounts(canary_only=table["ok", "error"], stable_only=table["error", "ok"]),
    )


def read_latency(results: Mapping[str, QueryResult]) -> Evidence:
    # The per-side durations read as the tracks' histograms; the ratios as one more histogram.
    as_tracks = QueryResult(
        kind="vector",
        samples=tuple(
            Sample(
                labels={"track": sample.labels.get("side", ""), "le": sample.labels.get("le", "")},
                value=sample.value,
            )
            for sample in results[DURATIONS].samples
        ),
    )
    evidence = histogram_counts(as_tracks)
    cumulative: dict[float, float] = {}
    for sample in results[RATIO].samples:
        le = sample.labels.get("le")
        if le is not None and not math.isnan(sample.value):
            cumulative[float(le)] = max(sample.value, 0.0)
    if cumulative and math.inf not in cumulative:
        raise EvidenceError("the latency-ratio histogram has no le=+Inf bucket")
    bounds = tuple(sorted(bound for bound in cumulative if bound != math.inf))
    if bounds:
        try:
            symmetric_levels(list(bounds))
        except ValueError as error:
            raise EvidenceError(f"latency-ratio histogram: {error}") from None
    ratio = differenced(cumulative, bounds) if cumulative else []
    return evidence.model_copy(
        update={"paired": PairedCounts(ratio_bounds=list(bounds), ratio=ratio if bounds else [])}
    )


def read_drift(results: Mapping[str, QueryResult]) -> Evidence:
    cells: dict[tuple[float, float], float] = defaultdict(float)
    for sample in results[JOINT].samples:
        stable, canary = sample.labels.get("stable_le"), sample.labels.get("canary_le")
        if stable is not None and canary is not None and not math.isnan(sample.value):
            cells[float(stable), float(canary)] += max(sample.value, 0.0)
    if not cells:
        return Evidence(windows=1)
    edges = sorted({edge for cell in cells for edge in cell})
    if edges[-1] != math.inf:
        edges.append(math.inf)
    if len(edges) ** 2 > MAX_JOINT_CELLS:
        raise EvidenceError(f"{len(edges)} prediction buckets; a shadow step pools at most 16")
    index = {edge: position for position, edge in enumerate(edges)}
    joint = np.zeros((len(edges), len(edges)), dtype=np.float64)
    for (stable_le, canary_le), count in cells.items():
        joint[index[stable_le], index[canary_le]] += count
    return Evidence(
        windows=1,
        bounds=edges[:-1],
        stable=TrackCounts(total=float(joint.sum()), buckets=[float(v) for v in joint.sum(axis=1)]),
        canary=TrackCounts(total=float(joint.sum()), buckets=[float(v) for v in joint.sum(axis=0)]),
        paired=PairedCounts(joint=[float(v) for v in joint.reshape(-1)]),
    )


# --- judged on the pooled pairs ----------------------------------------------------------------------


def _pairs(evidence: Evidence) -> PairedCounts:
    return evidence.paired or PairedCounts()


def assess_errors(metric: EffectiveMetric, evidence: Evidence) -> TestOutcome:
    pairs = _pairs(evidence)
    canary_only, stable_only = whole(pairs.canary_only), whole(pairs.stable_only)
    both = max(whole(evidence.canary.errors) - canary_only, 0)
    return error_rate.assess(
        metric,
        evidence,
        test="mcnemar-exact",
        p_value=mcnemar_greater(canary_only, stable_only),
        ratio_upper=discordant_ratio_upper(canary_only, stable_only, both, metric.success_confidence),
    )


def assess_latency(metric: EffectiveMetric, evidence: Evidence) -> TestOutcome:
    pairs = _pairs(evidence)
    ratio = np.array(pairs.ratio, dtype=np.float64)
    test = wilcoxon_signed_rank_greater(pairs.ratio_bounds, ratio) if pairs.ratio else (1.0, 0.5)
    return latency.assess(metric, evidence, paired_test=test)


def assess_drift(metric: EffectiveMetric, evidence: Evidence) -> TestOutcome:
    pairs = _pairs(evidence)
    size = len(evidence.bounds) + 1
    if len(pairs.joint) != size * size:
        return prediction_drift.assess(metric, evidence, paired=((0.0, 1.0), (0.0, math.inf)))
    joint = np.array(pairs.joint, dtype=np.float64).reshape(size, size)
    statistic, _, p_value = stuart_maxwell(joint)
    psi = paired_psi_with_upper(joint, metric.success_confidence)
    return prediction_drift.assess(metric, evidence, paired=((statistic, p_value), psi))
