"""How sound an A/B decision is (a benchmark, not a test): false winners and power of the
production judge (operator/analysis/ab_judging.py) on simulated counts, beside the naive rule that
tests every look at the full rate (what peeking at a dashboard does), in the same run.

Each test: `looks` windows (`duration` / `interval`, then the final look), the given trials per
variant per window, Bernoulli outcomes at the given rates. Prints, per scenario, how often a
challenger was named winner and, for the real improvements, how often the better one was, with
the window it was found at; `±` is 2 standard errors.

    PYTHONSAFEPATH=1 .venv/bin/python bench/ab_quality.py [--reps 400] [--seed 1]
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from modelramp.operator.analysis.ab_judging import judge, pooled
from modelramp.operator.analysis.proportions import higher_p_value
from modelramp.operator.api.abtest import ABTestStatus, ABTestStrategy, VariantStatus, VariantWindow

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOURS = 24  # duration 24h, interval 1h: 24 early looks planned, the 25th window is the final look


@dataclass(frozen=True)
class Scenario:
    name: str
    rates: dict[str, float]  # control first
    per_window: int  # trials per variant per window
    min_effect: float = 0.0
    better: str | None = None  # the variant that really is better by more than min_effect


SCENARIOS = [
    Scenario("A/A, 2 variants, 10 %", {"control": 0.10, "b": 0.10}, 100),
    Scenario("A/A/A, 3 variants, 10 %", {"control": 0.10, "b": 0.10, "c": 0.10}, 100),
    Scenario("A/A, 2 %, small windows", {"control": 0.02, "b": 0.02}, 40),
    Scenario("on the margin: +1 pt vs minEffect 0.01", {"control": 0.10, "b": 0.11}, 200, min_effect=0.01),
    Scenario("non-inferior: -1 pt vs minEffect -0.01", {"control": 0.10, "b": 0.09}, 200, min_effect=-0.01),
    Scenario(
        "non-inferiority shown: equal vs minEffect -0.02", {"control": 0.10, "b": 0.10}, 200, -0.02, "b"
    ),
    Scenario("10 % -> 12 %", {"control": 0.10, "b": 0.12}, 100, better="b"),
    Scenario("10 % -> 12 %, 4x traffic", {"control": 0.10, "b": 0.12}, 400, better="b"),
    Scenario("10 % -> 13 %, 3 variants", {"control": 0.10, "b": 0.13, "c": 0.10}, 100, better="b"),
    Scenario("10 % -> 15 %", {"control": 0.10, "b": 0.15}, 100, better="b"),
]


def strategy(scenario: Scenario) -> ABTestStrategy:
    names = list(scenario.rates)
    share = 100 // len(names)
    variants = [{"name": "control", "weight": 100 - share * (len(names) - 1)}]
    variants += [{"name": names[1], "weight": share}]
    variants += [{"name": n, "weight": share, "model": {"uri": f"file:///{n}"}} for n in names[2:]]
    return ABTestStrategy.model_validate(
        {
            "assignment": {"header": "u"},
            "variants": variants,
            "metric": {"counters": {"successes": "s", "total": "t"}, "minEffect": scenario.min_effect},
            "duration": f"{HOURS}h",
            "interval": "1h",
            "minSamples": 100,
        }
    )


def one_test(
    plan: ABTestStrategy, scenario: Scenario, rng: np.random.Generator
) -> tuple[str | None, int, str | None]:
    """(production winner, window it came, naive winner) on the same simulated counts."""
    test = ABTestStatus(
        id="t",
        revision="r",
        salt="s",
        phase="Running",
        created_at=T0,
        started_at=T0,
        ends_at=T0 + timedelta(hours=HOURS),
        variants=[VariantStatus(name=n, revision=n, weight=1) for n in scenario.rates],
    )
    naive: str | None = None
    totals = dict.fromkeys(scenario.rates, 0)
    counts = dict.fromkeys(scenario.rates, 0)
    winner, found = None, HOURS + 1
    for hour in range(1, HOURS + 2):
        window = []
        for name, rate in scenario.rates.items():
            count = int(rng.binomial(scenario.per_window, rate))
            counts[name] += count
            totals[name] += scenario.per_window
            window.append(VariantWindow(name=name, count=count, total=scenario.per_window))
        now = T0 + timedelta(hours=hour)
        if winner is None:
            test = judge(plan, pooled(test, window, now), now)
            if test.winner is not None:
                winner, found = test.winner, hour
        if naive is None:
            naive = _naive(scenario, counts, totals)
    return winner, found, naive


def _naive(scenario: Scenario, counts: dict[str, int], totals: dict[str, int]) -> str | None:
    """Any challenger significant at 0.05 at any look wins: no budget for looks or variants."""
    for name in list(scenario.rates)[1:]:
        p = higher_p_value(
            counts[name], totals[name], counts["control"], totals["control"], scenario.min_effect
        )
        if p <= 0.05:
            return name
    return None


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--reps", type=int, default=400)
    cli.add_argument("--seed", type=int, default=1)
    args = cli.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{args.reps} tests per scenario; falsePositiveRate 0.05; duration 24h, interval 1h\n")
    columns = ("scenario", "trials/variant/window", "named a challenger", "the better one", "median window")
    print("| " + " | ".join(columns) + " | naive rule |")
    print("|---|---|---|---|---|---|")
    started = time.monotonic()
    for scenario in SCENARIOS:
        plan = strategy(scenario)
        results = [one_test(plan, scenario, rng) for _ in range(args.reps)]
        named = sum(w not in (None, "control") for w, _, _ in results) / args.reps
        naive = sum(n is not None for _, _, n in results) / args.reps
        if scenario.better is not None:
            right = [h for w, h, _ in results if w == scenario.better]
            share = len(right) / args.reps
            better = f"{share:.1%} ±{_se(share, args.reps):.1%}"
            median = f"{int(np.median(right))}" if right else "-"
        else:
            better, median = "-", "-"
        print(
            f"| {scenario.name} | {scenario.per_window} | {named:.1%} ±{_se(named, args.reps):.1%} | "
            f"{better} | {median} | {naive:.1%} |"
        )
    print(f"\n{time.monotonic() - started:.0f} s")


def _se(rate: float, reps: int) -> float:
    return 2 * math.sqrt(max(rate * (1 - rate), 1e-9) / reps)


if __name__ == "__main__":
    main()
