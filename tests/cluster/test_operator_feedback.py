"""Every outcome of an apply shows in status at once, configuration problems included: each case
applies a ModelDeployment the operator can't roll out and waits for the condition that names the
field to fix. The registry is polled only every 10 minutes here, so a status lost on the way (the
first write races kopf adding its finalizer) would not show up in time by a later retry: the
first reconciles must get it written. Each case prints how long the status took."""

from __future__ import annotations

import time
from typing import Any

import pytest
from support.operator import ModelDeployments, OperatorProcess, canary_md
from support.prometheus import free_port

pytestmark = pytest.mark.cluster

# Well below the 600 s poll: a missed write would wait for that; a timely one takes a second.
FEEDBACK_WAIT = 20.0


@pytest.fixture
def operator_args() -> list[str]:
    return ["--registry-poll-seconds=600"]


def registry_md(registry: dict[str, Any] | None = None) -> dict[str, Any]:
    body = canary_md([{"setWeight": 50}], replicas=2)
    body["spec"]["model"] = {"uri": "models:/fraud@champion", "format": "mlflow"}
    if registry is not None:
        body["spec"]["model"]["registry"] = registry
    return body


def routed_md() -> dict[str, Any]:
    return canary_md([{"setWeight": 50}], replicas=2, route="no-such-route")


CASES = {
    "no-tracking-server": (registry_md(), "Degraded", "NoTrackingServer", "spec.model.registry.trackingUri"),
    "secret-missing": (
        registry_md({"trackingUri": "http://127.0.0.1:9", "secretRef": {"name": "mlflow-creds"}}),
        "Degraded",
        "RegistryAuthFailed",
        "spec.model.registry.secretRef: Secret 'mlflow-creds' not found",
    ),
    # First what it waits for (the first registry call may take seconds), then why it still waits.
    "registry-unreachable": (
        registry_md({"trackingUri": f"http://127.0.0.1:{free_port()}"}),
        "Progressing",
        "ResolvingModel",
        "spec.model.registry.trackingUri",
    ),
    "route-missing": (routed_md(), None, None, "HTTPRoute"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_configuration_problem_is_in_status_at_once_naming_the_field(
    operator: OperatorProcess, mds: ModelDeployments, case: str
) -> None:
    body, phase, reason, names = CASES[case]
    started = time.monotonic()
    mds.apply(body)
    status = mds.wait_status(
        "web", f"a condition naming {names!r}", lambda s: names in (s.get("message") or ""), FEEDBACK_WAIT
    )
    print(f"{case}: status after {time.monotonic() - started:.2f} s: {status.get('message')}")
    conditions = {c["type"]: c for c in status["conditions"]}
    if phase is None:  # the route: Ready or not, the message says which object is missing
        return
    assert status["phase"] == phase
    assert conditions[phase]["status"] == "True" and conditions[phase]["reason"] == reason
    assert names in conditions["Ready"]["message"] and conditions["Ready"]["status"] == "False"
    if reason == "ResolvingModel":
        waiting = mds.wait_status(
            "web",
            "RegistryUnavailable",
            lambda s: any(c["reason"] == "RegistryUnavailable" for c in s.get("conditions", [])),
            120,
        )
        assert names in waiting["message"] and waiting["phase"] == "Progressing"
