"""An A/B test's decision: the counts pooled per variant, each challenger tested against control,
and the winner (pure; the windows come from `ab_queries`).

Every challenger is tested against control on the counts pooled since the test started
(`proportions.higher_p_value`: is it better by more than `minEffect`?). The false-positive budget
(what it controls: naming a winner when no challenger beats control by `minEffect`) is
`falsePositiveRate`, split evenly over the challengers (Bonferroni: valid whatever the dependence
between them, and they share control). Within a challenger, half of its share is spent on early
looks, each at 1/L of that half, where L is the number of measurement intervals in `duration`;
the final look, once `duration` has passed, gets whatever is left (at least the other half). Looks
count only once every variant has `minSamples` trials. So a clearly better variant wins early, at
a strict threshold, and the final look keeps nearly a fixed-sample test's power. The winner is the
challenger that beats control with the largest improvement; none: control.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from modelramp.operator.analysis.proportions import difference_bounds, higher_p_value
from modelramp.operator.analysis.statistics import whole
from modelramp.operator.api.abtest import (
    CONTROL,
    ABTestStatus,
    ABTestStrategy,
    DecisionMetric,
    VariantStatus,
    VariantWindow,
)
from modelramp.operator.api.types import parse_duration

# Budget slack for float sums of equal shares (a look exactly at the budget still counts).
_EPSILON = 1e-12


def pooled(test: ABTestStatus, window: list[VariantWindow], time: datetime) -> ABTestStatus:
    """`test` with one more window added to each variant's counts."""
    by_name = {counts.name: counts for counts in window}
    variants = [
        variant.model_copy(
            update={
                "count": variant.count + by_name[variant.name].count,
                "total": variant.total + by_name[variant.name].total,
            }
        )
        if variant.name in by_name
        else variant
        for variant in test.variants
    ]
    return test.model_copy(
        update={
            "variants": variants,
            "windows": test.windows + 1,
            "last_measured_at": time,
            "consecutive_errors": 0,
        }
    )


def planned_looks(strategy: ABTestStrategy) -> int:
    """Early looks the budget plans for: the measurement intervals in `duration`."""
    return max(1, math.ceil(parse_duration(strategy.duration) / parse_duration(strategy.interval)))


def challenger_budget(strategy: ABTestStrategy) -> float:
    return strategy.false_positive_rate / max(len(strategy.variants) - 1, 1)


def judge(strategy: ABTestStrategy, test: ABTestStatus, now: datetime) -> ABTestStatus:
    """Every challenger compared with control on the counts pooled so far (a new window in): a
    look that spends budget once every variant has minSamples trials, and may name the winner."""
    control = next(v for v in test.variants if v.name == CONTROL)
    short = [v for v in test.variants if v.total < strategy.min_samples]
    final = test.ends_at is not None and now >= test.ends_at
    budget = challenger_budget(strategy)
    interim_alpha = budget / 2.0 / planned_looks(strategy)
    spent = test.interim_looks * interim_alpha
    kind: Literal["interim", "final"] | None
    if short:
        kind = None
    elif final:
        kind = "final"
    elif spent + interim_alpha <= budget / 2.0 + _EPSILON:
        kind = "interim"
    else:
        kind = None  # every early look is spent: the rest waits for the final one
    this = Look(kind, budget - spent if kind == "final" else interim_alpha, spent)
    variants = [_compare(strategy.metric, control, v, this) for v in test.variants]
    interim_looks = test.interim_looks + (1 if kind == "interim" else 0)
    update: dict[str, object] = {"variants": variants, "interim_looks": interim_looks}
    better = [v for v in variants if v.decision == "Better"]
    if kind is not None and (better or kind == "final"):
        winner = max(better, key=lambda v: _improvement(strategy.metric, v)).name if better else CONTROL
        update |= {"winner": winner, "decided_at": now, "message": _verdict(strategy, variants, winner, kind)}
    else:
        update["message"] = _progress(strategy, test, short, final)
    return test.model_copy(update=update)


@dataclass(frozen=True)
class Look:
    """What this measurement may decide: an early or the final look at `alpha` per challenger
    (`spent` before it), or (kind None) no look, only figures."""

    kind: Literal["interim", "final"] | None
    alpha: float
    spent: float


def _compare(
    metric: DecisionMetric, control: VariantStatus, variant: VariantStatus, look: Look
) -> VariantStatus:
    alpha, kind = look.alpha, look.kind
    value = variant.count / variant.total if variant.total else None
    if variant.name == CONTROL:
        return variant.model_copy(update={"value": value, "decision": "Control"})
    x1, n1, x2, n2 = whole(variant.count), whole(variant.total), whole(control.count), whole(control.total)
    if metric.better == "lower" or metric.builtin is not None:
        # Lower wins: test the complements (the share NOT counted) for being higher.
        p_value = higher_p_value(n1 - x1, n1, n2 - x2, n2, metric.min_effect)
    else:
        p_value = higher_p_value(x1, n1, x2, n2, metric.min_effect)
    lower, upper = difference_bounds(x1, n1, x2, n2, 1.0 - alpha)
    effect = value - x2 / n2 if value is not None and n2 else None
    if kind is None:
        decision = "Undecided"
    elif p_value <= alpha:
        decision = "Better"
    else:
        decision = "NotBetter" if kind == "final" else "Undecided"
    return variant.model_copy(
        update={
            "value": value,
            "effect": effect,
            "lower": lower if n1 and n2 else None,
            "upper": upper if n1 and n2 else None,
            "confidence": 1.0 - alpha,
            "test": "fisher-exact" if metric.min_effect == 0.0 else "farrington-manning",
            "p_value": min(max(p_value, 0.0), 1.0),
            "alpha": alpha,
            "alpha_spent": min(look.spent + (alpha if kind is not None else 0.0), 1.0),
            "decision": decision,
        }
    )


def _improvement(metric: DecisionMetric, variant: VariantStatus) -> float:
    effect = variant.effect or 0.0
    return -effect if metric.better == "lower" or metric.builtin is not None else effect


def _verdict(strategy: ABTestStrategy, variants: list[VariantStatus], winner: str, kind: str | None) -> str:
    when = "early look" if kind == "interim" else "final look"
    if winner == CONTROL:
        return (
            f"control wins at the {when}: no variant beat it by {strategy.metric.min_effect:g} "
            f"({describe_variants(variants)})"
        )
    return f"{winner} wins at the {when} ({describe_variants(variants)})"


def _progress(strategy: ABTestStrategy, test: ABTestStatus, short: list[VariantStatus], final: bool) -> str:
    if short:
        needs = ", ".join(f"{v.name} {max(strategy.min_samples - v.total, 0):.0f}" for v in short)
        return f"waiting for minSamples ({strategy.min_samples}): more trials needed by {needs}"
    ends = f"; final look at {test.ends_at:%Y-%m-%d %H:%M:%SZ}" if test.ends_at and not final else ""
    return f"no variant better yet{ends}"


def describe_variants(variants: list[VariantStatus]) -> str:
    """`control 0.101 (n=2000); b 0.121, +0.02 [0.004, 0.037], p=0.003` for every variant."""
    parts = []
    for variant in variants:
        value = "n/a" if variant.value is None else f"{variant.value:.4g}"
        text = f"{variant.name} {value} (n={variant.total:.0f})"
        if variant.effect is not None and variant.lower is not None and variant.upper is not None:
            text += (
                f", {variant.effect:+.3g} [{variant.lower:+.3g}, {variant.upper:+.3g}]"
                f", p={variant.p_value:.2g}"
            )
        parts.append(text)
    return "; ".join(parts)


def window_due(strategy: ABTestStrategy, test: ABTestStatus | None, now: datetime) -> bool:
    """A window of the decision metric is due now (the test is running and an interval passed)."""
    due = next_window(strategy, test)
    return due is not None and due <= now


def next_window(strategy: ABTestStrategy, test: ABTestStatus | None) -> datetime | None:
    if test is None or test.phase != "Running" or test.winner is not None:
        return None
    since = test.last_measured_at or test.started_at
    if since is None:
        return None
    return since + timedelta(seconds=parse_duration(strategy.interval))
