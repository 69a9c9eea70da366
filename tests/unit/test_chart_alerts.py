"""The chart's PrometheusRule, evaluated by Prometheus' own rule engine (`promtool test rules`):
each alert fires on the series the operator exports, and stays quiet when it should."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.chart import one, render
from support.devtools import built_tool

pytestmark = pytest.mark.prometheus

OPERATOR = 'namespace="ml",name="fraud",instance="10.0.0.1:9191",pod="modelramp-0"'


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = one(render({"prometheusRule": {"enabled": True}}), "PrometheusRule")[
        "spec"
    ]["groups"]
    return groups


def promtool_test(tmp_path: Path, series: list[dict[str, str]], alerts: list[dict[str, Any]]) -> None:
    promtool = built_tool("promtool")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups()}))
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": alerts}],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    result = subprocess.run(
        [str(promtool), "test", "rules", "test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def annotations(alert: str, **values: str) -> dict[str, str]:
    """The alert's annotations as Prometheus renders them: `$labels.x` and `$value` filled in."""
    rule = next(r for g in rule_groups() for r in g["rules"] if r.get("alert") == alert)
    rendered = {}
    for key, template in rule["annotations"].items():
        text = template
        for name, value in values.items():
            text = text.replace(f"{{{{ ${name} }}}}", value).replace(f"{{{{ $labels.{name} }}}}", value)
        assert "{{" not in text, f"{alert}.{key}: a template this test does not fill: {text}"
        rendered[key] = " ".join(text.split())
    return rendered


def test_input_drift_alerts_while_the_monitor_says_drifted(tmp_path: Path) -> None:
    fired = {
        "exp_labels": {"namespace": "ml", "name": "fraud", "severity": "warning"},
        "exp_annotations": annotations("ModelRampInputDrifted", namespace="ml", name="fraud"),
    }
    assert "ml/fraud" in fired["exp_annotations"]["summary"]
    assert "modelramp status fraud" in fired["exp_annotations"]["description"]
    promtool_test(
        tmp_path,
        [{"series": f"modelramp_input_drifted{{{OPERATOR}}}", "values": "0 0 1 1 0"}],
        [
            {"eval_time": "1m", "alertname": "ModelRampInputDrifted", "exp_alerts": []},
            {"eval_time": "3m", "alertname": "ModelRampInputDrifted", "exp_alerts": [fired]},
            {"eval_time": "4m", "alertname": "ModelRampInputDrifted", "exp_alerts": []},
        ],
    )


def test_rollback_and_stuck_pause_alerts_fire_on_the_phase_gauge(tmp_path: Path) -> None:
    rolled_back = {
        "exp_labels": {"phase": "RolledBack", "severity": "warning"},
        "exp_annotations": annotations("ModelRampRollbackHappened", value="1"),
    }
    paused = {
        "exp_labels": {"phase": "Paused", "severity": "warning"},
        "exp_annotations": annotations("ModelRampRolloutStuckPaused", value="1"),
    }
    promtool_test(
        tmp_path,
        [
            {"series": 'modelramp_rollouts{phase="RolledBack",instance="a",pod="p"}', "values": "0 1 1"},
            {"series": 'modelramp_rollouts{phase="Paused",instance="a",pod="p"}', "values": "1+0x200"},
        ],
        [
            {"eval_time": "0m", "alertname": "ModelRampRollbackHappened", "exp_alerts": []},
            {"eval_time": "2m", "alertname": "ModelRampRollbackHappened", "exp_alerts": [rolled_back]},
            {"eval_time": "10m", "alertname": "ModelRampRolloutStuckPaused", "exp_alerts": []},
            {"eval_time": "3h", "alertname": "ModelRampRolloutStuckPaused", "exp_alerts": [paused]},
        ],
    )
