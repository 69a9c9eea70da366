"""End to end with real models: the operator decides from what real PyTorch model servers did.

kwok pods run no containers, so the models run beside the cluster: one `modelramp serve` process
per track and ModelDeployment, loading real TorchScript models (modelramp.serving.examples), scraped
by a real Prometheus with the labels the pods would carry (namespace, modeldeployment, track). A
load generator stands in for the gateway's data plane: it splits requests by the canary weight the
operator published in status (tests/support/traffic.py). The verdicts come from the operator's
built-in metrics alone.

Scenarios (issue 6): a good canary, whose predictions match stable's, is promoted through every
step; a buggy canary (500s on a third of inputs) is rolled back on error-rate; a 3x slower one on
latency-p95; a retrained one with shifted predictions on prediction-drift.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from support.operator import ModelDeployments, OperatorProcess, Recorder, canary_md, healthy, with_model
from support.prometheus import PrometheusServer, Target
from support.serving import ServingProcess
from support.traffic import WeightedTraffic

from modelramp.serving.examples import Variant, save_model

# serial: real model servers judged on latency must have the CPU to themselves. Beside make test's
# other workers on 2 cores, an identical canary's p95 measured 1.25x stable's with a 90 % bound of
# 2.09 after 10 windows: Inconclusive, from the load, not the model.
pytestmark = [
    pytest.mark.cluster,
    pytest.mark.prometheus,
    pytest.mark.e2e,
    pytest.mark.timeout(900),
    pytest.mark.serial,
]

CANARIES: dict[str, Variant] = {"good": "good", "buggy": "buggy", "slow": "slow", "drifted": "drifted"}
EXPECTED_FAILING_METRIC = {"buggy": "errors", "slow": "latency", "drifted": "drift"}
INTERVAL = "10s"
# The README's metrics and defaults (count 10, falseRollbackRate 0.01), at 20 requests/s: at weight
# 25 a 10 s window holds about 50 canary requests (100 at 50). The judge pools the windows, so the
# good canary passes once the evidence shows it within every bound, and each broken one fails on
# the metric it breaks.
RATE = 20
METRICS: list[dict[str, Any]] = [
    {"name": "errors", "builtin": "error-rate", "threshold": 0.02},
    {"name": "latency", "builtin": "latency-p95", "maxRatioToStable": 1.5},
    {"name": "drift", "builtin": "prediction-drift", "threshold": 0.25},
]


@dataclass
class Harness:
    models: dict[str, Path]
    servers: dict[tuple[str, str], ServingProcess]
    prometheus: PrometheusServer


@pytest.fixture
def harness(
    request: pytest.FixtureRequest, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    """Stable and canary model servers for each ModelDeployment in `request.param` (default: all
    of CANARIES), and a Prometheus scraping them."""
    names: list[str] = getattr(request, "param", list(CANARIES))
    model_dir = tmp_path_factory.mktemp("models")
    models = {name: save_model(CANARIES[name], model_dir) for name in names}
    stable_model = save_model("good", model_dir)
    workdir = tmp_path_factory.mktemp("serving")
    servers = {(name, "stable"): ServingProcess(stable_model, workdir) for name in names}
    servers |= {(name, "canary"): ServingProcess(models[name], workdir) for name in names}
    with contextlib.ExitStack() as stack:
        for server in servers.values():
            stack.enter_context(server)
        targets = [
            Target(
                f"127.0.0.1:{server.port}", {"namespace": namespace, "modeldeployment": name, "track": track}
            )
            for (name, track), server in servers.items()
        ]
        prometheus = stack.enter_context(PrometheusServer(tmp_path_factory.mktemp("prometheus"), targets))
        yield Harness(models, servers, prometheus)


@pytest.fixture
def operator_args(harness: Harness) -> list[str]:
    return [f"--prometheus-url={harness.prometheus.url}"]


def _md(name: str, **analysis_defaults: Any) -> dict[str, Any]:
    # 4 pods: weights 25 and 50 are exact under the replica-ratio router, and stable keeps traffic.
    steps = [{"setWeight": 25}, {"analysis": {}}, {"setWeight": 50}, {"analysis": {}}]
    body = canary_md(steps, name=name, replicas=4)
    body["spec"]["model"]["uri"] = f"file:///models/{name}-stable.pt"
    body["spec"]["analysis"] = {"interval": INTERVAL, "metrics": METRICS, **analysis_defaults}
    return body


def _traffic(harness: Harness, mds: ModelDeployments, name: str) -> WeightedTraffic:
    return WeightedTraffic(
        harness.servers[name, "stable"].url,
        harness.servers[name, "canary"].url,
        weight=lambda: _weight_of(mds, name),
        rate=RATE,
        max_seconds=600,
    )


def _run(status: dict[str, Any], step: int) -> dict[str, Any] | None:
    return next((r for r in status.get("analysisRuns", []) if r.get("stepIndex") == step), None)


def _summary(status: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The measurements, short enough to read in a failure message."""
    return [
        (m["metric"], m["verdict"], m.get("value"), m.get("stableValue"), (m.get("message") or "")[:160])
        for m in status.get("measurements", [])
    ]


def _weight_of(mds: ModelDeployments, name: str) -> int:
    return int(mds.status(name).get("canaryWeight", 0))


@dataclass
class Rollouts:
    """What happened to each ModelDeployment's rollout: the traffic sent, the weights recorded,
    and when all traffic was back on one track."""

    traffic: dict[str, WeightedTraffic]
    recorders: dict[str, Recorder]
    settled_at: dict[str, float]


def _roll_out(harness: Harness, mds: ModelDeployments) -> Rollouts:
    """Deploys every ModelDeployment of the harness on the good model, then rolls its own model
    out under traffic until each is promoted or rolled back."""
    names = sorted(harness.models)
    bodies = {name: _md(name) for name in names}
    for body in bodies.values():
        mds.apply(body)
    for name in names:
        healthy(mds, name, uri=bodies[name]["spec"]["model"]["uri"])

    rollouts = Rollouts(
        traffic={name: _traffic(harness, mds, name) for name in names},
        recorders={name: Recorder(mds.kube, mds.namespace, name) for name in names},
        settled_at={},
    )
    with contextlib.ExitStack() as stack:
        for name in names:
            stack.enter_context(rollouts.recorders[name])
            rollouts.traffic[name].start()
            stack.callback(rollouts.traffic[name].stop)
        for name in names:
            mds.apply(with_model(bodies[name], f"file://{harness.models[name]}"))

        deadline = time.monotonic() + 600
        pending = set(names)
        while pending and time.monotonic() < deadline:
            for name in sorted(pending):
                status = mds.status(name)
                if status.get("phase") in {"RolledBack", "Failed"} or (
                    status.get("phase") == "Healthy"
                    and not status.get("canaryRevision")
                    and (status.get("stableModel") or {}).get("uri") == f"file://{harness.models[name]}"
                ):
                    rollouts.settled_at[name] = time.time()
                    pending.discard(name)
                    # Its verdict is in: the others' servers get the machine to themselves.
                    rollouts.traffic[name].halt()
            time.sleep(0.5)
        for name in sorted(pending):
            # In full: an assertion's message is cut short in pytest's report.
            status = mds.status(name)
            lines = [m.get("message") for m in status.get("measurements", [])]
            print(name, status.get("message"), *lines, sep="\n  ")
        assert not pending, {
            name: (mds.status(name).get("phase"), mds.status(name).get("message"), _summary(mds.status(name)))
            for name in pending
        }
    return rollouts


# Alone: the good canary is shown within every bound on a quiet machine, as on a node of its own.
# Beside three more pairs of servers, their load generator and a CPU-bound slow model on 2 cores,
# either of two servers of the same model ran up to 30 % slower at p95 than the other, by where the
# scheduler put it, and latency stayed undecided after count 10 about half the time.
@pytest.mark.parametrize("harness", [["good"]], indirect=True)
def test_a_good_model_is_promoted_through_every_step(
    harness: Harness, operator: OperatorProcess, mds: ModelDeployments
) -> None:
    rollouts = _roll_out(harness, mds)

    promoted = mds.status("good")
    assert promoted["phase"] == "Healthy", (promoted.get("message"), _summary(promoted))
    assert rollouts.recorders["good"].status_weights == [0, 25, 50, 0], rollouts.recorders[
        "good"
    ].status_weights
    good_runs = promoted["analysisRuns"]
    assert [run["phase"] for run in good_runs] == ["Successful", "Successful"], good_runs
    decided_after = [{metric["name"]: metric["count"] for metric in run["metrics"]} for run in good_runs]
    print(f"measurements each metric took to decide, per analysis step: {decided_after}")
    assert rollouts.traffic["good"].sent["canary", 200] > 0


@pytest.mark.parametrize("harness", [list(EXPECTED_FAILING_METRIC)], indirect=True)
def test_broken_models_are_rolled_back_on_the_metric_that_broke(
    harness: Harness, operator: OperatorProcess, mds: ModelDeployments
) -> None:
    rollouts = _roll_out(harness, mds)

    rollback_delays = {}
    for name, metric in EXPECTED_FAILING_METRIC.items():
        status = mds.status(name)
        assert status["phase"] == "RolledBack", (name, status.get("message"), _summary(status))
        assert status["canaryWeight"] == 0
        failed = [m for m in status["measurements"] if m["verdict"] == "Failed"]
        assert failed, (name, status["measurements"])
        # The broken metric fails; another may too (a buggy model's retried batches are slower).
        assert metric in {m["metric"] for m in failed}, (name, _summary(status))
        first = next(m for m in failed if m["metric"] == metric)
        assert first["value"] is not None and first["threshold"] is not None
        degraded = {c["type"]: c for c in status["conditions"]}["Degraded"]
        assert degraded["status"] == "True" and metric in degraded["message"], degraded
        first_failure = min(datetime.fromisoformat(m["time"]).timestamp() for m in failed)
        rollback_delays[name] = round(rollouts.settled_at[name] - first_failure, 1)
    # The broken ones received real traffic, and lost it all at once.
    assert rollouts.traffic["buggy"].sent["canary", 500] > 0
    print(f"time from first failing measurement to all traffic on stable (s): {rollback_delays}")


@pytest.mark.parametrize("harness", [["good"]], indirect=True)
def test_an_operator_kill_and_a_prometheus_outage_mid_analysis_lose_and_double_count_nothing(
    harness: Harness, operator: OperatorProcess, mds: ModelDeployments
) -> None:
    # Errors past consecutiveErrorLimit 1 (two in a row) pause the rollout quickly. What is checked
    # is the bookkeeping, so not latency: two server processes on a loaded 2-core machine differ in
    # their p95 by more than the model does (a good canary was once measured 1.16x slower than
    # stable, significantly, and the analysis ran out of windows before showing it within 1.5x).
    # test_a_good_model_is_promoted_through_every_step judges all three metrics.
    body = _md("good", consecutiveErrorLimit=1)
    body["spec"]["analysis"]["metrics"] = [m for m in METRICS if m["builtin"] != "latency-p95"]
    mds.apply(body)
    healthy(mds, "good", uri=body["spec"]["model"]["uri"])
    traffic = _traffic(harness, mds, "good")
    traffic.start()
    try:
        mds.apply(with_model(body, f"file://{harness.models['good']}"))

        # SIGKILL once the first analysis has measured, then start a new operator.
        mds.wait_status(
            "good",
            "a measurement of step 1",
            lambda s: bool((_run(s, 1) or {}).get("metrics", [{}])[0].get("count")),
            timeout=120,
        )
        operator.kill()
        operator.start()
        first = mds.wait_status(
            "good",
            "step 1's analysis decided",
            lambda s: (_run(s, 1) or {}).get("phase") == "Successful",
            timeout=120,
        )
        taken = [m for m in first["measurements"] if m["analysis"] == _run(first, 1)["name"]]
        for metric in _run(first, 1)["metrics"]:
            # Decided by its one Successful measurement; every measurement pooled exactly once.
            assert metric["successful"] == 1 and metric["error"] == 0, metric
            assert metric["evidence"]["windows"] == metric["count"], metric
            assert metric["test"]["canarySamples"] == metric["evidence"]["canary"]["total"], metric
            mine = [m for m in taken if m["metric"] == metric["name"]]
            assert len(mine) == metric["count"] == len({m["time"] for m in mine}), _summary(first)

        # Prometheus goes away during the second analysis: paused on errors, never promoted.
        mds.wait_status(
            "good",
            "step 3's analysis running",
            lambda s: (_run(s, 3) or {}).get("phase") == "Running",
            timeout=60,
        )
        harness.prometheus.stop()
        paused = mds.wait_status(
            "good",
            "paused on measurement errors",
            lambda s: s.get("phase") == "Paused" and (_run(s, 3) or {}).get("phase") == "Error",
            timeout=120,
        )
        assert paused["canaryWeight"] == 50 and "Error" in paused["message"], paused["message"]
        assert not [m for m in paused["measurements"] if m["verdict"] == "Failed"], _summary(paused)
        harness.prometheus.start()
        done = healthy(mds, "good", uri=f"file://{harness.models['good']}")
    finally:
        traffic.stop()
    retried = _run(done, 3)
    assert retried is not None and retried["phase"] == "Successful", retried
    assert all(metric["error"] == 0 and metric["successful"] == 1 for metric in retried["metrics"]), retried
    reasons = [event.reason for event in mds.events("good")]
    assert "AnalysisRetried" in reasons and "AnalysisError" in reasons, reasons
