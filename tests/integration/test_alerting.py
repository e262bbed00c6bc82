"""Alerts from the event log (contract §11) through a real Alertmanager: failed sign-ins counted
per user fire one alert with that user's label and resolve once the window has passed; an
Alertmanager that was down receives the alert once it is up; amtool lists it; `fleetlog status`
shows it; a bad rule at reload is refused with its key and the reason.

One collector, one agent and two Alertmanagers for the module (the second is down until the
test that starts it); users differ per test so the tests do not see each other's alerts.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import re
import signal
import subprocess
import sys
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.alertmanager import Alertmanager, Webhook
from tests.harness import Cluster, env, free_port, run_cli, search_json, wait_for, write_lines, write_toml

WINDOW = 10          # seconds: long enough for a loaded machine to deliver six lines well inside it
RULE = {"name": "BruteForce", "filters": {"action": "login.failed"}, "group_by": ["user"], "threshold": 5,
        "window": f"{WINDOW}s", "severity": "critical", "summary": "{user} failed {count} sign-ins"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("alerting")
    hook, late_hook = Webhook(), Webhook()
    manager = Alertmanager(tmp / "am-1", hook).start()
    late = Alertmanager(tmp / "am-2", late_hook, port=free_port())    # down until its test starts it
    cluster = Cluster(tmp)
    try:
        collector = cluster.collector(web={"listen": f"127.0.0.1:{free_port()}"}, alerting={
            "alertmanager_urls": [manager.url, late.url], "evaluation_interval": "200ms", "resend_delay": "1s",
            "rules": [RULE]})
        logs = tmp / "logs"
        logs.mkdir()
        cluster.agent("idp-1", [collector], [{"type": "file", "paths": [str(logs / "*.jsonl")], "parser": "json",
                                              "log_type": "security"}])
        yield cluster, collector, logs / "auth.jsonl", manager, hook, late, late_hook
    finally:
        cluster.stop_all()
        late.stop()
        manager.stop()
        hook.close()
        late_hook.close()


def _sign_ins(path: pathlib.Path, user: str, count: int) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    write_lines(path, [json.dumps({"time": now, "level": "warning", "action": "login.failed", "user": user,
                                   "msg": f"sign-in failed for {user}"}) for _ in range(count)])


def _alert_events(collector, action: str, user: str) -> list[dict]:
    return [e for e in search_json(collector, "--action", action) if e["fields"]["labels"].get("user") == user]


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def _status(collector) -> str:
    result = run_cli("--collector", collector.address, "status")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_six_failed_sign_ins_fire_one_alert_with_the_users_label_kept_apart_per_user_and_resolved(setup):
    _cluster, collector, path, manager, hook, _late, _late_hook = setup
    _sign_ins(path, "alice", 6)
    _sign_ins(path, "bob", 4)           # group_by user: bob's four are not added to alice's six
    fired = wait_for(lambda: hook.alerts("firing", alertname="BruteForce", user="alice"), 30, "alice's alert")
    assert len(fired) == 1
    alert = fired[0]
    assert alert["labels"] == {"alertname": "BruteForce", "severity": "critical", "collector": "collector-1",
                               "user": "alice"}
    assert re.fullmatch(r"alice failed [56] sign-ins", alert["annotations"]["summary"])
    # generatorURL: the console's events page with the rule's filters, the group and the window;
    # the API under the same query lists alice's failed sign-ins, and nothing else.
    link = urlsplit(alert["generatorURL"])
    console = f"http://{collector.config['web']['listen']}"
    assert (f"{link.scheme}://{link.netloc}", link.path) == (console, "/events")
    query = parse_qs(link.query)
    assert query["action"] == ["login.failed"] and query["user"] == ["alice"] and query["since"]
    listed = _get_json(f"{console}/api/v1/events?{link.query}")["events"]
    assert [(e["user"], e["action"]) for e in listed] == [("alice", "login.failed")] * 6

    # As an operator sees it: amtool, and `fleetlog status`.
    listed = manager.amtool_query("alertname=BruteForce")
    assert listed.returncode == 0, listed.stderr
    assert [a["labels"]["user"] for a in json.loads(listed.stdout)] == ["alice"]
    assert re.search(r"ALERT BruteForce firing since .*: alice failed [56] sign-ins", _status(collector))
    shown = _get_json(f"{console}/api/v1/status")["alerting"]
    assert shown["state"] == "evaluating"
    assert [(a["labels"]["user"], a["labels"]["alertname"]) for a in shown["alerts"]] == [("alice", "BruteForce")]
    with urllib.request.urlopen(f"{console}/status", timeout=10) as page:
        assert re.search(r"<td>BruteForce</td>.*alice failed [56] sign-ins", page.read().decode(), re.DOTALL)

    # A seventh in the same window: counted (status shows 7), no second alert.
    _sign_ins(path, "alice", 1)
    wait_for(lambda: "alice failed 7 sign-ins (7 events)" in _status(collector), 30, "the seventh counted")
    firing = _alert_events(collector, "alert/firing", "alice")
    assert len(firing) == 1
    assert firing[0]["tier"] == "security" and firing[0]["fields"]["labels"]["user"] == "alice"
    assert firing[0]["fields"]["count"] in (5, 6) and firing[0]["fields"]["threshold"] == 5
    assert len(hook.alerts("firing", alertname="BruteForce", user="alice")) == 1
    assert hook.alerts("firing", user="bob") == [] and _alert_events(collector, "alert/firing", "bob") == []

    # Once the window has passed: resolved, at Alertmanager and in the trail.
    resolved = wait_for(lambda: hook.alerts("resolved", alertname="BruteForce", user="alice"), WINDOW + 30,
                        "alice's alert resolved")
    assert len(resolved) == 1
    events = wait_for(lambda: _alert_events(collector, "alert/resolved", "alice"), 10, "the alert/resolved event")
    assert len(events) == 1 and events[0]["tier"] == "security" and events[0]["fields"]["count"] < 5
    assert "ALERT BruteForce" not in _status(collector)
    assert collector.metric("fleetlog_collector_alerts_firing") == 0
    assert collector.metric("fleetlog_collector_alert_evaluation_seconds_count") > 0


def test_an_alertmanager_down_then_up_receives_the_alert(setup):
    _cluster, collector, path, _manager, hook, late, late_hook = setup
    _sign_ins(path, "carol", 5)
    wait_for(lambda: hook.alerts("firing", user="carol"), 30, "carol's alert at the Alertmanager that is up")
    wait_for(lambda: collector.metric("fleetlog_collector_alert_notifications_failed_total",
                                      {"alertmanager": late.url}) > 0, 30, "failures counted")
    status = _status(collector)
    assert re.search(rf"alertmanager {re.escape(late.url)}: failing since .*", status), status
    late.start()
    received = wait_for(lambda: late_hook.alerts("firing", alertname="BruteForce", user="carol"), 30,
                        "carol's alert at the Alertmanager that came up")
    assert len(received) == 1
    wait_for(lambda: f"alertmanager {late.url}: ok" in _status(collector), 30, "status ok again")
    assert len(_alert_events(collector, "alert/firing", "carol")) == 1


def test_a_bad_rule_at_reload_is_refused_with_its_key_and_the_rules_kept(setup):
    cluster, collector, path, _manager, hook, _late, _late_hook = setup
    good = dict(collector.config["alerting"])
    cluster.rewrite(collector, alerting={**good, "rules": [{**RULE, "summary": "{usr} failed {count} times"}]})
    try:
        collector.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in collector.log(), 20, "the reload refused")
        assert re.search(r"alerting\.rules\[0\]\.summary: \{usr\} is neither count, name nor a group_by field",
                         collector.log()), collector.log()
    finally:
        cluster.rewrite(collector, alerting=good)
    # The running rule still counts and fires.
    _sign_ins(path, "dave", 5)
    wait_for(lambda: hook.alerts("firing", user="dave"), 30, "dave's alert under the kept rule")
    # A good reload that adds a rule keeps the unchanged one's alert and counts with the new one.
    errors = {"name": "LockedOut", "filters": {"action": "account.locked"}, "threshold": 1, "window": "1m",
              "severity": "warning", "summary": "{count} accounts locked"}
    cluster.rewrite(collector, alerting={**good, "rules": [errors, RULE]})
    collector.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "reloaded" in collector.log(), 20, "the reload applied")
    write_lines(path, [json.dumps({"level": "notice", "action": "account.locked", "user": "erin", "msg": "locked"})])
    wait_for(lambda: hook.alerts("firing", alertname="LockedOut"), 30, "the added rule's alert")
    # (dave's alert may have resolved meanwhile as its window passed, but not by the reload)
    assert [e for e in _alert_events(collector, "alert/resolved", "dave") if "changed or removed" in e["message"]] == []
    assert collector.process.poll() is None


@pytest.mark.parametrize("check", [False, True])
def test_a_bad_rule_stops_the_start_and_check_config_with_one_line(tmp_path, check):
    path = write_toml(tmp_path / "collector.toml", {
        "node_name": "c1", "listen": f"127.0.0.1:{free_port()}", "data_dir": str(tmp_path / "data"),
        "alerting": {"alertmanager_urls": ["http://127.0.0.1:9093"],
                     "rules": [{**RULE, "filters": {"min_level": "loud"}}]}})
    result = subprocess.run([sys.executable, "-m", "fleetlog.collector", "--config", str(path),
                             *(["--check-config"] if check else [])], capture_output=True, text=True, timeout=60,
                            env=env(), check=False)
    assert result.returncode == 2
    assert result.stderr == ("fleetlog-collector: collector.toml: alerting.rules[0].filters.min_level: --min-level: "
                             "unknown level 'loud' (expected one of emergency, alert, critical, error, warning, "
                             "notice, info, debug)\n")
