"""Alert rules managed live (issue 31's last line, contract §9/§11): `/api/v1/settings/alerts`
against a real collector with its console, real agents and a real Alertmanager — every role, a bad
rule refused with the rule parser's words, collector.toml's rules read-only, the audit events, a
rule made through the API firing on matching events with no restart, the CLI's `alert` verbs, and
the settings page's Alerts tab in a real browser (Debian's headless Chromium driven by Playwright),
which writes var/screenshots/settings-alerts.png (`make docs-screenshots` copies it into docs/).

One collector (tokens of every role, agents web-1, web-2 and pay-1) and one Alertmanager for the
module; each test uses its own rule names and users."""

from __future__ import annotations

import datetime as dt
import json
import pathlib

import pytest
from playwright.sync_api import Page

from tests.alertmanager import Alertmanager, Webhook
from tests.harness import Cluster, run_cli, search_json, wait_for, write_lines
from tests.web_console import SCREENSHOTS, XSS_IMG, Console, Http, start_console

S = "/api/v1/settings"
SCREENSHOT_NAMES = ("settings-alerts.png",)
FILE_RULE = {"name": "FromFile", "filters": {"action": "never.seen"}, "threshold": 1000, "window": "1m"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("settings-alerts")
    hook = Webhook()
    manager = Alertmanager(folder / "am", hook).start()
    cluster = Cluster(folder)
    try:
        console = start_console(cluster, folder, alerting={
            "alertmanager_urls": [manager.url], "evaluation_interval": "200ms", "resend_delay": "1s",
            "rules": [FILE_RULE]})
        yield console, hook
    finally:
        cluster.stop_all()
        manager.stop()
        hook.close()


def api(console: Console, who: str) -> Http:
    return Http(console.base, token=console.tokens[who])


def put_json(client: Http, path: str, data: object):
    return client.request("PUT", path, json.dumps(data).encode(), {"Content-Type": "application/json"})


def audit(console: Console, action: str) -> list[dict]:
    return search_json(console.collector, "--token-file", console.token_files["root"], "--action", action,
                       "--namespace", "_collector")


def test_alert_rule_add_get_edit_remove_as_admin_audited(setup):
    console, _hook = setup
    root = api(console, "root")
    body = {"name": "Slow", "filters": {"level": "error"}, "group_by": ["host"], "threshold": 50,
            "window": "5m", "for": "1m", "severity": "critical", "summary": "{host}: {count} errors"}
    made = root.post_json(f"{S}/alerts", body)
    assert made.status == 201, made.text
    entry = made.json()
    assert {k: entry[k] for k in body} == body
    assert (entry["source"], entry["read_only"], entry["firing"]) == ("store", False, 0)
    assert (entry["changed"]["user"], entry["changed"]["via"]) == ("root", "api")
    listed = {a["name"]: a for a in root.get(f"{S}/alerts").json()["alerts"]}
    assert set(listed) == {"FromFile", "Slow"}
    assert (listed["FromFile"]["source"], listed["FromFile"]["read_only"]) == ("collector.toml", True)
    changed = put_json(root, f"{S}/alerts/Slow", {**entry, "threshold": 80})
    assert changed.status == 200 and changed.json()["threshold"] == 80
    assert root.get(f"{S}/alerts/Slow").json()["threshold"] == 80
    update = audit(console, "settings/alerts.update")[-1]
    assert update["user"] == "root" and update["tier"] == "security" and update["namespace"] == "_collector"
    assert set(update["fields"]) == {"via", "kind", "name", "before", "after", "peer_ip"}
    assert (update["fields"]["kind"], update["fields"]["name"], update["fields"]["via"]) == ("alerts", "Slow", "api")
    assert (update["fields"]["before"]["threshold"], update["fields"]["after"]["threshold"]) == (50, 80)
    assert update["message"] == "alerts 'Slow' updated by root via api"
    created = audit(console, "settings/alerts.create")[-1]["fields"]
    assert created["before"] is None and created["after"]["summary"] == body["summary"]
    gone = root.request("DELETE", f"{S}/alerts/Slow")
    assert gone.status == 200 and gone.json() == {"deleted": "Slow"}
    assert root.get(f"{S}/alerts/Slow").status == 404
    deleted = audit(console, "settings/alerts.delete")[-1]["fields"]
    assert deleted["before"]["threshold"] == 80 and deleted["after"] is None


def test_a_bad_rule_is_refused_with_the_rule_parsers_words_and_nothing_changes(setup):
    console, _hook = setup
    root = api(console, "root")
    cases = [
        ({"threshold": 0, "window": "1m"}, "alerts.Bad.threshold: must be at least 1"),
        ({"threshold": 1, "window": "2d"}, "alerts.Bad.window: must be between 1s and 1d"),
        ({"threshold": 1, "window": "1m", "filters": {"since": "1h"}},
         "alerts.Bad.filters.since: a rule counts events within its window; time filters are not accepted"),
        ({"threshold": 1, "window": "1m", "group_by": ["nope"]}, "alerts.Bad.group_by[0]: unknown field 'nope'"),
        ({"threshold": "many", "window": "1m"}, "alerts.Bad.threshold: expected a whole number"),
        ({"threshold": 1, "window": "1m", "summary": "{user}"}, "alerts.Bad.summary: {user} is neither"),
    ]
    for body, message in cases:
        reply = root.post_json(f"{S}/alerts", {"name": "Bad", **body})
        assert reply.status == 400, (body, reply.text)
        assert reply.json()["error"].startswith(message), (body, reply.json())
    assert root.post_json(f"{S}/alerts", {"name": "bad name!", "threshold": 1, "window": "1m"}).status == 400
    # What a hostile caller may send: one-line 400s, nothing stored.
    hostile = [({"name": "H", "threshold": 1, "window": "1m", "filters": "action=x"}, "alerts.H.filters: expected a table"),
               ({"name": "H", "threshold": 1, "window": "1m", "filters": {"message_regex": "("}}, "alerts.H.filters."),
               ({"name": "H", "threshold": 1, "window": "1m", "group_by": ["user"] * 5000}, "alerts.H.group_by[1]"),
               ({"name": "H", "threshold": 1, "window": "1m", "nonsense": 1}, "alerts.H"),
               ({"name": "x" * 5000, "threshold": 1, "window": "1m"}, "alerts: name: ")]
    for body, start in hostile:
        reply = root.post_json(f"{S}/alerts", body)
        assert reply.status == 400 and reply.json()["error"].startswith(start), (start, reply.text[:300])
        assert "\n" not in reply.json()["error"] and len(reply.json()["error"]) < 1000
    assert root.request("POST", f"{S}/alerts", b"[1, 2]", {"Content-Type": "application/json"}).status == 400
    long_name = put_json(root, f"{S}/alerts/{'y' * 5000}", {"threshold": 1, "window": "1m"})
    assert long_name.status == 400 and len(long_name.json()["error"]) < 300, long_name.text[:300]
    assert root.get(f"{S}/alerts/Bad").status == 404
    assert [a["name"] for a in root.get(f"{S}/alerts").json()["alerts"]] == ["FromFile"]


def test_collector_toml_rules_are_read_only(setup):
    console, _hook = setup
    root = api(console, "root")
    assert put_json(root, f"{S}/alerts/FromFile", {"threshold": 1, "window": "1m"}).status == 409
    assert root.post_json(f"{S}/alerts", {"name": "FromFile", "threshold": 1, "window": "1m"}).status == 409
    gone = root.request("DELETE", f"{S}/alerts/FromFile")
    assert gone.status == 409 and "collector.toml" in gone.json()["error"]
    assert root.get(f"{S}/alerts/FromFile").json()["threshold"] == 1000


def test_roles_auditors_read_agents_nothing_namespace_admin_its_namespaces_only(setup):
    console, _hook = setup
    rule = {"name": "PayErrors", "filters": {"namespace": "payments", "level": "error"}, "threshold": 100,
            "window": "1m"}
    for who in ("audrey", "payaud", "web-1"):
        assert api(console, who).post_json(f"{S}/alerts", rule).status == 403, who
    assert api(console, "web-1").get(f"{S}/alerts").status == 403
    assert [a["name"] for a in api(console, "audrey").get(f"{S}/alerts").json()["alerts"]] == ["FromFile"]
    payadm = api(console, "payadm")
    wide = payadm.post_json(f"{S}/alerts", {**rule, "name": "Everywhere", "filters": {"level": "error"}})
    assert wide.status == 403 and "namespace filter names nothing but its namespaces" in wide.json()["error"]
    made = payadm.post_json(f"{S}/alerts", rule)
    assert made.status == 201, made.text
    assert [a["name"] for a in payadm.get(f"{S}/alerts").json()["alerts"]] == ["PayErrors"]     # not FromFile
    assert [a["name"] for a in api(console, "payaud").get(f"{S}/alerts").json()["alerts"]] == ["PayErrors"]
    assert payadm.get(f"{S}/alerts/FromFile").status == 404
    assert api(console, "audrey").request("DELETE", f"{S}/alerts/PayErrors").status == 403
    assert payadm.request("DELETE", f"{S}/alerts/PayErrors").status == 200
    denials = search_json(console.collector, "--token-file", console.token_files["root"], "--action", "audit/denied",
                          "--namespace", "_collector", "--user", "payadm")
    assert any("POST /api/v1/settings/alerts" in e["message"] for e in denials)


def test_a_rule_made_through_the_api_fires_on_matching_events_without_restart(setup):
    console, hook = setup
    rule = {"name": "EveDeclined", "filters": {"namespace": "payments", "user": "eve"}, "group_by": ["user"],
            "threshold": 3, "window": "1m", "severity": "critical", "summary": "{user}: {count} declined"}
    assert api(console, "root").post_json(f"{S}/alerts", rule).status == 201
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    write_lines(console.logs["pay-1"], [f"{now} ERROR req=pay-{i} user=eve card declined" for i in range(4)])
    fired = wait_for(lambda: hook.alerts("firing", alertname="EveDeclined"), 30, "the API-made rule's alert")
    assert len(fired) == 1
    assert fired[0]["labels"] == {"alertname": "EveDeclined", "severity": "critical", "collector": "collector-1",
                                  "user": "eve"}
    shown = wait_for(lambda: api(console, "root").get(f"{S}/alerts/EveDeclined").json()["firing"], 10, "firing shown")
    assert shown == 1


def test_the_cli_alert_verbs(setup):
    console, _hook = setup

    def cli(*args: str):
        return run_cli("--collector", console.collector.address, "--token-file", console.token_files["root"], *args)

    added = cli("alert", "add", "CliRule", "threshold=5", "window=10m", 'filters={action="login.failed"}')
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "alert rule CliRule added"
    edited = cli("alert", "edit", "CliRule", "threshold=7", "severity=critical")
    assert edited.returncode == 0, edited.stderr
    listed = json.loads(cli("alert", "list", "--format", "json").stdout)["alerts"]
    mine = next(a for a in listed if a["name"] == "CliRule")
    assert (mine["threshold"], mine["severity"], mine["window"], mine["source"]) == (7, "critical", "10m", "store")
    assert mine["changed"]["via"] == "cli"
    table = cli("alert", "list").stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "FILTERS", "GROUP_BY"]
    assert any(line.startswith("CliRule ") and "action=login.failed" in line for line in table)
    bad = cli("alert", "add", "CliBad", "threshold=0", "window=1m")
    assert bad.returncode != 0 and bad.stderr.strip().endswith("alerts.CliBad.threshold: must be at least 1")
    assert len(bad.stderr.strip().splitlines()) == 1
    assert cli("alert", "rm", "CliRule").stdout.strip() == "alert rule CliRule removed"
    assert "CliRule" not in cli("alert", "list").stdout


# -- the Alerts tab ------------------------------------------------------------------------------

def open_alerts_tab(page: Page, console: Console, who: str) -> None:
    page.goto(f"{console.base}/settings#alerts")
    assert "/signin" in page.url
    page.fill("#token", console.tokens[who])
    page.click("#signin")
    page.wait_for_url("**/settings*")
    page.click("#tab-alerts")
    page.wait_for_selector("#panel-alerts tbody tr:not(:has-text('Loading'))")


def test_add_a_rule_on_the_alerts_tab_see_it_listed_and_a_bad_threshold_shows_the_apis_message(setup, page):
    console, _hook = setup
    open_alerts_tab(page, console, "root")
    page.click("#alert-add")
    page.fill("#al-name", "PageRule")
    page.fill("#al-threshold", "0")
    page.fill("#al-window", "10m")
    page.fill("#al-filters", "action=login.failed\nnamespace=default")
    page.fill("#al-group-by", "user")
    page.click("#alert-save")
    page.wait_for_selector("#alert-form-error:not([hidden])")
    refused = api(console, "root").post_json(f"{S}/alerts", {"name": "PageRule", "threshold": 0, "window": "10m"})
    assert refused.status == 400
    assert page.inner_text("#alert-form-error") == refused.json()["error"] == \
        "alerts.PageRule.threshold: must be at least 1"
    page.fill("#al-threshold", "5")
    page.fill("#al-for", "30s")
    page.fill("#al-severity", "critical")
    page.fill("#al-summary", XSS_IMG + " {user}")        # a value that is markup: shown as text
    page.click("#alert-save")
    row = '#alerts tbody tr[data-name="PageRule"]'
    page.wait_for_selector(row)
    assert page.is_hidden("#alert-form")
    assert page.inner_text("#alerts-message") == "Added the rule PageRule."
    cells = {name: page.inner_text(f"{row} td.{name}") for name in
             ("filters", "group-by", "threshold", "severity", "firing", "source")}
    assert cells == {"filters": "action=login.failed, namespace=default", "group-by": "user",
                     "threshold": "5 in 10m for 30s", "severity": "critical", "firing": "no", "source": "settings"}
    assert page.inner_text('#alerts tbody tr[data-name="FromFile"] td.threshold') == "1000 in 1m for 0s"
    assert page.inner_text(f"{row} td.changed").startswith("root via web, ")
    stored = api(console, "root").get(f"{S}/alerts/PageRule").json()
    assert stored["summary"] == XSS_IMG + " {user}" and stored["filters"] == {"action": "login.failed",
                                                                             "namespace": "default"}
    file_row = '#alerts tbody tr[data-name="FromFile"]'
    assert page.inner_text(f"{file_row} td.source") == "collector.toml"
    assert page.locator(f"{file_row} button.edit, {file_row} button.remove").count() == 0
    assert page.locator("#panel-alerts img").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "settings-alerts.png"), full_page=True)

    page.click(f"{row} button.edit")
    page.fill("#al-threshold", "9")
    page.click("#alert-save")
    page.wait_for_selector(f"{row} td.threshold:has-text('9 in 10m')")
    page.click(f"{row} button.remove")
    page.wait_for_selector(row, state="detached")
    assert page.dialogs == ["Remove the alert rule PageRule? Its firing alerts are no longer sent."]
    assert api(console, "root").get(f"{S}/alerts/PageRule").status == 404


def test_an_auditor_sees_the_alerts_tab_without_change_buttons(setup, page):
    console, _hook = setup
    open_alerts_tab(page, console, "audrey")
    assert "FromFile" in page.locator("#alerts tbody td.name .value").all_inner_texts()
    assert page.locator("#alert-add, #alerts button.edit, #alerts button.remove").count() == 0


def test_screenshot_was_written():
    assert pathlib.Path(SCREENSHOTS / "settings-alerts.png").stat().st_size > 10_000


def test_openapi_lists_the_alert_routes(setup):
    console, _hook = setup
    doc = Http(console.base).get("/api/v1/openapi.json").json()
    assert set(doc["paths"][f"{S}/alerts"]) == {"get", "post"}
    assert set(doc["paths"][f"{S}/alerts/{{name}}"]) == {"get", "put", "delete"}
    assert {"threshold", "window", "filters", "group_by", "for", "severity", "summary"} <= \
        set(doc["components"]["schemas"]["AlertBody"]["properties"])
