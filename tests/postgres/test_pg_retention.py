"""Retention on PostgreSQL: an expired day partition is dropped whole, per-namespace overrides
keep a day that still holds longer-kept events, the chain keeps its anchors, one collector at a
time purges."""

from __future__ import annotations

import psycopg

from fleetlog.collector.store import anchors_digest, pg_schema
from fleetlog.collector.store.postgres import PostgresStore
from tests.unit.store_helpers import incoming

DAY0 = 1_764_547_200_000_000          # 2025-12-01 00:00 UTC
DAY = pg_schema.DAY_US


def _rows(dsn: str, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def _fill(store: PostgresStore, host: str, start: int, namespace: str = "default") -> None:
    # Interleaved days: positions alternate between day 0 and day 1, so each chain has gaps.
    positions = list(range(start, start + 10))
    store.store_batch([incoming(host, "a.log", positions, namespace=namespace,
                                time_us=[DAY0 + (p % 2) * DAY + p for p in positions])], DAY0)


def test_an_expired_day_is_dropped_whole_with_its_anchors(pg_dsn):
    stores = [PostgresStore(pg_dsn, "c1"), PostgresStore(pg_dsn, "c2")]
    try:
        _fill(stores[0], "web-1", 0)
        _fill(stores[1], "web-2", 0)
        links = {(c, s): bytes(h) for c, s, h in _rows(pg_dsn, "SELECT chain, seq, hash FROM events")}
        own = stores[0].drop_expired("general", DAY0 + DAY, {})
        dropped = {"c1": own, **own.other_chains}
        assert set(dropped) == {"c1", "c2"}
        for name in ("c1", "c2"):
            result = dropped[name]
            assert result.count == 5 and result.ranges == [(1, 1), (3, 3), (5, 5), (7, 7), (9, 9)]
            assert result.anchors == [(s, links[(name, s)]) for s in (1, 3, 5, 7, 9)]
            assert result.anchors_sha256 == anchors_digest(result.anchors)
            assert result.namespaces == {"default": 5}
        assert "events_general_20251201" not in {
            n for (n,) in _rows(pg_dsn, "SELECT tablename FROM pg_tables")}
        assert _rows(pg_dsn, "SELECT count(*) FROM events") == [(10,)]
        assert _rows(pg_dsn, "SELECT count(*) FROM chain_anchors") == [(10,)]
        # The ledger forgot the dropped keys (as a row delete frees them in SQLite).
        assert _rows(pg_dsn, "SELECT count(*) FROM event_keys") == [(10,)]
        # Nothing left to drop; another tier is untouched.
        assert stores[1].drop_expired("general", DAY0 + DAY, {}).count == 0
        assert stores[1].drop_expired("security", DAY0 + 5 * DAY, {}).count == 0
    finally:
        for store in stores:
            store.close()


def test_a_namespace_kept_longer_keeps_its_day(pg_dsn):
    store = PostgresStore(pg_dsn, "c1")
    try:
        _fill(store, "web-1", 0, namespace="audit")
        assert store.drop_expired("general", DAY0 + DAY, {"audit": None}).count == 0
        assert store.drop_expired("general", DAY0 + DAY, {"audit": DAY0}).count == 0
        # A shorter override alone may expire a day whose default is still kept.
        assert store.drop_expired("general", None, {"audit": DAY0 + DAY}).count == 5
    finally:
        store.close()


def test_one_collector_at_a_time_purges(pg_dsn):
    store = PostgresStore(pg_dsn, "c1")
    try:
        _fill(store, "web-1", 0)
        with psycopg.connect(pg_dsn, autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s, %s)", (pg_schema.LOCK_SPACE, pg_schema.LOCK_PURGE))
            assert store.drop_expired("general", DAY0 + DAY, {}).count == 0
            other.execute("SELECT pg_advisory_unlock(%s, %s)", (pg_schema.LOCK_SPACE, pg_schema.LOCK_PURGE))
        assert store.drop_expired("general", DAY0 + DAY, {}).count == 5
    finally:
        store.close()


def test_row_deletes_keep_anchors_and_free_keys(pg_dsn):
    store = PostgresStore(pg_dsn, "c1")
    try:
        _fill(store, "web-1", 0)
        result = store.delete_events([2, 3, 4, 9])
        assert (result.count, result.ranges) == (4, [(2, 4), (9, 9)])
        assert [s for s, _ in result.anchors] == [4, 9]
        again = store.store_batch([incoming("web-1", "a.log", [0, 1], time_us=[DAY0, DAY0])], DAY0)
        assert (again[0].stored, again[0].duplicates) == (1, 1)
    finally:
        store.close()


def test_a_namespace_kept_shorter_is_deleted_row_by_row_from_a_day_that_stays(pg_dsn):
    from fleetlog.collector.store.postgres_reader import PostgresReader

    stores = [PostgresStore(pg_dsn, "c1"), PostgresStore(pg_dsn, "c2")]
    reader = PostgresReader(pg_dsn, chain="c1")
    try:
        _fill(stores[0], "web-1", 0, namespace="staging")
        _fill(stores[0], "web-3", 0)
        _fill(stores[1], "web-2", 0, namespace="staging")
        # staging has expired for both days, the default only for day 0: day 0 goes whole (not
        # row by row); day 1 stays, and only c1's own staging events there (the even seqs) are
        # deleted row by row (c2 deletes its own).
        rows = reader.expired("general", DAY0 + DAY, {"staging": DAY0 + 2 * DAY}, (-(1 << 62), 0), 100)
        assert [seq for _, seq in rows] == [2, 4, 6, 8, 10]
        assert [seq for _, seq in reader.expired("general", DAY0 + DAY, {}, (-(1 << 62), 0), 100)] == []
    finally:
        reader.close()
        for store in stores:
            store.close()
