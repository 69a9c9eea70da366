"""The Grafana dashboard and the alert rules only query metrics that exist.

The contract: the serving metrics in docs/architecture.md and the operator metrics in
docs/install.md, both as bullets "- `name{labels}` type" (labels optional). A renamed metric fails
here instead of leaving an empty panel or an alert that can never fire.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from support.chart import CHART, one, render
from support.devtools import REPO

CONTRACT_DOCS = [REPO / "docs" / "architecture.md", REPO / "docs" / "install.md"]
# Series Prometheus makes itself rather than scraping them.
PROMETHEUS_SERIES = {"up"}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
PROMQL_WORDS = {
    "by",
    "without",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
}


def contract() -> dict[str, str]:
    """Metric name -> type (counter, gauge, histogram)."""
    bullet = re.compile(r"^- `(modelramp_\w+)(?:\{[^}]*\})?` (counter|gauge|histogram)\b", re.M)
    found = {name: kind for doc in CONTRACT_DOCS for name, kind in bullet.findall(doc.read_text())}
    assert found, f"no metric bullets found in {CONTRACT_DOCS}"
    return found


def series_names(metrics: dict[str, str]) -> set[str]:
    """Every series name a query may use: histograms expose _bucket, _sum and _count."""
    names = set(PROMETHEUS_SERIES)
    for name, kind in metrics.items():
        names |= {name + suffix for suffix in HISTOGRAM_SERIES} if kind == "histogram" else {name}
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that aren't functions, keywords,
    label names (inside {} or by/without/on lists), string contents or range durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    return {
        m.group(1)
        for m in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text)
        if not m.group(2) and m.group(1).lower() not in PROMQL_WORDS
    }


def dashboard_queries(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if node.get("type") == "textbox":
            # A text box's query is the value a user types (an address), not PromQL.
            return
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            elif key in {"query", "definition"} and isinstance(value, str):
                yield re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", value)
            else:
                yield from dashboard_queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_queries(item)


def test_the_query_parser_finds_metrics_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (track, le) (rate(x_seconds_bucket{code=~"5..", a="b c"}'
        "[$__rate_interval]))) / on (track) group_left (model) max without (pod) (y_total offset 5m)"
    )
    assert metric_names(expr) == {"x_seconds_bucket", "y_total"}


DASHBOARD = json.loads((CHART / "files" / "modelramp-dashboard.json").read_text())
QUERIES = [q for q in dashboard_queries(DASHBOARD) if q != "prometheus"]


def test_dashboard_has_the_panels_users_need() -> None:
    titles = {p["title"] for p in DASHBOARD["panels"]}
    assert {"Canary weight", "Analysis verdicts", "Error ratio (5xx)", "Request latency p99"} <= titles
    assert len({p["id"] for p in DASHBOARD["panels"]}) == len(DASHBOARD["panels"])


@pytest.mark.parametrize("query", QUERIES)
def test_dashboard_queries_only_contract_metrics(query: str) -> None:
    used = metric_names(query)
    assert used, f"no metric in {query!r}"
    unknown = used - series_names(contract())
    assert not unknown, f"not in the metrics contract: {sorted(unknown)} in {query!r}"


def test_every_operator_and_serving_metric_is_on_the_dashboard() -> None:
    used = {name for q in QUERIES for name in metric_names(q)}
    unshown = {m for m in contract() if not used & ({m} | {m + s for s in HISTOGRAM_SERIES})}
    assert not unshown, f"metrics no panel shows: {sorted(unshown)}"


def test_alert_rules_only_query_contract_metrics() -> None:
    rules = one(render({"prometheusRule": {"enabled": True}}), "PrometheusRule")
    for group in rules["spec"]["groups"]:
        for rule in group["rules"]:
            unknown = metric_names(rule["expr"]) - series_names(contract())
            assert not unknown, f"{rule['alert']}: not in the metrics contract: {sorted(unknown)}"


def test_lineage_run_ids_link_to_the_mlflow_ui_the_user_names() -> None:
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["mlflow_url"]["type"] == "textbox"
    panel = next(p for p in DASHBOARD["panels"] if p["title"] == "Registry lineage")
    [target] = panel["targets"]
    assert re.search(r"max by \([^)]*\brun_id\b[^)]*\) \(modelramp_rollout_model_info\{", target["expr"])
    links = [
        link
        for override in panel["fieldConfig"]["overrides"]
        if override["matcher"] == {"id": "byName", "options": "run_id"}
        for prop in override["properties"]
        if prop["id"] == "links"
        for link in prop["value"]
    ]
    # MLflow's UI opens a run by its id alone (its direct run route), whatever its experiment.
    assert [link["url"] for link in links] == ["${mlflow_url}/#/runs/${__value.raw}"]
