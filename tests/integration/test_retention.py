"""Retention tiers end to end: agents ship events with old timestamps, the collector purges every
second (`purge_interval = "1s"`), and exactly the events outside their tier's window disappear —
per namespace override — while permanent events stay and each purge is a security event."""

from __future__ import annotations

import datetime as dt

from tests.harness import run_cli, search_json, wait_for, write_lines

AGES = {"400d": 400 * 86400, "100d": 100 * 86400, "10d": 10 * 86400, "2d": 2 * 86400, "1h": 3600}


def _lines(tag: str) -> list[str]:
    now = dt.datetime.now(dt.UTC)
    lines = []
    for age, seconds in AGES.items():
        stamp = (now - dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lines.append(f"{stamp} INFO {tag} general {age}")
        lines.append(f"{stamp} INFO {tag} security {age} action=login.ok")
    return lines


def test_tiers_and_namespace_overrides_are_purged_on_schedule(cluster, tmp_path):
    collector = cluster.collector(retention={
        "general": "30d", "security": "1y", "purge_interval": "1s",
        "namespaces": {"staging": {"general": "1d"}}})
    for name, namespace in (("web-1", "default"), ("stg-1", "staging")):
        logs = tmp_path / f"logs-{name}"
        logs.mkdir()
        write_lines(logs / "app.log", _lines(name))
        cluster.agent(name, [collector], [{"type": "file", "paths": [str(logs / "*.log")]}], namespace=namespace)

    expected = {"web-1 general 10d", "web-1 general 2d", "web-1 general 1h",
                "web-1 security 100d action=login.ok", "web-1 security 10d action=login.ok",
                "web-1 security 2d action=login.ok", "web-1 security 1h action=login.ok",
                "stg-1 general 1h",
                "stg-1 security 100d action=login.ok", "stg-1 security 10d action=login.ok",
                "stg-1 security 2d action=login.ok", "stg-1 security 1h action=login.ok"}

    def purged_down_to_expected():
        stored = wait_for(lambda: collector.metric("fleetlog_collector_events_stored_total", {"host": "stg-1"}) == 10
                          and collector.metric("fleetlog_collector_events_stored_total", {"host": "web-1"}) == 10,
                          30, "both agents' events stored")
        assert stored
        return {e["message"] for e in search_json(collector, "--host", "web-1,stg-1")} == expected

    wait_for(purged_down_to_expected, 30, "expired events purged")
    kept = search_json(collector, "--host", "web-1,stg-1")
    assert {(e["message"].split()[1], e["tier"]) for e in kept} == {("general", "general"), ("security", "security")}
    assert wait_for(lambda: collector.metric("fleetlog_collector_events_purged_total", {"tier": "general"}) == 6,
                    10, "purged metric")
    assert collector.metric("fleetlog_collector_events_purged_total", {"tier": "security"}) == 2

    # Every purge is a security-tier audit event; together they account for every deleted event.
    purges = search_json(collector, "--action", "Collector.Retention.Purge")
    assert all(p["tier"] == "security" and p["log_type"] == "audit" and p["host"] == "collector-1"
               and p["source"] == "collector" for p in purges)
    by_tier: dict[str, int] = {}
    for p in purges:
        by_tier[p["fields"]["tier"]] = by_tier.get(p["fields"]["tier"], 0) + p["fields"]["count"]
    assert by_tier == {"general": 6, "security": 2}

    # Permanent events (database creation, start) are never purged, and status shows the next run.
    actions = {e["action"] for e in search_json(collector, "--host", "collector-1")}
    assert {"Collector.Database.Create", "Collector.Start"} <= actions
    status = run_cli("--collector", collector.address, "status")
    assert status.returncode == 0, status.stderr
    assert "next purge 20" in status.stdout


def test_sighup_applies_new_thresholds_and_retention(cluster, tmp_path):
    import signal
    collector = cluster.collector(levels={"default": "error"}, retention={"general": "indefinite",
                                                                          "purge_interval": "1s"})
    logs = tmp_path / "logs"
    logs.mkdir()
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_lines(logs / "app.log", [f"{old} ERROR old error", f"{old} INFO old info"])
    cluster.agent("web-1", [collector], [{"type": "file", "paths": [str(logs / "*.log")]}])
    wait_for(lambda: collector.metric("fleetlog_collector_events_received_total", {"host": "web-1"}) == 2, 30,
             "first lines received")
    assert [e["message"] for e in search_json(collector, "--host", "web-1")] == ["old error"]

    cluster.rewrite(collector, levels={"default": "info"}, retention={"general": "1d"})
    collector.process.send_signal(signal.SIGHUP)
    # After the reload the purge removes the 3-day-old error; new info lines are stored.
    wait_for(lambda: collector.metric("fleetlog_collector_events_purged_total", {"tier": "general"}) == 1, 30,
             "old event purged after reload")
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_lines(logs / "app.log", [f"{now} INFO fresh info"])
    wait_for(lambda: [e["message"] for e in search_json(collector, "--host", "web-1")] == ["fresh info"], 30,
             "info stored after reload")

    empty = run_cli("--collector", collector.address, "note", "  ")
    assert (empty.returncode, empty.stderr.strip()) == (2, "fleetlog note: note text is empty")
