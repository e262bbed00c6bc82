"""Permanent events (contract §4.6): the database creation once, every start and every clean stop —
in the permanent tier, with the collector as origin."""

from __future__ import annotations

from tests.harness import search_json


def test_creation_start_and_clean_stop_are_permanent(cluster):
    collector = cluster.collector()
    assert collector.stop() == 0
    collector.start().wait_ready()
    events = [e for e in search_json(collector, "--host", "collector-1") if e["action"] != "audit/search"]
    assert [(e["action"], e["tier"], e["log_type"], e["source"]) for e in events] == [
        ("Collector.Database.Create", "permanent", "audit", "collector"),
        ("Collector.Start", "permanent", "audit", "collector"),
        ("Collector.Stop", "permanent", "audit", "collector"),
        ("Collector.Start", "permanent", "audit", "collector")]
