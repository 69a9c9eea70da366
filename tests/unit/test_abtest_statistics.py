"""The statistics of an A/B decision: the tests are right, and the whole procedure (looks, budget,
winner) names a false winner no more often than `falsePositiveRate` and finds a real one as often
as the maths says. Simulations use fixed seeds; each tolerance is 3 standard errors of the
simulated rate, sqrt(r (1 - r) / reps), plus, where said, a stated allowance.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import optimize, special, stats
from support.abtest import running

from modelramp.operator.analysis import ab_judging as abtest
from modelramp.operator.analysis.proportions import difference_bounds, higher_p_value, restricted_mle, score
from modelramp.operator.api.abtest import ABTestStatus, ABTestStrategy, VariantWindow

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOURS = 6  # duration 6h, interval 1h: six early looks planned, the seventh window is the final look


def strategy(
    challengers: int = 1, rate: float = 0.05, min_effect: float = 0.0, better: str = "higher"
) -> ABTestStrategy:
    share = 50 // challengers
    variants = [{"name": "control", "weight": 100 - share * challengers}, {"name": "v1", "weight": share}]
    variants += [
        {"name": f"v{i}", "weight": share, "model": {"uri": f"file:///m{i}"}}
        for i in range(2, challengers + 1)
    ]
    return ABTestStrategy.model_validate(
        {
            "assignment": {"header": "x-user-id"},
            "variants": variants,
            "metric": {
                "counters": {"successes": "s", "total": "t"},
                "better": better,
                "minEffect": min_effect,
            },
            "duration": f"{HOURS}h",
            "interval": "1h",
            "minSamples": 100,
            "falsePositiveRate": rate,
        }
    )


def fresh(plan: ABTestStrategy) -> ABTestStatus:
    return running(plan, T0)


def run_test(
    plan: ABTestStrategy, rng: np.random.Generator, rates: dict[str, float], per_window: dict[str, int]
) -> tuple[str | None, int]:
    """One whole test through `abtest.judge`: the winner (None: undecided) and the window it came."""
    test = fresh(plan)
    for hour in range(1, HOURS + 2):
        window = [
            VariantWindow(
                name=name, count=float(rng.binomial(per_window[name], rates[name])), total=per_window[name]
            )
            for name in rates
        ]
        now = T0 + timedelta(hours=hour)
        test = abtest.judge(plan, abtest.pooled(test, window, now), now)
        if test.winner is not None:
            return test.winner, hour
    return None, HOURS + 1


def tolerance(rate: float, reps: int) -> float:
    return 3 * math.sqrt(rate * (1 - rate) / reps)


# --- the tests themselves ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "delta"),
    [(30, 200, 20, 220, 0.02), (5, 80, 9, 90, -0.05), (0, 50, 3, 60, 0.1), (120, 400, 100, 400, 0.0)],
)
def test_the_restricted_estimate_is_the_maximum_likelihood_on_the_margin(
    x1: int, n1: int, x2: int, n2: int, delta: float
) -> None:
    def negative_log_likelihood(p2: float) -> float:
        p1 = p2 + delta
        return -float(stats.binom.logpmf(x1, n1, p1) + stats.binom.logpmf(x2, n2, p2))

    low, high = max(0.0, -delta) + 1e-9, min(1.0, 1.0 - delta) - 1e-9
    best = optimize.minimize_scalar(
        negative_log_likelihood, bounds=(low, high), method="bounded", options={"xatol": 1e-10}
    )
    p1, p2 = restricted_mle(x1, n1, x2, n2, delta)
    assert p1 - p2 == pytest.approx(delta, abs=1e-12)
    assert p2 == pytest.approx(best.x, abs=1e-5)


def test_without_a_margin_the_score_is_the_pooled_two_proportion_z() -> None:
    x1, n1, x2, n2 = 130, 1000, 100, 1000
    pooled = (x1 + x2) / (n1 + n2)
    z = (x1 / n1 - x2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert score(x1, n1, x2, n2, 0.0) == pytest.approx(z, rel=1e-9)


def test_bounds_invert_the_score_test() -> None:
    x1, n1, x2, n2, confidence = 140, 1000, 100, 1000, 0.975
    lower, upper = difference_bounds(x1, n1, x2, n2, confidence)
    assert lower < 0.04 < upper
    # At the lower bound the one-sided test of "no more than that margin" sits exactly at its alpha.
    assert higher_p_value(x1, n1, x2, n2, lower) == pytest.approx(1 - confidence, rel=1e-6)
    assert float(special.ndtr(score(x1, n1, x2, n2, upper))) == pytest.approx(1 - confidence, rel=1e-6)


def test_a_margin_test_rejects_a_difference_on_the_margin_at_most_at_its_alpha() -> None:
    """Score test at the boundary p1 - p2 = margin, one look at alpha 0.05, n = 800 per arm."""
    rng = np.random.default_rng(11)
    reps, alpha, margin = 4000, 0.05, 0.02
    x1 = rng.binomial(800, 0.14, reps)
    x2 = rng.binomial(800, 0.12, reps)
    rejected = np.mean(
        [higher_p_value(int(a), 800, int(b), 800, margin) <= alpha for a, b in zip(x1, x2, strict=True)]
    )
    assert rejected <= alpha + tolerance(alpha, reps)


# --- the whole procedure ----------------------------------------------------------------------------


def test_identical_variants_name_a_false_winner_at_most_at_the_false_positive_rate() -> None:
    """Two challengers no different from control (10 % conversion; control 500, each challenger 250
    trials a window), six early looks and a final one: the rate of naming a challenger."""
    plan = strategy(challengers=2, rate=0.05)
    rng = np.random.default_rng(2026)
    reps = 700
    rates = {"control": 0.1, "v1": 0.1, "v2": 0.1}
    winners = [run_test(plan, rng, rates, {"control": 500, "v1": 250, "v2": 250})[0] for _ in range(reps)]
    assert None not in winners  # the final look always decides
    false_winners = sum(winner != "control" for winner in winners) / reps
    assert false_winners <= 0.05 + tolerance(0.05, reps), false_winners


def test_a_real_improvement_is_found_as_often_as_a_fixed_sample_test_would_at_the_final_alpha() -> None:
    """10 % -> 13 %, 250 trials per arm a window (1,750 by the final look). The procedure's final
    look alone has at least alpha / 2 = 0.025 one-sided; a z-test at that alpha on the final counts
    has power Phi(delta / se - z(0.975)). Allowance beyond 3 standard errors: 0.03 for Fisher's
    exact test being more conservative than the z-test at this size."""
    plan = strategy(challengers=1, rate=0.05)
    rng = np.random.default_rng(7)
    reps = 300
    results = [
        run_test(plan, rng, {"control": 0.1, "v1": 0.13}, {"control": 250, "v1": 250}) for _ in range(reps)
    ]
    found = sum(winner == "v1" for winner, _ in results) / reps
    n = 250 * (HOURS + 1)
    se = math.sqrt((0.1 * 0.9 + 0.13 * 0.87) / n)
    expected = float(special.ndtr(0.03 / se - special.ndtri(0.975)))
    assert found >= expected - tolerance(expected, reps) - 0.03, (found, expected)
    # A clear winner is often found before the final look: early stopping works.
    assert any(hour <= HOURS for winner, hour in results if winner == "v1")


def test_a_lower_is_better_metric_picks_the_variant_with_fewer_events() -> None:
    plan = strategy(challengers=1, better="lower")
    rng = np.random.default_rng(3)
    winner, _ = run_test(plan, rng, {"control": 0.1, "v1": 0.05}, {"control": 800, "v1": 800})
    assert winner == "v1"
    winner, _ = run_test(plan, rng, {"control": 0.05, "v1": 0.1}, {"control": 800, "v1": 800})
    assert winner == "control"


def test_the_budget_spent_never_exceeds_a_challengers_share() -> None:
    """However many windows come (an operator measuring late, a longer test), early looks stop
    at half the share and the final look gets exactly what is left."""
    plan = strategy(challengers=2, rate=0.05)
    test = fresh(plan)
    window = [VariantWindow(name=v.name, count=10.0, total=200.0) for v in plan.variants]
    for minute in range(1, 40):
        now = T0 + timedelta(minutes=10 * minute)
        test = abtest.judge(plan, abtest.pooled(test, window, now), now)
        if test.winner is not None:
            break
    assert test.winner == "control"
    spent = [v.alpha_spent for v in test.variants if v.name != "control"]
    assert spent == [pytest.approx(0.025)] * 2
    assert test.interim_looks == HOURS


def test_no_look_before_every_variant_has_min_samples() -> None:
    plan = strategy()
    test = fresh(plan)
    now = T0 + timedelta(hours=HOURS + 1)
    huge = [
        VariantWindow(name="control", count=0.0, total=5000.0),
        VariantWindow(name="v1", count=50.0, total=99.0),
    ]
    test = abtest.judge(plan, abtest.pooled(test, huge, now), now)
    assert test.winner is None and test.interim_looks == 0
    assert "v1 1" in test.message  # one more trial needed
