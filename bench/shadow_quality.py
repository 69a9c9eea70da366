"""What pairing buys: a shadow step's judge on the same requests vs a canary step's on different ones.

Not a test: prints, for the shadow sample's metrics (error-rate threshold 0.01, latency-p95
maxRatioToStable 1.25, prediction-drift threshold 0.1; 10 measurements at most; the rollout's 1 %
false-rollback budget split over the 3 builtins), how often a rollout is rolled back, promoted or
left undecided (paused), and how many canary requests the decision took, when the canary answers
N requests a window:
- paired: a shadow step, the production paired judge (shadow_metrics) on the pairs the stable pods'
  tee exports (both tracks answer the same N requests);
- unpaired: a canary step at the weight that gives the canary N requests a window, the production
  judge (error_rate, latency, prediction_drift) with stable answering 3N other requests.
Both judge the same model of requests: a request's size sets most of its latency (lognormal sigma
0.5, shared by both tracks; each server adds its own noise, sigma 0.15); 0.2 % of the inputs fail
whichever model gets them (malformed); a score is the input's own latent value plus the model's
noise. Canaries: the same model, a retrain as good as stable (its own score noise), one failing
2 % more of the inputs (also where 2 % of the inputs are malformed), one 1.4x slower, two whose
scores moved (true PSI about 2x and 1.3x the bound).

    make bench-shadow                                 # about 10 minutes on 2 cores
    .venv/bin/python bench/shadow_quality.py --reps 50  # a quicker, noisier look
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.analysis_sim import CONTEXT, LATENCY_BUCKETS, PREDICTION_BUCKETS, START

from modelramp.operator.analysis.context import QueryResult, Sample
from modelramp.operator.analysis.judging import judge, plan_queries
from modelramp.operator.analysis.phases import metric_phase, record
from modelramp.operator.analysis.provider import to_measurement
from modelramp.operator.api.analysis import EffectiveMetric, Metric, effective_metric
from modelramp.operator.api.status import AnalysisPhase, MetricResult
from modelramp.serving.shadow_metrics import RATIO_BUCKETS

TRAFFIC = (20, 50, 100, 300)
METRICS = [
    {"name": "errors", "builtin": "error-rate", "threshold": 0.01},
    {"name": "latency", "builtin": "latency-p95", "maxRatioToStable": 1.25},
    {"name": "drift", "builtin": "prediction-drift", "threshold": 0.1},
]
STABLE_TIMES = 3  # stable's requests per canary request in a canary step


@dataclass(frozen=True)
class Model:
    """What a model does with a request, beyond what the request itself decides."""

    extra_errors: float = 0.0  # share of the inputs it fails that stable answers
    malformed: float = 0.002  # share of the inputs nobody can answer (this canary's world)
    slowdown: float = 1.0
    score_shift: float = 0.0  # added to the latent value before the sigmoid
    score_noise: float = 0.0  # its own noise on each score (0: the same code as stable)


STABLE = Model()
CANARIES = {
    "same model": Model(),
    "retrained, as good": Model(score_noise=0.15),
    "+2 % failed inputs": Model(extra_errors=0.02),
    "+2 % failed, 2 % malformed": Model(extra_errors=0.02, malformed=0.02),
    "latency 1.4x": Model(slowdown=1.4),
    "scores moved (PSI ~0.2)": Model(score_shift=0.45),
    "scores moved (PSI ~0.13)": Model(score_shift=0.35),
}
SIZE_SIGMA, SERVER_SIGMA = 0.5, 0.15


@dataclass
class Requests:
    """N requests: each one's size, whether its input is malformed, and its latent score."""

    size: np.ndarray
    malformed: np.ndarray
    latent: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int, malformed: float) -> Requests:
        return cls(
            size=0.02 * rng.lognormal(0.0, SIZE_SIGMA, n),
            malformed=rng.random(n) < malformed,
            latent=rng.normal(-1.0, 1.0, n),
        )


def answer(
    model: Model, requests: Requests, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(failed, seconds, score) of `model` on each request."""
    n = len(requests.size)
    failed = requests.malformed | (rng.random(n) < model.extra_errors)
    seconds = requests.size * rng.lognormal(0.0, SERVER_SIGMA, n) * model.slowdown
    noise = rng.normal(0.0, model.score_noise, n) if model.score_noise else 0.0
    score = 1.0 / (1.0 + np.exp(-(requests.latent + model.score_shift + noise)))
    return failed, seconds, score


def _cumulative(values: np.ndarray, bounds: tuple[float, ...], labels: dict[str, str]) -> list[Sample]:
    counts = np.searchsorted(np.sort(values), np.array(bounds), side="right")
    rows = [
        Sample(labels={**labels, "le": repr(b)}, value=float(c)) for b, c in zip(bounds, counts, strict=True)
    ]
    return [*rows, Sample(labels={**labels, "le": "+Inf"}, value=float(len(values)))]


def paired_window(builtin: str, canary: Model, n: int, rng: np.random.Generator) -> dict[str, QueryResult]:
    """What the tee exports for n requests both tracks answered."""
    requests = Requests.draw(rng, n, canary.malformed)
    s_failed, s_seconds, s_score = answer(STABLE, requests, rng)
    c_failed, c_seconds, c_score = answer(canary, requests, rng)
    both_ok = ~s_failed & ~c_failed
    if builtin == "error-rate":
        cells = [
            Sample(labels={"stable": stable, "canary": canary_}, value=float(np.sum(s_mask & c_mask)))
            for stable, s_mask in (("ok", ~s_failed), ("error", s_failed))
            for canary_, c_mask in (("ok", ~c_failed), ("error", c_failed))
        ]
        return {"pairs": QueryResult(kind="vector", samples=tuple(cells))}
    if builtin == "latency-p95":
        durations = _cumulative(s_seconds[both_ok], LATENCY_BUCKETS, {"side": "stable"})
        durations += _cumulative(c_seconds[both_ok], LATENCY_BUCKETS, {"side": "canary"})
        ratio = _cumulative(c_seconds[both_ok] / s_seconds[both_ok], RATIO_BUCKETS, {})
        return {
            "ratio": QueryResult(kind="vector", samples=tuple(ratio)),
            "durations": QueryResult(kind="vector", samples=tuple(durations)),
        }
    edges = [*PREDICTION_BUCKETS, math.inf]
    s_at = np.searchsorted(edges, s_score[both_ok], side="left")
    c_at = np.searchsorted(edges, c_score[both_ok], side="left")
    table = np.zeros((len(edges), len(edges)))
    np.add.at(table, (s_at, c_at), 1.0)
    labels = [*(repr(b) for b in PREDICTION_BUCKETS), "+Inf"]
    cells = [
        Sample(labels={"stable_le": labels[i], "canary_le": labels[j]}, value=float(table[i, j]))
        for i in range(len(edges))
        for j in range(len(edges))
    ]
    return {"joint": QueryResult(kind="vector", samples=tuple(cells))}


def unpaired_window(builtin: str, canary: Model, n: int, rng: np.random.Generator) -> dict[str, QueryResult]:
    """What the pods export when the canary answers n requests and stable 3n others."""
    samples: list[Sample] = []
    for track, model, count in (("canary", canary, n), ("stable", STABLE, STABLE_TIMES * n)):
        failed, seconds, score = answer(model, Requests.draw(rng, count, canary.malformed), rng)
        if builtin == "error-rate":
            samples += [
                Sample(labels={"track": track, "code": "200"}, value=float(np.sum(~failed))),
                Sample(labels={"track": track, "code": "500"}, value=float(np.sum(failed))),
            ]
        elif builtin == "latency-p95":
            samples += _cumulative(seconds, LATENCY_BUCKETS, {"track": track})
        else:
            samples += _cumulative(score[~failed], PREDICTION_BUCKETS, {"track": track})
    return {"value": QueryResult(kind="vector", samples=tuple(samples))}


Window = Callable[[str, Model, int, np.random.Generator], dict[str, QueryResult]]


def run_metric(
    metric: EffectiveMetric, window: Window, canary: Model, n: int, rng: np.random.Generator
) -> tuple[AnalysisPhase, float]:
    """(phase, canary requests pooled when it decided) for one metric, measured as the operator does."""
    queries = plan_queries(metric, CONTEXT)
    result = MetricResult(name=metric.metric.name)
    assert metric.metric.builtin is not None
    for index in range(metric.count):
        judgement = judge(metric, queries, window(metric.metric.builtin, canary, n, rng), result.evidence)
        moment = START + timedelta(seconds=metric.interval_seconds * (index + 1))
        result = record(result, to_measurement(judgement, metric, CONTEXT, moment))
        phase = metric_phase(result, metric)
        if phase not in ("Running", "Pending"):
            return phase, n * (index + 1)
    return metric_phase(result, metric, terminating=True), n * metric.count


def run_rollout(
    metrics: list[EffectiveMetric], window: Window, canary: Model, n: int, rng: np.random.Generator
) -> tuple[str, float]:
    """(rolled back | promoted | paused, canary requests the decision took)."""
    outcomes = [run_metric(metric, window, canary, n, rng) for metric in metrics]
    phases = [phase for phase, _ in outcomes]
    if "Failed" in phases:
        return "rolled back", min(used for phase, used in outcomes if phase == "Failed")
    if all(phase == "Successful" for phase in phases):
        return "promoted", max(used for _, used in outcomes)
    return "paused", max(used for _, used in outcomes)


def effective(paired: bool) -> list[EffectiveMetric]:
    return [effective_metric(Metric.model_validate(m), None, len(METRICS), paired=paired) for m in METRICS]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200, help="rollouts per cell")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", help="run only the canaries whose name contains this")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    judges = {
        "paired (shadow)": (effective(True), paired_window),
        "unpaired (canary)": (effective(False), unpaired_window),
    }
    alpha = judges["paired (shadow)"][0][0].alpha
    print(
        f"alpha per measurement {alpha:.2g} (1 % over 3 builtins x 10 measurements); "
        f"{args.reps} rollouts per cell"
    )
    print(
        f"{'canary':26} {'N/window':>8} {'judge':18} {'rolled back':>11} {'promoted':>9} {'paused':>7} "
        f"{'median N':>9}"
    )
    for name, canary in CANARIES.items():
        if args.only and args.only not in name:
            continue
        for n in TRAFFIC:
            for label, (metrics, window) in judges.items():
                outcomes = [run_rollout(metrics, window, canary, n, rng) for _ in range(args.reps)]
                share = {
                    k: sum(o == k for o, _ in outcomes) / args.reps
                    for k in ("rolled back", "promoted", "paused")
                }
                decided = [used for outcome, used in outcomes if outcome != "paused"]
                median = f"{np.median(decided):.0f}" if decided else "-"
                print(
                    f"{name:26} {n:8d} {label:18} {share['rolled back']:11.1%} {share['promoted']:9.1%} "
                    f"{share['paused']:7.1%} {median:>9}",
                    flush=True,
                )
    print(f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
