"""A builtin metric's evidence: one window's counts read from the query results, and their pooling.

The verdict of a builtin rests on everything its analysis has seen, not on the last window: each
measurement adds its window's counts (requests and 5xx per track, or per-bucket counts of a
histogram per track) to the evidence pooled in the metric's status. Bucket counts come from the
increases of cumulative `le` buckets; Prometheus extrapolates each bucket separately, so the
cumulative series is made monotone before differencing and no count comes out negative.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping

import numpy as np

from modelramp.operator.analysis.context import QueryResult
from modelramp.operator.api.status import MAX_BUCKETS, Evidence, PairedCounts, TrackCounts

TRACKS = ("canary", "stable")


class EvidenceError(ValueError):
    """The counts can't be read or pooled (no +Inf bucket, buckets that changed between windows)."""


def request_counts(result: QueryResult) -> Evidence:
    """From `sum by (track, code) (increase(modelramp_requests_total[...]))`. Only 5xx count as
    errors: 4xx and 499 (the client went away) are the client's doing, not the model's."""
    totals: dict[str, float] = defaultdict(float)
    errors: dict[str, float] = defaultdict(float)
    for sample in result.samples:
        track = sample.labels.get("track")
        if track not in TRACKS or math.isnan(sample.value):
            continue
        value = max(sample.value, 0.0)
        totals[track] += value
        if sample.labels.get("code", "").startswith("5"):
            errors[track] += value
    return Evidence(
        windows=1,
        canary=TrackCounts(total=totals["canary"], errors=errors["canary"]),
        stable=TrackCounts(total=totals["stable"], errors=errors["stable"]),
    )


def histogram_counts(result: QueryResult) -> Evidence:
    """From `sum by (track, le) (increase(<histogram>_bucket[...]))`: per-bucket counts per track
    over the same bounds (a track without samples has none)."""
    cumulative: dict[str, dict[float, float]] = defaultdict(dict)
    for sample in result.samples:
        track, le = sample.labels.get("track"), sample.labels.get("le")
        if track in TRACKS and le is not None and not math.isnan(sample.value):
            cumulative[track][float(le)] = max(sample.value, 0.0)
    bounds: tuple[float, ...] | None = None
    for track, buckets in cumulative.items():
        if math.inf not in buckets:
            raise EvidenceError(f"the {track} histogram has no le=+Inf bucket")
        found = tuple(sorted(b for b in buckets if b != math.inf))
        if bounds is not None and found != bounds:
            raise EvidenceError(
                f"canary and stable use different buckets ({_bounds(found)} vs {_bounds(bounds)}); "
                "serve both with the same buckets"
            )
        bounds = found
    if bounds is None:
        return Evidence(windows=1)
    if len(bounds) + 1 > MAX_BUCKETS:
        raise EvidenceError(f"the histogram has {len(bounds) + 1} buckets; at most {MAX_BUCKETS} are pooled")
    tracks = {track: differenced(cumulative.get(track, {}), bounds) for track in TRACKS}
    return Evidence(
        windows=1,
        bounds=list(bounds),
        canary=TrackCounts(total=sum(tracks["canary"]), buckets=tracks["canary"]),
        stable=TrackCounts(total=sum(tracks["stable"]), buckets=tracks["stable"]),
    )


def pooled(before: Evidence | None, window: Evidence) -> Evidence:
    """`before` plus one more window; raises EvidenceError when the buckets changed between them."""
    if before is None or before.windows == 0:
        return window
    bounds = before.bounds or window.bounds
    if window.bounds and before.bounds and window.bounds != before.bounds:
        raise EvidenceError(
            f"the histogram's buckets changed during the analysis ({_bounds(tuple(window.bounds))} "
            f"now, {_bounds(tuple(before.bounds))} before); retry the analysis"
        )
    return Evidence(
        windows=before.windows + window.windows,
        bounds=bounds,
        canary=_added(before.canary, window.canary, len(bounds) + 1 if bounds else 0),
        stable=_added(before.stable, window.stable, len(bounds) + 1 if bounds else 0),
        paired=_added_pairs(before.paired, window.paired),
    )


def buckets(counts: TrackCounts, size: int) -> np.ndarray[tuple[int], np.dtype[np.float64]]:
    """A track's bucket counts as an array of `size` (zeros when the track had no observations)."""
    return np.array(counts.buckets or [0.0] * size, dtype=np.float64)


def differenced(cumulative: Mapping[float, float], bounds: tuple[float, ...]) -> list[float]:
    if not cumulative:
        return [0.0] * (len(bounds) + 1)
    values = [cumulative.get(bound, 0.0) for bound in (*bounds, math.inf)]
    monotone = np.maximum.accumulate(np.array(values, dtype=np.float64))
    return [float(v) for v in np.diff(monotone, prepend=0.0)]


def _added(a: TrackCounts, b: TrackCounts, size: int) -> TrackCounts:
    summed = [float(x) for x in buckets(a, size) + buckets(b, size)] if size else []
    return TrackCounts(total=a.total + b.total, errors=a.errors + b.errors, buckets=summed)


def _added_pairs(a: PairedCounts | None, b: PairedCounts | None) -> PairedCounts | None:
    """A shadow step's paired counts summed; the ratio buckets and the joint table keep their shape."""
    if a is None or b is None:
        return a or b
    if a.ratio and b.ratio and a.ratio_bounds != b.ratio_bounds:
        raise EvidenceError("the latency-ratio buckets changed during the analysis; retry the analysis")
    if a.joint and b.joint and len(a.joint) != len(b.joint):
        raise EvidenceError("the prediction buckets changed during the analysis; retry the analysis")
    return PairedCounts(
        canary_only=a.canary_only + b.canary_only,
        stable_only=a.stable_only + b.stable_only,
        ratio_bounds=a.ratio_bounds or b.ratio_bounds,
        ratio=_summed(a.ratio, b.ratio),
        joint=_summed(a.joint, b.joint),
    )


def _summed(a: list[float], b: list[float]) -> list[float]:
    if not a or not b:
        return list(a or b)
    return [x + y for x, y in zip(a, b, strict=True)]


def _bounds(bounds: tuple[float, ...]) -> str:
    return "le=" + ",".join(f"{b:g}" for b in bounds) + ",+Inf"
