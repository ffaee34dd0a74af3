"""The monitoring files shipped with callroute: the Prometheus alert rules pass
`promtool check rules` and their unit tests (`promtool test rules`), and every
expression of the rules and of the Grafana dashboard names only series we export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from agi import metrics
from tests.harness.metrics import promtool, samples

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "docker" / "prometheus" / "callroute-rules.yml"
RULE_TESTS = RULES.with_name("callroute-rules.test.yml")
DASHBOARD = ROOT / "docker" / "grafana" / "callroute-dashboard.json"
# What is left of a PromQL expression once strings, label matchers, ranges, grouping
# clauses, functions and Grafana variables are taken out: series names, operators,
# numbers.
_STRIP = [r'"(?:[^"\\]|\\.)*"', r"\{[^}]*\}", r"\[[^\]]*\]", r"\b(?:by|without)\s*\([^)]*\)",
          r"\$\w+", r"\b[a-z_]+\s*\("]
_NAME = re.compile(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b")


def exported() -> set[str]:
    """The sample names both servers expose (histogram and info samples included)."""
    names = set()
    for server in ("fastagi", "web"):
        recorder = metrics.Prometheus(server)
        if server == "web":
            recorder.request("/healthz", "GET", 200)  # its series exist once one came
        names |= {name for name, _ in samples(recorder.render().decode())}
    return names


def series_in(expr: str) -> set[str]:
    for pattern in _STRIP:
        expr = re.sub(pattern, " ", expr)
    return {name for name in _NAME.findall(expr) if not name.isdigit()}


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


def test_promtool_accepts_the_rules() -> None:
    check = promtool("check", "rules", str(RULES))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 5 rules found" in check.stdout


def test_the_alerts_fire_on_the_right_series() -> None:
    """callroute-rules.test.yml: each alert fires on the instance in trouble, at the
    right time, and not on its healthy neighbour."""
    run = promtool("test", "rules", str(RULE_TESTS))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_every_expression_names_only_series_we_export(source: str) -> None:
    expressions = rule_expressions() if source == "rules" else dashboard_expressions()
    assert expressions
    names = exported()
    unknown = {name: expr for expr in expressions for name in series_in(expr)
               if name not in names}
    assert not unknown, unknown
    assert all(series_in(expr) for expr in expressions)


def test_the_series_check_catches_a_name_we_do_not_export() -> None:
    assert series_in('sum by (status) (rate(callroute_decision_total{a="b"}[5m])) / '
                     'callroute_decisions_total > 0.05') == {
        "callroute_decision_total", "callroute_decisions_total"}
    assert "callroute_decision_total" not in exported()
