"""The three outcomes of a builtin metric, and the false-rollback budget each measurement spends.

A builtin is judged on the evidence pooled since its analysis started, after every measurement:
- Worse (the measurement Fails): the one-sided test of "canary worse than stable" rejects at this
  measurement's alpha AND the effect is beyond the metric's bound. The test alone controls false
  rollbacks; the bound keeps a statistically real but harmless difference from rolling back.
- WithinBound (Successful, and the metric stops): the effect's upper confidence bound is inside the
  tolerance, on at least minSamples canary and stable observations.
- Undecided (Inconclusive, and measuring goes on): neither yet. After `count` measurements an
  undecided metric ends Inconclusive, which pauses the rollout for a person.

The budget: `spec.analysis.falseRollbackRate` (1 %) is split evenly over every builtin metric of
every analysis of the rollout and, within a metric, over its `count` measurements. Each measurement
tests at its share (Bonferroni over looks that see growing, overlapping evidence: conservative, and
valid whatever their dependence), so a canary identical to stable is rolled back with at most that
probability over the whole rollout, at any traffic. Measurement errors spend nothing.
"""

from __future__ import annotations

import math

from modelramp.operator.api.analysis import EffectiveMetric
from modelramp.operator.api.status import Decision, Evidence, StatisticalTest, TestOutcome, Verdict

VERDICTS: dict[Decision, Verdict] = {
    "Worse": "Failed",
    "WithinBound": "Successful",
    "Undecided": "Inconclusive",
}


def decide(*, p_value: float, alpha: float, beyond: bool, within: bool, enough: bool) -> Decision:
    if p_value <= alpha and beyond:
        return "Worse"
    if within and enough:
        return "WithinBound"
    return "Undecided"


def outcome(
    metric: EffectiveMetric,
    evidence: Evidence,
    *,
    test: StatisticalTest,
    statistic: float | None,
    p_value: float,
    effect: str,
    value: float | None,
    lower: float | None,
    upper: float | None,
    bound: float | None,
    beyond: bool,
    within: bool,
    more_canary_samples: int | None,
) -> TestOutcome:
    """The outcome of one measurement of `metric` on `evidence` (this window included)."""
    enough = min(evidence.canary.total, evidence.stable.total) >= metric.min_samples
    decision = decide(p_value=p_value, alpha=metric.alpha, beyond=beyond, within=within, enough=enough)
    if decision == "Undecided" and within and not enough:
        more_canary_samples = max(math.ceil(metric.min_samples - evidence.canary.total), 0)
    return TestOutcome(
        test=test,
        statistic=_finite(statistic),
        p_value=min(max(p_value, 0.0), 1.0),
        alpha=metric.alpha,
        alpha_spent=min(metric.alpha * evidence.windows, 1.0),
        effect=effect,
        value=_finite(value),
        lower=_finite(lower),
        upper=_finite(upper),
        confidence=metric.success_confidence,
        bound=_finite(bound),
        canary_samples=evidence.canary.total,
        stable_samples=evidence.stable.total,
        decision=decision,
        more_canary_samples=more_canary_samples if decision == "Undecided" else None,
    )


def samples_to_show_within(
    canary_samples: float, value: float, upper: float | None, bound: float | None
) -> int | None:
    """About how many more canary samples would bring the upper bound inside `bound`, if the
    estimate stays where it is: a bound's distance from the estimate shrinks as 1/sqrt(n)."""
    if bound is None or upper is None or not math.isfinite(upper) or value >= bound or canary_samples <= 0:
        return None
    if upper <= bound:
        return 0
    needed = canary_samples * ((upper - value) / (bound - value)) ** 2
    return max(math.ceil(needed - canary_samples), 1)


def describe(
    name: str,
    outcome: TestOutcome,
    windows: int,
    *,
    unit: str = "",
    worse: str = "worse than stable",
    samples: tuple[str, str] = ("canary", "stable"),
) -> str:
    """One line: the decision first, then the effect and its bound, the test, and the samples."""
    estimate = _number(outcome.value, unit)
    upper = _number(outcome.upper, unit) if outcome.upper is not None else "inf"
    interval = f" [{_number(outcome.lower, unit)}, {upper}]" if outcome.lower is not None else ""
    bound = f"bound {_number(outcome.bound, unit)}" if outcome.bound is not None else "no bound"
    head = {
        "Worse": worse,
        "WithinBound": "within bound",
        "Undecided": "undecided",
    }[outcome.decision]
    more = (
        f"; about {outcome.more_canary_samples} more canary samples to show it within the bound"
        if outcome.more_canary_samples
        else ""
    )
    return (
        f"{name}: {head}: {outcome.effect} {estimate}{interval} ({outcome.confidence:.0%} bounds), {bound}; "
        f"{outcome.test} p={outcome.p_value:.2g} vs alpha {outcome.alpha:.2g} "
        f"(spent {outcome.alpha_spent:.2g}); "
        f"{outcome.canary_samples:.0f} {samples[0]} / {outcome.stable_samples:.0f} {samples[1]} "
        f"over {windows} window{'s' if windows != 1 else ''}{more}"
    )


def _number(value: float | None, unit: str) -> str:
    return "n/a" if value is None else f"{value:.4g}{unit}"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
