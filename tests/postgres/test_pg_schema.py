"""The PostgreSQL schema: migrations applied once under a lock, a newer schema refused, day
partitions created ahead and on demand."""

from __future__ import annotations

import threading

import psycopg
import pytest

from fleetlog.collector.store import pg_schema
from fleetlog.common.errors import StorageError


def _connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True, connect_timeout=5)


def test_fresh_database_gets_every_migration_once(pg_dsn):
    with _connect(pg_dsn) as conn:
        assert pg_schema.migrate(conn, "c1") == 0
        assert pg_schema.migrate(conn, "c1") == pg_schema.LATEST_VERSION
        rows = conn.execute("SELECT version, applied_by FROM fleetlog_schema ORDER BY version").fetchall()
        assert rows == [(v, "c1") for v, _ in pg_schema.MIGRATIONS]
        tables = {name for (name,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"chains", "origins", "event_keys", "events_permanent", "chain_anchors", "checkpoints",
                "signing_keys", "collectors", "nodes", "forwarder_cursors"} <= tables


def test_collectors_starting_together_apply_each_step_once(pg_dsn):
    found: list[int] = []
    errors: list[BaseException] = []

    def start(name: str) -> None:
        try:
            with _connect(pg_dsn) as conn:
                found.append(pg_schema.migrate(conn, name))
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(f"c{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sorted(found) == [0] + [pg_schema.LATEST_VERSION] * 3
    with _connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM fleetlog_schema").fetchone()[0] == len(pg_schema.MIGRATIONS)


def test_a_newer_schema_is_refused_untouched(pg_dsn):
    with _connect(pg_dsn) as conn:
        pg_schema.migrate(conn, "c1")
        conn.execute("INSERT INTO fleetlog_schema(version, applied_by) VALUES (%s, 'future')",
                     (pg_schema.LATEST_VERSION + 1,))
        with pytest.raises(StorageError) as caught:
            pg_schema.migrate(conn, "c1")
        assert str(caught.value) == (
            f"the database schema is version {pg_schema.LATEST_VERSION + 1}, made by a newer fleetlog; "
            f"this collector knows versions up to {pg_schema.LATEST_VERSION}: upgrade it "
            "(refusing to touch a newer schema)")
        # The lock was given back: another collector is not stuck behind the refusal.
        assert conn.execute("SELECT pg_try_advisory_lock(%s, %s)",
                            (pg_schema.LOCK_SPACE, pg_schema.LOCK_MIGRATIONS)).fetchone()[0]


def test_partitions_are_created_ahead_and_route_events(pg_dsn):
    now = 1_764_590_400_000_000 + 5 * 3600 * 1_000_000     # 2025-12-01 05:00 UTC
    with _connect(pg_dsn) as conn:
        pg_schema.migrate(conn, "c1")
        have = pg_schema.create_partitions(conn, pg_schema.days_ahead(now, 2))
        assert have == pg_schema.existing_partitions(conn)
        assert sorted(pg_schema.partition_name(t, s) for t, s in have) == [
            "events_general_20251201", "events_general_20251202", "events_general_20251203",
            "events_security_20251201", "events_security_20251202", "events_security_20251203"]
        # Asking again creates nothing new and does not fail.
        assert pg_schema.create_partitions(conn, pg_schema.days_ahead(now, 2)) == have
        conn.execute(
            "INSERT INTO events (chain, seq, origin, pos, id, time, received_at, host, namespace, level,"
            " message, tier, truncated, hash) VALUES ('c1', 1, 1, 1, 'x', %s, %s, 'h', 'default', 6, 'm',"
            " 'general', 0, '\\x00')", (now, now))
        assert conn.execute("SELECT count(*) FROM events_general_20251201").fetchone()[0] == 1
        assert pg_schema.parse_partition_name("events_security_20251203") == (
            "security", pg_schema.day_start(now) + 2 * pg_schema.DAY_US)
