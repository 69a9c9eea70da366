"""What an A/B test runs: its variants as pods and Services, its identity, and the assignment table
the model servers read.

`control` is the stable revision (`<name>-stable`), the variant without a model the revision under
test (`<name>-canary`), each variant with a model a revision of its own (spec.serving with that
model) in Deployment and Service `<name>-<variant>`. Every model server pod of an A/B
ModelDeployment mounts the ConfigMap `<name>-assignment` (optional, so a pod starts without it),
whose `assignment.json` is the table `modelramp serve --assignment-file` follows: which variants
there are, their weights, the revision each runs (a server knows its own revision, so it needs
no label or restart to find its variant) and the Service a request for it is forwarded to. The
kubelet refreshes a mounted ConfigMap in place, so changing the table restarts no pod.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final

from modelramp.operator.api.abtest import CONTROL, ABTestStatus, ABTestStrategy, Variant, VariantStatus
from modelramp.operator.api.resource import ModelDeployment
from modelramp.operator.api.spec import ModelSource
from modelramp.operator.api.status import ModelDeploymentStatus, ResolvedModel, RevisionTemplate
from modelramp.operator.rollout.objects import (
    NAME_LABEL,
    SERVER_CONTAINER,
    SERVICE_PORT,
    TRACK_LABEL,
    Manifest,
    get_deployment,
    get_service,
    owned_metadata,
    track_name,
)
from modelramp.operator.rollout.revision import revision_of
from modelramp.operator.rollout.tick import Tick

VARIANT_LABEL: Final = "modelramp.dev/variant"
VARIANT_TRACK: Final = "variant"
ASSIGNMENT_VOLUME: Final = "assignment"
ASSIGNMENT_DIR: Final = "/etc/modelramp/assignment"
ASSIGNMENT_KEY: Final = "assignment.json"
ASSIGNMENT_FILE: Final = f"{ASSIGNMENT_DIR}/{ASSIGNMENT_KEY}"
TEST_ID_LENGTH = 12


@dataclass(frozen=True)
class Arm:
    """A variant as the cluster runs it."""

    variant: Variant
    template: RevisionTemplate
    revision: str
    service: str
    # The pods' Deployment: the stable or canary track's, or (None) its own `<name>-<variant>`.
    track: str | None

    @property
    def name(self) -> str:
        return self.variant.name


def strategy_of(tick: Tick) -> ABTestStrategy:
    if tick.ab_test is None:
        raise ValueError("spec.strategy.abTest: not set")
    return tick.ab_test


def arms(tick: Tick, status: ModelDeploymentStatus) -> list[Arm]:
    """The test's variants in spec order, each with the revision its pods run."""
    result = []
    for variant in strategy_of(tick).variants:
        if variant.name == CONTROL:
            template = status.stable_template or tick.desired
            revision = status.stable_revision or tick.desired_revision
            result.append(Arm(variant, template, revision, track_name(tick.md, "stable"), "stable"))
        elif variant.model is None:
            result.append(
                Arm(variant, tick.desired, tick.desired_revision, track_name(tick.md, "canary"), "canary")
            )
        else:
            template = challenger_template(tick.desired, variant)
            result.append(
                Arm(variant, template, revision_of(template), variant_name(tick.md, variant.name), None)
            )
    return result


def challenger_template(desired: RevisionTemplate, variant: Variant) -> RevisionTemplate:
    """A challenger's revision: the desired serving section with the challenger's model."""
    assert variant.model is not None
    model = ModelSource.model_construct(
        uri=variant.model.uri,
        format=variant.model.format or desired.model.format,
        name=desired.model.name,
        follow_alias=False,
        registry=desired.model.registry,
    )
    return RevisionTemplate.model_construct(model=model, serving=desired.serving)


def candidate(tick: Tick) -> Variant:
    """The variant serving spec.model (the API admits exactly one)."""
    return next(v for v in strategy_of(tick).variants if v.name != CONTROL and v.model is None)


def variant_name(md: ModelDeployment, variant: str) -> str:
    """`<name>-<variant>`: a challenger's Deployment and Service."""
    return f"{md.metadata.name}-{variant}"


def test_id(tick: Tick) -> str:
    """The test's identity: the revision under test and everything that assigns or judges (not
    the duration or the budget, which may change while it runs)."""
    strategy = strategy_of(tick)
    identity = {
        "revision": tick.desired_revision,
        "assignment": strategy.assignment.model_dump(mode="json", exclude_none=True),
        "variants": [variant.model_dump(mode="json", exclude_none=True) for variant in strategy.variants],
        "metric": strategy.metric.model_dump(mode="json", exclude_none=True),
    }
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:TEST_ID_LENGTH]


def new_test(tick: Tick, status: ModelDeploymentStatus) -> ABTestStatus:
    strategy = strategy_of(tick)
    return ABTestStatus(
        id=test_id(tick),
        revision=tick.desired_revision,
        salt=strategy.assignment.salt if strategy.assignment.salt is not None else tick.desired_revision,
        phase="Starting",
        created_at=tick.now,
        variants=[
            VariantStatus(
                name=arm.name, revision=arm.revision, weight=arm.variant.weight, uri=arm.template.model.uri
            )
            for arm in arms(tick, status)
        ],
    )


def concluded_here(tick: Tick, status: ModelDeploymentStatus) -> bool:
    """This spec's test is over and its winner (maybe control, or a challenger that is not
    spec.model) serves: the spec's revision is not rolled out again."""
    test = status.ab_test
    return (
        tick.ab_test is not None
        and test is not None
        and test.phase == "Concluded"
        and status.canary_revision is None
        and test.id == test_id(tick)
    )


def assigning(tick: Tick, status: ModelDeploymentStatus) -> ABTestStatus | None:
    """The test whose table the servers follow now: running, or decided and held for a person."""
    test = status.ab_test
    active = (
        tick.ab_test is not None
        and test is not None
        and test.phase in ("Running", "Decided")
        and status.canary_revision == tick.desired_revision
        and not status.abort
    )
    return test if active else None


def table(tick: Tick, status: ModelDeploymentStatus) -> dict[str, Any]:
    """The assignment table (`assignment.json`); no variants when no test assigns."""
    test = assigning(tick, status)
    if test is None:
        return {"variants": []}
    strategy = strategy_of(tick)
    namespace = tick.md.metadata.namespace
    return {
        "test": test.id,
        "header": strategy.assignment.header,
        "cookie": strategy.assignment.cookie,
        "salt": test.salt,
        "variants": [
            {
                "name": arm.name,
                "weight": arm.variant.weight,
                "revision": arm.revision,
                "model": arm.template.model.name or tick.md.metadata.name,
                "url": f"http://{arm.service}.{namespace}.svc:{SERVICE_PORT}",
            }
            for arm in arms(tick, status)
        ],
    }


def assignment_config_map(tick: Tick, status: ModelDeploymentStatus) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": owned_metadata(
            tick.md, assignment_name(tick.md), {NAME_LABEL: tick.md.metadata.name or ""}
        ),
        "data": {ASSIGNMENT_KEY: json.dumps(table(tick, status), sort_keys=True, indent=1)},
    }


def assignment_name(md: ModelDeployment) -> str:
    return f"{md.metadata.name}-assignment"


def with_assignment(deployment: Manifest, md: ModelDeployment) -> Manifest:
    """A model server Deployment that mounts the assignment table and is told where it is."""
    mounted = copy.deepcopy(deployment)
    pod = mounted["spec"]["template"]["spec"]
    pod.setdefault("volumes", []).append(
        {"name": ASSIGNMENT_VOLUME, "configMap": {"name": assignment_name(md), "optional": True}}
    )
    for container in pod["containers"]:
        if container["name"] == SERVER_CONTAINER:
            container.setdefault("volumeMounts", []).append(
                {"name": ASSIGNMENT_VOLUME, "mountPath": ASSIGNMENT_DIR, "readOnly": True}
            )
            container.setdefault("env", []).append(
                {"name": "MODELRAMP_ASSIGNMENT_FILE", "value": ASSIGNMENT_FILE}
            )
    return mounted


def challenger_objects(tick: Tick, arm: Arm, replicas: int) -> list[Manifest]:
    """A challenger's Deployment `<name>-<variant>` (pods labelled with their variant, track
    `variant`) and the Service in front of them."""
    model = ResolvedModel(uri=arm.template.model.uri, resolved_uri=arm.template.model.uri)
    deployment = get_deployment(tick.md, "canary", arm.template, arm.revision, replicas, model=model)
    name = variant_name(tick.md, arm.name)
    selector = {NAME_LABEL: tick.md.metadata.name or "", VARIANT_LABEL: arm.name}
    deployment["metadata"]["name"] = name
    for labels in (deployment["metadata"]["labels"], deployment["spec"]["template"]["metadata"]["labels"]):
        labels[TRACK_LABEL] = VARIANT_TRACK
        labels[VARIANT_LABEL] = arm.name
    deployment["spec"]["selector"] = {"matchLabels": selector}
    return [with_assignment(deployment, tick.md), get_service(tick.md, name, selector)]
