"""The rollout story behind `make demo`, on the local cluster.

Two ModelDeployments roll out new models under real analysis: `fraud-v2` gets a retrained model
that behaves like the old one and is promoted step by step; `fraud-bug` gets one that fails on a
third of its inputs and is rolled back at its first analysis. kwok pods run no containers, so the
models run here, beside the cluster, exactly as the e2e tests run them (tests/support): one
`modelramp serve` per track, a real Prometheus scraping them with the labels the pods would
carry, and a load generator splitting requests by the weight the operator publishes.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# The e2e harness is the demo's harness too: one copy of it, in tests/support.
sys.path.insert(0, str(REPO / "tests"))

from support.prometheus import PrometheusServer, Target, free_port  # noqa: E402
from support.serving import ServingProcess  # noqa: E402
from support.traffic import WeightedTraffic  # noqa: E402

from modelramp.serving.examples import Variant, save_model  # noqa: E402

NAMESPACE = "demo"
ROLLOUTS: dict[str, Variant] = {"fraud-v2": "good", "fraud-bug": "buggy"}
WORK = REPO / ".cache" / "demo"
KUBECONFIG = os.environ["KUBECONFIG"]
KUBECTL = os.environ["KUBECTL"]
MODELRAMP = str(REPO / ".venv" / "bin" / "modelramp")


def kubectl(*args: str, input: str | None = None) -> str:
    return subprocess.run([KUBECTL, *args], input=input, capture_output=True, text=True, check=True).stdout


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def model_deployment(name: str, uri: str) -> dict[str, Any]:
    # The README's metrics and defaults: each analysis pools its windows and stops once decided.
    metrics = [
        {"name": "errors", "builtin": "error-rate", "threshold": 0.02},
        {"name": "latency", "builtin": "latency-p95", "maxRatioToStable": 1.5},
        {"name": "drift", "builtin": "prediction-drift", "threshold": 0.25},
    ]
    return {
        "apiVersion": "modelramp.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "model": {"uri": uri, "format": "torchscript"},
            "serving": {"replicas": 4},
            "strategy": {
                "canary": {
                    "steps": [
                        {"setWeight": 25},
                        {"analysis": {}},
                        {"setWeight": 50},
                        {"analysis": {}},
                    ]
                }
            },
            "analysis": {"interval": "10s", "metrics": metrics},
        },
    }


def status(name: str) -> dict[str, Any]:
    body = json.loads(kubectl("-n", NAMESPACE, "get", "md", name, "-o", "json"))
    return body.get("status") or {}


def wait_for(what: str, done: Any, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(1)
    raise SystemExit(f"demo: timed out waiting for {what}")


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    kubectl(
        "apply", "-f", "-", input=kubectl("create", "namespace", NAMESPACE, "--dry-run=client", "-o", "yaml")
    )
    for name in ROLLOUTS:
        kubectl("-n", NAMESPACE, "delete", "md", name, "--ignore-not-found", "--wait=false")

    say("Model servers (real TorchScript models) and Prometheus, beside the cluster")
    stable_model = save_model("good", WORK)
    servers = {(name, "stable"): ServingProcess(stable_model, WORK / "logs") for name in ROLLOUTS}
    canaries = {name: save_model(variant, WORK) for name, variant in ROLLOUTS.items()}
    servers |= {(name, "canary"): ServingProcess(canaries[name], WORK / "logs") for name in ROLLOUTS}
    with contextlib.ExitStack() as stack:
        for (name, track), server in servers.items():
            stack.enter_context(server)
            print(f"  {name:10} {track:6} {server.url}  ({server.model.name})")
        targets = [
            Target(
                f"127.0.0.1:{server.port}", {"namespace": NAMESPACE, "modeldeployment": name, "track": track}
            )
            for (name, track), server in servers.items()
        ]
        prometheus = stack.enter_context(PrometheusServer(WORK / "prometheus", targets))
        print(f"  prometheus {prometheus.url}")

        say("The operator")
        log = (WORK / "operator.log").open("w")
        operator = subprocess.Popen(
            [MODELRAMP, "operator", f"--namespace={NAMESPACE}", f"--prometheus-url={prometheus.url}",
             f"--metrics-port={free_port()}", "--metrics-host=127.0.0.1"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        stack.callback(operator.wait, 15)
        stack.callback(operator.terminate)
        print(f"  modelramp operator (log: {log.name})")

        say("Version 1 of both ModelDeployments goes live")
        for name in ROLLOUTS:
            kubectl(
                "apply", "-f", "-", input=json.dumps(model_deployment(name, "file:///models/fraud-v1.pt"))
            )
        wait_for("Healthy", lambda: all(status(n).get("phase") == "Healthy" for n in ROLLOUTS))
        print(kubectl("-n", NAMESPACE, "get", "md"))

        say("Roll out: fraud-v2 gets a retrained model, fraud-bug a broken one (kubectl get md -w)")
        senders = []
        for name in ROLLOUTS:
            traffic = WeightedTraffic(
                servers[name, "stable"].url, servers[name, "canary"].url,
                weight=lambda name=name: int(status(name).get("canaryWeight", 0)), rate=30,
            )  # fmt: skip
            traffic.start()
            senders.append(traffic)
        watch = subprocess.Popen([KUBECTL, "-n", NAMESPACE, "get", "md", "-w"])
        stack.callback(watch.terminate)
        for name in ROLLOUTS:
            kubectl("-n", NAMESPACE, "patch", "md", name, "--type=merge",
                    "-p", json.dumps({"spec": {"model": {"uri": f"file://{canaries[name]}"}}}))  # fmt: skip
        wait_for(
            "both verdicts",
            lambda: (
                status("fraud-bug").get("phase") == "RolledBack"
                and status("fraud-v2").get("phase") == "Healthy"
                and not status("fraud-v2").get("canaryRevision")
            ),
        )
        time.sleep(2)
        watch.terminate()

        for name in ROLLOUTS:
            say(f"modelramp status {name}")
            print(
                subprocess.run(
                    [MODELRAMP, "status", name, "-n", NAMESPACE], check=True, capture_output=True, text=True
                ).stdout
            )
        say("Events of fraud-bug")
        columns = "custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message"
        selector = "--field-selector=involvedObject.name=fraud-bug"
        print(kubectl("-n", NAMESPACE, "get", "events", selector, "--sort-by=.eventTime", "-o", columns))
        for traffic in senders:
            traffic.stop()
        for name in ROLLOUTS:
            kubectl("-n", NAMESPACE, "delete", "md", name, "--wait=true")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
