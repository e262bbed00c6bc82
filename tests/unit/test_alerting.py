"""collector/alerting: rules refused with their key and the reason; the index tests an event only
against rules it may match, and a rule matches what the same search filters select; sliding
window counts; `for` holds an alert pending; groups are bounded."""

from __future__ import annotations

import json
import random
import time

import pytest

from fleetlog.collector.alerting.counts import RuleCounts
from fleetlog.collector.alerting.evaluator import Evaluator
from fleetlog.collector.alerting.matching import RuleIndex, as_search_row
from fleetlog.collector.alerting.rules import AlertRule
from fleetlog.collector.config import CollectorConfig
from fleetlog.collector.metrics import CollectorMetrics
from fleetlog.collector.store import EVENT_COLUMNS, open_backend
from fleetlog.collector.store.row_match import row_predicate
from fleetlog.common.config import build_config
from fleetlog.common.errors import ConfigError
from fleetlog.common.levels import Level
from tests.alertmanager import Webhook
from tests.harness import wait_for

GOOD = {"name": "BruteForce", "filters": {"action": "login.failed"}, "group_by": ["user"], "threshold": 5,
        "window": "5m", "for": "0s", "severity": "critical", "summary": "{user} failed {count} sign-ins"}


def _load(rules: list[dict], **alerting) -> CollectorConfig:
    return build_config(CollectorConfig, {"alerting": {"alertmanager_urls": ["http://127.0.0.1:9093"],
                                                       "rules": rules, **alerting}}, "collector.toml")


def test_the_contracts_example_loads():
    rule = _load([GOOD]).alerting.rules[0]
    assert (rule.name, rule.threshold, rule.window, rule.for_, rule.group_by) == ("BruteForce", 5, 300.0, 0.0,
                                                                                    ("user",))
    assert rule.render_summary({"user": "alice"}, 6) == "alice failed 6 sign-ins"


@pytest.mark.parametrize(("change", "message"), [
    ({"filters": {"min_level": "loud"}},
     "alerting.rules[0].filters.min_level: --min-level: unknown level 'loud'"),
    ({"filters": {"message_regex": "(a"}}, "alerting.rules[0].filters.message_regex: --message-regex: invalid"),
    ({"filters": {"since": "5m"}}, "alerting.rules[0].filters.since: a rule counts events within its window"),
    ({"filters": {"usr": "alice"}}, "alerting.rules[0].filters.usr: unknown filter"),
    ({"filters": {"where": "nosuch=1"}}, "alerting.rules[0].filters.where: --where: unknown field 'nosuch'"),
    ({"group_by": ["usr"]}, "alerting.rules[0].group_by[0]: unknown field 'usr'"),
    ({"group_by": ["user", "user"]}, "alerting.rules[0].group_by[1]: 'user' is listed twice"),
    ({"threshold": 0}, "alerting.rules[0].threshold: must be at least 1"),
    ({"window": "0s"}, "alerting.rules[0].window: must be between 1s and 1d"),
    ({"window": "soon"}, "alerting.rules[0].window: "),
    ({"for": "2d"}, "alerting.rules[0].for: must be between 0s and 1d"),
    ({"severity": "very bad"}, "alerting.rules[0].severity: must be 1 to 64"),
    ({"summary": "{usr} failed"}, "alerting.rules[0].summary: {usr} is neither count, name nor a group_by field"),
    ({"summary": "{count:>999999999}"}, "alerting.rules[0].summary: {count}: no format specification"),
    ({"summary": "{user"}, "alerting.rules[0].summary: not a valid template"),
    ({"name": ""}, "alerting.rules[0].name: must be 1 to 128 printable characters"),
    ({"threshold": "5"}, "alerting.rules[0].threshold: expected a whole number"),
    ({"fire": True}, "alerting.rules[0].fire: unknown key"),
])
def test_a_bad_rule_is_refused_with_its_key_and_the_reason(change, message):
    with pytest.raises(ConfigError) as refused:
        _load([{**GOOD, **change}])
    assert str(refused.value).startswith(f"collector.toml: {message}"), str(refused.value)


@pytest.mark.parametrize(("alerting", "message"), [
    ({"alertmanager_urls": ["ftp://am:9093"]}, "alerting.alertmanager_urls[0]: expected an http:// or https:// URL"),
    ({"alertmanager_urls": []}, "alerting.alertmanager_urls: rules need at least one Alertmanager URL"),
    ({"evaluation_interval": "10ms"}, "alerting.evaluation_interval: must be between 100ms and 1h"),
    ({"resend_delay": "1s", "evaluation_interval": "15s"}, "alerting.resend_delay: must be between"),
])
def test_a_bad_alerting_section_is_refused(alerting, message):
    with pytest.raises(ConfigError) as refused:
        _load([GOOD], **alerting)
    assert str(refused.value).startswith(f"collector.toml: {message}"), str(refused.value)


def test_two_rules_of_one_name_and_a_forwarder_named_like_the_evaluator_are_refused():
    with pytest.raises(ConfigError, match=r"alerting\.rules\[1\]\.name: duplicate rule name 'BruteForce'"):
        _load([GOOD, GOOD])
    with pytest.raises(ConfigError, match=r"forwarders\[0\]\.name: 'alerting:evaluator' is the alert evaluator"):
        build_config(CollectorConfig, {"forwarders": [{"type": "console", "name": "alerting:evaluator"}]}, "c")


def _row(seq: int = 1, *, action: str = "login.failed", user: str = "alice", level: Level = Level.WARNING,
         namespace: str = "default", host: str = "web-1", message: str = "sign-in failed",
         time_us: int | None = None) -> tuple:
    now = time_us if time_us is not None else int(time.time() * 1e6)
    values = {"seq": seq, "id": f"id-{seq}", "time": now, "received_at": now, "host": host, "host_ip": "10.0.0.1",
              "collector": "c1", "namespace": namespace, "source": "app.log", "log_type": "security", "app": "idp",
              "pid": 1, "level": int(level), "request_id": "", "user": user, "action": action, "message": message,
              "fields": "", "tier": "security", "truncated": 0}
    return tuple(values[c] for c in EVENT_COLUMNS)


def _rule(name: str, **filters: str) -> AlertRule:
    return AlertRule(name=name, threshold=1, window=60.0, filters=filters)


def test_the_index_offers_an_event_only_the_rules_it_may_match():
    rules = [_rule(f"action-{i}", action=f"act.{i}") for i in range(1000)]
    rules += [_rule("errors", min_level="error"), _rule("payments", namespace="payments"),
              _rule("any-host", host="web-*"), _rule("wild", action="login.*")]
    index = RuleIndex(rules)
    names = lambda row: sorted(c.rule.name for c in index.candidates(row))
    assert names(_row(action="act.7")) == ["action-7", "any-host", "wild"]
    assert names(_row(action="other", level=Level.CRITICAL, namespace="payments")) == [
        "any-host", "errors", "payments", "wild"]
    # A rule matches what the search filters select: the host by name or address, wildcards.
    assert [c.rule.name for c in index.matches(_row(action="login.failed", host="web-3"))] == ["any-host", "wild"]
    assert [c.rule.name for c in index.matches(_row(action="login.failed", host="db-1"))] == ["wild"]
    by_ip = RuleIndex([_rule("ip", host="10.0.0.1")])
    assert len(by_ip.matches(_row(host="db-1"))) == 1
    keywords = RuleIndex([_rule("kw", message='"disk full"', user="root,adm*")])
    assert len(keywords.matches(_row(user="admin", message="ERROR: Disk Full on /var"))) == 1
    assert keywords.matches(_row(user="alice", message="ERROR: Disk Full on /var")) == []
    assert keywords.matches(_row(user="root", message="disk is full")) == []


def test_the_index_and_its_shortcuts_select_exactly_what_the_rules_filters_do():
    """Random rules and events: a rule is among index.matches(row) exactly when its filters,
    evaluated whole by the search's row test, select the row."""
    rng = random.Random(31)
    pool = {"action": ["login.failed", "login.*", "user.create,login.failed"], "user": ["alice", "bob,carol", "a*"],
            "min_level": ["error", "info", "debug"], "level": ["warning", "error,critical"],
            "namespace": ["default", "pay*"], "message": ["disk full", '"out of memory"', "disk*", "fail*"],
            "log_type": ["security"], "message_regex": ["memory|disk"], "where": ["host=web%"]}
    rules = []
    for i in range(300):
        keys = rng.sample(sorted(pool), rng.randint(1, 3))
        rules.append(_rule(f"r{i}", **{k: rng.choice(pool[k]) for k in keys}))
    index = RuleIndex(rules)
    whole = [(compiled.rule.name, row_predicate(compiled.spec, None)) for compiled in index.rules]
    matched = 0
    messages = ["disk full on /var", "Out of memory: kill", "disks full", "login failed", "failure", ""]
    for seq in range(1, 1500):
        row = _row(seq, action=rng.choice(["login.failed", "user.create", "login.ok", "other"]),
                   user=rng.choice(["alice", "bob", "carol", "adm", "zed"]), level=rng.choice(list(Level)),
                   namespace=rng.choice(["default", "payments", "ops"]), host=rng.choice(["web-1", "db-1"]),
                   message=rng.choice(messages))
        expected = {name for name, test in whole if test(as_search_row(row))}
        assert {c.rule.name for c in index.matches(row)} == expected, row
        matched += len(expected)
    assert matched > 10_000     # the rules do select: the comparison is not between empty sets


def test_a_rule_with_message_keywords_is_offered_only_events_holding_its_word():
    index = RuleIndex([_rule("oom", message='"out of memory"'), _rule("disk", message="disk* full"),
                       _rule("prefix", message="kern*")])
    assert [c.rule.name for c in index.everywhere] == ["prefix"]     # a one-word prefix names no whole word
    names = lambda message: sorted(c.rule.name for c in index.candidates(_row(message=message)))
    assert names("Out of Memory: killed process 7") == ["oom", "prefix"]
    assert names("disk full, disk full") == ["disk", "prefix"]        # offered once though the word repeats
    assert names("kernel: all fine") == ["prefix"]
    assert [c.rule.name for c in index.matches(_row(message="kernel: out of memory"))] == ["oom", "prefix"]
    assert [c.rule.name for c in index.matches(_row(message="disks fullness"))] == []


def test_counts_slide_with_the_window_and_groups_are_bounded():
    counts = RuleCounts(window=60.0, max_groups=2)
    now = 1_000_000.0
    for offset in (50, 40, 30):
        assert counts.add(("alice",), now - offset, now)
    assert counts.add(("bob",), now - 1, now)
    assert counts.add(("alice",), now - 61, now)           # already outside: not counted, not refused
    assert not counts.add(("carol",), now, now)            # a third group: refused
    assert (counts.count(("alice",)), counts.count(("bob",)), counts.count(("carol",))) == (3, 1, 0)
    counts.expire(now + 15)                                 # the event 50 s old has left the window
    assert counts.count(("alice",)) == 2
    counts.expire(now + 62)
    assert counts.groups == {}
    assert counts.add(("carol",), now + 62, now + 62)       # room again once the others left


def test_group_values_a_peer_writes_are_bounded_and_printable(tmp_path):
    config = build_config(CollectorConfig, {"data_dir": str(tmp_path), "alerting": {
        "alertmanager_urls": ["http://127.0.0.1:9"], "rules": [{**GOOD, "threshold": 1}]}}, "collector.toml")
    backend = open_backend(config, str(tmp_path))
    recorded: list = []
    try:
        evaluator = Evaluator(config.alerting, backend, CollectorMetrics(), recorded.extend, lambda: "c1", "")
        evaluator._count([("c1", [_row(1, user="x\x1b[2J\n" + "y" * 100_000)])])
        evaluator.evaluate()
        [alert] = [a for _, alerts, _ in [evaluator.status()] for a in alerts]
        user = alert[0]["user"]
        assert user == "x?[2J?" + "y" * 250 and len(alert[1]) < 400
        assert recorded[0].fields["labels"]["user"] == user
    finally:
        backend.close()


def test_for_holds_an_alert_pending_until_it_has_lasted(tmp_path):
    hook = Webhook()
    config = build_config(CollectorConfig, {"data_dir": str(tmp_path), "alerting": {
        "alertmanager_urls": [hook.url.rstrip("/")], "evaluation_interval": "100ms",
        "rules": [{**GOOD, "threshold": 2, "for": "500ms"}]}}, "collector.toml")
    backend = open_backend(config, str(tmp_path))
    recorded: list = []
    evaluator = Evaluator(config.alerting, backend, CollectorMetrics(), recorded.extend, lambda: "c1", "")
    try:
        evaluator._count([("c1", [_row(1), _row(2), _row(3, user="bob")])])
        evaluator.evaluate()
        evaluator.deliver()
        assert hook.received == [] and recorded == []            # pending: not sent, not recorded
        wait_for(lambda: evaluator.evaluate() or evaluator.deliver() or hook.received, 10, "the alert after its `for`")
        sent = [a for body in hook.received for a in body]
        assert [a["labels"]["user"] for a in sent] == ["alice"]
        assert [(e.action, e.tier, e.fields["labels"]["user"], e.fields["count"]) for e in recorded] == [
            ("alert/firing", "security", "alice", 2)]
        assert json.loads(json.dumps(sent[0]))["annotations"]["summary"] == "alice failed 2 sign-ins"
    finally:
        backend.close()
        hook.close()


def test_a_reload_keeps_an_unchanged_rules_alerts_and_resolves_a_removed_ones(tmp_path):
    def alerting(*rules: dict) -> CollectorConfig:
        return build_config(CollectorConfig, {"data_dir": str(tmp_path), "alerting": {
            "alertmanager_urls": ["http://127.0.0.1:9"], "rules": list(rules)}}, "collector.toml")
    first = {**GOOD, "threshold": 2}
    other = {**GOOD, "name": "Errors", "filters": {"min_level": "error"}, "group_by": [], "summary": ""}
    config = alerting(first)
    backend = open_backend(config, str(tmp_path))
    recorded: list = []
    try:
        evaluator = Evaluator(config.alerting, backend, CollectorMetrics(), recorded.extend, lambda: "c1", "")
        evaluator._count([("c1", [_row(1), _row(2)])])
        evaluator.evaluate()
        evaluator.reload(alerting(other, first).alerting, "")        # moved to second place, unchanged
        evaluator.evaluate()
        assert [(labels["alertname"], count) for labels, _, count, _ in evaluator.status()[1]] == [("BruteForce", 2)]
        assert [e.action for e in recorded] == ["alert/firing"]
        evaluator.reload(alerting(other).alerting, "")
        evaluator.evaluate()
        assert evaluator.status()[1] == []
        assert [(e.action, e.fields["labels"]["user"]) for e in recorded] == [("alert/firing", "alice"),
                                                                              ("alert/resolved", "alice")]
        assert "its rule was changed or removed" in recorded[1].message
    finally:
        backend.close()


def test_a_url_with_user_and_password_sends_them_as_basic_auth_and_shows_neither():
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from fleetlog.collector.alerting.alertmanager import Receiver

    seen: list[tuple[str, str | None, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append((self.path, self.headers.get("Authorization"),
                         self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        receiver = Receiver(f"http://ops%40example:s%3Acret@127.0.0.1:{port}/am/")
        receiver.queue([{"labels": {"alertname": "BruteForce", "user": "alice"}}])
        assert receiver.deliver() == 1
    finally:
        server.shutdown()
        server.server_close()
    assert receiver.label == f"http://127.0.0.1:{port}/am/"
    assert seen == [("/am/api/v2/alerts", "Basic " + base64.b64encode(b"ops@example:s:cret").decode(),
                     b'[{"labels": {"alertname": "BruteForce", "user": "alice"}}]')]
