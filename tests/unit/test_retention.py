"""Retention purge over a real SQLite store and the real single writer: which events each tier
and namespace override keeps, permanent events never purged, chunked deletes, and the purge's
own security event with the deleted seq ranges and the anchors digest."""

from __future__ import annotations

import asyncio
import json

from fleetlog.collector.config import CollectorConfig, NamespaceRetention, RetentionConfig
from fleetlog.collector.internal import InternalEvent, append_internal
from fleetlog.collector.retention import PURGE_ACTION, RetentionScheduler
from fleetlog.collector.store.sqlite import SqliteReader, SqliteStore, anchors_digest
from fleetlog.collector.writer import StorageWriter
from fleetlog.common.timefmt import format_us
from tests.bounded import run_bounded
from tests.unit.store_helpers import event_count, event_rows, incoming

DAY = 86400 * 1_000_000
NOW = 1_800_000_000_000_000


def _config(**retention) -> CollectorConfig:
    return CollectorConfig(node_name="c1", retention=RetentionConfig(**retention))


def _fill(store: SqliteStore) -> None:
    ages = [400, 100, 10, 2, 0]   # days
    times = [NOW - a * DAY for a in ages]
    for ns in ("default", "staging", "legal"):
        for tier in ("general", "security"):
            key = f"{ns}-{tier}"
            store.store_batch([incoming("web-1", key, list(range(len(ages))), time_us=times, tier=tier, namespace=ns,
                                        messages=[f"{key} age {a}d" for a in ages])], NOW)
    # A permanent event from long ago (e.g. the database creation) is never a candidate.
    append_internal(store, "c1", [InternalEvent("Collector.Start", "ancient start", tier="permanent",
                                                time_us=NOW - 3000 * DAY)])


def _remaining(store: SqliteStore) -> set[str]:
    return {m for (m,) in event_rows(store, "SELECT message FROM events WHERE action IS NULL OR action != ?",
                                             (PURGE_ACTION,))}


def _run(config: CollectorConfig, store: SqliteStore, chunk: int = 2000):
    writer = StorageWriter(store)
    purged: dict[str, int] = {}
    scheduler = RetentionScheduler(config, lambda: SqliteReader(store.path), writer, chunk=chunk,
                                   on_purged=lambda t, n: purged.__setitem__(t, purged.get(t, 0) + n))

    async def go():
        try:
            return await scheduler.purge_once(now=NOW)
        finally:
            await scheduler.stop()
    result = run_bounded(go(), timeout=120)
    writer.stop()
    return result, purged


def test_each_tier_and_namespace_override_keeps_exactly_its_window(tmp_path):
    store = SqliteStore(tmp_path / "e.db", collector="c1")
    _fill(store)
    config = _config(general=30 * 86400, security=365 * 86400,
                     namespaces={"staging": NamespaceRetention(general=86400),
                                 "legal": NamespaceRetention(general=float("inf"), security=float("inf"))})
    _, purged = _run(config, store, chunk=3)

    expected = {"ancient start"}
    expected |= {f"default-general age {a}d" for a in (10, 2, 0)}
    expected |= {f"default-security age {a}d" for a in (100, 10, 2, 0)}
    expected |= {"staging-general age 0d"}
    expected |= {f"staging-security age {a}d" for a in (100, 10, 2, 0)}
    expected |= {f"legal-{t} age {a}d" for t in ("general", "security") for a in (400, 100, 10, 2, 0)}
    assert _remaining(store) == expected
    assert purged == {"general": 6, "security": 2}

    # One security-tier event per tier that lost events, with what verification needs.
    events = sorted(event_rows(store, "SELECT seq, tier, level, log_type, host, source, message, fields FROM events"
                                      " WHERE action = ?", (PURGE_ACTION,)))
    events = [e[1:] for e in events]
    assert [(e[0], e[2], e[3], e[4]) for e in events] == [("security", "audit", "c1", "collector")] * 2
    general, security = (json.loads(e[6]) for e in events)
    assert general["tier"] == "general" and general["count"] == 6
    assert general["namespaces"] == {"default": 2, "staging": 4}
    assert general["oldest"] == format_us(NOW - 400 * DAY) == "2025-12-11T08:00:00.000000Z"
    assert general["newest"] == format_us(NOW - 2 * DAY)       # staging's 1-day window
    assert security["count"] == 2 and security["namespaces"] == {"default": 1, "staging": 1}
    assert "deleted 6 general-tier events" in events[0][5]
    anchors = dict(store.conn.execute("SELECT seq, link FROM chain_anchors"))
    for fields in (general, security):
        covered = [(s, link) for s, link in anchors.items()
                   if any(lo <= s <= hi for lo, hi in fields["seq_ranges"])]
        assert fields["anchors_sha256"] == anchors_digest(covered)
        assert sum(hi - lo + 1 for lo, hi in fields["seq_ranges"]) == fields["count"]
    # Full-text rows went with their events.
    assert sum(n for (n,) in event_rows(store, "SELECT count(*) FROM events_fts WHERE events_fts MATCH 'age'")) == \
        len(expected) - 1


def test_nothing_expired_records_nothing_and_a_second_run_finds_nothing(tmp_path):
    store = SqliteStore(tmp_path / "e.db", collector="c1")
    _fill(store)
    runs, purged = _run(_config(general=float("inf"), security=float("inf")), store)
    assert runs == [] and purged == {}
    before = event_count(store)
    assert before == 31
    runs, _ = _run(_config(general=365 * 86400, security=float("inf")), store)
    assert [(r.tier, r.count) for r in runs] == [("general", 3)]
    runs, _ = _run(_config(general=365 * 86400, security=float("inf")), store)
    assert runs == []


def test_tier_rules_match_wildcards_in_order():
    from fleetlog.collector.classify import Classifier
    from fleetlog.collector.config import TierRule
    config = _config(rules=[TierRule(tier="security", log_type=["audit", "security"]),
                            TierRule(tier="security", action=["user.*", "login*"]),
                            TierRule(tier="security", namespace=["pay*"], app=["ledger"])])
    classifier = Classifier(config)

    def tier(log_type="application", action="", namespace="default", app=""):
        return classifier.tier(log_type=log_type, action=action, namespace=namespace, source="file:/a", app=app)
    assert tier() == "general"
    assert tier(log_type="audit") == tier(log_type="security") == "security"
    assert tier(action="user.create") == tier(action="login") == tier(action="login.failed") == "security"
    assert tier(action="users.create") == tier(action="relogin") == "general"
    assert tier(namespace="payments", app="ledger") == "security"
    assert tier(namespace="payments", app="web") == tier(namespace="default", app="ledger") == "general"
    assert classifier.tiers(log_type="application", namespace="default", source="s",
                            actions=["", "mfa.ok", "user.delete"], apps=["", "", ""]) == \
        ["general", "general", "security"]


def test_an_interrupted_purge_still_records_what_it_deleted(tmp_path):
    store = SqliteStore(tmp_path / "e.db", collector="c1")
    _fill(store)
    writer = StorageWriter(store)
    # legal's events are kept, so the old partitions stay and the others' events in them are
    # deleted row by row, in chunks (whole expired partitions go in one step with their record).
    config = _config(general=30 * 86400, security=float("inf"),
                     namespaces={"legal": NamespaceRetention(general=float("inf"))})

    async def go():
        task = None
        scheduler = RetentionScheduler(config, lambda: SqliteReader(store.path), writer, chunk=2,
                                       on_purged=lambda tier, n: task.cancel())   # stop after the first chunk
        task = asyncio.ensure_future(scheduler.purge_once(now=NOW))
        await asyncio.gather(task, return_exceptions=True)
        await scheduler.stop()
        return task.cancelled()
    assert run_bounded(go(), timeout=120)
    writer.stop()
    [fields] = [json.loads(f) for (f,) in event_rows(store, "SELECT fields FROM events WHERE action = ?",
                                                             (PURGE_ACTION,))]
    # The two oldest general events (default and staging, 400 days old) went, and are recorded.
    assert fields["count"] == 2 and fields["seq_ranges"] == [[1, 1], [11, 11]]
    assert event_count(store, "seq IN (1, 11)") == 0
    assert event_count(store, "tier = 'general'") == 13


def test_a_failing_purge_is_recorded_at_level_error_and_retried(tmp_path):
    store = SqliteStore(tmp_path / "e.db", collector="c1")
    writer = StorageWriter(store)
    config = _config(purge_interval=0.05)
    scheduler = RetentionScheduler(config, lambda: SqliteReader(str(tmp_path / "missing" / "nope.db")), writer)

    def failures():
        return event_rows(store, "SELECT level, tier, message FROM events WHERE action = ?",
                          ("Collector.Retention.Failed",))

    async def go():
        scheduler.start()
        for _ in range(200):
            if len(failures()) >= 2:
                break
            await asyncio.sleep(0.02)
        await scheduler.stop()
    run_bounded(go(), timeout=120)
    writer.stop()
    rows = failures()
    assert len(rows) >= 2
    level, tier, message = rows[0]
    assert (level, tier) == (3, "security")
    assert message.startswith("retention purge failed, retrying in 0.05s: ") and "nope.db" in message
