"""The shipped alert rules (deploy/prometheus/fleetlog-alerts.yml) through Prometheus's own
promtool: they load, and their unit tests (deploy/prometheus/tests/) pass. Beside that, what
promtool does not check: every alert tells the operator what to do, every alert has a unit test
where it fires and one where a series that should not trigger it stays quiet, and the README's
table lists every alert."""

from __future__ import annotations

import pathlib
import re
import subprocess

import yaml

from tests.promql import metric_names

ROOT = pathlib.Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "fleetlog-alerts.yml"
RULE_TESTS = sorted((ROOT / "deploy" / "prometheus" / "tests").glob("*.yml"))


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120, check=False)


def _alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def _labels(series: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', series))


def test_promtool_accepts_the_rules_and_their_unit_tests_pass():
    check = _promtool("check", "rules", str(RULES))
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in check.stdout
    assert RULE_TESTS
    run = _promtool("test", "rules", *map(str, RULE_TESTS))
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_every_alert_says_what_to_do_and_has_a_severity():
    alerts = _alerts()
    assert len({a["alert"] for a in alerts}) == len(alerts) == 20
    for alert in alerts:
        assert alert["alert"].startswith("Fleetlog")
        assert alert["labels"]["severity"] in ("warning", "critical"), alert["alert"]
        assert set(alert["annotations"]) == {"summary", "description"}, alert["alert"]
        assert len(alert["annotations"]["description"]) > 150, alert["alert"]
        assert metric_names(alert["expr"]), alert["alert"]


def test_every_alert_is_tested_firing_and_quiet():
    """For each alert, a test case where it fires, in a group that also feeds it at least one
    series (another instance, host, reason...) that must not appear among the firing alerts."""
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            series = [_labels(s["series"]) for s in group["input_series"]]
            for case in group.get("alert_rule_test", []):
                expected = [e["exp_labels"] for e in case["exp_alerts"]]
                if not expected:
                    continue
                fired.add(case["alertname"])
                keys = {k for labels in expected for k in labels} - {"severity"}
                shapes = {frozenset((k, str(v)) for k, v in labels.items() if k in keys) for labels in expected}
                if any(frozenset((k, v) for k, v in s.items() if k in keys) not in shapes for s in series):
                    quiet.add(case["alertname"])
    names = {a["alert"] for a in _alerts()}
    assert fired == names
    assert quiet == names


def test_the_readme_lists_every_alert():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Monitoring", 1)[1].split("\n## ", 1)[0]
    for alert in _alerts():
        assert f"| `{alert['alert']}` |" in section, alert["alert"]
