"""Prediction drift between canary and stable from their `modelramp_prediction` histograms.

Both statistics work on bucket counts (the increase of each cumulative `le` bucket over the
window), which is all Prometheus keeps of the predictions:
- Population Stability Index, sum((c - s) * ln(c / s)) over the bucket shares. The usual reading:
  below 0.1 no shift, 0.1-0.25 moderate, above 0.25 a real shift. Empty buckets would make it
  infinite, so the shares are smoothed: half an observation is added to every bucket of both
  tracks (Jeffreys' prior). A floor on the shares instead (a common shortcut) turns every bucket
  that a small window happens to leave empty into a large term: identical models scored PSI 0.57
  on 74 canary predictions. Even smoothed, PSI on n_c and n_s predictions over k buckets carries a
  sampling bias of about (k - 1) * (1/n_c + 1/n_s): set thresholds and minSamples with it in mind.
- Kolmogorov-Smirnov statistic, the largest gap between the two cumulative distributions at the
  bucket bounds (0 = same, 1 = disjoint); coarse buckets can only under-estimate it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

PSI_SMOOTHING = 0.5  # observations added to every bucket before shares are taken


class DriftError(ValueError):
    """The two histograms can't be compared (different buckets, no observations)."""


class Drift(BaseModel):
    """Both statistics plus the sample sizes they rest on."""

    model_config = ConfigDict(frozen=True)

    psi: float
    ks: float
    canary_samples: float
    stable_samples: float


def bucket_counts(cumulative: Mapping[float, float]) -> tuple[tuple[float, ...], NDArray[np.float64]]:
    """Turns cumulative `le` bucket increases into per-bucket counts, bounds sorted ascending.

    Prometheus extrapolates each bucket's increase separately, so the cumulative series can dip by
    a rounding error; it is made monotone before differencing so no count comes out negative.
    """
    if not cumulative:
        raise DriftError("histogram has no buckets")
    if math.inf not in cumulative:
        raise DriftError("histogram has no le=+Inf bucket")
    bounds = tuple(sorted(cumulative))
    totals = np.maximum.accumulate(np.array([max(cumulative[b], 0.0) for b in bounds], dtype=np.float64))
    return bounds, np.diff(totals, prepend=0.0)


def population_stability_index(stable: NDArray[np.float64], canary: NDArray[np.float64]) -> float:
    stable_share, canary_share = _smoothed_shares(stable), _smoothed_shares(canary)
    return float(np.sum((canary_share - stable_share) * np.log(canary_share / stable_share)))


def ks_statistic(stable: NDArray[np.float64], canary: NDArray[np.float64]) -> float:
    return float(np.max(np.abs(np.cumsum(_shares(canary)) - np.cumsum(_shares(stable)))))


def compare(stable: Mapping[float, float], canary: Mapping[float, float]) -> Drift:
    """Drift of canary against stable, both given as cumulative `le` -> increase over the window."""
    stable_bounds, stable_counts = bucket_counts(stable)
    canary_bounds, canary_counts = bucket_counts(canary)
    if stable_bounds != canary_bounds:
        raise DriftError(
            f"canary and stable use different prediction buckets ({_bounds(canary_bounds)} vs "
            f"{_bounds(stable_bounds)}); serve both with the same --prediction-buckets"
        )
    for track, counts in (("stable", stable_counts), ("canary", canary_counts)):
        if counts.sum() <= 0:
            raise DriftError(f"the {track} made no predictions in the window")
    return Drift(
        psi=population_stability_index(stable_counts, canary_counts),
        ks=ks_statistic(stable_counts, canary_counts),
        canary_samples=float(canary_counts.sum()),
        stable_samples=float(stable_counts.sum()),
    )


def _shares(counts: NDArray[np.float64]) -> NDArray[np.float64]:
    shares: NDArray[np.float64] = counts / counts.sum()
    return shares


def _smoothed_shares(counts: NDArray[np.float64]) -> NDArray[np.float64]:
    return _shares(counts + PSI_SMOOTHING)


def _bounds(bounds: tuple[float, ...]) -> str:
    return "le=" + ",".join(f"{b:g}" for b in bounds)
