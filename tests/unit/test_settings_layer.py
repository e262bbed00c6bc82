"""The settings layer's pure parts (issue 28): bodies read by collector.toml's reader, the running
configuration built from collector.toml + the store's rows (precedence), the roles' rules, and the
SQLite settings store (version counter, conflicts, token uses)."""

from __future__ import annotations

import asyncio
import json

import pytest

from fleetlog.collector.config import CollectorConfig
from fleetlog.collector.identity import Caller, TokenEntry
from fleetlog.collector.settings import access, effective, entries
from fleetlog.collector.settings.watcher import SettingsWatcher
from fleetlog.collector.store.settings_rows import SettingsRow
from fleetlog.collector.store.sqlite import SqliteBackend
from fleetlog.common.config import build_config
from fleetlog.common.errors import UsageError
from fleetlog.common.levels import Level
from tests.settings_store_cases import check_settings_store

FILE = build_config(CollectorConfig, {
    "node_name": "c1", "forwarders": [{"name": "siem", "type": "console"}],
    "levels": {"default": "info", "namespaces": {"payments": "notice"}},
    "retention": {"general": "90d", "namespaces": {"staging": {"general": "7d"}}},
}, "collector.toml")


def row(kind: str, name: str, body: dict) -> SettingsRow:
    return SettingsRow(kind, name, json.dumps(body), 1, 1, "root", "api")


def test_forwarder_body_is_read_as_collector_toml_reads_it():
    enabled, config = entries.forwarder("x", {"type": "syslog", "port": 514, "min_level": "warning",
                                              "state": "running", "enabled": False})
    assert not enabled and config.name == "x" and config.filters.min_level == Level.WARNING
    with pytest.raises(UsageError, match=r"^forwarders\.x\.port: expected a whole number, got \"514\"$"):
        entries.forwarder("x", {"type": "syslog", "port": "514"})
    with pytest.raises(UsageError, match=r"^forwarders\.x\.name: the body names 'y', the URL 'x'"):
        entries.forwarder("x", {"type": "console", "name": "y"})
    with pytest.raises(UsageError, match=r"^forwarders\.x\.enabled: expected true or false, got \"no\"$"):
        entries.forwarder("x", {"type": "console", "enabled": "no"})


def test_names_are_bounded():
    assert entries.check_name("namespaces", "*") == "*"
    for bad in ("", "a" * 129, "-x", "a/b", "a b", "_collector", 7):
        with pytest.raises(UsageError):
            entries.check_name("forwarders", bad)


def test_effective_merges_the_store_under_the_file():
    built = effective.build(FILE, [
        row("forwarders", "siem", {"type": "syslog"}),          # the file's name: the file wins
        row("forwarders", "extra", {"type": "console"}),
        row("forwarders", "off", {"type": "console", "enabled": False}),
        row("namespaces", "payments", {"levels": "debug"}),     # the file's namespace: ignored
        row("namespaces", "web", {"levels": "error", "retention": {"general": "1d"}}),
        row("namespaces", "*", {"levels": "warning", "retention": {"security": "2y"}}),
        row("tokens", "ops", {"sha256": "a" * 64, "role": "auditor", "namespaces": []}),
        row("tokens", "root", {"sha256": "b" * 64, "role": "admin"}),
    ], file_tokens={"root"})
    config = built.config
    assert [(f.name, f.type) for f in config.forwarders] == [("siem", "console"), ("extra", "console")]
    assert [f.name for f in built.disabled] == ["off"]
    assert config.namespace_level("payments") == Level.NOTICE
    assert config.namespace_level("web") == Level.ERROR
    assert config.namespace_level("other") == Level.WARNING
    assert config.retention.namespaces["web"].general == 86400.0
    assert config.retention.security == 2 * 365 * 86400.0 and config.retention.general == 90 * 86400.0
    assert [t.name for t in built.tokens] == ["ops"]
    assert effective.namespace_view(config, "web") == {"levels": "error", "retention": {"general": "1d",
                                                                                     "security": "2y"}}


def test_a_set_that_does_not_build_is_refused_with_the_entry_named():
    with pytest.raises(UsageError, match=r"^forwarders\.bad\.port: expected a port number 1-65535, got 0$"):
        effective.build(FILE, [row("forwarders", "bad", {"type": "syslog", "port": 0})])


def _caller(role: str, namespaces: tuple[str, ...] | None = None) -> Caller:
    return Caller("who", role, "127.0.0.1", namespaces, "token")


def test_namespace_admin_changes_only_what_selects_its_namespaces():
    payadm = _caller("namespace-admin", ("payments",))
    _, own = entries.forwarder("own", {"type": "console", "include": [{"field": "namespace", "pattern": "payments"}]})
    _, wild = entries.forwarder("wild", {"type": "console", "include": [{"field": "namespace", "pattern": "pay*"}]})
    _, other = entries.forwarder("other", {"type": "console", "include": [
        {"field": "namespace", "pattern": "payments"}, {"field": "host", "pattern": "db-1"}]})
    _, everything = entries.forwarder("all", {"type": "console"})
    assert access.may_change(payadm, "forwarders", "own", None, own) is None
    for config in (wild, other, everything):
        assert access.may_change(payadm, "forwarders", config.name, None, config) is not None
        assert not access.may_see(payadm, "forwarders", config.name, config)
    assert access.may_change(payadm, "forwarders", "own", everything, own) is not None   # taking one over
    assert access.may_change(payadm, "namespaces", "payments", None, None) is None
    assert access.may_change(payadm, "namespaces", "default", None, None) is not None
    assert access.may_change(payadm, "namespaces", "*", None, None) is not None
    assert access.may_change(payadm, "tokens", "t", None, None) is not None
    for role in ("auditor", "namespace-auditor", "agent"):
        assert access.may_change(_caller(role), "namespaces", "payments", None, None) is not None
    assert access.may_change(_caller("admin"), "tokens", "t", None, None) is None
    assert not access.may_see(_caller("agent", ("default",)), "namespaces", "default", None)
    token = TokenEntry("pay-1", "a" * 64, "agent", ("payments",))
    assert access.may_see(payadm, "tokens", "pay-1", token)
    assert not access.may_see(payadm, "tokens", "root", TokenEntry("root", "a" * 64, "admin"))


ALERTING_FILE = build_config(CollectorConfig, {
    "node_name": "c1", "alerting": {"alertmanager_urls": ["http://127.0.0.1:9093"], "rules": [
        {"name": "Brute", "filters": {"action": "login.failed"}, "threshold": 5, "window": "5m"}]},
}, "collector.toml")


def test_stored_alert_rules_follow_the_files_which_keep_their_names():
    built = effective.build(ALERTING_FILE, [
        row("alerts", "Brute", {"threshold": 1, "window": "1m"}),          # the file's name: the file wins
        row("alerts", "Errors", {"threshold": 10, "window": "1m", "filters": {"min_level": "error"}, "for": "30s"}),
    ]).config.alerting.rules
    assert [(r.name, r.threshold, r.window, r.for_) for r in built] == [("Brute", 5, 300.0, 0.0),
                                                                         ("Errors", 10, 60.0, 30.0)]
    assert entries.plain(built[1])["for"] == "30s"
    with pytest.raises(UsageError, match=r"^alerts\.Bad\.filters\.until: a rule counts events within its window"):
        effective.build(ALERTING_FILE, [row("alerts", "Bad", {"threshold": 1, "window": "1m",
                                                              "filters": {"until": "1h"}})])
    with pytest.raises(UsageError, match=r"^alerting\.alertmanager_urls: rules need at least one Alertmanager URL$"):
        effective.build(FILE, [row("alerts", "Lonely", {"threshold": 1, "window": "1m"})])


def test_namespace_admin_changes_only_rules_whose_namespace_filter_is_its_own():
    payadm = _caller("namespace-admin", ("payments",))
    own = entries.alert("own", {"threshold": 1, "window": "1m", "filters": {"namespace": "payments", "user": "x"}})
    listed = entries.alert("two", {"threshold": 1, "window": "1m", "filters": {"namespace": "payments,default"}})
    wild = entries.alert("wild", {"threshold": 1, "window": "1m", "filters": {"namespace": "pay*"}})
    everything = entries.alert("all", {"threshold": 1, "window": "1m"})
    assert access.may_change(payadm, "alerts", "own", None, own) is None and access.may_see(payadm, "alerts", "own", own)
    for rule in (listed, wild, everything):
        assert access.may_change(payadm, "alerts", rule.name, None, rule) is not None
        assert not access.may_see(payadm, "alerts", rule.name, rule)
    assert access.may_change(payadm, "alerts", "own", everything, own) is not None     # taking one over
    assert access.may_change(_caller("auditor"), "alerts", "own", None, own) is not None
    assert access.may_see(_caller("auditor"), "alerts", "all", everything)
    assert not access.may_see(_caller("agent", ("payments",)), "alerts", "own", own)


def test_sqlite_store_counts_versions_and_refuses_conflicts(tmp_path):
    backend = SqliteBackend(tmp_path, collector="c1")
    one, two = backend.settings_store(), backend.settings_store()
    try:
        check_settings_store(one, two)
    finally:
        one.close()
        two.close()
        backend.close()
    reopened = SqliteBackend(tmp_path, collector="c1")
    try:
        assert reopened.settings_store().version() == 4
    finally:
        reopened.close()


def test_watcher_applies_a_change_and_keeps_the_running_configuration_when_a_set_does_not_build(tmp_path):
    backend = SqliteBackend(tmp_path, collector="c1")
    store = backend.settings_store()
    applied: list[effective.Effective] = []

    async def apply(settled: effective.Effective) -> None:
        applied.append(settled)

    async def scenario() -> None:
        watcher = SettingsWatcher(store, FILE, set, apply, poll=0.01)
        watcher.load()
        store.change("namespaces", "web", '{"levels": "error"}', "root", "api", 1, exists=False)
        await watcher.refresh()
        assert watcher.effective.config.namespace_level("web") == Level.ERROR and len(applied) == 1
        # A row another collector (or a hand) stored that does not build here: refused, the rest stays.
        store.change("forwarders", "bad", '{"type": "syslog", "port": 0}', "root", "api", 2, exists=False)
        await watcher.refresh()
        assert len(applied) == 1 and watcher.version == 2
        assert watcher.effective.config.namespace_level("web") == Level.ERROR
        assert [f.name for f in watcher.effective.config.forwarders] == ["siem"]
        store.change("forwarders", "bad", None, "root", "api", 3, exists=True)
        await watcher.refresh()
        assert len(applied) == 2 and watcher.version == 3

    try:
        asyncio.run(scenario())
    finally:
        store.close()
        backend.close()
