"""docs/monitoring/: the Prometheus alert rules pass promtool's check and their unit tests, and the
rules and the Grafana dashboard only name metrics that GET /metrics exports.

promtool comes with Debian's ``prometheus`` package (``.ci/run`` installs it); without it these
tests are skipped with the reason, except in CI (CI=true), where that fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from backend.db.pool import Pool
from backend.scheduling import repository as scheduling

MONITORING = Path(__file__).resolve().parents[2] / "docs" / "monitoring"
RULES = MONITORING / "alerts.yml"
RULE_TESTS = MONITORING / "alerts.test.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
METRIC_NAME = re.compile(r"\baltar_[a-z0-9_]+")
QUOTED = re.compile(r'"[^"]*"')  # label values, e.g. job="altar_trader_hub", are not metric names
SAMPLE_SUFFIXES = ("", "_total", "_bucket", "_sum", "_count")


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = "promtool is not installed (Debian: apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: required in CI")
        pytest.skip(message)
    return path


def _promtool(promtool: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *arguments], cwd=MONITORING, capture_output=True, text=True, timeout=120, check=False
    )


def test_alert_rules_pass_promtools_check(promtool: str) -> None:
    result = _promtool(promtool, "check", "rules", RULES.name)

    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_their_unit_tests(promtool: str) -> None:
    result = _promtool(promtool, "test", "rules", RULE_TESTS.name)

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_rule_has_unit_tests() -> None:
    rules = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    tested = {
        check["alertname"]
        for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for check in case["alert_rule_test"]
        if check.get("exp_alerts")
    }

    assert rules == tested


def _dashboard_expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_the_dashboard_imports_with_a_prometheus_data_source_input() -> None:
    dashboard = json.loads(DASHBOARD.read_text())

    assert [item["pluginId"] for item in dashboard["__inputs"]] == ["prometheus"]
    assert all(panel["datasource"]["uid"] == "${DS_PROMETHEUS}" for panel in dashboard["panels"] if "targets" in panel)
    assert len(_dashboard_expressions(dashboard)) >= 20


async def _exported_names(client: AsyncTestClient[Litestar], headers: dict[str, str]) -> set[str]:
    await client.get("/metrics", headers=headers)  # the HTTP metrics exist once a request was measured
    text = (await client.get("/metrics", headers=headers)).text
    return {family.name + suffix for family in text_string_to_metric_families(text) for suffix in SAMPLE_SUFFIXES}


async def test_rules_and_dashboard_name_only_exported_metrics(
    client: AsyncTestClient[Litestar], viewer_headers: dict[str, str], pool: Pool
) -> None:
    await scheduling.beat(pool, scheduler_id="web.1", backend="inprocess", lease_seconds=30)
    exported = await _exported_names(client, viewer_headers)
    expressions = [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    expressions += _dashboard_expressions(json.loads(DASHBOARD.read_text()))

    named = {name for expression in expressions for name in METRIC_NAME.findall(QUOTED.sub("", expression))}

    assert named - exported == set()
    assert len(named) > 20
