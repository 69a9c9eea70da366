"""`spec.strategy.abTest` and `status.abTest`: an A/B test of model variants with sticky users.

A new revision (a change of `spec.model` or `spec.serving`) is tested against the stable one, and
optionally against more challengers with models of their own, on live traffic: every request
carrying the assignment key (a header or a cookie, e.g. a user id) is served by the variant its
key hashes to, the same one on every pod and after every restart, in the proportions of the
weights. A decision metric (the server's own error rate, or success and total counters read with
PromQL, e.g. a business outcome the application reports per variant) is pooled per variant and
each challenger is tested against control; the winner is promoted, or held for a person
(`autoPromote: false`). docs/abtest.md says how it works and what the statistics control.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, WithJsonSchema

from modelramp.operator.api.base import ApiModel, CelRule, ListMapKey, StatusModel
from modelramp.operator.api.types import DnsLabel, Duration, ModelFormat, ModelUri

CONTROL: Literal["control"] = "control"
MAX_VARIANTS = 8
DEFAULT_MIN_SAMPLES = 200
DEFAULT_FALSE_POSITIVE_RATE = 0.05
DEFAULT_INTERVAL = "1m"
# Names the operator's own objects use for the tracks: `<name>-stable`, `<name>-canary`.
RESERVED_VARIANT_NAMES = ("stable", "canary")

# An HTTP header name (an RFC 9110 token) and a cookie name (an RFC 6265 token).
_TOKEN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
KeyName = Annotated[str, StringConstraints(pattern=_TOKEN, max_length=256)]
VariantName = Annotated[str, StringConstraints(pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length=20)]
PromQL = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
# One value for now; an enum (pydantic would write `const`, which a CRD schema can't carry).
ABBuiltin = Annotated[Literal["error-rate"], WithJsonSchema({"type": "string", "enum": ["error-rate"]})]


def _weights_sum(path: str, items: int) -> str:
    """CEL for the sum of `<path>[i].weight` over a list of at most `items` (CEL has no sum that
    both the API server and cel-python evaluate, and an unrolled one has a bounded cost)."""
    terms = [f"(size({path}) > {i} ? {path}[{i}].weight : 0)" for i in range(items)]
    return " + ".join(terms)


class Assignment(ApiModel):
    """What tells users apart: the request header or cookie whose value is hashed to a variant."""

    cel_rules = (
        CelRule(
            "(has(self.header) ? 1 : 0) + (has(self.cookie) ? 1 : 0) == 1",
            "assignment sets exactly one of header or cookie",
        ),
    )

    header: KeyName | None = Field(
        default=None, description="A request header carrying the user's key, e.g. x-user-id."
    )
    cookie: KeyName | None = Field(default=None, description="A cookie carrying the user's key, e.g. uid.")
    salt: Annotated[str, StringConstraints(pattern=r"^[!-~]*$", max_length=63)] | None = Field(
        default=None,
        description=(
            "Hashed in front of the key, so two tests split users independently. Defaults to the "
            "revision under test (status.abTest.salt), so every test draws its own split."
        ),
    )


class VariantModel(ApiModel):
    """The model of a challenger that is not spec.model (served with spec.serving)."""

    cel_rules = (
        CelRule(
            "!self.uri.startsWith('models:/') || !self.uri.contains('@')",
            "a variant's registry URI names a version (models:/name/7): an alias would change under "
            "a running test",
            field_path=".uri",
        ),
    )

    uri: ModelUri = Field(description="Where the model is, as spec.model.uri (no registry alias).")
    format: ModelFormat | None = Field(
        default=None, description="How the model is stored; defaults to spec.model.format."
    )


class Variant(ApiModel):
    """One arm of the test and its share of the users."""

    cel_rules = (
        CelRule(
            "self.name != 'control' || !has(self.model)",
            "the control variant serves the stable revision: it has no model",
            field_path=".model",
        ),
    )

    name: VariantName = Field(
        description=(
            "`control` is the stable revision (the model serving before the test). The one other "
            "variant without a model serves the new revision (spec.model); each variant with a "
            "model is a further challenger. Names `stable` and `canary` are reserved."
        )
    )
    weight: int = Field(ge=1, le=99, description="Percent of the users (keys) it gets; all add up to 100.")
    model: VariantModel | None = Field(
        default=None, description="A challenger's own model; unset: spec.model (or stable, for control)."
    )


class Counters(ApiModel):
    """A proportion read with PromQL: successes out of a total, per variant."""

    successes: PromQL = Field(
        description=(
            "PromQL giving each variant's successes over the window, one sample per variant with a "
            '`variant` label, e.g. `sum by (variant) (increase(shop_orders_total{outcome="bought"}'
            "[{{interval}}]))`. `{{namespace}}`, `{{name}}`, `{{interval}}` (the window) and `{{test}}` "
            "(status.abTest.id) are substituted."
        )
    )
    total: PromQL = Field(
        description=(
            "PromQL giving each variant's trials over the same window (same form). For outcomes known "
            "only later (labels, purchases), count a trial when its outcome arrives, success or not, "
            "so late outcomes bias nothing."
        )
    )


class DecisionMetric(ApiModel):
    """What the test decides on: a proportion per variant, compared with control's."""

    cel_rules = (
        CelRule(
            "has(self.builtin) != has(self.counters)",
            "the metric sets exactly one of builtin or counters",
        ),
        CelRule(
            "!has(self.builtin) || !has(self.better) || self.better == 'lower'",
            "error-rate is better when lower: leave better unset or set it to lower",
            field_path=".better",
        ),
    )

    name: DnsLabel = Field(default="decision", description="Shown in status and events.")
    builtin: ABBuiltin | None = Field(
        default=None,
        description=(
            "`error-rate`: the share of the variant's keyed requests answered 5xx, from the servers' "
            "own counters (lower is better)."
        ),
    )
    counters: Counters | None = Field(
        default=None, description="Successes and totals per variant, e.g. a business outcome."
    )
    better: Literal["higher", "lower"] | None = Field(
        default=None,
        description="Whether a higher or a lower proportion wins; higher for counters, lower for error-rate.",
    )
    min_effect: float = Field(
        default=0.0,
        ge=-1.0,
        le=1.0,
        description=(
            "The least improvement over control that counts as a win, as an absolute difference of "
            "the proportions (0.01 = one point). 0: any significant improvement; negative: a "
            "non-inferiority margin (a variant no worse than control by more than this wins)."
        ),
    )


class ABTestStrategy(ApiModel):
    """Serve two or more variants to sticky groups of users, then promote the winner."""

    cel_rules = (
        CelRule(
            f"{_weights_sum('self.variants', MAX_VARIANTS)} == 100",
            "variants' weights must add up to 100",
            field_path=".variants",
        ),
        CelRule(
            "self.variants.exists(v, v.name == 'control')",
            "variants need one named control (the stable revision)",
            field_path=".variants",
            reason="FieldValueRequired",
        ),
        CelRule(
            "self.variants.exists_one(v, v.name != 'control' && !has(v.model))",
            "exactly one variant other than control has no model: it serves spec.model, the revision "
            "under test",
            field_path=".variants",
        ),
        CelRule(
            "self.variants.all(v, v.name != 'stable' && v.name != 'canary')",
            "variant names stable and canary are reserved (they name the operator's own objects)",
            field_path=".variants",
        ),
    )

    assignment: Assignment = Field(description="The header or cookie whose value assigns users to variants.")
    variants: Annotated[list[Variant], ListMapKey("name")] = Field(
        min_length=2,
        max_length=MAX_VARIANTS,
        description=(
            "The arms: `control` (the stable revision), the new revision (the variant without a "
            "model) and any further challengers; their weights add up to 100."
        ),
    )
    metric: DecisionMetric = Field(description="The metric each challenger is compared with control on.")
    duration: Duration = Field(
        description=(
            "How long the test runs before its final decision, e.g. 168h (a week). A clearly better "
            "variant may win earlier, at a stricter threshold."
        )
    )
    interval: Duration = Field(
        default=DEFAULT_INTERVAL, description="Time between measurements of the decision metric."
    )
    min_samples: int = Field(
        default=DEFAULT_MIN_SAMPLES,
        ge=1,
        le=1_000_000_000,
        description="Trials every variant needs before any decision, early or final.",
    )
    false_positive_rate: float = Field(
        default=DEFAULT_FALSE_POSITIVE_RATE,
        gt=0,
        le=0.5,
        description=(
            "The highest probability that the test names a winner when no variant beats control "
            "by minEffect: split evenly over the challengers, then half over the early looks and "
            "half to the final one."
        ),
    )
    auto_promote: bool = Field(
        default=True,
        description=(
            "Promote the winner as soon as the test decides; false holds the rollout (phase Paused) "
            "until `modelramp promote` takes the winner."
        ),
    )


# --- status --------------------------------------------------------------------------------------

ABTestPhase = Literal["Starting", "Running", "Decided", "Concluded"]
VariantDecision = Literal["Control", "Better", "NotBetter", "Undecided"]
VariantTest = Literal["fisher-exact", "farrington-manning"]


class VariantStatus(StatusModel):
    """One variant's pooled evidence and how it compares with control."""

    name: str = Field(max_length=20, description="The variant.")
    revision: str = Field(max_length=63, description="The revision its pods run (their model version).")
    weight: int = Field(ge=0, le=100, description="Percent of the users it gets.")
    uri: str | None = Field(default=None, max_length=2048, description="The model it serves.")
    count: float = Field(
        default=0,
        ge=0,
        description="The proportion's numerator pooled: successes, or 5xx answers for error-rate.",
    )
    total: float = Field(default=0, ge=0, description="Trials pooled (for error-rate: keyed requests).")
    value: float | None = Field(default=None, description="count / total.")
    effect: float | None = Field(
        default=None, description="value minus control's value (absent for control itself)."
    )
    lower: float | None = Field(default=None, description="Lower confidence bound of the effect.")
    upper: float | None = Field(default=None, description="Upper confidence bound of the effect.")
    confidence: float | None = Field(
        default=None, gt=0, lt=1, description="Confidence of each bound: 1 - this look's alpha."
    )
    test: VariantTest | None = Field(
        default=None, description="fisher-exact (minEffect 0) or farrington-manning (a margin)."
    )
    p_value: float | None = Field(
        default=None, ge=0, le=1, description="One-sided p-value of 'not better than control by minEffect'."
    )
    alpha: float | None = Field(
        default=None, ge=0, le=1, description="This look's threshold for the p-value."
    )
    alpha_spent: float | None = Field(
        default=None, ge=0, le=1, description="This variant's false-positive budget spent so far."
    )
    decision: VariantDecision = Field(
        default="Undecided",
        description=(
            "Control (this is control), Better (beats control by minEffect at this look's alpha), "
            "NotBetter (the final look did not show it better), Undecided (still measuring)."
        ),
    )


class ABTestStatus(StatusModel):
    """The A/B test of the current (or last) rollout: what it assigns and what it found."""

    id: str = Field(
        max_length=16,
        description="Identity of the test: its revision, variants and assignment; labels its requests.",
    )
    revision: str = Field(max_length=63, description="The revision under test (spec.model's).")
    salt: str = Field(max_length=63, description="What is hashed in front of each key.")
    phase: ABTestPhase = Field(
        description=(
            "Starting (variant pods coming up), Running (assigning and measuring), Decided (a winner, "
            "held for modelramp promote), Concluded (the winner was promoted or control kept)."
        )
    )
    created_at: datetime = Field(description="When the test was set up (its rollout started).")
    started_at: datetime | None = Field(default=None, description="When assignment began.")
    ends_at: datetime | None = Field(default=None, description="When the final look is due (duration).")
    last_measured_at: datetime | None = Field(default=None, description="End of the last window pooled.")
    windows: int = Field(default=0, ge=0, description="Measurement windows pooled.")
    interim_looks: int = Field(default=0, ge=0, description="Early looks taken (each spends budget).")
    consecutive_errors: int = Field(default=0, ge=0, description="Failed measurements in a row.")
    winner: str | None = Field(default=None, max_length=20, description="The winning variant, once decided.")
    decided_at: datetime | None = Field(default=None, description="When the winner was decided.")
    message: str = Field(default="", max_length=4096, description="The decision, or why there is none yet.")
    variants: Annotated[list[VariantStatus], ListMapKey("name")] = Field(
        default_factory=list, max_length=MAX_VARIANTS, description="Per variant: evidence and comparison."
    )


class VariantWindow(StatusModel):
    """One variant's counts over one measurement window."""

    name: str = Field(max_length=20)
    count: float = Field(ge=0, description="Successes, or 5xx answers for error-rate.")
    total: float = Field(ge=0, description="Trials.")


class ABWindow(StatusModel):
    """One measurement of an A/B test's decision metric, taken by the glue for the engine to pool."""

    test: str = Field(max_length=16, description="status.abTest.id it was measured for.")
    time: datetime = Field(description="End of the window.")
    variants: list[VariantWindow] = Field(default_factory=list, max_length=MAX_VARIANTS)
    query: str = Field(default="", max_length=8192, description="The queries, variables substituted.")
    error: str | None = Field(default=None, max_length=4096, description="Why nothing was measured.")
