"""The shipped Grafana dashboard and PrometheusRule against a real Prometheus, scraping a real
operator and real `modelramp serve` processes that have just done a rollout.

The unit tests check that the dashboard and the rules name metrics of the contract
(test_chart_dashboard.py) and that each alert fires on hand-written series (test_chart_alerts.py,
promtool). Here the series are the real ones: a canary with an analysis promoted under traffic, a
monitor judging the stable model's inputs against their reference, each server exporting its input
histograms. Then every panel query of the dashboard, with its variables filled in as Grafana would,
must return data, and the chart's rules, loaded by Prometheus through `rule_files`, must all be
healthy (evaluated without error). Not covered: the "Registry lineage" panel, which needs a model
from the MLflow registry (tests/cluster/test_operator_registry.py covers that metric).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.chart import CHART, one, render
from support.cluster import Kube
from support.operator import ModelDeployments, OperatorProcess, canary_md, healthy, wait_for, with_model
from support.prometheus import PrometheusServer, Target
from support.serving import ServingProcess
from support.traffic import WeightedTraffic

from modelramp.serving.examples import save_model

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.e2e, pytest.mark.timeout(900)]

NAME = "dash"
DASHBOARD = CHART / "files" / "modelramp-dashboard.json"
# The scrape job of the chart's `<release>-metrics` Service, which ModelRampOperatorDown selects.
OPERATOR_JOB = "modelramp-metrics"
# Panels whose series only a model from the MLflow registry produces.
NEEDS_REGISTRY = {"Registry lineage"}
# Standard-normal features (what the load generator sends) split into five equal buckets.
NORMAL_QUINTILES = [-0.8416, -0.2533, 0.2533, 0.8416]


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside rows included."""
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in panels(dashboard["panels"])
        for target in panel.get("targets", [])
        if target.get("expr") and panel["title"] not in NEEDS_REGISTRY
    ]


def filled(expr: str, namespace: str) -> str:
    """The query Grafana sends with the variables set to this rollout."""
    values = {"namespace": namespace, "modeldeployment": NAME, "__rate_interval": "1m"}
    return re.sub(r"\$(\w+)", lambda m: values[m.group(1)], expr)


def api(prometheus: PrometheusServer, path: str, **params: str) -> Any:
    url = f"{prometheus.url}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def rules_file(folder: Path) -> Path:
    rule = one(render({"prometheusRule": {"enabled": True}}), "PrometheusRule")
    path = folder / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return path


def input_reference(folder: Path) -> Path:
    features = [
        {"name": f"f{i}", "bounds": NORMAL_QUINTILES, "counts": [2000.0] * (len(NORMAL_QUINTILES) + 1)}
        for i in range(4)
    ]
    path = folder / "input_reference.json"
    path.write_text(json.dumps({"features": features}))
    return path


def rollout(canary: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    body = canary_md([{"setWeight": 50}, {"analysis": {}}], name=NAME, replicas=2)
    body["spec"]["model"]["uri"] = f"file:///models/{NAME}-stable.pt"
    body["spec"]["analysis"] = {
        "interval": "10s",
        "metrics": [{"name": "errors", "builtin": "error-rate", "threshold": 0.05}],
    }
    body["spec"]["monitor"] = {
        "metrics": [{"name": "inputs", "builtin": "input-drift", "threshold": 0.25, "interval": "10s"}]
    }
    return body, with_model(body, f"file://{canary}")


def test_every_panel_has_data_and_every_rule_evaluates(
    kube: Kube, namespace: str, mds: ModelDeployments, tmp_path: Path
) -> None:
    model = save_model("good", tmp_path)
    reference = input_reference(tmp_path)
    servers = {
        track: ServingProcess(model, tmp_path / track, extra_args=["--input-reference", str(reference)])
        for track in ("stable", "canary")
    }
    operator = OperatorProcess(kube, [namespace], tmp_path / "operator.log")
    with contextlib.ExitStack() as stack:
        for server in servers.values():
            stack.enter_context(server)
        targets = [
            Target(
                f"127.0.0.1:{server.port}", {"namespace": namespace, "modeldeployment": NAME, "track": track}
            )
            for track, server in servers.items()
        ]
        job = {
            "job_name": OPERATOR_JOB,
            "static_configs": [{"targets": [f"127.0.0.1:{operator.metrics_port}"]}],
        }
        prometheus = stack.enter_context(
            PrometheusServer(
                tmp_path / "prometheus", targets, scrape_configs=[job], rule_files=[rules_file(tmp_path)]
            )
        )
        operator.extra_args.append(f"--prometheus-url={prometheus.url}")
        operator.start()
        stack.callback(operator.stop)
        stack.callback(mds.strip_finalizers)
        stack.callback(mds.delete_all)
        first, second = rollout(model)
        mds.apply(first)
        healthy(mds, NAME, uri=first["spec"]["model"]["uri"])
        traffic = WeightedTraffic(
            servers["stable"].url,
            servers["canary"].url,
            weight=lambda: int(mds.status(NAME).get("canaryWeight", 0)),
            rate=20,
            max_seconds=600,
        )
        traffic.start()
        stack.callback(traffic.stop)
        mds.apply(second)
        promoted = mds.wait_status(
            NAME,
            "promoted",
            lambda s: (
                s.get("phase") == "Healthy" and (s.get("stableModel") or {}).get("uri") == f"file://{model}"
            ),
            timeout=400,
        )
        assert [run["phase"] for run in promoted["analysisRuns"] if run["kind"] == "Step"] == ["Successful"]
        wait_for("the monitor's verdict", lambda: "modelramp_input_drifted{" in operator.metrics(), 300, 2)
        time.sleep(5)  # a scrape and a rule evaluation after the last verdict

        empty = []
        for title, expr in panel_queries():
            query = filled(expr, namespace)
            if not api(prometheus, "query", query=query)["result"]:
                empty.append((title, query))
        assert not empty, f"dashboard panels without data: {empty}"
        for variable in ("modelramp_requests_total", f'modelramp_requests_total{{namespace=~"{namespace}"}}'):
            assert api(prometheus, "series", **{"match[]": variable}), f"no values for {variable}"

        groups = api(prometheus, "rules")["groups"]
        loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
        shipped = {
            r["alert"] for g in yaml.safe_load(rules_file(tmp_path).read_text())["groups"] for r in g["rules"]
        }
        assert set(loaded) == shipped, (
            f"rules Prometheus loaded: {sorted(loaded)}, shipped: {sorted(shipped)}"
        )
        unhealthy = {name: rule.get("lastError") for name, rule in loaded.items() if rule["health"] != "ok"}
        assert not unhealthy, unhealthy
        for rule in loaded.values():
            api(prometheus, "query", query=rule["query"])  # raises on an evaluation error
        # ModelRampOperatorDown's selector finds this operator's scrape job: it stays quiet.
        assert loaded["ModelRampOperatorDown"]["state"] == "inactive"
        assert api(prometheus, "query", query=f'up{{job="{OPERATOR_JOB}"}} == 1')["result"]
