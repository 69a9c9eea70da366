"""How sound are the canary verdicts? The production judge on simulated Prometheus counts.

Not a test: prints, for the README's ModelDeployment (steps 25 % -> analysis -> 50 % -> analysis;
error-rate threshold 0.02, latency-p95 maxRatioToStable 1.5, prediction-drift threshold 0.25; 10
measurements at most per analysis), side by side with the previous release's per-window rule
measured in the same run:
- false rollbacks per rollout of a canary identical to stable, and how often it is promoted;
- power: how often a worse canary is rolled back by the time the pooled evidence holds N canary
  requests (targets: 5 % vs 0.2 % errors by 300, 2x latency by 100, a prediction shift of true PSI
  >= 2x the threshold by 300; each >= 95 %), at canary traffic 20/50/100/300/1000 per window with
  stable at 3x.
Canary and stable are drawn as in ../shared/notes/verdict-statistics.md: 0.2 % 5xx, latency
lognormal (median 20 ms, sigma 0.5) on the serving buckets, scores Beta(2, 5) on 10 buckets.

    make bench-analysis                # about 20 minutes on 2 cores
    .venv/bin/python bench/analysis_quality.py --reps 200   # a quicker, noisier look
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.analysis_sim import (
    LATENCY_BUCKETS,
    PREDICTION_BUCKETS,
    Track,
    Traffic,
    run_metric,
    run_rollout,
    window,
)

from modelramp.operator.analysis import drift, statistics
from modelramp.operator.analysis.evidence import histogram_counts, request_counts
from modelramp.operator.api.analysis import EffectiveMetric
from modelramp.operator.api.spec import ModelDeploymentSpec
from modelramp.operator.rollout import runs

TRAFFIC = (20, 50, 100, 300, 1000)
README_SPEC = {
    "model": {"uri": "models:/fraud@champion", "format": "torchscript"},
    "strategy": {
        "canary": {"steps": [{"setWeight": 25}, {"analysis": {}}, {"setWeight": 50}, {"analysis": {}}]}
    },
    "analysis": {
        "interval": "1m",
        "metrics": [
            {"name": "errors", "builtin": "error-rate", "threshold": 0.02},
            {"name": "latency", "builtin": "latency-p95", "maxRatioToStable": 1.5},
            {"name": "drift", "builtin": "prediction-drift", "threshold": 0.25},
        ],
    },
}
# (name, canary track, the builtin it breaks, pooled canary requests by which it must be caught)
BAD: tuple[tuple[str, Track, str, int], ...] = (
    ("5% vs 0.2% errors", Track(error_rate=0.05), "error-rate", 300),
    ("latency 2x", Track(latency_median=0.040), "latency-p95", 100),
    ("latency 1.5x (on the bound)", Track(latency_median=0.030), "latency-p95", 300),
    ("scores Beta(3,5), PSI 0.33", Track(score_a=3.0), "prediction-drift", 300),
    ("scores Beta(3.5,5), PSI 0.66", Track(score_a=3.5), "prediction-drift", 300),
)
OLD_ERROR, OLD_RATIO, OLD_PSI, OLD_MIN_SAMPLES = 0.02, 1.5, 0.25, 50


def readme_analyses() -> list[list[EffectiveMetric]]:
    spec = ModelDeploymentSpec.model_validate(README_SPEC)
    assert spec.strategy.canary is not None
    return [
        runs.effective_metrics(step.analysis, spec) for step in spec.strategy.canary.steps if step.analysis
    ]


def old_window_fails(builtin: str, canary: Track, stable: Track, traffic: Traffic) -> bool | None:
    """The previous release's rule on one window: the canary's value against the README threshold
    (True = Failed, False = Successful, None = Inconclusive on fewer than 50 samples)."""
    result = window(builtin, canary, stable, traffic)
    evidence = request_counts(result) if builtin == "error-rate" else histogram_counts(result)
    if evidence.canary.total < OLD_MIN_SAMPLES or evidence.stable.total < OLD_MIN_SAMPLES:
        return None
    if builtin == "error-rate":
        return evidence.canary.errors / evidence.canary.total > OLD_ERROR
    canary_counts, stable_counts = np.array(evidence.canary.buckets), np.array(evidence.stable.buckets)
    if builtin == "latency-p95":
        p95 = [
            statistics.histogram_quantile(LATENCY_BUCKETS, c, 0.95) for c in (canary_counts, stable_counts)
        ]
        return p95[0] > OLD_RATIO * p95[1]
    return drift.population_stability_index(stable=stable_counts, canary=canary_counts) > OLD_PSI


def old_rollout_fails(canary: Track, stable: Track, traffic: Traffic, windows: int = 10) -> bool:
    """Two open-ended step analyses of the three metrics, each watched for `windows` windows:
    any Failed window rolls back (failureLimit 0)."""
    return any(
        old_window_fails(builtin, canary, stable, traffic)
        for _ in range(2)
        for _ in range(windows)
        for builtin in ("error-rate", "latency-p95", "prediction-drift")
    )


def identical(reps: int) -> None:
    analyses = readme_analyses()
    print("\nIdentical canary and stable: rolled back per rollout (target <= 1 %), and promoted")
    print(
        f"{'canary/window':>14} {'old rolled back':>16} {'new rolled back':>16} {'new promoted':>13} "
        f"{'paused':>7}"
    )
    for n in TRAFFIC:
        traffic = Traffic(n, 3 * n, np.random.default_rng(n))
        old = sum(old_rollout_fails(Track(), Track(), traffic) for _ in range(reps)) / reps
        phases = [run_rollout(analyses, Track(), Track(), traffic) for _ in range(reps)]
        failed, promoted = phases.count("Failed") / reps, phases.count("Successful") / reps
        print(
            f"{n:>14} {old:>15.1%} {failed:>15.2%} ±{_margin(failed, reps):.2%} {promoted:>12.1%} "
            f"{1 - failed - promoted:>6.1%}"
        )


def power(reps: int) -> None:
    metrics = {metric.metric.builtin: metric for metric in readme_analyses()[0]}
    print("\nWorse canaries: rolled back by the time N canary requests are pooled (target >= 95 %)")
    print(f"{'canary':>30} {'N':>5} " + " ".join(f"{n:>8}/w" for n in TRAFFIC) + "   old (per window)")
    for name, canary, builtin, by in BAD:
        metric = metrics[builtin]
        cells = []
        for n in TRAFFIC:
            looks = max(math.ceil(by / n), 1)
            if looks > metric.count:
                cells.append(f"{'-':>10}")
                continue
            traffic = Traffic(n, 3 * n, np.random.default_rng(n + 7))
            caught = sum(_caught_within(metric, canary, traffic, looks) for _ in range(reps)) / reps
            cells.append(f"{caught:>10.1%}")
        old_rates = []
        for n in TRAFFIC:
            traffic = Traffic(n, 3 * n, np.random.default_rng(n + 9))
            old_rates.append(
                sum(bool(old_window_fails(builtin, canary, Track(), traffic)) for _ in range(reps)) / reps
            )
        print(f"{name:>30} {by:>5} " + " ".join(cells) + "   " + "/".join(f"{r:.0%}" for r in old_rates))
    print("('-': N is not reached within the analysis's count at that traffic)")


def _caught_within(metric: EffectiveMetric, canary: Track, traffic: Traffic, looks: int) -> bool:
    limited = dataclasses.replace(metric, count=looks)
    phase, _ = run_metric(limited, canary, Track(), traffic)
    return phase == "Failed"


def _margin(share: float, reps: int) -> float:
    """A 95 % binomial margin, with at least one event's worth so 0/reps is not read as exactly 0."""
    return 1.96 * math.sqrt(max(share, 1 / reps) * (1 - share) / reps)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=1000, help="rollouts per cell (identical models)")
    parser.add_argument("--power-reps", type=int, default=400, help="runs per cell (worse canaries)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    print(f"alpha per measurement in the README rollout: {readme_analyses()[0][0].alpha:.3g}")
    print(f"buckets: latency {len(LATENCY_BUCKETS) + 1}, predictions {len(PREDICTION_BUCKETS) + 1}")
    identical(args.reps)
    power(args.power_reps)
    print(f"\n{time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
